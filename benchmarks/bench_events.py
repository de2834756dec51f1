"""Speed of the asynchronous events engine, and its wall time per simulated tau against the
clocked engine, on a 784-256-256-10 tanh network at batch 1 with learning on.

(a) Unit events per second (value + error unit events; target: at least 5 M/s on one core):
    ``EventsEngine().run(circ, xs, free, T, tau_w)`` with the input and the output clamped,
    Poisson clocks at ``events_per_tau = 10`` per unit, iPC learning at every error event.
(b) Wall time per simulated tau_x: the events engine (every unit ~10 updates per its tau) and
    ``ClockedEngine(dt=0.1)`` with one iPC weight step per Euler step at batch 1 (SGD,
    lr = dt / tau_w: the same weight flow), each over the same simulated time.

Events are timed both in wall time and in process CPU time: on a shared machine the wall time
includes time spent waiting for a core, the CPU time does not. The two engines alternate in one
loop and the medians are compared; BLAS is held to one thread (threadpoolctl) and the load
average is printed with the results.

    python benchmarks/bench_events.py [--reps 7] [--tau 20] [--dtype float64|float32]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from pcsim import network
from pcsim.algorithms import initial_activities
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.events import EventsEngine
from pcsim.optim import SGD

SIZES = (784, 256, 256, 10)
TAU_W = 100.0  # weight time constant (tau_x units) for both engines
DT = 0.1  # clocked step
TARGET_EVENTS_PER_S = 5e6


def _setup(dtype):
    net = network.build(SIZES, "tanh", rng=0, dtype=dtype)
    circ = Circuit(net, rng=np.random.default_rng(0))
    g = np.random.default_rng(1)
    x = g.uniform(0, 1, (1, SIZES[0]))
    y = np.eye(SIZES[-1])[[3]]
    xs = initial_activities(circ, x, y)
    free = [False, True, True, False]
    return circ, xs, free


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="alternating repetitions (medians)")
    ap.add_argument("--tau", type=float, default=20.0, help="simulated tau_x per repetition")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    args = ap.parse_args()
    dtype = np.dtype(args.dtype)

    ev_circ, ev_xs, free = _setup(dtype)
    cl_circ, cl_xs, _ = _setup(dtype)
    events = EventsEngine()
    clocked = ClockedEngine(dt=DT)
    opt = SGD(DT / TAU_W)

    def learn(rec):
        dW, db = clocked.weight_drift(cl_circ, rec)
        cl_circ.apply_weight_update(opt.deltas(list(dW)), None)

    def run_events():
        c0, w0 = time.process_time(), time.perf_counter()
        st = events.run(ev_circ, ev_xs, free, args.tau, tau_w=TAU_W)
        return time.perf_counter() - w0, time.process_time() - c0, st

    def run_clocked():
        c0, w0 = time.process_time(), time.perf_counter()
        n = clocked.run(cl_circ, cl_xs, free, args.tau, on_step=learn)
        return time.perf_counter() - w0, time.process_time() - c0, n

    with limit_threads(1, user_api=None):
        events.run(ev_circ, ev_xs, free, 1.0, tau_w=TAU_W)  # compile / warm up
        clocked.run(cl_circ, cl_xs, free, 1.0, on_step=learn)
        ev_wall, ev_cpu, ev_n, cl_wall, cl_cpu = [], [], [], [], []
        for _ in range(args.reps):
            w, c, st = run_events()
            ev_wall.append(w)
            ev_cpu.append(c)
            ev_n.append(st.total_events)
            w, c, _n = run_clocked()
            cl_wall.append(w)
            cl_cpu.append(c)

    med = np.median
    n_ev = med(ev_n)
    rate_wall = n_ev / med(ev_wall)
    rate_cpu = n_ev / med(ev_cpu)
    print(
        f"pcsim events benchmark: {'-'.join(map(str, SIZES))} tanh, batch 1, learning on, "
        f"{dtype.name}"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
        f", {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (1 min), BLAS 1 thread"
    )
    print(f"simulated {args.tau:g} tau_x per repetition, {args.reps} repetitions, medians")
    print()
    print(
        f"(a) events engine: {n_ev / args.tau:,.0f} unit events per tau_x "
        f"(events_per_tau = {events.events_per_tau:g} per unit)"
    )
    print(
        f"    {rate_wall / 1e6:6.2f} M events/s wall   {rate_cpu / 1e6:6.2f} M events/s CPU   "
        f"(target >= {TARGET_EVENTS_PER_S / 1e6:g} M/s: "
        f"{'met' if max(rate_wall, rate_cpu) >= TARGET_EVENTS_PER_S else 'NOT met'})"
    )
    print("(b) wall time per simulated tau_x (ms):")
    ev_tau_w, cl_tau_w = 1e3 * med(ev_wall) / args.tau, 1e3 * med(cl_wall) / args.tau
    ev_tau_c, cl_tau_c = 1e3 * med(ev_cpu) / args.tau, 1e3 * med(cl_cpu) / args.tau
    print(f"    events engine              {ev_tau_w:8.3f} wall  {ev_tau_c:8.3f} CPU")
    print(f"    clocked Euler dt={DT:g} + iPC  {cl_tau_w:8.3f} wall  {cl_tau_c:8.3f} CPU")
    print(
        f"    events / clocked           {ev_tau_w / cl_tau_w:8.2f} wall  "
        f"{ev_tau_c / cl_tau_c:8.2f} CPU"
    )


if __name__ == "__main__":
    main()
