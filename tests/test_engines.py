"""Engines against ground truth: convergence orders, closed-form equilibria, the
Ornstein-Uhlenbeck stationary covariance, and divergence reporting."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from conftest import random_state

from pcsim import field, network, theory
from pcsim.circuit import Circuit
from pcsim.engines.adaptive import AdaptiveEngine
from pcsim.engines.clocked import ClockedEngine, DivergenceError


def _supervised_free(net):
    return [False] + [True] * (net.n_layers - 1) + [False]


def _trajectory_end(net, xs, engine, T):
    x = [v.copy() for v in xs]
    engine.run(Circuit(net), x, _supervised_free(net), T)
    return np.concatenate([v.ravel() for v in x])


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
def test_clocked_methods_converge_to_adaptive_at_their_order(method, order, rng):
    net = network.build((6, 8, 8, 4), "tanh", bias=True, rng=11)
    xs = random_state(net, 3, rng)
    T = 2.0
    ref = [v.copy() for v in xs]
    AdaptiveEngine(rtol=1e-12, atol=1e-14).solve(Circuit(net), ref, _supervised_free(net), T)
    ref = np.concatenate([v.ravel() for v in ref])
    errs = [
        np.max(np.abs(_trajectory_end(net, xs, ClockedEngine(method, dt=dt), T) - ref))
        for dt in (0.1, 0.05, 0.025)
    ]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    for r in ratios:
        assert 2**order * 0.85 < r < 2**order * 1.15, (errs, ratios)


def test_rk45_and_dop853_agree(rng):
    net = network.build((5, 7, 3), "tanh", rng=12)
    xs = random_state(net, 2, rng)
    ends = []
    for m in ("RK45", "DOP853"):
        x = [v.copy() for v in xs]
        AdaptiveEngine(m, rtol=1e-11, atol=1e-13).solve(Circuit(net), x, [0, 1, 0], 3.0)
        ends.append(x[1])
    np.testing.assert_allclose(ends[0], ends[1], atol=1e-8)


LINEAR_CASES = [
    ("sp", False),
    ("sp", True),
    ("mupc", True),
    ("mupc", False),
]


@pytest.mark.parametrize("parameterisation,residual", LINEAR_CASES)
def test_linear_network_settles_to_closed_form_energy(parameterisation, residual, rng):
    net = network.build(
        (5, 8, 8, 8, 3), "linear", parameterisation=parameterisation, residual=residual, rng=13
    )
    assert any(net.residual) == residual
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    want = theory.equilibrium_energy(net, x, y)
    for engine, T in [(ClockedEngine("euler", dt=0.2), 600.0), (AdaptiveEngine(), 600.0)]:
        xs = field.feedforward(net, x)
        xs[-1] = y.copy()
        if isinstance(engine, AdaptiveEngine):
            engine.solve(Circuit(net), xs, _supervised_free(net), T)
        else:
            engine.run(Circuit(net), xs, _supervised_free(net), T)
        assert field.energy(net, xs) == pytest.approx(want, rel=1e-8)


def test_euler_maruyama_stationary_covariance_matches_lyapunov_solution():
    """Frozen linear net, ends clamped: the hidden activities are an OU process
    dx = -H (x - x*) dt + sigma dW, whose stationary covariance C solves
    H C + C H^T = sigma^2 I (H: activity Hessian per sample, tau_x = 1)."""
    net = network.build((3, 4, 4, 2), "linear", rng=14)
    sigma, dt, chains = 0.3, 0.01, 4000
    rng = np.random.default_rng(15)
    x0 = np.tile(rng.standard_normal((1, 3)), (chains, 1))
    y = np.tile(rng.standard_normal((1, 2)), (chains, 1))
    xs = theory.equilibrium_activities(net, x0, y)
    H = theory.activity_hessian(net)
    want = scipy.linalg.solve_continuous_lyapunov(-H, -(sigma**2) * np.eye(H.shape[0]))
    circ = Circuit(net, rng=np.random.default_rng(16))
    eng = ClockedEngine("euler_maruyama", dt=dt, sigma=sigma)
    free = _supervised_free(net)
    eng.run(circ, xs, free, 10.0)  # burn-in, several relaxation times
    samples = []
    for _ in range(40):
        eng.run(circ, xs, free, 0.5)
        samples.append(np.concatenate([xs[1], xs[2]], axis=1))
    s = np.concatenate(samples)
    got = np.cov(s, rowvar=False)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < 0.05, rel
    # and noise really matters: the covariance is far from zero
    assert np.trace(got) > 0.5 * np.trace(want)


def test_diverging_simulation_names_layer_and_time(rng):
    net = network.build((6, 20, 20, 4), "linear", rng=17)
    for W in net.weights:
        W *= 3.0
    xs = random_state(net, 2, rng)
    with pytest.raises(DivergenceError, match=r"layer [12] .* at t = [0-9.]+ tau_x"):
        ClockedEngine(dt=3.0).run(Circuit(net), xs, _supervised_free(net), 200.0)
