"""bench_step's workloads in several source trees at once, taking turns chunk by chunk.

On a shared machine, one ``bench_step.py`` run after another compares two codes under two
different loads (another process on the sibling core slows a run by 10-30 %). Here one worker
process per tree (a clean copy of a commit, e.g. ``git archive COMMIT | tar -x -C DIR``)
builds the workloads of ``benchmarks/bench_step.py`` and ``benchmarks/bench_events.py`` from
that tree's own code, and the driver has them run one chunk at a time in turn, in a shuffled
order each round, while the others wait: every tree sees the same machine, round by round.
Reported per workload and tree: the process CPU time per call (ms), its minimum, 10th and 25th
percentiles and median over the rounds; the low percentiles are the steady ones.

Workloads (float32, one BLAS thread):

- ``step``: (a) of bench_step, ``ClockedEngine.step`` on 784-256-256-10 at batch 64;
- ``inf``: (b) 20 inference steps (``engine.run``, T = 2) on 784-128-128-10 at batch 64;
- ``pc``: (b) ``PC(T=2).train_batch`` with Adam;
- ``ipc``: (b) ``IPC(T=0.1).train_batch`` with Adam (one step per presentation);
- ``ipc_b1``: bench_events' clocked loop, batch-1 iPC on 784-256-256-10 step by step with an
  SGD weight step after every step, per 1 tau_x (10 steps; float64, its default).

    python benchmarks/bench_trees.py [--rounds 40] [--workloads ipc,pc] DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

import numpy as np

CHUNK = {"step": 40, "inf": 20, "pc": 15, "ipc": 40, "ipc_b1": 3}  # calls per timed chunk


def _worker() -> None:  # pragma: no cover - runs in the tree's own process
    """Build the workloads from the tree in the working directory; time chunks on request
    (stdin ``NAME N`` -> stdout ``CPU_MS_PER_CALL``)."""
    sys.path.insert(0, "benchmarks")
    import bench_events as be
    import bench_step as bs

    from pcsim.blas import limit_threads
    from pcsim.engines.clocked import ClockedEngine
    from pcsim.optim import SGD

    train = bs.TrainWorkload(bs.TRAIN_SIZES)
    step = bs.StepWorkload(bs.STEP_SIZES, "numba")
    cl_circ, cl_xs, free = be._setup(np.dtype("float64"))
    clocked, opt = ClockedEngine(dt=be.DT), SGD(be.DT / be.TAU_W)

    def learn(rec) -> None:  # as bench_events' clocked loop
        dW, _ = clocked.weight_drift(cl_circ, rec)
        cl_circ.apply_weight_update(opt.deltas(list(dW)), None)

    def inf() -> None:
        train.reset_run()
        train.inference()

    def stp() -> None:
        step.reset()
        step.step()

    def ipc_b1() -> None:
        clocked.run(cl_circ, cl_xs, free, 1.0, on_step=learn)

    fns = {"step": stp, "inf": inf, "pc": train.pc_step, "ipc": train.ipc_step, "ipc_b1": ipc_b1}
    for f in fns.values():  # compile and load every BLAS before limiting threads
        f()
    with limit_threads(1):
        for f in fns.values():
            for _ in range(10):
                f()
        print("ready", flush=True)
        for line in sys.stdin:
            name, n = line.split()
            f, n = fns[name], int(n)
            c0 = time.process_time()
            for _ in range(n):
                f()
            print((time.process_time() - c0) / n * 1e3, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", help="source trees (each with pcsim/ and benchmarks/)")
    p.add_argument("--rounds", type=int, default=40, help="timed chunks per workload and tree")
    p.add_argument(
        "--workloads", default=",".join(CHUNK), help=f"comma-separated, of {', '.join(CHUNK)}"
    )
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in CHUNK]
    if unknown or not names:
        p.error(f"--workloads: unknown {unknown}; choose from {', '.join(CHUNK)}")
    chunks = {k: CHUNK[k] for k in names}
    for t in args.trees:
        if not os.path.isfile(os.path.join(t, "benchmarks", "bench_step.py")):
            p.error(f"{t}: no benchmarks/bench_step.py (give the root of a source tree)")
    load_start = os.getloadavg()
    workers = {}
    for t in args.trees:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(t))  # the tree's own pcsim
        w = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            cwd=t,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if w.stdout.readline().strip() != "ready":
            p.error(f"{t}: the worker did not start (run bench_step.py there to see why)")
        workers[t] = w
    times: dict[tuple[str, str], list[float]] = {(t, k): [] for t in args.trees for k in chunks}
    order = list(args.trees)
    shuffle = random.Random(0).shuffle
    for _ in range(args.rounds):
        for name, n in chunks.items():
            shuffle(order)
            for t in order:
                workers[t].stdin.write(f"{name} {n}\n")
                workers[t].stdin.flush()
                times[(t, name)].append(float(workers[t].stdout.readline()))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    print(
        f"bench_trees: {args.rounds} rounds; load average {load_start[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; CPU ms per call (ipc_b1: per tau_x)"
    )
    print(f"{'workload':8s} {'tree':24s} {'min':>8s} {'p10':>8s} {'p25':>8s} {'median':>8s}")
    for name in chunks:
        for t in args.trees:
            v = np.asarray(times[(t, name)])
            q10, q25, q50 = np.percentile(v, [10, 25, 50])
            label = os.path.basename(os.path.normpath(t))[:24]
            print(f"{name:8s} {label:24s} {v.min():8.4f} {q10:8.4f} {q25:8.4f} {q50:8.4f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker()
    else:
        raise SystemExit(main())
