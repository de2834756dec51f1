"""Energy ledger, converters and the digital backprop baseline, against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import ConverterConfig, DigitalConfig, EnergyLedger, digital_baseline, quantise
from hardware_models.costs import (
    READ,
    STATIC,
    CostConfig,
    rc_settling_time_s,
    read_energy,
    settling_latency,
    static_energy,
)


# -- ledger --------------------------------------------------------------------------------------
def test_static_energy_is_linear_in_time():
    cost = CostConfig(static_power_per_unit_w=1e-6)
    e1 = cost.static_energy_j(n_units=100, seconds=1e-3)
    e2 = cost.static_energy_j(n_units=100, seconds=3e-3)
    assert e1 == pytest.approx(100 * 1e-6 * 1e-3, rel=1e-12)
    assert e2 == pytest.approx(3 * e1, rel=1e-12)
    assert static_energy(2.0, 5.0) == 10.0


def test_read_energy_is_linear_in_macs():
    cost = CostConfig(read_energy_per_mac_j=205e-15)
    assert cost.read_energy_j(1000) == pytest.approx(205e-12, rel=1e-12)
    assert cost.read_energy_j(3000) == pytest.approx(3 * cost.read_energy_j(1000), rel=1e-12)
    assert read_energy(0, 1.0) == 0.0
    assert CostConfig(write_energy_per_pulse_j=2e-12).write_energy_j(7) == pytest.approx(14e-12)


def test_ledger_accumulates_and_round_trips():
    led = EnergyLedger()
    for _ in range(10):
        led.charge(READ, 1e-12, count=4)
        led.charge(STATIC, 2e-12)
        led.add_time(1e-6)
    assert led.by_component() == {READ: pytest.approx(1e-11), STATIC: pytest.approx(2e-11)}
    assert led.total() == pytest.approx(3e-11, rel=1e-12)
    assert led.counts() == {READ: 40}
    assert led.time_s == pytest.approx(1e-5, rel=1e-12)
    back = EnergyLedger.from_dict(led.to_dict())
    assert back.to_dict() == led.to_dict()
    back.merge(led)
    assert back.total() == pytest.approx(2 * led.total(), rel=1e-12)
    back.reset()
    assert back.total() == 0.0 and back.time_s == 0.0


def test_latency_helpers():
    assert settling_latency(12.0, 100e-9) == pytest.approx(1.2e-6, rel=1e-12)
    # docs/sources.md (RC settling): settling to N bits takes ~(N+1) ln2 tau
    assert rc_settling_time_s(100e-9, 8) == pytest.approx(9 * math.log(2) * 100e-9, rel=1e-12)


# -- digital baseline ----------------------------------------------------------------------------
def test_digital_baseline_small_mlp_by_hand():
    # 4-3-2 MLP: P1 = 4*3 = 12, P2 = 3*2 = 6 weights, batch 1, Horowitz 45 nm constants
    cost = digital_baseline([4, 3, 2], batch_size=1, n_samples=10)
    fwd = 2 * (12 + 6)  # 36
    bwd_data = 2 * 6  # 12 (no data gradient for the first layer)
    wgrad = 2 * (12 + 6)  # 36
    update = 2 * (12 + 6)  # 36 per batch of 1
    flops = fwd + bwd_data + wgrad + update  # 120
    assert cost.flops_train_per_sample == flops
    assert cost.flops_inference_per_sample == fwd
    # half multiplies (3.7 pJ), half adds (0.9 pJ)
    e_ops = flops / 2 * 3.7e-12 + flops / 2 * 0.9e-12  # 276 pJ
    # weight words: fwd 18 + bwd 6 + grad write 18 + update (read W, read G, write W) 54 = 96,
    # two FP32 words per 64-bit SRAM access of 10 pJ -> 48 accesses
    e_mem = 96 / 2 * 10e-12  # 480 pJ
    assert cost.train_energy_per_sample_j == pytest.approx(e_ops + e_mem, rel=1e-12)
    assert cost.train_energy_per_sample_j == pytest.approx(756e-12, rel=1e-12)
    e_inf = fwd / 2 * (3.7e-12 + 0.9e-12) + 18 / 2 * 10e-12
    assert cost.inference_energy_per_sample_j == pytest.approx(e_inf, rel=1e-12)
    assert cost.train_latency_per_sample_s == pytest.approx(flops / 19.5e12, rel=1e-12)
    assert cost.inference_latency_per_sample_s == pytest.approx(fwd / 19.5e12, rel=1e-12)
    assert cost.train_energy_total_j == pytest.approx(10 * (e_ops + e_mem), rel=1e-12)


def test_digital_baseline_batch_amortises_update_and_weight_traffic():
    cfg = DigitalConfig(mult_energy_j=1.0, add_energy_j=1.0, memory_energy_per_access_j=0.0)
    c1 = digital_baseline([4, 3, 2], 1, config=cfg)
    c4 = digital_baseline([4, 3, 2], 4, config=cfg)
    # only the per-batch update (36 FLOPs) is shared by the batch of 4
    assert c1.flops_train_per_sample - c4.flops_train_per_sample == pytest.approx(36 - 36 / 4)
    assert c4.memory_accesses_train_per_sample == pytest.approx(48 / 4)


# -- converters ----------------------------------------------------------------------------------
def test_quantise_levels_and_passthrough():
    x = np.linspace(-1.5, 1.5, 10001)
    assert quantise(x, None, -1.0, 1.0) is x
    q = quantise(x, 4, -1.0, 1.0)
    levels = np.unique(q)
    assert len(levels) == 2**4 - 1  # mid-tread: 15 levels, step 2/14
    np.testing.assert_allclose(np.diff(levels), 2.0 / 14, rtol=1e-12)
    assert 0.0 in levels and levels.min() == -1.0 and levels.max() == 1.0
    inside = np.abs(x) <= 1.0
    assert np.max(np.abs(q - x)[inside]) <= 1.0 / 14 + 1e-12  # half a step
    out = np.empty_like(x)
    assert quantise(x, 4, -1.0, 1.0, out=out) is out
    np.testing.assert_array_equal(out, q)


def test_converter_energy_is_walden_fom_times_levels():
    cc = ConverterConfig(adc_bits=8, dac_bits=6, walden_fom_j=5e-15)
    assert cc.adc_energy_j == pytest.approx(5e-15 * 256, rel=1e-12)
    assert cc.dac_energy_j == pytest.approx(5e-15 * 64, rel=1e-12)
    assert cc.adc_latency_s == pytest.approx(9e-9, rel=1e-12)
    ideal = ConverterConfig()
    assert ideal.is_ideal and ideal.adc_energy_j == 0.0
    x = np.ones(3)
    assert ideal.adc(x) is x and ideal.dac(x) is x
