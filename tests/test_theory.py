"""Closed forms of deep linear PCNs (pcsim.theory) against pcsim.field and independent solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from pcsim import field, network, theory
from pcsim.network import Network

# (sizes, parameterisation, residual argument of network.build, weight gain, expected skips)
CASES = [
    ((3, 5, 2), "sp", None, 1.0, False),
    ((6, 4, 9), "mupc", None, 1.0, False),
    ((4, 6, 6, 3), "sp", False, 2.0, False),
    ((4, 6, 6, 3), "sp", True, 1.5, True),
    ((4, 6, 6, 3), "mupc", None, 1.0, True),
    ((4, 6, 6, 3), "mupc", False, 1.0, False),
    ((3, 8, 4, 6, 5, 2), "sp", False, 2.0, False),
    ((3, 8, 4, 6, 5, 2), "mupc", None, 1.0, False),
    ((5, 7, 7, 7, 7, 2), "sp", True, 1.5, True),
    ((5, 7, 7, 7, 7, 2), "mupc", None, 1.0, True),
]
IDS = [f"{'-'.join(map(str, c[0]))}-{c[1]}-res{c[4]}" for c in CASES]


def make(case: tuple, seed: int = 0, batch: int = 4) -> tuple[Network, np.ndarray, np.ndarray]:
    """A linear net for ``case`` (weights times the gain) and a random batch ``(x, y)``."""
    sizes, param, residual, gain, has_skips = case
    net = network.build(sizes, "linear", parameterisation=param, residual=residual, rng=seed)
    assert any(net.residual) == has_skips  # the case exercises what it claims to
    net.weights = [gain * W for W in net.weights]
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((batch, sizes[0]))
    y = rng.standard_normal((batch, sizes[-1]))
    return net, x, y


def hidden_drift(net: Network, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Per-sample ``-B dF/dx_l`` on the hidden layers, from pcsim.field."""
    return field.activity_drift(net, xs, field.errors(net, xs))[1:-1]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_closed_form_is_energy_at_equilibrium_activities(case: tuple) -> None:
    net, x, y = make(case)
    F_star = theory.equilibrium_energy(net, x, y)
    xs = theory.equilibrium_activities(net, x, y)
    assert [a.shape for a in xs] == [(x.shape[0], n) for n in net.sizes]
    np.testing.assert_array_equal(xs[0], x)
    np.testing.assert_array_equal(xs[-1], y)
    assert field.energy(net, xs) == pytest.approx(F_star, rel=1e-10)
    # a stationary point of the field: no drift on any hidden unit
    scale = max(np.abs(a).max() for a in xs)
    for g in hidden_drift(net, xs):
        np.testing.assert_allclose(g, 0.0, atol=1e-11 * scale)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_equilibrium_activities_solve_the_hessian_system(case: tuple) -> None:
    """F is quadratic: grad = x_h H + g0, with g0 the gradient at zero hidden activities."""
    net, x, y = make(case, seed=1)
    zeros = [x] + [np.zeros((x.shape[0], n)) for n in net.sizes[1:-1]] + [y]
    g0 = -np.concatenate(hidden_drift(net, zeros), axis=1)
    H = theory.activity_hessian(net)
    x_h = -np.linalg.solve(H, g0.T).T
    want = np.concatenate(theory.equilibrium_activities(net, x, y)[1:-1], axis=1)
    np.testing.assert_allclose(want, x_h, rtol=1e-10, atol=1e-12 * np.abs(x_h).max())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_closed_form_matches_numerical_minimum(case: tuple) -> None:
    """L-BFGS-B over every sample's hidden activities, gradient from field.activity_drift."""
    net, x, y = make(case, seed=2)
    B = x.shape[0]
    hidden = net.sizes[1:-1]
    cuts = np.cumsum([B * n for n in hidden])[:-1]

    def unpack(v: np.ndarray) -> list[np.ndarray]:
        parts = np.split(v, cuts)
        return [x] + [p.reshape(B, n) for p, n in zip(parts, hidden, strict=True)] + [y]

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        xs = unpack(v)
        grad = np.concatenate([-g.ravel() / B for g in hidden_drift(net, xs)])
        return field.energy(net, xs), grad

    v0 = np.concatenate([a.ravel() for a in field.feedforward(net, x)[1:-1]])
    res = scipy.optimize.minimize(
        fun,
        v0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20000, "ftol": 1e-16, "gtol": 1e-13, "maxcor": 50},
    )
    F_star = theory.equilibrium_energy(net, x, y)
    assert res.fun == pytest.approx(F_star, rel=1e-8)
    # and the closed form is a genuine improvement on BP's loss (S >= I, strictly for L >= 2)
    assert F_star < theory.bp_loss(net, x, y)


@pytest.mark.parametrize("case", [c for c in CASES if not c[4]], ids=lambda c: str(c[:2]))
def test_closed_form_matches_reference_formula(case: tuple) -> None:
    """docs/math.md (from Innocenti et al. 2024), written out literally (no skips)."""
    net, x, y = make(case, seed=3)
    L = net.n_layers
    a = {l: net.scales[l - 1] for l in range(1, L + 1)}
    W = {l: net.weights[l - 1] for l in range(1, L + 1)}

    def chain(lo: int) -> np.ndarray:  # W_L ... W_lo
        out = np.eye(net.sizes[L])
        for k in range(L, lo - 1, -1):
            out = out @ W[k]
        return out

    r = y - np.prod([a[l] for l in range(1, L + 1)]) * x @ chain(1).T
    S = np.eye(net.sizes[L])
    for l in range(2, L + 1):
        c = np.prod([a[k] for k in range(l, L + 1)]) ** 2
        S = S + c * chain(l) @ chain(l).T
    F_ref = np.mean([0.5 * ri @ np.linalg.solve(S, ri) for ri in r])
    assert theory.equilibrium_energy(net, x, y) == pytest.approx(F_ref, rel=1e-12)
    np.testing.assert_allclose(theory.equilibrium_covariance(net), S, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", [CASES[2], CASES[3], CASES[4], CASES[7]], ids=lambda c: str(c[:2]))
def test_hessian_matches_finite_differences_and_is_positive_definite(case: tuple) -> None:
    net, _, _ = make(case, seed=4, batch=1)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, n)) for n in net.sizes]
    hidden = net.sizes[1:-1]
    cuts = np.cumsum(hidden)[:-1]
    v0 = np.concatenate([a.ravel() for a in xs[1:-1]])

    def F(v: np.ndarray) -> float:
        parts = np.split(v, cuts)
        return field.energy(net, [xs[0]] + [p[None, :] for p in parts] + [xs[-1]])

    n, h = v0.size, 0.1  # F is quadratic: central differences are exact up to rounding
    E = h * np.eye(n)
    H_fd = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            H_fd[i, j] = (
                F(v0 + E[i] + E[j])
                - F(v0 + E[i] - E[j])
                - F(v0 - E[i] + E[j])
                + F(v0 - E[i] - E[j])
            ) / (4 * h * h)
    H = theory.activity_hessian(net)
    assert H.shape == (n, n)
    np.testing.assert_allclose(H, H_fd, atol=1e-9 * np.abs(H).max())
    np.testing.assert_array_equal(H, H.T)
    eig = theory.activity_hessian_eigenvalues(net)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(H_fd), atol=1e-8 * eig.max())
    assert eig[0] > 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bp_loss_matches_backprop(case: tuple) -> None:
    net, x, y = make(case, seed=6)
    loss, _, _ = field.backprop_gradients(net, x, y)
    assert theory.bp_loss(net, x, y) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(
        x @ theory.end_to_end_map(net).T, field.feedforward(net, x)[-1], rtol=1e-12, atol=1e-13
    )


def test_single_layer_equilibrium_is_the_loss() -> None:
    net = network.build((4, 3), "linear", rng=7)
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    assert theory.equilibrium_energy(net, x, y) == pytest.approx(theory.bp_loss(net, x, y))
    assert len(theory.equilibrium_activities(net, x, y)) == 2
    assert theory.activity_hessian(net).shape == (0, 0)


@pytest.mark.parametrize(
    "fn",
    [
        lambda n, x, y: theory.equilibrium_energy(n, x, y),
        lambda n, x, y: theory.equilibrium_activities(n, x, y),
        lambda n, x, y: theory.activity_hessian(n),
        lambda n, x, y: theory.activity_hessian_eigenvalues(n),
        lambda n, x, y: theory.bp_loss(n, x, y),
    ],
)
def test_nonlinear_or_biased_networks_are_refused(fn) -> None:
    x, y = np.ones((2, 3)), np.ones((2, 2))
    with pytest.raises(ValueError, match="linear"):
        fn(network.build((3, 4, 2), "tanh", rng=0), x, y)
    with pytest.raises(ValueError, match="bias"):
        fn(network.build((3, 4, 2), "linear", bias=True, rng=0), x, y)


def test_batch_shapes_are_checked() -> None:
    net = network.build((3, 4, 2), "linear", rng=0)
    with pytest.raises(ValueError, match="shape"):
        theory.equilibrium_energy(net, np.ones((2, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="batch"):
        theory.equilibrium_energy(net, np.ones((2, 3)), np.ones((3, 2)))
