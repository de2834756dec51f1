"""Stochastic pulse-train updates: coincidences of row and column pulse trains.

aihwkit's ``PulseType.STOCHASTIC_COMPRESSED`` (Gokmen & Vlasov, Front. Neurosci. 2016;
docs/sources.md), for a requested rank-one change ``dW = d x^T`` (weight units): every row
``i`` and column ``j`` sends a train of ``BL`` slots, a pulse in each slot with probability
``p_i = min(B |d_i|, 1)`` and ``q_j = min(A |x_j|, 1)``; a device receives one pulse of sign
``sign(d_i x_j)`` per slot where both fire, so its pulse count is
``n_ij ~ Binomial(BL, p_i q_j)``::

    E[n_ij]   = BL p_i q_j = |d_i x_j| / dw            (no probability clipped at 1)
    Var[n_ij] = BL p_i q_j (1 - p_i q_j)

with ``A B = 1 / (dw BL)``. Update management (aihwkit ``update_management``) balances the two
trains, ``A max|x| = B max|d|``; bit-length management (``update_bl_management``) uses
``BL = min(ceil(max|d| max|x| / dw), BL_max)`` slots (at least 1), so no probability exceeds 1
and the mean change equals the requested one whenever ``max|dW| <= BL_max dw``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["coincidence_counts", "train_length", "rank_one_factors"]


def train_length(d: np.ndarray, x: np.ndarray, dw: float, bl_max: int, manage: bool) -> int:
    """Slots per train: ``min(ceil(max|d| max|x| / dw), bl_max)`` (at least 1) when managed,
    else ``bl_max``."""
    if not manage:
        return int(bl_max)
    need = float(np.max(np.abs(d), initial=0.0)) * float(np.max(np.abs(x), initial=0.0)) / dw
    return int(min(max(math.ceil(need), 1), bl_max))


def coincidence_counts(
    d: np.ndarray,
    x: np.ndarray,
    dw: float,
    bl_max: int,
    rng: np.random.Generator,
    manage_bl: bool = True,
) -> np.ndarray:
    """Signed pulse counts ``n`` (int64, shape ``(len(d), len(x))``) for ``dW = d x^T``.

    ``dw`` is the nominal pulse size in weight units. The trains are drawn slot by slot (one
    Bernoulli per row and per column and slot, as the hardware does), so counts in one row or
    column are correlated exactly as in aihwkit.
    """
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = np.zeros((d.size, x.size), np.int64)
    dmax = float(np.max(np.abs(d), initial=0.0))
    xmax = float(np.max(np.abs(x), initial=0.0))
    if dmax == 0.0 or xmax == 0.0:
        return n
    bl = train_length(d, x, dw, bl_max, manage_bl)
    # A B = 1 / (dw BL) with A xmax = B dmax (update management)
    ab = 1.0 / (dw * bl)
    a = math.sqrt(ab * dmax / xmax)
    b = ab / a
    p = np.minimum(b * np.abs(d), 1.0)
    q = np.minimum(a * np.abs(x), 1.0)
    for _ in range(bl):
        rows = rng.random(d.size) < p
        cols = rng.random(x.size) < q
        n += np.outer(rows, cols)
    return n * np.outer(np.sign(d), np.sign(x)).astype(np.int64)


def rank_one_factors(dW: np.ndarray, rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray] | None:
    """``(d, x)`` with ``d x^T == dW`` (to ``rtol`` of ``max|dW|``), or None if ``dW`` is not
    rank one. ``d`` is the column of ``dW`` holding its largest entry."""
    dW = np.asarray(dW, dtype=np.float64)
    if not dW.any():
        return np.zeros(dW.shape[0]), np.zeros(dW.shape[1])
    i, j = np.unravel_index(int(np.argmax(np.abs(dW))), dW.shape)
    d = dW[:, j].copy()
    x = dW[i, :] / dW[i, j]
    err = np.max(np.abs(np.outer(d, x) - dW))
    if err > rtol * abs(dW[i, j]):
        return None
    return d, x
