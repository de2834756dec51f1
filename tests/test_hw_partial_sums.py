"""Per-tile conversion of partial sums: what the next layer reads (hardware_models.partial_sums)."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from hardware_models.converters import ConverterConfig
from hardware_models.partial_sums import TileReads
from pcsim import field, network
from pcsim.algorithms import initial_activities
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine

# a 3-bit ADC over [-1, 1]: 2^3 - 1 = 7 levels, step (1 - (-1)) / (2^3 - 2) = 1/3
ADC3 = ConverterConfig(adc_bits=3, adc_low=-1.0, adc_high=1.0)


def test_each_tile_rounds_and_clips_its_own_partial_sum():
    """Two row tiles of 2 inputs each: partial sums 0.2 + 0.2 read as 1/3 + 1/3 = 2/3 (one
    converter would read 0.4 as 1/3); 0.9 + 0.9 reads as 1 + 1 = 2 (one converter clips at 1)."""
    reads = TileReads(2, 1, ADC3)
    W = np.array([[0.1, 0.1, 0.1, 0.1], [0.45, 0.45, 0.45, 0.45]])
    x = np.ones((1, 4))
    np.testing.assert_allclose(reads.forward(x, W), [[2 / 3, 2.0]], rtol=1e-12)
    whole = TileReads(None, None, ADC3)
    np.testing.assert_allclose(whole.forward(x, W), [[1 / 3, 1.0]], rtol=1e-12)
    # the scale multiplies before conversion: 0.5 * 0.2 = 0.1 rounds to 0 in each tile
    np.testing.assert_allclose(reads.forward(x, W, 0.5), [[0.0, 2 / 3]], atol=1e-12)
    # the backward read tiles the outputs: 2 outputs on 1-column tiles, each converted alone
    e = np.array([[1.0, 1.0]])
    back = reads.backward(e, W)  # per input: Q(0.1) + Q(0.45) = 0 + 1/3
    np.testing.assert_allclose(back, np.full((1, 4), 1 / 3), rtol=1e-12)
    np.testing.assert_allclose(whole.backward(e, W), np.full((1, 4), 2 / 3), rtol=1e-12)


def test_fine_adc_approaches_the_plain_product_within_half_a_step_per_tile():
    rng = np.random.default_rng(3)
    W = rng.uniform(-0.1, 0.1, (7, 10))
    x = rng.uniform(-1, 1, (5, 10))
    cv = ConverterConfig(adc_bits=12, adc_low=-4.0, adc_high=4.0)
    reads = TileReads(4, 3, cv)  # 3 row tiles (4 + 4 + 2 inputs), 3 column tiles
    half_step = 0.5 * 8.0 / (2**12 - 2)
    assert np.max(np.abs(reads.forward(x, W) - x @ W.T)) <= 3 * half_step + 1e-12
    e = rng.uniform(-1, 1, (5, 7))
    assert np.max(np.abs(reads.backward(e, W) - e @ W)) <= 3 * half_step + 1e-12
    with pytest.raises(ValueError, match="adc_bits"):
        TileReads(4, 3, ConverterConfig())


def test_chip_reads_through_tile_adcs_only_when_asked_with_digital_sums_and_a_real_adc():
    on = {"architecture.tile_adc_reads": True}
    assert load_preset("rram").tile_reads() is None  # the presets charge, reads stay exact
    reads = load_preset("rram", on).tile_reads()  # NeuroSim: per-subarray conversion
    assert (reads.tile_rows, reads.tile_cols, reads.converter.adc_bits) == (128, 128, 8)
    assert load_preset("rram", {**on, "architecture.partial_sums": "analog"}).tile_reads() is None
    assert load_preset("rram", {**on, "converters.adc_bits": None}).tile_reads() is None
    assert load_preset("ideal", on).tile_reads() is None


QUIET = {  # every noise source off: the step is deterministic
    "synapses.read_noise_std": 0.0,
    "synapses.prog_noise_std": 0.0,
    "synapses.stuck_fraction": 0.0,
    "value_units.thermal_noise": False,
    "value_units.tau_mismatch_std": 0.0,
    "error_units.noise_std": 0.0,
    "error_units.gain_error_std": 0.0,
    "error_units.offset_std": 0.0,
    "architecture.tile_adc_reads": True,
    "architecture.tile_rows": 4,
    "architecture.tile_cols": 3,
    "converters.adc_bits": 4,  # coarse (step 8/14 activity units) so the effect is large
}


def _tiled_product(v: np.ndarray, M: np.ndarray, block: int, lo: float, hi: float, bits: int):
    """sum over blocks of rows of M of the mid-tread quantised partial product, written out."""
    step = (hi - lo) / (2**bits - 2)
    c = 0.5 * (lo + hi)
    total = np.zeros((v.shape[0], M.shape[1]))
    for s in range(0, M.shape[0], block):
        p = v[:, s : s + block] @ M[s : s + block]
        total += c + step * np.rint((np.clip(p, lo, hi) - c) / step)
    return total


def test_the_engine_and_the_deployed_pass_read_quantised_partial_sums():
    chip = load_preset("rram", QUIET)
    net = network.build((10, 7, 5), "tanh", rng=4)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(1))
    assert circ.partial_sums is not None
    Ws = circ.read_weights()
    cv = chip.converters
    lo, hi, bits = cv.adc_low, cv.adc_high, cv.adc_bits
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (3, 10)).astype(net.dtype)
    # deployed feedforward: x_1 = Q-tiled(x W_1^T) through the units' equilibrium
    xs = initial_activities(circ, x, None)
    x0 = xs[0].astype(np.float64)
    mu1 = net.scales[0] * _tiled_product(x0, Ws[0].T.astype(np.float64), 4, lo, hi, bits)
    g, o, k = (
        a[1].astype(np.float64)
        for a in (circ.units.error_gain, circ.units.error_offset, circ.units.leak)
    )
    np.testing.assert_allclose(xs[1], (g * mu1 - o) / (g + k), rtol=1e-5, atol=1e-6)
    # one Euler step of the numba-configured engine: errors and top-down sums as written out
    free = [False, True, True]
    xs = [x0.astype(net.dtype)] + [rng.uniform(-1, 1, (3, n)).astype(net.dtype) for n in (7, 5)]
    before = [v.astype(np.float64) for v in xs]
    eng = ClockedEngine(dt=0.1, backend="numba")
    eng.step(circ, xs, free)
    W1, W2 = (W.astype(np.float64) for W in Ws)
    e1 = before[1] - net.scales[0] * _tiled_product(before[0], W1.T, 4, lo, hi, bits)
    e2 = before[2] - net.scales[1] * _tiled_product(np.tanh(before[1]), W2.T, 4, lo, hi, bits)
    units = circ.units
    e1 = units.error_gain[1] * e1 + units.error_offset[1]
    e2 = units.error_gain[2] * e2 + units.error_offset[2]
    back = net.scales[1] * _tiled_product(e2, W2, 3, lo, hi, bits)  # column tiles of W_2
    d1 = -e1 + (1 - np.tanh(before[1]) ** 2) * back - units.leak[1] * before[1]
    want = np.clip(before[1] + circ.gammas(0.1)[1] * d1, *circ.rails)
    np.testing.assert_allclose(xs[1], want, rtol=1e-5, atol=1e-5)
    # and the quantisation matters here: the plain products give another step
    plain = field.errors(net, before, [W1, W2], units)
    assert np.max(np.abs(plain[0] - e1)) > 0.05


def test_engines_that_cannot_read_through_tile_adcs_refuse():
    from pcsim.engines.adaptive import AdaptiveEngine

    chip = load_preset("rram", QUIET)
    net = network.build((10, 7, 5), "tanh", rng=4)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(1))
    xs = [np.zeros((1, n)) for n in net.sizes]
    with pytest.raises(ValueError, match="tile_adc_reads"):
        AdaptiveEngine().solve(circ, xs, [False, True, True], 1.0)


def test_the_events_engine_is_refused_at_configuration():
    from pcsim import config

    d = {
        "engine": {"kind": "events"},
        "learning": {"optimizer": "sgd", "tau_w": 50.0},
        "chip": {"preset": "rram", "architecture": {"tile_adc_reads": True}},
    }
    with pytest.raises(config.ConfigError, match="engine.kind = 'events'.*tile_adc_reads"):
        config.from_dict(d)
    d["chip"]["architecture"]["tile_adc_reads"] = False
    assert config.from_dict(d).engine.kind == "events"
