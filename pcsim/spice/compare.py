"""pcsim's side of the circuit-level comparison: the exported transient integrated by pcsim,
the agreement of the two trajectories, and the energy ngspice measured beside the cost ledger's.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pcsim.circuit import Circuit
from pcsim.spice.netlist import SpiceNetlist
from pcsim.spice.ngspice import SpiceResult

if TYPE_CHECKING:
    from pcsim.engines.clocked import ClockedEngine


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
    engine: ClockedEngine | None = None,
) -> Reference:
    """Integrate the exported transient with pcsim and sample it at ``t_s`` (seconds; default:
    20 points per tau_x). Presentations run one after the other with the free activities (and
    weights) carried over, as in the circuit.

    By default the adaptive engine integrates each presentation (DOP853, rtol 1e-10; no
    rails, learning included). ``engine``, a fixed-step engine (which clips at the rails), is
    stepped over each presentation instead and interpolated linearly at ``t_s`` (inference
    only)."""
    if engine is not None and nl.learning:
        raise ValueError("a stepping engine compares inference transients only")
    T = nl.presentation_tau
    P = nl.n_presentations
    if t_s is None:
        t_s = np.linspace(0.0, nl.duration_s, int(round(nl.duration_tau * 20)) + 1)[1:]
    t_tau = np.asarray(t_s, dtype=np.float64) / nl.tau_x_s
    rc = reference_circuit(nl)
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
        if engine is None:
            _adaptive_presentation(nl, rc, xs, local, sel, out_x, out_w)
        else:
            _stepped_presentation(nl, rc, xs, engine, local, sel, out_x)
    wall = time.perf_counter() - t0
    return Reference(
        t_s=np.asarray(t_s, dtype=np.float64),
        xs=out_x,
        weights=out_w,
        final_weights=[W.copy() for W in rc.net.weights],
        final_biases=None if rc.net.biases is None else [b.copy() for b in rc.net.biases],
        wall_s=wall,
    )


def _adaptive_presentation(nl, rc, xs, local, sel, out_x, out_w) -> None:
    """One presentation by the adaptive engine, sampled at ``local`` (tau_x from its start)
    into rows ``sel`` of ``out_x`` (and ``out_w``); ``xs`` and ``rc`` end where it ends."""
    from pcsim.engines.adaptive import AdaptiveEngine

    L = nl.net.n_layers
    traj = AdaptiveEngine().solve(
        rc, xs, nl.free, nl.presentation_tau, t_eval=local, tau_w=nl.tau_w
    )
    for l in range(L + 1):
        out_x[l][sel] = traj.xs[l][: len(sel), 0]
    if out_w is not None:
        for k in range(L):
            out_w[k][sel] = traj.weights[k][: len(sel)]


def _stepped_presentation(nl, rc, xs, engine: ClockedEngine, local, sel, out_x) -> None:
    """One presentation stepped by ``engine``, interpolated linearly at ``local``."""
    L, T = nl.net.n_layers, nl.presentation_tau
    n = max(1, int(round(T / engine.dt)))
    grid = np.arange(n + 1) * (T / n)
    states = [np.empty((n + 1, x.shape[1])) for x in xs]
    for l in range(L + 1):
        states[l][0] = xs[l][0]
    for s in range(n):
        engine.step(rc, xs, nl.free)
        for l in range(L + 1):
            states[l][s + 1] = xs[l][0]
    for l in range(L + 1):  # linear interpolation between steps
        for u in range(states[l].shape[1]):
            out_x[l][sel, u] = np.interp(local, grid, states[l][:, u])


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
