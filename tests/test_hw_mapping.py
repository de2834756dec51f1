"""Mapping options: several device pairs per weight, per-column remapping (closed forms)."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from hardware_models.mapping import MappedCrossbar
from hardware_models.synapses import Crossbar
from pcsim import network
from pcsim.circuit import Circuit

# rram with only the error under test: programming noise 5 % of w_max, 8-bit levels
PLAIN = {
    "synapses.read_noise_std": 0.0,
    "synapses.d2d_std": 0.0,
    "synapses.stuck_fraction": 0.0,
    "synapses.dw_min_std": 0.0,
    "synapses.bits": None,
    "synapses.w_max": 1.0,
}


def _chip(**over):
    return load_preset("rram", {**PLAIN, **over})


def test_n_pairs_average_programming_noise_as_one_over_sqrt_n():
    W = np.random.default_rng(0).uniform(-0.5, 0.5, (300, 300))
    stds = {}
    for n in (1, 4):
        xb = _chip(**{"architecture.device_pairs": n}).crossbar(W.shape)
        assert isinstance(xb, MappedCrossbar if n > 1 else Crossbar)
        xb.program(W, np.random.default_rng(n))
        stds[n] = float(np.std(xb.read_mean(0.0) - W))
    # 0.05 * w_max per device; the mean of 4 independent devices: 0.025 (90 000 samples)
    assert stds[1] == pytest.approx(0.05, rel=0.02)
    assert stds[4] == pytest.approx(0.05 / 2, rel=0.02)
    noisy = _chip(**{"architecture.device_pairs": 4, "synapses.read_noise_std": 0.02})
    assert noisy.crossbar(W.shape).read_sigma == pytest.approx(0.02 / 2)


def test_n_pairs_fire_n_times_the_pulses_and_cost_n_times_the_cells_and_reads():
    dW = np.full((20, 30), 0.0105)  # 5.25 pulses of dw_min = 0.002 x w_max per device
    fired = {}
    for n in (1, 3):
        xb = _chip(**{"architecture.device_pairs": n, "synapses.prog_noise_std": 0.0}).crossbar(
            dW.shape
        )
        xb.program(np.zeros(dW.shape), np.random.default_rng(0))
        fired[n] = xb.update(dW, np.random.default_rng(1))
    assert fired[3] == 3 * fired[1] and fired[1] == 5 * dW.size  # 5 whole pulses, 0.25 kept
    sizes = [30, 20]
    a1 = _chip().area_mm2(sizes)
    a3 = _chip(**{"architecture.device_pairs": 3}).area_mm2(sizes)
    assert a3["synapse_cells"] == pytest.approx(3 * a1["synapse_cells"])
    assert a3["adc"] == a1["adc"]
    read = {}
    for n in (1, 3):
        c = Circuit(
            network.build((30, 20), "tanh", rng=0), chip=_chip(**{"architecture.device_pairs": n})
        )
        c.charge_time(5.0, 1)
        read[n] = c.ledger.by_component()["crossbar_read"]
    assert read[3] == pytest.approx(3 * read[1])


def test_column_remap_quantises_each_column_on_its_own_range():
    """4-bit levels (lsb = w_max / 7): a column whose largest weight is a tenth of the
    matrix's is programmed at gain 10, so its levels are ten times finer in weight units."""
    chip = _chip(
        **{
            "architecture.column_remap": True,
            "synapses.bits": 4,
            "synapses.dw_min": None,  # one pulse = one level
            "synapses.prog_noise_std": 0.0,
        }
    )
    W = np.array([[0.8, -0.3, 0.5], [0.08, 0.013, -0.05]])
    xb = chip.crossbar(W.shape)
    xb.program(W, np.random.default_rng(0))
    np.testing.assert_allclose(xb.scale[:, 0], [1.0, 10.0])
    lsb = 1.0 / 7
    want = np.rint(W * xb.scale / lsb) * lsb / xb.scale
    np.testing.assert_allclose(xb.read_mean(0.0), want, rtol=1e-6, atol=1e-7)
    plain = _chip(**{"synapses.bits": 4, "synapses.prog_noise_std": 0.0}).crossbar(W.shape)
    plain.program(W, np.random.default_rng(0))
    err_remap = np.abs(xb.read_mean(0.0)[1] - W[1]).max()
    err_plain = np.abs(plain.read_mean(0.0)[1] - W[1]).max()
    assert err_remap <= lsb / 20 + 1e-9 < err_plain
    # a requested change is written at the column's gain: lsb / 10 in weight units is one
    # whole level (one pulse) of the device, read back through 1 / s_o
    fired = xb.update(np.array([[0.0, 0.0, 0.0], [lsb / 10, 0.0, 0.0]]), np.random.default_rng(2))
    assert fired == 1
    moved = xb.pairs[0].weights[1, 0] - 6 * lsb  # the device held 0.8 -> 6 levels
    assert moved > 0
    assert xb.weights[1, 0] - want[1, 0] == pytest.approx(moved / 10, rel=1e-5)


def test_column_remap_is_charged_one_multiply_per_output_and_direction():
    net = network.build((30, 20, 10), "tanh", rng=0)
    c = Circuit(net, chip=_chip(**{"architecture.column_remap": True}))
    c.charge_periphery(4.0, 2)
    led = c.ledger.by_component()
    n = 2 * (20 + 10) * 4.0 * 2
    assert led["column_remap"] == pytest.approx(n * c.chip.costs.baseline.mult_energy_j)
    plain = Circuit(network.build((30, 20, 10), "tanh", rng=0), chip=_chip())
    plain.charge_periphery(4.0, 2)
    assert "column_remap" not in plain.ledger.by_component()


def test_exactly_written_pairs_are_priced_n_times_at_their_column_gain():
    """Devices without a pulse size are priced as 8-bit pulse-equivalents of the change they
    make: two remapped pairs make 2 x s_o times the change of the weight."""
    over = {"synapses.dw_min": None, "architecture.device_pairs": 2}
    net = network.build((4, 3), "tanh", rng=1)
    c = Circuit(net, chip=_chip(**over, **{"architecture.column_remap": True}))
    cb = c.crossbars[0]
    assert not c.chip.synapses.pulsed and cb.n_pairs == 2
    q = c._exact_quantum[0]
    d = np.full((3, 4), 0.01)
    c.apply_weight_update([d], None)
    want = 2 * float(np.sum(np.abs(d) * cb.scale)) / q
    assert c.ledger.counts()["synapse_write"] == pytest.approx(want)
    assert np.any(cb.scale > 1)  # the columns' gains differ: the pricing used them
