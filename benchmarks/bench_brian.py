"""pcsim's clocked numba engine against Brian2 on the same equations.

A 784-256-256-10 tanh network, batch 1, 1000 Euler steps (dt = 0.1 tau_x) of iPC with learning
on (SGD, lr = 1e-3 per step): pcsim's ``IPC.train_batch`` on ``ClockedEngine(backend="numba")``
against ``pcsim.engines.brian.BrianEngine`` with Brian2's ``numpy`` and ``cython`` runtime
targets and ``cpp_standalone``. pcsim runs a batch-1 SGD presentation in one fused kernel
call (``pcsim.kernels.ipc_presentation_batch1``, tested equal to the step-by-step path).
Everything runs on one thread (BLAS limited to one thread with threadpoolctl; Brian2's targets
are single-threaded by default).

Reported separately: build time (pcsim: numba JIT or cache load; Brian2: object creation, code
generation and compilation) and run time (pcsim: the median of ``--repeats`` whole
presentations; Brian2: the time-stepping loop as Brian2 measures it). The first cython build
compiles every code object (slow, minutes on 2 busy cores); pass ``--dir`` to keep the caches.
The final weights of every Brian2 run are checked against pcsim's.

    python benchmarks/bench_brian.py [--steps 1000] [--targets numpy,cython,cpp_standalone]
                                     [--repeats 5] [--dir DIR] [--out results.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from pcsim import __version__, network
from pcsim.algorithms import IPC, initial_activities
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.engines.brian import BrianEngine
from pcsim.engines.clocked import ClockedEngine
from pcsim.optim import SGD

SIZES = (784, 256, 256, 10)
DT, LR = 0.1, 1e-3


def problem(seed: int = 0):
    net = network.build(SIZES, "tanh", rng=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (1, SIZES[0]))  # an MNIST-like input in [0, 1]
    y = np.eye(SIZES[-1])[[3]]
    return net, x, y


def bench_pcsim(net, x, y, steps: int, repeats: int) -> dict:
    eng = ClockedEngine("euler", dt=DT, backend="numba")
    t0 = time.perf_counter()
    IPC(T=2 * DT).train_batch(Circuit(net.copy()), eng, SGD(LR), x, y)  # JIT / cache load
    build = time.perf_counter() - t0
    runs, circ = [], None
    for _ in range(repeats):
        circ = Circuit(net.copy())
        t0 = time.perf_counter()
        IPC(T=steps * DT).train_batch(circ, eng, SGD(LR), x, y)
        runs.append(time.perf_counter() - t0)
    return {
        "build_s": build,
        "run_s": statistics.median(runs),
        "runs_s": runs,
        "weights": [W.copy() for W in circ.net.weights],
    }


def bench_brian(net, x, y, steps: int, target: str, directory: str) -> dict:
    xs = initial_activities(Circuit(net), x, y)
    free = [False, True, True, False]
    eng = BrianEngine(dt=DT, target=target, directory=os.path.join(directory, target))
    t0 = time.perf_counter()
    res = eng.simulate(net, xs, free, steps * DT, lr=LR, record=False)
    wall = time.perf_counter() - t0
    return {
        "build_s": res.build_seconds,
        "run_s": res.run_seconds,
        "wall_s": wall,
        "weights": res.weights,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--targets", default="numpy,cython,cpp_standalone")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dir", default=None, help="Brian2 build/cache directory (default: temp)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--markdown", action="store_true", help="also print a table for RESULTS.md")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    targets = [t for t in args.targets.split(",") if t]
    directory = args.dir or tempfile.mkdtemp(prefix="pcsim_bench_brian_")
    net, x, y = problem()
    results: dict = {
        "sizes": list(SIZES),
        "batch": 1,
        "steps": args.steps,
        "dt_tau": DT,
        "lr": LR,
        "threads": 1,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.python_version()}",
        "pcsim_version": __version__,
    }
    with limit_threads(1, user_api=None):
        pc = bench_pcsim(net, x, y, args.steps, args.repeats)
        rows = [("pcsim clocked numba", pc["build_s"], pc["run_s"], 0.0)]
        results["pcsim"] = {k: v for k, v in pc.items() if k != "weights"}
        for target in targets:
            print(f"Brian2 {target}: building and running ...", file=sys.stderr, flush=True)
            br = bench_brian(net, x, y, args.steps, target, directory)
            diff = max(
                float(np.max(np.abs(a - b)))
                for a, b in zip(br["weights"], pc["weights"], strict=True)
            )
            rows.append((f"Brian2 {target}", br["build_s"], br["run_s"], diff))
            results[f"brian2_{target}"] = {
                **{k: v for k, v in br.items() if k != "weights"},
                "max_weight_diff_vs_pcsim": diff,
                "run_ratio_vs_pcsim": br["run_s"] / pc["run_s"],
            }
    import brian2

    results["brian2_version"] = brian2.__version__
    results["load_average"] = [load_before[0], os.getloadavg()[0]]
    print(
        f"{'-'.join(map(str, SIZES))} tanh, batch 1, {args.steps} Euler steps, iPC learning on, "
        f"one thread; load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cpus (rerun if above the cpu count)"
    )
    print(f"{'engine':<38} {'build s':>9} {'run s':>9} {'run / pcsim':>12} {'max diff':>10}")
    for name, b, r, d in rows:
        print(f"{name:<38} {b:9.3f} {r:9.4f} {r / pc['run_s']:12.2f} {d:10.2e}")
    brian_runs = {t: results[f"brian2_{t}"]["run_s"] for t in targets}
    if brian_runs:
        fastest = min(brian_runs, key=brian_runs.get)
        ratio = brian_runs[fastest] / pc["run_s"]
        results["fastest_brian2"] = fastest
        results["speedup_vs_fastest_brian2"] = ratio
        verdict = "meets" if ratio >= 10 else "MISSES"
        print(f"pcsim is {ratio:.1f}x faster than Brian2's fastest mode ({fastest}); {verdict} 10x")
    if args.markdown:
        print(f"\n| engine | build s | run s ({args.steps} steps) | run / pcsim | max diff |")
        print("|---|---:|---:|---:|---:|")
        for name, b, r, d in rows:
            print(f"| {name} | {b:.3f} | {r:.4f} | {r / pc['run_s']:.2f} | {d:.1e} |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
