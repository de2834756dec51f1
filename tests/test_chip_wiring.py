"""The chip wired into the engines: the ideal chip is the pure algorithm bit for bit, the numba
path equals the reference with every non-ideality on, non-idealities cost accuracy in the
expected direction, and the ledger is linear in time and in synapses."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from pcsim import config, network
from pcsim.algorithms import IPC, PC
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.optim import Adam
from pcsim.run import execute


def _train_some(circ, algorithm, seed=0, steps=6):
    rng = np.random.default_rng(seed)
    eng, opt = ClockedEngine(dt=0.25), Adam(1e-2)
    for _ in range(steps):
        x = rng.random((8, circ.net.sizes[0])).astype(circ.net.dtype)
        y = np.eye(circ.net.sizes[-1], dtype=circ.net.dtype)[rng.integers(0, 3, 8)]
        algorithm.train_batch(circ, eng, opt, x, y)


@pytest.mark.parametrize("algorithm", [IPC(T=1.0), PC(T=1.0)])
def test_ideal_preset_is_the_pure_algorithm_bit_for_bit(algorithm):
    net = network.build((6, 9, 7, 3), "tanh", bias=True, dtype=np.float32, rng=1)
    pure, on_chip = net.copy(), net.copy()
    _train_some(Circuit(pure, rng=np.random.default_rng(5)), algorithm)
    circ = Circuit(on_chip, chip=load_preset("ideal"), rng=np.random.default_rng(5))
    _train_some(circ, algorithm)
    for a, b in zip(pure.parameters(), on_chip.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert circ.ledger.total() > 0  # the ideal chip still prices what it did


def test_numba_path_equals_reference_with_every_nonideality_on():
    """pcm: programming and read noise, drift, mismatch, leak, offsets, rails, thermal noise."""
    net = network.build((5, 8, 6, 3), "tanh", bias=True, rng=2)
    finals = []
    for backend in ("numpy", "numba"):
        circ = Circuit(net.copy(), chip=load_preset("pcm"), rng=np.random.default_rng(7))
        assert not circ.ideal and circ.noisy
        xs = [np.random.default_rng(3).standard_normal((4, n)) for n in net.sizes]
        eng = ClockedEngine(dt=0.1, backend=backend)
        for _ in range(10):
            rec = eng.step(circ, xs, [False, True, True, False])
            dW, _ = eng.weight_drift(circ, rec)
            circ.apply_weight_update([1e-2 * d for d in dW], None)
        finals.append((xs, [W.copy() for W in circ.net.weights]))
    for a, b in zip(finals[0][0] + finals[0][1], finals[1][0] + finals[1][1], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_rails_bound_every_value_unit():
    net = network.build((4, 6, 3), "linear", rng=3)
    for W in net.weights:
        W *= 10.0
    circ = Circuit(net, chip=load_preset("pcm"), rng=np.random.default_rng(1))
    lo, hi = circ.rails
    xs = [np.full((2, n), 0.9) for n in net.sizes]
    ClockedEngine(dt=0.1).run(circ, xs, [False, True, True], 20.0)
    assert all(lo <= v.min() and v.max() <= hi for v in xs[1:])
    assert max(np.abs(v).max() for v in xs[1:]) == pytest.approx(hi)  # rails reached


def test_ledger_static_linear_in_time_and_reads_linear_in_synapses():
    chip = load_preset("rram")
    small = Circuit(network.build((4, 6, 3), "tanh", rng=0), chip=chip)
    big = Circuit(network.build((4, 12, 3), "tanh", rng=0), chip=chip)
    small.charge_time(1.0, batch=2)
    s1 = small.ledger.by_component()
    small.charge_time(2.0, batch=2)
    s3 = small.ledger.by_component()
    assert s3["static"] == pytest.approx(3 * s1["static"])
    big.charge_time(1.0, batch=2)
    ratio = big.ledger.by_component()["crossbar_read"] / s1["crossbar_read"]
    assert ratio == pytest.approx((4 * 12 + 12 * 3) / (4 * 6 + 6 * 3))
    # by hand: 2 directions x synapses x tau x batch x energy per MAC
    assert s1["crossbar_read"] == pytest.approx(2 * 42 * 1.0 * 2 * chip.costs.read_energy_per_mac_j)
    assert s1["static"] == pytest.approx(
        (4 + 6 + 3 + 6 + 3) * chip.costs.static_power_per_unit_w * chip.tau_x_s * 2
    )


SHORT = """
seed = 3
[learning]
epochs = 3
optimizer = "adam"  # per-step Adam in mini-batches: the sensitivity these tests were sized for
lr = 1e-3
batch_size = 32
[data]
limit_train = 600
[baseline]
bp = false
[algorithm]
inference_samples = 8  # the inference figures are not what these tests read
[chip]
preset = "rram"
"""


def _acc(extra: str, preset: str = "rram") -> float:
    text = SHORT.replace('"rram"', f'"{preset}"') + extra
    return execute(config.loads(text), progress=False).summary["test_accuracy"]


def test_accuracy_falls_as_noise_is_pushed_up():
    quiet, some, much = (_acc(f"[chip.synapses]\nread_noise_std = {s}\n") for s in (0.0, 0.3, 0.6))
    assert quiet > 0.8
    assert much < some < quiet and much < quiet - 0.1


def test_accuracy_falls_as_bits_are_pushed_down():
    """Digital-level cells (sram-cim: hard bounds, writes snap to the level grid)."""
    many = _acc("[chip.synapses]\nbits = 6\n", "sram-cim")
    two = _acc("[chip.synapses]\nbits = 2\n", "sram-cim")
    one = _acc("[chip.synapses]\nbits = 1\n", "sram-cim")
    assert many > 0.8
    assert one < two < many


def test_summary_reports_energy_latency_and_baseline():
    s = execute(config.loads(SHORT.replace("epochs = 3", "epochs = 1")), progress=False).summary
    for key in (
        "chip",
        "energy_per_sample_j",
        "latency_per_sample_s",
        "baseline_energy_per_sample_j",
        "baseline_latency_per_sample_s",
        "energy_breakdown_j",
        "inference_energy_per_sample_j",
        "inference_latency_per_sample_s",
    ):
        assert key in s
    assert s["chip"] == "rram"
    assert s["energy_per_sample_j"] == pytest.approx(sum(s["energy_breakdown_j"].values()))
    assert s["latency_per_sample_s"] == pytest.approx(2.0 * 100e-9)  # T = 2 tau, tau = 100 ns
    assert s["energy_ratio"] == pytest.approx(
        s["baseline_energy_per_sample_j"] / s["energy_per_sample_j"]
    )


def test_output_domain_read_noise_has_the_variance_of_per_device_noise():
    """Independent N(0, s^2) noise on every device at every read makes a prediction
    a W phi + a s ||phi|| z: the error's spread over many steps equals that, per sample.
    The read time is one engine step (10 ns of the ideal preset's 100 ns tau_x), so each step
    sees the mean of its line's OU over exactly one read, whose std is ``s`` by calibration
    (pcsim.read_noise)."""
    net = network.build((30, 20, 5), "tanh", rng=4)
    synapses = {"read_noise_std": 0.05, "w_max": 1.0, "read_time_s": 1e-8}
    chip = load_preset("ideal", {"synapses": synapses})
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(8))
    assert circ.has_read_noise and circ.read_sigma[0] == pytest.approx(0.05)
    x0 = np.random.default_rng(9).random((3, 30))
    xs = [x0, np.zeros((3, 20)), np.zeros((3, 5))]
    eng = ClockedEngine(dt=0.1)
    samples = []
    for _ in range(4000):
        rec = eng.step(circ, xs, [False, False, False])  # all clamped: state stays fixed
        samples.append(np.array(rec.eps[0]))
    spread = np.std(np.stack(samples), axis=0)  # (3, 20)
    want = 0.05 * np.linalg.norm(x0, axis=1, keepdims=True) * np.ones((1, 20))
    np.testing.assert_allclose(spread, want, rtol=0.06)
