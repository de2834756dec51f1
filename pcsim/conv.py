"""The three products of a convolutional PC layer, by im2col (vectorised numpy).

A convolution is one crossbar matrix ``W`` of shape ``(out_channels, rows)``, ``rows =
kernel^2 * in_channels`` (:class:`hardware_models.conv_geometry.ConvGeometry`), read once per
output position on the input patch there. Activities are channel-first and flattened: an input
row of a batch is ``(C, H, W) -> C*H*W``, an output row ``(out_channels, positions)``. With
``cols = im2col(x)`` of shape ``(B, positions, rows)``::

    forward:  mu[b, o, p]   = sum_r W[o, r] cols[b, p, r]            (cross-correlation)
    backward: g[b]          = col2im( sum_o e[b, o, p] W[o, r] )     (the transpose, conv^T)
    gradient: G[o, r]       = sum_{b, p} e[b, o, p] cols[b, p, r]    (the shared kernel's)

so ``<forward(x), e> = <x, backward(e)>`` and ``G = d<forward(x), e>/dW``: the same three
products as a dense layer's ``x @ W.T``, ``e @ W`` and ``e.T @ x``, which they reduce to when
the kernel covers the whole input (``kernel = height = width``, no padding). Zero padding:
patches that overhang the input read zeros there, and the transpose drops what falls on the
padding. Every function keeps the dtype of its inputs (float32 or float64).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hardware_models.conv_geometry import ConvGeometry

CLOCKED_ONLY = (
    "convolutional layers run on the clocked and adaptive engines (engine.kind = 'clocked')"
)

__all__ = [
    "CLOCKED_ONLY",
    "backward",
    "col2im",
    "dense_matrix",
    "forward",
    "im2col",
    "patch_sum",
    "transpose_sum",
    "weight_grad",
]


def _check(x: np.ndarray, n: int, what: str) -> None:
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"conv {what} must have shape (batch, {n}), got {x.shape}")


def im2col(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Patches of ``x`` (B, C*H*W): shape ``(B, positions, rows)``, rows in ``(c, ky, kx)``
    order (a copy; zeros where a patch overhangs the padding)."""
    _check(x, g.n_in, "input")
    B, k, s, p = x.shape[0], g.kernel, g.stride, g.padding
    img = x.reshape(B, g.in_channels, g.height, g.width)
    if p:
        img = np.pad(img, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(img, (k, k), axis=(2, 3))
    win = win[:, :, ::s, ::s][:, :, : g.out_height, : g.out_width]  # (B, C, OH, OW, k, k)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(B, g.positions, g.rows)


def col2im(cols: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """The transpose of :func:`im2col`: patches ``(B, positions, rows)`` summed back onto the
    input, shape ``(B, C*H*W)`` (overlaps add; what falls on the padding is dropped)."""
    B, k, s, p = cols.shape[0], g.kernel, g.stride, g.padding
    oh, ow = g.out_height, g.out_width
    # one copy with the kernel offsets outermost, so that each offset's block is contiguous
    # (the same adds in the same order as gathering them from ``cols`` directly)
    c6 = np.ascontiguousarray(
        cols.reshape(B, oh, ow, g.in_channels, k, k).transpose(4, 5, 0, 3, 1, 2)
    )
    out = np.zeros((B, g.in_channels, g.height + 2 * p, g.width + 2 * p), cols.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, :, ky : ky + s * oh : s, kx : kx + s * ow : s] += c6[ky, kx]
    out = out[:, :, p : p + g.height, p : p + g.width]
    return out.reshape(B, g.n_in)


def _channels_last(e: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Output-layer rows ``(B, out_channels*positions)`` as ``(B, positions, out_channels)``."""
    _check(e, g.n_out, "output")
    return e.reshape(e.shape[0], g.out_channels, g.positions).transpose(0, 2, 1)


def forward(x: np.ndarray, W: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """``conv(x)``: (B, n_in) -> (B, n_out), the crossbar read at every position."""
    B = x.shape[0]
    y = im2col(x, g) @ W.T  # (B, P, O)
    return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(B, g.n_out)


def backward(e: np.ndarray, W: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """``conv^T(e)``: (B, n_out) -> (B, n_in), the crossbar read backwards at every position
    and the patches summed onto the input."""
    return col2im(_channels_last(e, g) @ W, g)


def weight_grad(e: np.ndarray, x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """``sum_{b, p} e_patch^T patch``: (out_channels, rows), the gradient of ``<conv(x), e>``
    with respect to the shared kernel (summed over the batch, not averaged)."""
    cols = im2col(x, g).reshape(-1, g.rows)
    ep = _channels_last(e, g).reshape(-1, g.out_channels)
    return ep.T @ cols


@lru_cache(maxsize=64)
def _ones(g: ConvGeometry, dtype: str) -> np.ndarray:
    return np.ones((1, g.rows), np.dtype(dtype))


def patch_sum(v: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """``sum_r cols[b, p, r]`` of a per-unit input quantity ``v`` (B, n_in), shaped like an
    output row (B, n_out) (every output channel of a position sees the same patch). With
    ``v = x^2``: the squared norm of the patch each output read sums over (read noise)."""
    s = im2col(v, g).sum(axis=2)  # (B, P)
    return np.repeat(s[:, None, :], g.out_channels, axis=1).reshape(v.shape[0], g.n_out)


def transpose_sum(u: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """``col2im`` of an output quantity ``u`` (B, n_out) summed over output channels and
    spread over each patch: for every input unit, the sum of ``u`` over the outputs whose
    patch contains it (B, n_in). With ``u = e^2``: the squared norm a backward read sums."""
    per_pos = u.reshape(u.shape[0], g.out_channels, g.positions).sum(axis=1)  # (B, P)
    ones = _ones(g, u.dtype.str)
    return col2im(per_pos[:, :, None] * ones, g)


def dense_matrix(W: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """The convolution as the dense ``(n_out, n_in)`` matrix it equals (``forward(x) = x @
    M.T``): for closed forms and checks on small layers (it has ``n_out * n_in`` entries)."""
    eye = np.eye(g.n_in, dtype=W.dtype)
    return forward(eye, W, g).T
