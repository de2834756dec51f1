"""pcsim against ngspice: wall time of the same transient, and how far each is from ngspice.

    python benchmarks/bench_spice.py [--sizes 4-8-8-3 16-32-32-10 32-64-64-10] [--reps 3]
                                     [--threads 1] [--markdown]

For each network (tanh, on the rram chip with its noise sources off, batch 1): two
presentations of 10 tau_x each (input and target clamped, switching at 10 tau_x, feedforward
start), exported with :func:`pcsim.spice.export` and run

- in ngspice (``pcsim.spice.run``: process start, netlist parse, transient at reltol 1e-6,
  raw file written and read back); its own analysis time (``rusage time``) is shown apart;
- in pcsim's adaptive engine (DOP853, rtol 1e-10);
- in pcsim's clocked engine: Euler (numba, dt 0.1) and Heun (numpy, dt 0.02);

each pcsim engine presented over the same 20 tau_x at batch 1 (``Engine.present``, one call per
presentation). The four are timed alternately inside one loop (medians of ``--reps``). The error
column is the largest difference from ngspice at any ngspice time point over the full-scale
voltage (:func:`pcsim.spice.agreement` on :func:`pcsim.spice.reference`, untimed: the adaptive
engine presented from one ngspice time point to the next, the clocked engines step by step and
interpolated linearly between steps).
Needs ngspice (``apt-get install ngspice``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from hardware_models import load_preset
from pcsim import network, spice
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.engines.adaptive import AdaptiveEngine
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.protocol import Batch, Engine

DETERMINISTIC = {
    "value_units.thermal_noise": False,
    "synapses.read_noise_std": 0.0,
    "error_units.noise_std": 0.0,
}
T_TAU = 10.0
P = 2


def build(sizes: tuple[int, ...]) -> spice.SpiceNetlist:
    net = network.build(sizes, "tanh", rng=1)
    circ = Circuit(net, chip=load_preset("rram", DETERMINISTIC), rng=np.random.default_rng(2))
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, (P, sizes[0]))
    y = 0.8 * np.eye(sizes[-1])[rng.integers(0, sizes[-1], P)]
    return spice.export(circ, x, y, presentation_time=T_TAU)


def engine_wall(nl: spice.SpiceNetlist, engine: Engine) -> float:
    """Wall time of the bare engine over the transient (presentations switched in between)."""
    rc = spice.reference_circuit(nl)
    L = nl.net.n_layers
    xs = [x.reshape(1, -1).copy() for x in nl.x_init]
    t0 = time.perf_counter()
    for p in range(P):
        xs[0][0] = nl.bottom[p]
        xs[L][0] = nl.top[p]
        engine.present(rc, Batch(nl.free, xs=xs), T_TAU)
    return time.perf_counter() - t0


def med(v: list[float]) -> float:
    return float(np.median(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["4-8-8-3", "16-32-32-10", "32-64-64-10"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if spice.ngspice_path() is None:
        raise SystemExit(spice.INSTALL_HINT)
    euler = ClockedEngine("euler", 0.1, backend="numba")
    heun = ClockedEngine("heun", 0.02, backend="numpy")
    adaptive = AdaptiveEngine()
    rows = []
    with limit_threads(args.threads, user_api=None):
        for s in args.sizes:
            sizes = tuple(int(n) for n in s.split("-"))
            nl = build(sizes)
            timed = nl.text.replace("\nquit\n", "\nrusage time\nquit\n")
            res = spice.run(nl)  # warm-up and the time points
            engine_wall(nl, euler)  # numba compile
            w = {"ngspice": [], "analysis": [], "adaptive": [], "euler": [], "heun": []}
            for _ in range(args.reps):
                r = spice.run(timed)
                w["ngspice"].append(r.wall_s)
                w["analysis"].append(r.analysis_s or float("nan"))
                w["adaptive"].append(engine_wall(nl, adaptive))
                w["euler"].append(engine_wall(nl, euler))
                w["heun"].append(engine_wall(nl, heun))
            err = {
                "adaptive": spice.agreement(nl, res, spice.reference(nl, res.time_s)).max_rel,
                "euler": spice.agreement(
                    nl, res, spice.reference(nl, res.time_s, euler, step=euler.dt)
                ).max_rel,
                "heun": spice.agreement(
                    nl, res, spice.reference(nl, res.time_s, heun, step=heun.dt)
                ).max_rel,
            }
            n_syn = sum(W.size for W in nl.net.weights)
            rows.append((s, n_syn, nl.text.count("\n"), len(res.time_s), w, err))
    load = os.getloadavg()[0]
    head = (
        f"ngspice vs pcsim, {P} x {T_TAU:g} tau_x transient, tanh on rram (noise off), batch 1; "
        f"BLAS threads {args.threads}; medians of {args.reps}; load average {load:.2f}"
    )
    cols = [
        "net",
        "synapses",
        "netlist lines",
        "ngspice points",
        "ngspice wall (analysis)",
        "adaptive",
        "clocked Euler dt 0.1",
        "clocked Heun dt 0.02",
    ]
    print(head)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s, n_syn, n_lines, n_pts, w, err in rows:
        lines.append(
            f"| {s} | {n_syn} | {n_lines} | {n_pts} "
            f"| {med(w['ngspice']):.3g} s ({med(w['analysis']):.3g} s) "
            f"| {med(w['adaptive']) * 1e3:.3g} ms (err {err['adaptive']:.1e}) "
            f"| {med(w['euler']) * 1e3:.3g} ms (err {err['euler']:.1e}) "
            f"| {med(w['heun']) * 1e3:.3g} ms (err {err['heun']:.1e}) |"
        )
    if args.markdown:
        print()
        print("\n".join(lines))
    else:
        for s, _, _, _, w, err in rows:
            speed = med(w["ngspice"]) / med(w["adaptive"])
            print(
                f"  {s:<14} ngspice {med(w['ngspice']):8.3f} s  adaptive "
                f"{med(w['adaptive']) * 1e3:8.2f} ms  euler {med(w['euler']) * 1e3:7.2f} ms  "
                f"heun {med(w['heun']) * 1e3:7.2f} ms  (adaptive {speed:.0f}x faster; "
                f"errors {err['adaptive']:.1e} / {err['euler']:.1e} / {err['heun']:.1e})"
            )


if __name__ == "__main__":
    main()
