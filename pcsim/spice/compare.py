"""pcsim's side of the circuit-level comparison: the exported transient integrated by pcsim,
the agreement of the two trajectories, and the energy ngspice measured beside the cost ledger's.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcsim.circuit import Circuit
from pcsim.engines.adaptive import AdaptiveEngine
from pcsim.engines.protocol import Batch, Engine, Learning
from pcsim.optim import SGD
from pcsim.spice.netlist import SpiceNetlist
from pcsim.spice.ngspice import SpiceResult


@dataclass
class Reference:
    """pcsim's trajectory of the exported transient at given times (activity / weight units)."""

    t_s: np.ndarray
    xs: list[np.ndarray]  # per layer (n_t, n_l)
    weights: list[np.ndarray] | None  # per crossbar (n_t, n_out, n_in) when learning
    final_weights: list[np.ndarray]
    final_biases: list[np.ndarray] | None
    wall_s: float


def reference_circuit(nl: SpiceNetlist) -> Circuit:
    """A pcsim circuit of the exported network: the weights the chip read, its per-unit time
    constants, gains, offsets, leaks and rails, on the ideal substrate (no noise, no costs)."""
    rc = Circuit(nl.net.copy())
    rc.tau_scale = [s.copy() for s in nl.tau_scale]
    rc.units = copy.deepcopy(nl.units)
    rc.rails = nl.rails  # a stepping engine clips at the rails; the adaptive one ignores them
    return rc


def reference(
    nl: SpiceNetlist,
    t_s: np.ndarray | None = None,
    engine: Engine | None = None,
    step: float | None = None,
) -> Reference:
    """Integrate the exported transient with a pcsim engine and sample it at ``t_s`` (seconds;
    default: 20 points per tau_x). Presentations run one after the other with the free
    activities (and weights) carried over, as in the circuit; each is presented through the
    engine protocol (:class:`pcsim.engines.protocol.Engine`) in pieces, and learning (when the
    netlist learns) is the weight flow of time constant ``nl.tau_w`` during every piece.

    ``engine`` defaults to the adaptive engine (DOP853, rtol 1e-10; no rails), presented from
    one sample time to the next, so every sample is exact. A fixed-step engine (which clips at
    the rails) needs ``step``, its ``dt`` in tau_x units: it is presented one step at a time
    (the weight flow as plain SGD with ``lr = step / tau_w``) and interpolated linearly at
    ``t_s``."""
    T = nl.presentation_tau
    P = nl.n_presentations
    if t_s is None:
        t_s = np.linspace(0.0, nl.duration_s, int(round(nl.duration_tau * 20)) + 1)[1:]
    if step is not None and not (step > 0 and np.isfinite(step)):
        raise ValueError(f"step must be a positive number of tau_x (the engine's dt), got {step}")
    t_tau = np.asarray(t_s, dtype=np.float64) / nl.tau_x_s
    rc = reference_circuit(nl)
    eng = AdaptiveEngine() if engine is None else engine
    learning = None
    if nl.learning:
        piece_lr = (step if step is not None else 1.0) / nl.tau_w
        learning = Learning(SGD(piece_lr), when="during", tau_w=nl.tau_w)
    L = nl.net.n_layers
    xs = [x.reshape(1, -1).copy() for x in nl.x_init]
    out_x = [np.empty((len(t_tau), n)) for n in nl.net.sizes]
    out_w = [np.empty((len(t_tau), *W.shape)) for W in nl.net.weights] if nl.learning else None
    t0 = time.perf_counter()
    for p in range(P):
        if nl.bottom is not None:
            xs[0][0] = nl.bottom[p]
        if nl.top is not None:
            xs[L][0] = nl.top[p]
        lo, hi = p * T, (p + 1) * T
        sel = np.flatnonzero((t_tau >= lo) & ((t_tau < hi) | (p == P - 1)))
        local = np.clip(t_tau[sel] - lo, 0.0, T)
        if step is None:
            grid = np.unique(np.concatenate([local[local > 0.0], [T]]))
        else:
            n = max(1, int(round(T / step)))
            grid = np.arange(1, n + 1) * (T / n)
        states, weights = _present_pieces(eng, rc, xs, nl.free, grid, learning, step is None)
        grid = np.concatenate([[0.0], grid])
        for l in range(L + 1):  # linear interpolation between pieces (exact at their ends)
            out_x[l][sel] = _interp_rows(local, grid, states[l])
        if out_w is not None:
            for k in range(L):
                out_w[k][sel] = _interp_rows(local, grid, weights[k])
    wall = time.perf_counter() - t0
    return Reference(
        t_s=np.asarray(t_s, dtype=np.float64),
        xs=out_x,
        weights=out_w,
        final_weights=[W.copy() for W in rc.net.weights],
        final_biases=None if rc.net.biases is None else [b.copy() for b in rc.net.biases],
        wall_s=wall,
    )


def _present_pieces(
    engine: Engine,
    rc: Circuit,
    xs: list[np.ndarray],
    free: Sequence[bool],
    ends: np.ndarray,
    learning: Learning | None,
    clock_free: bool,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Present ``engine`` from 0 to each of ``ends`` (tau_x from the presentation's start,
    increasing) in turn, continuing from ``xs`` (left at the last end). Returns the activities
    (len(ends) + 1, n_l) per layer and the weights (len(ends) + 1, n_out, n_in) per crossbar
    at 0 and at every end. ``clock_free``: the pieces are sample intervals, which a fixed-step
    engine would round to whole steps (refused)."""
    n = len(ends) + 1
    states = [np.empty((n, x.shape[1])) for x in xs]
    weights = [np.empty((n, *W.shape)) for W in rc.net.weights] if learning is not None else []
    for l, x in enumerate(xs):
        states[l][0] = x[0]
    for k, W in enumerate(rc.net.weights if learning is not None else []):
        weights[k][0] = W
    batch = Batch(free, xs=xs)
    prev = 0.0
    for i, end in enumerate(ends, start=1):
        rec = engine.present(rc, batch, float(end - prev), learning)
        if rec.steps > 1 or (clock_free and rec.steps > 0):
            raise ValueError(
                "a fixed-step engine needs step= its dt (tau_x): sample intervals would be "
                "rounded to whole steps"
            )
        prev = float(end)
        for l, x in enumerate(xs):
            states[l][i] = x[0]
        for k, W in enumerate(rc.net.weights if learning is not None else []):
            weights[k][i] = W
    return states, weights


def _interp_rows(at: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (len(grid), ...) interpolated linearly along axis 0 at ``at`` (exact at the
    grid points); returns (len(at), ...)."""
    flat = values.reshape(len(grid), -1)
    out = np.empty((len(at), flat.shape[1]))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(at, grid, flat[:, j])
    return out.reshape(len(at), *values.shape[1:])


@dataclass
class Agreement:
    """ngspice against pcsim on the free value units (volts) and, when learning, the weights.

    ``full_scale_v`` is the largest |V| any compared unit reaches in pcsim's trajectory (a
    stricter scale than the rails); ``max_rel`` the largest difference at any sampled time over
    it, ``final_rel`` the same at the end (the equilibrium when the transient settled);
    ``weights_rel`` the largest final weight difference over the weights' range (per crossbar;
    biases over theirs) when learning."""

    max_abs_v: float
    full_scale_v: float
    max_rel: float
    final_rel: float
    weights_rel: float | None
    n_times: int


def agreement(nl: SpiceNetlist, result: SpiceResult, ref: Reference) -> Agreement:
    """Compare a run of ``nl`` with :func:`reference` sampled at ``result.time_s``."""
    if len(ref.t_s) != len(result.time_s) or not np.allclose(ref.t_s, result.time_s):
        raise ValueError("the reference must be sampled at the ngspice times (result.time_s)")
    Vs = nl.signal_scale_v
    diffs, scale, final = [], 0.0, []
    for l, f in enumerate(nl.free):
        if not f:
            continue
        sp = nl.activities(result, l) * Vs
        pc = ref.xs[l] * Vs
        diffs.append(np.abs(sp - pc))
        final.append(np.abs(sp[-1] - pc[-1]))
        scale = max(scale, float(np.max(np.abs(pc))))
    max_abs = float(max(d.max() for d in diffs))
    fin = float(max(f.max() for f in final))
    scale = scale if scale > 0 else 1.0
    w_rel = None
    if nl.learning:
        w_rel = 0.0
        for k in range(nl.net.n_layers):
            ws = nl.weights(result, k)[-1]
            wp = ref.weights[k][-1]
            rng_w = float(wp.max() - wp.min()) or 1.0
            w_rel = max(w_rel, float(np.max(np.abs(ws - wp))) / rng_w)
            if ref.final_biases is not None:
                bs = np.array([result.traces[f"b{k + 1}_{i}"][-1] for i in range(ws.shape[0])])
                bp = ref.final_biases[k]
                rng_b = float(bp.max() - bp.min()) or 1.0
                w_rel = max(w_rel, float(np.max(np.abs(bs / nl.signal_scale_v - bp))) / rng_b)
    return Agreement(
        max_abs_v=max_abs,
        full_scale_v=scale,
        max_rel=max_abs / scale,
        final_rel=fin / scale,
        weights_rel=w_rel,
        n_times=len(result.time_s),
    )


@dataclass
class EnergyRow:
    quantity: str
    spice_j: float | None
    ledger_j: float | None
    note: str


def energy_report(nl: SpiceNetlist, result: SpiceResult, ref: Reference) -> list[EnergyRow]:
    """The energy ngspice integrated over the transient next to the cost ledger's for the same
    transient (one sample circuit, pcsim's trajectory ``ref`` for the swings)."""
    from hardware_models.costs import EnergyLedger

    chip = nl.chip
    e = result.energy
    Vs = nl.signal_scale_v
    ledger: dict[str, float] = {}
    if chip is not None:
        c2 = copy.copy(reference_circuit(nl))
        c2.chip = chip
        c2.ledger = EnergyLedger()
        c2.charge_time(nl.duration_tau, 1)
        # swing sum |dx| of the free units, from t = 0 (the initial state) on
        swing = 0.0
        for l, f in enumerate(nl.free):
            if f:
                path = np.vstack([nl.x_init[l][None, :], ref.xs[l]])
                swing += float(np.sum(np.abs(np.diff(path, axis=0))))
        c2.charge_transitions(swing)
        ledger = c2.ledger.by_component()
    q = e.get("q_int")
    rows = [
        EnergyRow(
            "crossbar conduction",
            e.get("e_xbar"),
            ledger.get("crossbar_read"),
            "SPICE: Joule heat sum G V^2 in the device pairs, both read directions, delivered "
            "by the activation/error stages; ledger: read_energy_per_mac_j x 2 MACs per synapse "
            "per tau_x (a published chip's per-MAC figure, peripherals included)",
        ),
        EnergyRow(
            "unit dynamic",
            None if q is None else Vs * q,
            ledger.get("unit_dynamic"),
            "SPICE: V_s x the charge moved through the value capacitors (integral of |i_C|); "
            "ledger: C V_s^2 per unit of swing sum |dx| (nominal C; SPICE has C x tau mismatch)",
        ),
        EnergyRow(
            "capacitor energy change",
            e.get("e_int"),
            None,
            "SPICE: integral of V(x) i_C = change of 1/2 C V^2 (conserved; returned at the end)",
        ),
        EnergyRow(
            "static bias",
            None,
            ledger.get("static"),
            "ledger only: the behavioural stages draw no bias current in SPICE",
        ),
    ]
    return rows


def format_energy_report(rows: Sequence[EnergyRow]) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3e}"

    w = max(len(r.quantity) for r in rows)
    lines = [f"{'quantity':<{w}}  {'ngspice (J)':>12}  {'ledger (J)':>12}  note"]
    lines += [f"{r.quantity:<{w}}  {f(r.spice_j):>12}  {f(r.ledger_j):>12}  {r.note}" for r in rows]
    return "\n".join(lines)
