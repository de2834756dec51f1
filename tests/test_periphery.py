"""Conversion latency per sample, noise and bound management's price, pulse accumulators."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from pcsim import network
from pcsim.circuit import Circuit
from pcsim.periphery import accumulator_adds_per_sample, accumulator_energy

T_ADC = 9e-9  # an 8-bit SAR ADC: (8 + 1) cycles of 1 ns (NeuroSim)


def _circuit(**over) -> Circuit:
    """A 784-128-10 network on the rram preset (tau_x = 100 ns, 8-bit ADCs) with ``over``."""
    chip = load_preset("rram", over)
    return Circuit(network.build((784, 128, 10), "tanh", rng=0), chip=chip)


def test_784_wide_layer_on_256_tiles_reports_more_conversions_area_and_latency():
    """The issue's check, on what a run reports: 256 x 256 tiles with per-tile conversion
    (16 columns per ADC) against one large crossbar per matrix with analog partial sums."""
    tiled = _circuit(
        **{
            "architecture.tile_rows": 256,
            "architecture.tile_cols": 256,
            "architecture.adc_share_columns": 16,
        }
    )
    one = _circuit(
        **{
            "architecture.tile_rows": None,
            "architecture.tile_cols": None,
            "architecture.partial_sums": "analog",
            "architecture.adc_share_columns": 16,
        }
    )
    sizes = [784, 128, 10]
    conv = [
        sum(m.conversions_forward + m.conversions_backward for m in c.chip.layer_maps(sizes))
        for c in (tiled, one)
    ]
    # 4 row tiles x 128 outputs + 784 inputs back; then 128 + 10 on the second layer's tile
    assert conv == [4 * 128 + 784 + 10 + 128, 0]
    assert sum(tiled.chip.area_mm2(sizes).values()) > sum(one.chip.area_mm2(sizes).values())
    # a read: 16 lines per ADC at 9 ns and log2(4) = 2 adder clocks of 1 ns = 146 ns, more
    # than tau_x = 100 ns, so the tiles set the read period; one crossbar reads in tau_x
    assert tiled.read_period_s() == pytest.approx(16 * T_ADC + 2e-9)
    assert one.read_period_s() == pytest.approx(100e-9)
    T = 8.0  # a presentation of 8 tau_x is 8 reads
    assert T * tiled.read_period_s() == pytest.approx(T * 146e-9)


@pytest.mark.parametrize("k", [1, 4, 8, 16, 32])
def test_adc_sharing_sets_the_read_period_and_the_output_read_as_stated(k):
    c = _circuit(
        **{
            "architecture.tile_rows": 256,
            "architecture.tile_cols": 256,
            "architecture.adc_share_columns": k,
        }
    )
    # slowest layer and direction: the 784-wide layer's forward read, k lines per ADC plus
    # two adder stages; the backward read of its single column tile has no adder stage
    conv = min(k, 256) * T_ADC + 2e-9
    assert c.read_period_s() == pytest.approx(max(100e-9, conv))
    assert c.read_period_s(backward=False) == pytest.approx(max(100e-9, conv))
    # the 10 outputs at the edge: ceil(10 / k) ADCs, each converting min(k, 10) in turn
    assert c.output_conversion_s() == pytest.approx(min(k, 10) * T_ADC)
    assert c.output_conversion_s(retries=3) == pytest.approx(4 * min(k, 10) * T_ADC)


def test_static_energy_follows_the_stretched_read_period():
    """A chip whose conversions outlast tau_x keeps its units biased for the longer read."""
    slow = _circuit(
        **{
            "architecture.tile_rows": 256,
            "architecture.tile_cols": 256,
            "architecture.adc_share_columns": 32,  # 32 x 9 + 2 = 290 ns per read
        }
    )
    fast = _circuit(**{"architecture.partial_sums": "analog"})
    for c in (slow, fast):
        c.charge_time(10.0, 1)
    e_slow, e_fast = (c.ledger.by_component()["static"] for c in (slow, fast))
    assert e_slow / e_fast == pytest.approx(290e-9 / 100e-9)


def test_bound_management_repeats_are_charged_and_counted():
    """An output read at 3x the ADC range (+-4) is halved twice (k = 2): 3 conversions of each
    value, 2 of them charged as bound management, and two extra output reads of latency."""
    c = _circuit(**{"converters.bound_management": "iterative"})
    y = c.adc(np.full((1, 10), 12.0))
    np.testing.assert_allclose(y, 12.0, rtol=0.01)  # read back, not clipped at 4
    e = c.chip.converters.adc_energy_j
    led = c.ledger.by_component()
    assert led["adc"] == pytest.approx(10 * e)
    assert led["bound_management"] == pytest.approx(2 * 10 * e)
    assert c.adc_retries == 2
    assert c.output_conversion_s(c.adc_retries) - c.output_conversion_s() == pytest.approx(
        2 * 8 * T_ADC  # rram: 8 outputs share an ADC
    )
    plain = _circuit()
    assert plain.adc(np.full((1, 10), 12.0)).max() == pytest.approx(4.0)  # clipped
    assert "bound_management" not in plain.ledger.by_component() and plain.adc_retries == 0


def test_accumulator_adds_and_energy_closed_form():
    sizes = [64, 20, 10]
    n_w = 64 * 20 + 20 * 10
    assert accumulator_adds_per_sample("ipc", sizes, 2.0) == 2.0 * n_w
    assert accumulator_adds_per_sample("pc", sizes, 2.0) == n_w
    assert accumulator_adds_per_sample("bp", sizes, 2.0) == 0.0
    # at Horowitz's own 45 nm: an 8-bit add is 0.03 pJ, a 16-bit accumulator twice that
    chip = load_preset("rram").with_overrides(
        {"node_nm": 45.0, "architecture": {"accumulator_bits": 16}}
    )
    assert chip.synapses.pulsed
    assert chip.accumulator_add_energy_j == pytest.approx(0.06e-12)
    e = accumulator_energy(chip, "ipc", sizes, 2.0)
    assert e == {"pulse_accumulators": pytest.approx(2.0 * n_w * 0.06e-12)}
    # an exactly written device has no accumulator
    assert accumulator_energy(load_preset("ideal"), "ipc", sizes, 2.0) == {}
    # at a smaller node the add costs less
    assert load_preset("rram").accumulator_add_energy_j < 0.03e-12
