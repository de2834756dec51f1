"""Adaptive engine: scipy ``solve_ivp`` on the deterministic system, for ground truth.

Integrates ``dx_l/dt = drift_l / tau_scale_l`` of :mod:`pcsim.field` for the free layers
(time in units of tau_x), optionally with the weights following the iPC flow
``dW/dt = -dF/dW / tau_w``. Tight tolerances (RK45/DOP853, rtol 1e-10 by default) make it the
reference that the clocked and event engines are checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from hardware_models.partial_sums import CLOCKED_ONLY
from pcsim import field
from pcsim.circuit import Circuit
from pcsim.engines.protocol import Batch, Learning, Presentation, learn_after, start

ADAPTIVE_METHODS = ("RK45", "DOP853")


@dataclass
class Trajectory:
    """Sampled solution: ``t`` (n,), ``xs[l]`` (n, B, n_l) for every layer, ``weights[i]``
    (n, n_out, n_in) when learning was on."""

    t: np.ndarray
    xs: list[np.ndarray]
    weights: list[np.ndarray] | None


@dataclass
class AdaptiveEngine:
    method: str = "DOP853"
    rtol: float = 1e-10
    atol: float = 1e-12

    def __post_init__(self) -> None:
        if self.method not in ADAPTIVE_METHODS:
            raise ValueError(f"adaptive method must be one of {ADAPTIVE_METHODS}")

    def present(
        self,
        circ: Circuit,
        batch: Batch,
        duration: float,
        learning: Learning | None = None,
    ) -> Presentation:
        """Present ``batch`` for ``duration`` (tau_x units) (:class:`pcsim.engines.protocol.
        Engine`): frozen, with the weight flow ``during`` it (``tau_w`` from
        ``learning.flow_tau_w()``, biases included), or PC's optimiser step ``after`` it.
        ``energy`` is the energy of the final state (the circuit's units)."""
        spent = circ.ledger.total()
        xs, _ = start(circ, batch)
        net = circ.net
        if learning is None:
            self.solve(circ, xs, batch.free, duration)
            return Presentation(xs, energy_j=circ.ledger.total() - spent)
        if learning.when == "after":
            energy = learn_after(
                circ,
                xs,
                learning.optimizer,
                lambda: self.solve(circ, xs, batch.free, duration),
            )
        else:
            self.solve(circ, xs, batch.free, duration, tau_w=learning.flow_tau_w())
            energy = field.energy_of(
                field.errors(net, xs, circ.read_weights(), circ.units), xs[0].shape[0]
            )
        return Presentation(xs, energy, energy_j=circ.ledger.total() - spent)

    def solve(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        t_eval: np.ndarray | None = None,
        tau_w: float | None = None,
    ) -> Trajectory:
        """Integrate from ``xs`` (left unchanged) for ``duration``; with ``tau_w`` the weights
        learn too (plain gradient flow, biases included). Sets ``xs`` to the final state."""
        net = circ.net
        if circ.partial_sums is not None:
            raise ValueError(CLOCKED_ONLY)
        shapes = [x.shape for x in xs]
        free_idx = [l for l in range(len(xs)) if free[l]]
        w_shapes = [W.shape for W in net.weights] if tau_w else []
        b_shapes = [b.shape for b in net.biases] if (tau_w and net.has_bias) else []
        sizes = [int(np.prod(shapes[l])) for l in free_idx]
        sizes += [int(np.prod(s)) for s in w_shapes + b_shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        base = [x.astype(np.float64).copy() for x in xs]
        work = net.astype(np.float64)  # the rhs rebinds its parameter lists, never net's
        tau = [s.astype(np.float64) for s in circ.tau_scale]

        def unpack(y):
            cur = list(base)
            for k, l in enumerate(free_idx):
                cur[l] = y[offsets[k] : offsets[k + 1]].reshape(shapes[l])
            if tau_w:
                k0 = len(free_idx)
                for j, s in enumerate(w_shapes):
                    work.weights[j] = y[offsets[k0 + j] : offsets[k0 + j + 1]].reshape(s)
                k0 += len(w_shapes)
                for j, s in enumerate(b_shapes):
                    work.biases[j] = y[offsets[k0 + j] : offsets[k0 + j + 1]].reshape(s)
            return cur

        def rhs(_t, y):
            cur = unpack(y)
            eps = field.errors(work, cur, None, circ.units)
            drift = field.activity_drift(work, cur, eps, None, circ.units)
            parts = [(drift[l] / tau[l]).ravel() for l in free_idx]
            if tau_w:
                dW, db = field.weight_drift(work, cur, eps)
                parts += [(d / tau_w).ravel() for d in dW]
                if b_shapes:
                    parts += [(d / tau_w).ravel() for d in db]
            return np.concatenate(parts)

        y0 = [base[l].ravel() for l in free_idx]
        if tau_w:
            y0 += [W.astype(np.float64).ravel() for W in net.weights]
            y0 += [b.astype(np.float64).ravel() for b in (net.biases if b_shapes else [])]
        y0 = np.concatenate(y0) if y0 else np.zeros(0)
        if t_eval is not None and (len(t_eval) == 0 or t_eval[-1] < duration):
            t_eval = np.append(t_eval, duration)
        sol = solve_ivp(
            rhs,
            (0.0, duration),
            y0,
            method=self.method,
            rtol=self.rtol,
            atol=self.atol,
            t_eval=t_eval,
        )
        if not sol.success:
            raise RuntimeError(f"adaptive engine failed: {sol.message}")
        traj_x = []
        for l in range(len(xs)):
            if l in free_idx:
                k = free_idx.index(l)
                traj_x.append(sol.y[offsets[k] : offsets[k + 1]].T.reshape((-1,) + shapes[l]))
            else:
                traj_x.append(np.broadcast_to(base[l], (sol.t.size,) + shapes[l]))
        traj_w = None
        if tau_w:
            k0 = len(free_idx)
            traj_w = [
                sol.y[offsets[k0 + j] : offsets[k0 + j + 1]].T.reshape((-1,) + s)
                for j, s in enumerate(w_shapes)
            ]
            for j, s in enumerate(w_shapes):
                net.weights[j][...] = sol.y[offsets[k0 + j] : offsets[k0 + j + 1], -1].reshape(s)
            k0 += len(w_shapes)
            for j, s in enumerate(b_shapes):
                net.biases[j][...] = sol.y[offsets[k0 + j] : offsets[k0 + j + 1], -1].reshape(s)
        for l in free_idx:
            xs[l][...] = traj_x[l][-1]
        circ.t += duration
        return Trajectory(sol.t, traj_x, traj_w)
