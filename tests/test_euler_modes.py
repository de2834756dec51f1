"""The fastest inference mode and the period-2 oscillation it predicts (pcsim.euler_modes)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pcsim import config, euler_modes, network, stability
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.run import prepare


def test_fastest_rate_is_the_closed_form_of_a_linear_layer():
    """One free linear layer x_1 between clamped x_0 and x_2: F = 1/2 ||x_1 - W_1 x_0||^2 +
    1/2 ||x_2 - W_2 x_1||^2 has the Hessian I + W_2^T W_2, so the fastest rate is
    1 + sigma_max(W_2)^2, divided by the unit's time constant s (tau_x units)."""
    net = network.build([3, 6, 4], "linear", rng=3)
    circ = Circuit(net)
    rng = np.random.default_rng(0)
    bottom, top = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    free = [False, True, False]
    want = 1.0 + np.linalg.norm(net.weights[1], 2) ** 2
    modes = euler_modes.fastest_modes(circ, bottom, top, free, duration=4.0)
    np.testing.assert_allclose(modes.rate, want, rtol=1e-4)
    np.testing.assert_allclose(modes.layer_share[:, 1], 1.0)
    circ.tau_scale[1] = np.full(6, 0.5)  # units twice as fast
    circ._gamma_cache.clear()
    modes = euler_modes.fastest_modes(circ, bottom, top, free, duration=4.0)
    np.testing.assert_allclose(modes.rate, 2 * want, rtol=1e-4)
    # Euler's amplification 1 - dt * rate: at -1 exactly the limit
    assert modes.unstable(2.0 / (2 * want) * 1.001).all()
    assert not modes.unstable(2.0 / (2 * want) * 0.999).any()


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu", "sigmoid"])
def test_jacobian_product_matches_central_differences_on_a_chip(activation):
    """:func:`euler_modes.jvp` against (x'(x + h v) - x'(x - h v)) / 2h of the field itself,
    with rram's unit gains, offsets, leak and time-constant mismatch and a skip connection
    (states kept 1e-3 away from leaky ReLU's kink, where x' has no derivative)."""
    from hardware_models import load_preset

    net = network.build([5, 7, 7, 3], activation, rng=1, residual=[False, True, False])
    circ = Circuit(net, chip=load_preset("rram"), rng=np.random.default_rng(0))
    rng = np.random.default_rng(2)
    xs = [rng.uniform(-1.5, 1.5, (4, n)) for n in net.sizes]
    xs = [np.where(np.abs(x) < 1e-3, 1e-2, x) for x in xs]
    free = [False, True, True, True]
    v = [rng.standard_normal(x.shape) * f for x, f in zip(xs, free, strict=True)]
    Ws = [np.asarray(W, np.float64) for W in circ.read_weights()]
    h = 1e-6
    up = euler_modes._rates(circ, [x + h * a for x, a in zip(xs, v, strict=True)], free, Ws)
    dn = euler_modes._rates(circ, [x - h * a for x, a in zip(xs, v, strict=True)], free, Ws)
    got = euler_modes.jvp(circ, xs, free, Ws, v)
    for l in range(4):
        np.testing.assert_allclose(got[l], (up[l] - dn[l]) / (2 * h), rtol=1e-5, atol=1e-7)


def _run(mode: str, dt: float, n_train: int):
    cfg = config.from_dict(
        {
            "seed": 0,
            "data": {"limit_train": n_train},
            "network": {"mode": mode},
            "algorithm": {"name": "pc", "presentation_time": 2.0},
            "engine": {"dt": dt},
            "baseline": {"bp": False},
            "chip": {"preset": "ideal"},
        }
    )
    return prepare(cfg, progress=False)


def _probe_batch(run, n: int = 16):
    d, net = run.trainer.data, run.net
    x = d.x_train[:n].astype(net.dtype)
    y = d.one_hot(d.y_train[:n]).astype(net.dtype)
    return (x, y) if net.mode == "supervised" else (y, x)


def _step_change(run, dt: float, duration: float = 20.0) -> float:
    """Run the training clamps for ``duration`` tau_x at step ``dt``, then one more step: the
    last hidden layer's rms change in that step relative to its rms value."""
    circ, net = run.circ, run.net
    bottom, top = _probe_batch(run)
    free = net.free_mask(True)
    xs = circ.initial_activities(bottom, top)
    eng = ClockedEngine(dt=dt)
    eng.run(circ, xs, free, duration)
    before = xs[-2].copy()
    eng.run(circ, xs, free, dt)
    return float(np.sqrt(np.mean((xs[-2] - before) ** 2) / np.mean(xs[-2] ** 2)))


@pytest.fixture(scope="module")
def generative():
    """Notebook 10's generative setting (ideal chip, PC, T = 2), trained at dt = 0.05 on 100
    digits: its hidden layers under the 64-pixel top relax at about 6/tau_x."""
    run = _run("generative", 0.05, 100)
    run.trainer.train_epoch()
    return run


def test_generative_net_oscillates_at_the_default_step_and_is_flagged(generative):
    run = generative
    # the oscillation itself: after 20 tau_x at dt = 0.5 the hidden units still jump by
    # about their own size at every step; at dt = 0.25, below the limit 2 / 6.3, they only
    # chatter around leaky ReLU's kink (a jump of dphi; amplitude proportional to dt)
    assert _step_change(run, 0.5) > 0.5
    assert _step_change(run, 0.25) < 0.1
    bottom, top = _probe_batch(run)
    modes = euler_modes.fastest_modes(run.circ, bottom, top, run.net.free_mask(True), 2.0)
    assert modes.unstable(0.5).all() and not modes.unstable(0.05).any()
    tr = run.trainer
    health = stability.HealthCheck(ClockedEngine(dt=0.5), "learning.tau_w", 50.0, 2.0)
    with pytest.warns(stability.OscillationWarning) as rec:
        health(tr)
    msg = str(rec[0].message)
    assert "engine.dt = 0.5 tau_x" in msg and f"layer {modes.worst_layer()}" in msg
    med = np.median(modes.rate)
    assert f"below {2 / med:.3g} tau_x" in msg
    # T = 2 tau_x is 4 steps of 0.5: the mode grows |1 - 0.5 rate|^4 per presentation
    assert f"(4 steps) it grows x{abs(1 - 0.5 * med) ** 4:.3g}" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", stability.OscillationWarning)
        health(tr)  # once per run
        stability.HealthCheck(ClockedEngine(dt=0.05), "learning.tau_w", 50.0, 2.0)(tr)


def test_default_supervised_run_is_not_flagged():
    """The default digits network (ideal chip) at dt = 0.5: dt * rate is about 1.3, stable."""
    run = _run("supervised", 0.5, 64)
    bottom, top = _probe_batch(run)
    modes = euler_modes.fastest_modes(run.circ, bottom, top, run.net.free_mask(True), 2.0)
    assert not modes.unstable(0.5).any()
    assert _step_change(run, 0.5) < 0.1  # only the kink's chatter
    with warnings.catch_warnings():
        warnings.simplefilter("error", stability.OscillationWarning)
        run.trainer.health(run.trainer)


def test_jacobian_product_of_a_conv_network_matches_central_differences():
    """The same check through strided convolutions (pcsim.conv): jvp uses the field's own
    products, dense or convolutional."""
    geoms = network.conv_stack((1, 8, 8), [{"channels": 2, "kernel": 3, "stride": 2, "padding": 1}])
    sizes = [geoms[0].n_in, geoms[0].n_out, 3]
    net = network.build(sizes, "tanh", rng=1, convs=(geoms[0], None), dtype=np.float64)
    circ = Circuit(net)
    rng = np.random.default_rng(2)
    xs = [rng.uniform(-1.5, 1.5, (3, n)) for n in net.sizes]
    free = [False, True, True]
    v = [rng.standard_normal(x.shape) * f for x, f in zip(xs, free, strict=True)]
    Ws = [np.asarray(W, np.float64) for W in circ.read_weights()]
    h = 1e-6
    up = euler_modes._rates(circ, [x + h * a for x, a in zip(xs, v, strict=True)], free, Ws)
    dn = euler_modes._rates(circ, [x - h * a for x, a in zip(xs, v, strict=True)], free, Ws)
    got = euler_modes.jvp(circ, xs, free, Ws, v)
    for l in range(3):
        np.testing.assert_allclose(got[l], (up[l] - dn[l]) / (2 * h), rtol=1e-5, atol=1e-7)
