"""Per-layer and concatenated gradient cosines (pcsim.alignment) against constructions with a
known angle, an independent library (scipy), and the norm-weighted-mean identity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance

from pcsim import field, network, theory
from pcsim.alignment import concatenated_cosine, layer_cosines


def _pair_at_angle(shape: tuple[int, ...], theta: float, rng: np.random.Generator):
    """Two arrays of ``shape`` whose Frobenius angle is exactly ``theta`` (Gram-Schmidt)."""
    u = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    u /= np.linalg.norm(u)
    w -= (w.ravel() @ u.ravel()) * u
    w /= np.linalg.norm(w)
    scale = rng.uniform(0.1, 10.0)  # cosines do not depend on the norms
    return 3.0 * u, scale * (np.cos(theta) * u + np.sin(theta) * w)


def test_layer_cosines_recover_constructed_angles():
    rng = np.random.default_rng(0)
    thetas = [0.0, 0.3, np.pi / 2, 2.0, np.pi]
    shapes = [(4, 3), (5, 4), (2, 5), (7,), (3, 3)]
    pairs = [_pair_at_angle(s, t, rng) for s, t in zip(shapes, thetas, strict=True)]
    got = layer_cosines([p[0] for p in pairs], [p[1] for p in pairs])
    np.testing.assert_allclose(got, np.cos(thetas), atol=1e-12)


def test_against_scipy_and_the_weighted_mean_identity():
    rng = np.random.default_rng(1)
    a = [
        rng.standard_normal((6, 4)),
        1e-3 * rng.standard_normal((3, 6)),
        rng.standard_normal((2, 3)),
    ]
    b = [v + 0.1 * rng.standard_normal(v.shape) for v in a]
    b[1] = 1e-3 * rng.standard_normal((3, 6))  # an unrelated, small layer
    per = layer_cosines(a, b)
    ref = [
        1.0 - scipy.spatial.distance.cosine(u.ravel(), v.ravel()) for u, v in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(per, ref, rtol=1e-12)
    flat_ref = 1.0 - scipy.spatial.distance.cosine(
        np.concatenate([v.ravel() for v in a]), np.concatenate([v.ravel() for v in b])
    )
    cat = concatenated_cosine(a, b)
    assert cat == pytest.approx(flat_ref, rel=1e-12)
    na = np.array([np.linalg.norm(v) for v in a])
    nb = np.array([np.linalg.norm(v) for v in b])
    weighted = np.sum(na * nb * per) / (np.linalg.norm(na) * np.linalg.norm(nb))
    assert cat == pytest.approx(weighted, rel=1e-12)
    # the small unrelated layer is the worst, and the concatenation hides it
    assert np.argmin(per) == 1 and per.min() < 0.5 < 0.9 < cat


def test_zero_layer_is_nan_and_bad_shapes_are_named():
    a = [np.ones((2, 2)), np.zeros((2, 2))]
    per = layer_cosines(a, [np.ones((2, 2)), np.ones((2, 2))])
    assert per[0] == pytest.approx(1.0) and np.isnan(per[1])
    with pytest.raises(ValueError, match="layer 2"):
        layer_cosines(a, [np.ones((2, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="2 layers against 1"):
        concatenated_cosine(a, [np.ones((2, 2))])


def test_pc_equilibrium_gradient_of_a_one_layer_net_is_bp_gradient():
    """With no hidden layer the PC error is the BP output error: every cosine is exactly 1."""
    net = network.build([5, 3], "linear", parameterisation="sp", rng=0)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    xs = theory.equilibrium_activities(net, x, y)
    dW_pc, _ = field.weight_drift(net, xs, field.errors(net, xs))
    _, dW_bp, _ = field.backprop_gradients(net, x, y)
    np.testing.assert_allclose(layer_cosines(dW_pc, dW_bp), [1.0], atol=1e-12)
