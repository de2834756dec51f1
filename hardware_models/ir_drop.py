"""Wire resistance of a crossbar tile (IR drop): what the columns really read.

The tile (all quantities in SI units): ``R`` row wires (inputs) and ``C`` column wires (outputs);
the device ``G[i, j]`` (siemens) joins row ``i`` and column ``j`` at node ``(i, j)``. Row ``i``
is driven at its ``j = 0`` end by an ideal source ``v[i]`` (volts) through one wire segment;
each column ends after row ``R - 1`` in one more segment into a virtual-ground sense amplifier
(0 V). Adjacent nodes on a row are joined by ``r_row`` ohms, on a column by ``r_col`` ohms.
NeuroSim's wire model gives the segment: ``r = rho * L / (w * w * AR)`` with the cell pitch
``L``, wire width ``w = F``, aspect ratio ``AR`` and resistivity ``rho`` of its wire table
(DNN_NeuroSim V1.0 Param.cpp, e.g. 22 nm: rho = 5.41e-8 ohm m, AR = 2.0).

Kirchhoff's current law at the ``2 R C`` wire nodes is one sparse linear system; the network is
linear in ``v``, so the column currents are ``I = M v`` with an effective conductance matrix
``M`` (shape ``(C, R)``; ``M = G^T`` when the wires are ideal). :func:`column_currents` solves
one input vector; :func:`effective_conductance` factorises once and returns ``M`` for all.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["tile_system", "column_currents", "effective_conductance", "effective_weights"]


def tile_system(G: np.ndarray, r_row: float, r_col: float) -> sp.csc_matrix:
    """The nodal conductance matrix of the tile (``2 R C`` square, siemens).

    Unknowns: row-wire node voltages ``(i, j) -> i * C + j``, then column-wire nodes
    ``(i, j) -> R C + i * C + j``. The sources enter the right-hand side as ``v[i] / r_row``
    at row node ``(i, 0)``.
    """
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or min(G.shape) < 1:
        raise ValueError(f"G must be a non-empty 2-D conductance array, got shape {G.shape}")
    if not (r_row > 0 and r_col > 0):
        raise ValueError(f"wire segment resistances must be > 0, got {r_row!r}, {r_col!r}")
    R, C = G.shape
    n = R * C
    gr, gc = 1.0 / r_row, 1.0 / r_col
    idx = np.arange(n).reshape(R, C)
    rows_i, cols_i, vals = [], [], []

    def add(a: np.ndarray, b: np.ndarray, g: np.ndarray | float) -> None:
        """A conductance ``g`` between nodes ``a`` and ``b`` (stamped into the matrix)."""
        g = np.broadcast_to(g, a.shape).ravel()
        a, b = a.ravel(), b.ravel()
        rows_i.extend([a, b, a, b])
        cols_i.extend([a, b, b, a])
        vals.extend([g, g, -g, -g])

    def to_ground(a: np.ndarray, g: float) -> None:
        a = a.ravel()
        rows_i.append(a)
        cols_i.append(a)
        vals.append(np.full(a.size, g))

    add(idx, idx + n, G)  # the devices
    add(idx[:, :-1], idx[:, 1:], gr)  # row wire segments
    to_ground(idx[:, 0], gr)  # row driver segment (source in the right-hand side)
    add(idx[:-1, :] + n, idx[1:, :] + n, gc)  # column wire segments
    to_ground(idx[-1, :] + n, gc)  # column into the virtual ground
    A = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))), shape=(2 * n,) * 2
    )
    return A.tocsc()


def column_currents(G: np.ndarray, v: np.ndarray, r_row: float, r_col: float) -> np.ndarray:
    """Currents (amperes) into the ``C`` sense amplifiers for row voltages ``v`` (shape ``(R,)``).

    With zero wire resistance this is ``G^T v``; otherwise the exact nodal solution.
    """
    G = np.asarray(G, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if r_row == 0 and r_col == 0:
        return G.T @ v
    R, C = G.shape
    b = np.zeros(2 * R * C)
    b[np.arange(R) * C] = v / r_row
    x = spla.spsolve(tile_system(G, r_row, r_col), b)
    return x[2 * R * C - C :] / r_col


def effective_conductance(G: np.ndarray, r_row: float, r_col: float) -> np.ndarray:
    """``M`` of shape ``(C, R)`` with ``I = M v`` for every input ``v`` (one factorisation,
    one sparse solve per input line: SuperLU's many-right-hand-side solve is far slower)."""
    G = np.asarray(G, dtype=np.float64)
    if r_row == 0 and r_col == 0:
        return G.T.copy()
    R, C = G.shape
    lu = spla.splu(
        tile_system(G, r_row, r_col), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}
    )
    M = np.empty((C, R))
    b = np.zeros(2 * R * C)
    for i in range(R):
        b[i * C] = 1.0 / r_row
        M[:, i] = lu.solve(b)[2 * R * C - C :] / r_col
        b[i * C] = 0.0
    return M


def effective_weights(
    W: np.ndarray,
    g_min_s: float,
    g_max_s: float,
    w_max: float,
    tile_rows: int,
    tile_cols: int,
    r_row: float,
    r_col: float,
) -> np.ndarray:
    """The weights ``(n_out, n_in)`` a differential-pair crossbar presents through its wires.

    Each ``tile_rows x tile_cols`` block (inputs x outputs; a partly filled edge tile is its
    used part) holds ``g_plus = g_min + max(w, 0) k`` and ``g_minus = g_min + max(-w, 0) k``,
    ``k = (g_max - g_min) / w_max``, in two arrays with their own wires; the block read is
    ``(M(g_plus) - M(g_minus)) / k`` (:func:`effective_conductance`), so ideal wires give ``W``.
    """
    W = np.asarray(W, dtype=np.float64)
    n_out, n_in = W.shape
    k = (g_max_s - g_min_s) / w_max
    out = np.empty_like(W)
    for o0 in range(0, n_out, tile_cols):
        for i0 in range(0, n_in, tile_rows):
            blk = W[o0 : o0 + tile_cols, i0 : i0 + tile_rows]
            gp = g_min_s + np.maximum(blk, 0.0) * k
            gm = g_min_s + np.maximum(-blk, 0.0) * k
            m = effective_conductance(gp.T, r_row, r_col) - effective_conductance(
                gm.T, r_row, r_col
            )
            out[o0 : o0 + tile_cols, i0 : i0 + tile_rows] = m / k
    return out
