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
estimates ``lambda_max`` there per sample by power iteration on finite differences of the
flow (read weights without read noise, exact products: the ADC's steps are piecewise
constant and have no derivative). ``dt * lambda_max`` against 2 says whether the run's own
step oscillates, and the eigenvector's weight per layer names where.

Not this instability: leaky ReLU's kink makes ``x'`` jump (``phi'`` does), and Euler
chatters across it with an amplitude proportional to ``dt`` at any step; halving ``dt``
halves it, while beyond the limit the iterates jump by about their own size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcsim import field

FD_STEP = 1e-5  # finite-difference step, activity units (float64 states)
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


def _top_rate(
    circ,
    xs: list[np.ndarray],
    free: Sequence[bool],
    Ws,
    rng: np.random.Generator,
    iterations: int = POWER_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Power iteration on ``v -> -(x'(x + h v) - x'(x)) / h`` per sample: (rate, layer share).
    Units pinned at a rail do not move (their rows are zero), nor do clamped layers."""
    lo, hi = circ.rails
    mask = [((x > lo) & (x < hi)) & f for x, f in zip(xs, free, strict=True)]
    base = _rates(circ, xs, free, Ws)
    v = [rng.standard_normal(x.shape) * m for x, m in zip(xs, mask, strict=True)]
    rate = np.zeros(xs[0].shape[0])
    for _ in range(iterations):
        n = _norms(v)
        v = [a / np.where(n > 0, n, 1.0)[:, None] for a in v]
        moved = _rates(circ, [x + FD_STEP * a for x, a in zip(xs, v, strict=True)], free, Ws)
        av = [
            (m0 - m1) / FD_STEP * m for m1, m0, m in zip(moved, base, mask, strict=True)
        ]  # A v = -J v
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
