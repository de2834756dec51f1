"""Closed forms for deep linear predictive coding networks (activation "linear", no biases).

Each weight layer of a linear network is one linear map (column-vector convention)::

    M_l = a_l W_l (+ I if layer l is residual),   shape (n_l, n_{l-1}),   l = 1..L

so that ``mu_l = M_l x_{l-1}`` and ``F = (1/B) sum_i sum_l 1/2 ||x_l - M_l x_{l-1}||^2``
(docs/math.md; row-major batches ``(B, n_l)`` in and out, as everywhere in pcsim).

With both ends clamped (``x_0 = x``, ``x_L = y``) the energy is a convex quadratic in the hidden
activities. Its minimum is that of a linear Gaussian chain ``x_l = M_l x_{l-1} + eps_l`` with
unit-variance errors conditioned on its end: ``x_L = M x_0 + sum_l P_l eps_l`` with
``M = M_L ... M_1`` and ``P_l = M_L ... M_{l+1}`` (``P_L = I``), so minimising
``sum_l 1/2 ||eps_l||^2`` subject to ``sum_l P_l eps_l = r`` gives, per sample,

    F* = 1/2 r^T S^{-1} r,   r = y - M x,   S = sum_{l=1..L} P_l P_l^T,
    eps_l* = P_l^T S^{-1} r.

Without skips ``P_{l-1} = (prod_{k=l..L} a_k) W_L ... W_l``, which is the formula of Innocenti
et al. 2024 (docs/sources.md, "[Saddles]"): its sum index ``l = 2..L`` labels
the first weight of the product, i.e. the term for the error ``eps_{l-1}`` of layer ``l-1``;
the ``I`` is the term for ``eps_L``. Since ``S >= I``, ``F* <= `` the BP loss ``1/2 ||r||^2``.
Everything here is computed in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from pcsim import conv
from pcsim.network import Network


def _check_linear(net: Network) -> None:
    """ValueError unless ``net`` is linear and bias-free (where the closed forms hold)."""
    if net.activation != "linear":
        raise ValueError(f"closed forms need a linear network, got activation {net.activation!r}")
    if net.biases is not None:
        raise ValueError("closed forms need a network without biases")


def _batch(net: Network, a: np.ndarray, layer: int, name: str) -> np.ndarray:
    """``a`` as a float64 ``(B, n_layer)`` batch (a 1-D array is one sample)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != net.sizes[layer]:
        raise ValueError(f"{name} must have shape (B, {net.sizes[layer]}), got {np.shape(a)}")
    return a


def layer_maps(net: Network) -> list[np.ndarray]:
    """``[M_1, ..., M_L]`` with ``M_l = a_l W_l (+ I if residual)``, each ``(n_l, n_{l-1})``;
    a convolution's ``W_l`` is its dense matrix (:func:`pcsim.conv.dense_matrix`)."""
    _check_linear(net)
    maps = []
    for i, (W, a, res) in enumerate(zip(net.weights, net.scales, net.residual, strict=True)):
        W = np.asarray(W, dtype=np.float64)
        g = net.conv(i)
        M = a * (W if g is None else conv.dense_matrix(W, g))
        if res:
            M = M + np.eye(M.shape[0])
        maps.append(M)
    return maps


def end_to_end_map(net: Network) -> np.ndarray:
    """The input-output map ``M_L ... M_1``, shape ``(n_L, n_0)``."""
    M = np.eye(net.sizes[0])
    for Ml in layer_maps(net):
        M = Ml @ M
    return M


def _error_maps(maps: list[np.ndarray]) -> list[np.ndarray]:
    """``[P_1, ..., P_L]``, ``P_l = M_L ... M_{l+1}`` of shape ``(n_L, n_l)``: how ``eps_l``
    reaches the output. ``P_L = I``."""
    P = [np.eye(maps[-1].shape[0])]
    for M in maps[:0:-1]:  # M_L, ..., M_2
        P.append(P[-1] @ M)
    return P[::-1]


def equilibrium_covariance(net: Network) -> np.ndarray:
    """``S = sum_{l=1..L} P_l P_l^T``, shape ``(n_L, n_L)``, symmetric positive definite."""
    return sum(P @ P.T for P in _error_maps(layer_maps(net)))


def _residuals(net: Network, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows ``r_i = y_i - M x_i``, shape ``(B, n_L)``."""
    x = _batch(net, x, 0, "x")
    y = _batch(net, y, net.n_layers, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same batch size, got {x.shape[0]} and {y.shape[0]}")
    return y - x @ end_to_end_map(net).T


def equilibrium_energy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    """Energy at the activity equilibrium with ``x`` (B, n_0) and ``y`` (B, n_L) clamped.

    ``F* = (1/B) sum_i 1/2 r_i^T S^{-1} r_i`` (batch mean, like ``pcsim.field.energy``).
    """
    r = _residuals(net, x, y)
    z = scipy.linalg.solve(equilibrium_covariance(net), r.T, assume_a="pos")  # (n_L, B)
    return float(0.5 * np.sum(r.T * z) / r.shape[0])


def equilibrium_activities(net: Network, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The unique minimiser of F over the hidden layers, with ``x`` and ``y`` clamped.

    Returns ``[x_0, x_1, ..., x_L]`` (each ``(B, n_l)``, float64; ``x_0 = x``, ``x_L = y``),
    ready for ``pcsim.field.energy``. Computed as the Gaussian-chain posterior mean:
    ``eps_l = P_l^T S^{-1} r`` and ``x_l = M_l x_{l-1} + eps_l``.
    """
    r = _residuals(net, x, y)
    maps = layer_maps(net)
    z = scipy.linalg.solve(equilibrium_covariance(net), r.T, assume_a="pos").T  # (B, n_L)
    xs = [_batch(net, x, 0, "x").copy()]
    for M, P in zip(maps[:-1], _error_maps(maps)[:-1], strict=True):
        xs.append(xs[-1] @ M.T + z @ P)
    xs.append(_batch(net, y, net.n_layers, "y").copy())
    return xs


def activity_hessian(net: Network) -> np.ndarray:
    """Per-sample Hessian of F in the stacked hidden activities ``[x_1; ...; x_{L-1}]``.

    Shape ``(n_h, n_h)`` with ``n_h = n_1 + ... + n_{L-1}`` (``(0, 0)`` when ``L = 1``); block
    tridiagonal: diagonal blocks ``I + M_{l+1}^T M_{l+1}``, block ``(l, l+1)`` is
    ``-M_{l+1}^T`` and block ``(l+1, l)`` is ``-M_{l+1}``. The batch-mean energy's Hessian in
    one sample's activities is this divided by B. Independent of the activities (F is quadratic).
    """
    maps = layer_maps(net)
    hidden = net.sizes[1:-1]
    offsets = np.concatenate([[0], np.cumsum(hidden)]).astype(int)
    H = np.zeros((offsets[-1], offsets[-1]))
    for j, n in enumerate(hidden):  # j = l - 1 for hidden layer l
        s = slice(offsets[j], offsets[j] + n)
        M_next = maps[j + 1]  # M_{l+1}
        H[s, s] = np.eye(n) + M_next.T @ M_next
        if j + 1 < len(hidden):
            t = slice(offsets[j + 1], offsets[j + 2])
            H[s, t] = -M_next.T
            H[t, s] = -M_next
    return H


def activity_hessian_eigenvalues(net: Network) -> np.ndarray:
    """Eigenvalues of :func:`activity_hessian`, ascending, shape ``(n_h,)``.

    All positive (F is strictly convex in the hidden activities); their spread sets the
    stiffness of the inference dynamics ``tau_x dx/dt = -B dF/dx``.
    """
    return np.linalg.eigvalsh(activity_hessian(net))


def bp_loss(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    """The BP loss ``(1/B) sum_i 1/2 ||y_i - M_L ... M_1 x_i||^2`` (float)."""
    r = _residuals(net, x, y)
    return float(0.5 * np.sum(r * r) / r.shape[0])
