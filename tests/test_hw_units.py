"""Value and error units: tau = C/g, kT/C thermal noise, mismatch, ideal identity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import ErrorUnitConfig, UnitArray, ValueUnitConfig, thermal_noise_sigma
from hardware_models.units import kt_over_c_v2


def test_tau_is_c_over_g():
    vu = ValueUnitConfig(capacitance_f=2e-12, conductance_s=4e-6)
    assert vu.tau_s == pytest.approx(0.5e-6, rel=1e-15)


def test_kt_over_c_matches_reference_numbers():
    # docs/sources.md (thermal noise at 300 K): kT/C rms 2.0 mV at 1 fF, 0.64 mV at 10 fF,
    # 64 uV at 1 pF
    assert math.sqrt(kt_over_c_v2(1e-15, 300.0)) == pytest.approx(2.0e-3, rel=0.02)
    assert math.sqrt(kt_over_c_v2(10e-15, 300.0)) == pytest.approx(0.64e-3, rel=0.02)
    assert math.sqrt(kt_over_c_v2(1e-12, 300.0)) == pytest.approx(64e-6, rel=0.02)


@pytest.mark.parametrize("cap_f, scale_v", [(1e-15, 1.0), (10e-15, 0.05)])
def test_thermal_noise_stationary_variance_is_kt_over_c(cap_f, scale_v):
    """Simulate the isolated unit dx = -x dt/tau + sigma sqrt(dt/tau) N(0,1)."""
    vu = ValueUnitConfig(capacitance_f=cap_f, thermal_noise=True, signal_scale_v=scale_v)
    sigma = vu.thermal_sigma
    assert sigma == thermal_noise_sigma(cap_f, 300.0, scale_v)
    target = 1.380649e-23 * 300.0 / cap_f / scale_v**2  # kT/C in activity units^2, by hand
    rng = np.random.default_rng(0)
    h, n_units = 0.01, 20000  # dt / tau
    x = np.zeros(n_units)
    amp = sigma * math.sqrt(h)
    samples = []
    for step in range(2500):
        x += -h * x + amp * rng.standard_normal(n_units)
        if step >= 1000 and step % 100 == 0:  # after 10 tau; samples 1 tau apart
            samples.append(x.copy())
    var = np.var(np.concatenate(samples))
    assert var == pytest.approx(target, rel=0.05)


def test_thermal_noise_off_gives_zero_sigma():
    assert ValueUnitConfig().thermal_sigma == 0.0


def test_tau_mismatch_is_lognormal_with_configured_sigma():
    vu = ValueUnitConfig(tau_mismatch_std=0.2)
    units = UnitArray.build(vu, ErrorUnitConfig(), 40000, np.random.default_rng(1))
    logs = np.log(units.tau_scale)
    assert np.std(logs) == pytest.approx(0.2, rel=0.03)
    assert abs(np.mean(logs)) < 4 * 0.2 / math.sqrt(logs.size)  # median 1
    assert np.all(units.tau_scale > 0)


def test_error_unit_gain_and_offset_spread():
    eu = ErrorUnitConfig(offset_std=0.01, gain_error_std=0.05, noise_std=1e-3)
    units = UnitArray.build(ValueUnitConfig(), eu, 40000, np.random.default_rng(2))
    assert np.std(units.error_gain) == pytest.approx(0.05, rel=0.03)
    assert np.mean(units.error_gain) == pytest.approx(1.0, abs=4 * 0.05 / 200)
    assert np.std(units.error_offset) == pytest.approx(0.01, rel=0.03)
    assert units.error_noise_std == 1e-3


def test_ideal_units_are_exact_and_draw_nothing():
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    units = UnitArray.build(ValueUnitConfig(), ErrorUnitConfig(), 17, rng, np.float32)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(units.tau_scale, np.ones(17, np.float32))
    np.testing.assert_array_equal(units.leak, np.zeros(17, np.float32))
    np.testing.assert_array_equal(units.error_gain, np.ones(17, np.float32))
    np.testing.assert_array_equal(units.error_offset, np.zeros(17, np.float32))
    np.testing.assert_array_equal(units.thermal_sigma, np.zeros(17, np.float32))
    assert units.tau_scale.dtype == np.float32
    assert units.rail_low == -math.inf and units.rail_high == math.inf
    assert ValueUnitConfig().is_ideal and ErrorUnitConfig().is_ideal


def test_leak_and_rails_are_passed_per_unit():
    vu = ValueUnitConfig(leak=0.05, rail_low=-1.5, rail_high=2.0)
    units = UnitArray.build(vu, ErrorUnitConfig(), 4)
    np.testing.assert_array_equal(units.leak, np.full(4, 0.05))
    assert (units.rail_low, units.rail_high) == (-1.5, 2.0)
    assert not vu.is_ideal
