"""Alignment of two sets of per-layer weight gradients (e.g. PC's equilibrium ``-dF/dW_l`` and
backprop's ``-dLoss/dW_l``): one cosine per layer and the cosine of the concatenation.

The concatenated cosine is a norm-weighted mean of the per-layer ones,

    cos_all = sum_l ||a_l|| ||b_l|| cos_l / (||a|| ||b||),

so layers with small gradients barely move it: a layer whose gradient points elsewhere (or is
zero) can hide behind a concatenated cosine of 0.99. :func:`layer_cosines` and its minimum show
the worst layer. Layers are ordered input side first (``l = 1..L`` at index ``l - 1``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["concatenated_cosine", "layer_cosines"]


def _check(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
    if len(a) != len(b):
        raise ValueError(f"gradients: {len(a)} layers against {len(b)}")
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if np.shape(u) != np.shape(v):
            raise ValueError(
                f"gradients: layer {i + 1} has shape {np.shape(u)} against {np.shape(v)}"
            )


def layer_cosines(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """``cos(a_l, b_l) = <a_l, b_l> / (||a_l|| ||b_l||)`` per layer (Frobenius inner product),
    shape ``(L,)``, in float64. NaN for a layer where either gradient is exactly zero (no
    direction to compare)."""
    _check(a, b)
    out = np.full(len(a), np.nan)
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        if nu > 0 and nv > 0:
            out[i] = float(u @ v) / (nu * nv)
    return out


def concatenated_cosine(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The cosine between all layers' gradients flattened into one vector each (float64);
    NaN if either is zero everywhere."""
    _check(a, b)
    u = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in a])
    v = np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in b])
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return float(u @ v) / (nu * nv) if nu > 0 and nv > 0 else float("nan")
