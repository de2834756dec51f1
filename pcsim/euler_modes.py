"""The fastest mode of the inference flow: does Euler's map at step ``dt`` oscillate?

PC's inference is the gradient flow ``x' = -Gamma dF/dx`` (``Gamma`` = per-unit rate ``1/s``,
``s = tau_unit / tau_x``). Linearised at a state, its Jacobian is ``-Gamma H`` with ``H`` the
energy's Hessian over the free units; for one free linear layer ``x_1`` under ``W_2``,
``H = I + W_2^T W_2`` and the fastest rate is ``lambda_max = 1 + sigma_max(W_2)^2``
(docs/math.md). The forward-Euler map ``x -> x + dt x'`` has the Jacobian ``I - dt Gamma H``,
whose eigenvalue ``1 - dt lambda`` for the fastest mode lies below -1 once
``dt * lambda_max > 2`` (Hairer & Wanner, *Solving Ordinary Differential Equations II*,
section IV.2): the fixed point repels along that mode and the iterates alternate around it,
growing until the nonlinearity (leaky ReLU's kink, the rails) bends them into a period-2
cycle, a longer cycle or chaos. A chip without rails stays finite and never settles; the
energy it reports is not the settled energy.

:func:`fastest_modes` settles a batch with a step that is stable by construction and
estimates ``lambda_max`` there per sample by power iteration on the flow's Jacobian
(:func:`jvp`, with ``phi'`` taken where the state is; read weights without read noise, exact
products: the ADC's steps are piecewise constant and have no derivative). ``dt * lambda_max``
against 2 says whether the run's own step oscillates, and the eigenvector's weight per layer
names where.

Not this instability: leaky ReLU's kink makes ``x'`` jump (``phi'`` does), and Euler
chatters across it with an amplitude proportional to ``dt`` at any step; halving ``dt``
halves it, while beyond the limit the iterates jump by about their own size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcsim import activations, field

POWER_ITERATIONS = 40  # power-iteration steps at the settled state (< 1 % on PC nets)
ROUGH_ITERATIONS = 15  # for the settling step only (FINE_STEP leaves a factor 4 of margin)
FINE_STEP = 0.5  # the settling step times the fastest rate: |1 - 0.5| < 1, no oscillation


@dataclass(frozen=True)
class FastestModes:
    """Per sample ``b`` of a probed batch: ``rate[b]`` = ``lambda_max`` (1/tau_x) of the
    linearised flow at the settled state, and ``layer_share[b, l]`` = the fraction of the
    fastest mode's squared norm in layer ``l`` (0 on clamped layers, rows sum to 1)."""

    rate: np.ndarray  # (B,)
    layer_share: np.ndarray  # (B, L + 1)

    def unstable(self, dt: float, limit: float = 2.0) -> np.ndarray:
        """(B,) bool: Euler at step ``dt`` (tau_x) is beyond its limit for that sample."""
        return dt * self.rate >= limit

    def worst_layer(self, mask: np.ndarray | None = None) -> int:
        """The layer holding most of the fastest modes (over the samples in ``mask``)."""
        rows = self.layer_share if mask is None else self.layer_share[mask]
        return int(np.argmax(rows.mean(axis=0)))


def _rates(circ, xs: Sequence[np.ndarray], free: Sequence[bool], Ws) -> list[np.ndarray]:
    """``x'`` of every layer (zeros on clamped ones), tau_x units, float64 states."""
    net = circ.net
    eps = field.errors(net, xs, Ws, circ.units)
    drift = field.activity_drift(net, xs, eps, Ws, circ.units)
    g = circ.gammas(1.0)
    return [g[l] * d if free[l] else np.zeros_like(d) for l, d in enumerate(drift)]


def _norms(vs: Sequence[np.ndarray]) -> np.ndarray:
    """Per-sample Euclidean norm over all layers of ``vs`` (each (B, n_l)): shape (B,)."""
    return np.sqrt(sum(np.sum(a * a, axis=1) for a in vs))


def _d2_tanh(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


def _d2_sigmoid(x: np.ndarray) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-x))
    return s * (1.0 - s) * (1.0 - 2.0 * s)


# phi'' of the smooth activations; the piecewise-linear ones (relu, leaky_relu, linear) have
# phi'' = 0 between their kinks, and the linearisation takes phi' where the state is: a
# finite difference across a kink would measure the jump of phi' divided by the step
SECOND_DERIVATIVES = {"tanh": _d2_tanh, "sigmoid": _d2_sigmoid}


def jvp(circ, xs: Sequence[np.ndarray], free: Sequence[bool], Ws, v: Sequence[np.ndarray]):
    """The flow's Jacobian times ``v`` at ``xs`` (each (B, n_l); tau_x units): the derivative
    of :func:`pcsim.field.activity_drift` (errors through the units' gain and offset, leak,
    residual skips) times the per-unit rate ``1 / s``, zero on clamped layers. Exact products
    (no tile ADCs)."""
    net, u = circ.net, circ.units
    phi, dphi = activations.get(net.activation)
    d2 = SECOND_DERIVATIVES.get(net.activation)
    L = net.n_layers
    slopes = [np.ones_like(xs[0])] + [dphi(x) for x in xs[1:]]
    # d eps_{i+1} = g (v_{i+1} - a_i W_i (phi'(x_i) v_i) - [skip] v_i)
    deps = []
    for i in range(L):
        dmu = field.forward_product(net, i, slopes[i] * v[i], Ws[i])  # dense or conv
        if net.residual[i]:
            dmu = dmu + v[i]
        deps.append(u.error_gain[i + 1] * (v[i + 1] - dmu))
    eps = field.errors(net, xs, Ws, u) if d2 is not None else None
    g = circ.gammas(1.0)
    out = []
    for l in range(L + 1):
        if not free[l]:
            out.append(np.zeros_like(xs[l]))
            continue
        d = -deps[l - 1] if l > 0 else np.zeros_like(xs[l])
        if l < L:
            back = field.backward_product(net, l, deps[l], Ws[l])
            d = d + (back if l == 0 else slopes[l] * back)
            if l > 0 and eps is not None:  # phi'' v times the top-down input
                d = d + d2(xs[l]) * v[l] * field.backward_product(net, l, eps[l], Ws[l])
            if net.residual[l]:
                d = d + deps[l]
        d = d - u.leak[l] * v[l]
        out.append(g[l] * d)
    return out


def _top_rate(
    circ,
    xs: list[np.ndarray],
    free: Sequence[bool],
    Ws,
    rng: np.random.Generator,
    iterations: int = POWER_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Power iteration on ``v -> -J v`` (:func:`jvp`) per sample: (rate, layer share). Units
    pinned at a rail do not move (their rows are zero), nor do clamped layers."""
    lo, hi = circ.rails
    mask = [((x > lo) & (x < hi)) & f for x, f in zip(xs, free, strict=True)]
    v = [rng.standard_normal(x.shape) * m for x, m in zip(xs, mask, strict=True)]
    rate = np.zeros(xs[0].shape[0])
    for _ in range(iterations):
        n = _norms(v)
        v = [a / np.where(n > 0, n, 1.0)[:, None] for a in v]
        av = [-j * m for j, m in zip(jvp(circ, xs, free, Ws, v), mask, strict=True)]
        rayleigh = sum(np.sum(a * b, axis=1) for a, b in zip(av, v, strict=True))
        rate = np.sign(rayleigh) * _norms(av)
        v = av
    n2 = np.maximum(_norms(v) ** 2, 1e-300)
    share = np.stack([np.sum(a * a, axis=1) / n2 for a in v], axis=1)
    return rate, share


def fastest_modes(
    circ,
    bottom: np.ndarray,
    top: np.ndarray,
    free: Sequence[bool],
    duration: float,
    seed: int = 0,
) -> FastestModes:
    """Settle ``bottom``/``top`` (B, n_0)/(B, n_L) from the chip's feedforward pass for
    ``duration`` tau_x with a step ``FINE_STEP / lambda_max`` (stable whatever the run's step),
    then return the fastest mode of the flow there. Noise-free; the circuit's clock, ledger and
    random stream are untouched (the feedforward pass is recomputed here in float64)."""
    net = circ.net
    Ws = [np.asarray(W, np.float64) for W in circ.read_weights()]  # cast once, not per product
    rng = np.random.default_rng(seed)
    xs = [np.array(x, np.float64) for x in field.feedforward(net, bottom, Ws, circ.units)]
    if top is not None:
        xs[-1] = np.array(top, np.float64)
    rate, _ = _top_rate(circ, xs, free, Ws, rng, ROUGH_ITERATIONS)
    lo, hi = circ.rails
    for half in range(2):  # the fastest rate can grow as the state moves: settle in two halves
        h = FINE_STEP / max(float(np.max(rate)), 1e-12)
        n = max(1, math.ceil(0.5 * duration / h))
        for _ in range(n):
            r = _rates(circ, xs, free, Ws)
            for l in range(len(xs)):
                if free[l]:
                    np.clip(xs[l] + (0.5 * duration / n) * r[l], lo, hi, out=xs[l])
        its = ROUGH_ITERATIONS if half == 0 else POWER_ITERATIONS
        rate, share = _top_rate(circ, xs, free, Ws, rng, its)
    return FastestModes(rate, share)
