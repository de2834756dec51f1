"""How close is one clocked step to the matrix products it cannot avoid?

(a) One supervised Euler inference step of a 784-256-256-10 tanh network at batch 64
    (``ClockedEngine(dt=0.1).step``; x_0 and x_L clamped, hidden layers free) against the five
    bare matrix products such a step needs -- forward ``x0 @ W1.T``, ``phi1 @ W2.T``,
    ``phi2 @ W3.T`` and backward ``eps2 @ W2``, ``eps3 @ W3`` -- into preallocated buffers with
    ``np.dot(a, b, out)``. Numba backend (the target: at most 1.5x) and numpy reference backend.
(b) Training steps on 784-128-128-10 tanh at batch 64 with Adam: 20 inference steps alone
    (``engine.run`` for T = 2), one PC step (``PC(T=2.0)``: 20 steps then one weight update) and
    one iPC step (``IPC(T=0.1)``: one step with its weight update), in milliseconds and as
    multiples of the bare products of one step of that network (numpy ``np.dot(out=)``, timed
    in a loop of its own).

Everything is float32 with the BLAS thread count fixed by threadpoolctl (``--threads``).
Each comparison alternates its timed functions in one loop and compares medians of the wall
time and of the process CPU time (which leaves out time spent waiting for a core on a busy
machine). A loop stops after ``--max-loop-s`` seconds once it has 20 rounds, and says so.

numba's ``np.dot`` calls the BLAS that scipy ships (``scipy.linalg.cython_blas``), which in a
pip install is a different OpenBLAS library from numpy's. The numba step is therefore compared
with the bare products issued through that same library (``np.dot(a, b, out)`` in a numba
function), and the numpy reference step with the products issued by numpy. With more than one
BLAS thread, idle OpenBLAS threads spin for a while after each call, so alternating between the
two libraries slows both; the "BLAS switch" row measures that, and the training steps (which
mix both libraries, as ``pcsim.algorithms`` does) are timed in loops of their own.

    python benchmarks/bench_step.py [--threads 1] [--reps 300] [--max-loop-s 10] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import scipy
from numba import njit
from threadpoolctl import threadpool_info

from pcsim import network
from pcsim.algorithms import IPC, PC, initial_activities
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.optim import Adam

DTYPE = np.float32
BATCH = 64
DT = 0.1
STEP_SIZES = (784, 256, 256, 10)
TRAIN_SIZES = (784, 128, 128, 10)
TARGET_RATIO = 1.5
ADAM_LR = 1e-3
N_BATCHES = 8  # training cycles through this many random batches

# docs/sources.md (peer timings): measured on another 2-core machine, not here
# (784-128-128-10 tanh, B 64).
JPC_20_STEPS_MS = 3.9  # JPC (jax 0.4.38, CPU): 20 Euler inference steps
PCX_TRAIN_STEP_MS = 3.4  # PCX 0.6.3: one full training step with T = 20


# -- workloads -------------------------------------------------------------------------------


@njit(cache=False)
def _products_kernel_blas(fwd_in, weights, fwd_out, bwd_in, bwd_out):  # pragma: no cover
    """The five products through numba's np.dot (the BLAS the pcsim kernels use)."""
    for i in range(len(weights)):
        np.dot(fwd_in[i], weights[i].T, fwd_out[i])
    for i in range(1, len(weights)):
        np.dot(bwd_in[i - 1], weights[i], bwd_out[i - 1])


class BareProducts:
    """The matrix products of one supervised step: ``L`` forward, ``L - 1`` backward.

    Inputs hold realistic values (``x_0`` data, ``phi = tanh`` of activities, errors from a
    feedforward state with the target clamped) in preallocated float32 buffers.
    """

    def __init__(self, net: network.Network, xs: list[np.ndarray]) -> None:
        L = net.n_layers
        self.weights = tuple(net.weights)
        self.fwd_in = tuple([xs[0]] + [np.tanh(xs[i]) for i in range(1, L)])
        self.fwd_out = tuple(np.empty((BATCH, n), DTYPE) for n in net.sizes[1:])
        self.bwd_in = tuple((xs[i + 1] - xs[i + 1].mean(axis=0)).astype(DTYPE) for i in range(1, L))
        self.bwd_out = tuple(np.empty((BATCH, net.sizes[i]), DTYPE) for i in range(1, L))

    def numpy(self) -> None:
        """Through numpy's BLAS: ``np.dot(a, b, out)`` from Python."""
        for a, W, o in zip(self.fwd_in, self.weights, self.fwd_out, strict=True):
            np.dot(a, W.T, o)
        for e, W, o in zip(self.bwd_in, self.weights[1:], self.bwd_out, strict=True):
            np.dot(e, W, o)

    def kernel_blas(self) -> None:
        """Through the BLAS numba's ``np.dot`` calls (one compiled function for all five)."""
        _products_kernel_blas(self.fwd_in, self.weights, self.fwd_out, self.bwd_in, self.bwd_out)


def _batches(net: network.Network, rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
    out = []
    for _ in range(N_BATCHES):
        x = rng.random((BATCH, net.sizes[0])).astype(DTYPE)
        y = np.eye(net.sizes[-1], dtype=DTYPE)[rng.integers(0, net.sizes[-1], BATCH)]
        out.append((x, y))
    return out


class StepWorkload:
    """One inference step, always from the same feedforward state (target clamped)."""

    def __init__(self, sizes: tuple[int, ...], backend: str, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.net = network.build(sizes, "tanh", dtype=DTYPE, rng=seed)
        self.circ = Circuit(self.net)
        x, y = _batches(self.net, rng)[0]
        self.start = initial_activities(self.circ, x, y)
        self.xs = [v.copy() for v in self.start]
        self.free = [False] + [True] * (self.net.n_layers - 1) + [False]
        self.engine = ClockedEngine(dt=DT, backend=backend)
        self.bare = BareProducts(self.net, self.start)

    def reset(self) -> None:
        for v, v0 in zip(self.xs, self.start, strict=True):
            v[...] = v0

    def step(self) -> None:
        self.engine.step(self.circ, self.xs, self.free)


class TrainWorkload:
    """PC and iPC training steps on their own copies of one network and data."""

    def __init__(self, sizes: tuple[int, ...], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        net = network.build(sizes, "tanh", dtype=DTYPE, rng=seed)
        self.data = _batches(net, rng)
        self.engine = ClockedEngine(dt=DT)
        self.pc, self.ipc = PC(T=2.0), IPC(T=0.1)
        self.circ_pc, self.circ_ipc = Circuit(net), Circuit(net.copy())
        self.opt_pc, self.opt_ipc = Adam(ADAM_LR), Adam(ADAM_LR)
        self.run_circ = Circuit(net.copy())
        x, y = self.data[0]
        self.run_start = initial_activities(self.run_circ, x, y)
        self.run_xs = [v.copy() for v in self.run_start]
        self.free = [False] + [True] * (net.n_layers - 1) + [False]
        self.bare = BareProducts(self.run_circ.net, self.run_start)  # same arrays as run
        self.k_pc = self.k_ipc = 0

    def reset_run(self) -> None:
        for v, v0 in zip(self.run_xs, self.run_start, strict=True):
            v[...] = v0

    def inference(self) -> None:
        """20 Euler inference steps (T = 2, dt = 0.1), weights frozen."""
        self.engine.run(self.run_circ, self.run_xs, self.free, 2.0)

    def pc_step(self) -> None:
        x, y = self.data[self.k_pc % N_BATCHES]
        self.k_pc += 1
        self.pc.train_batch(self.circ_pc, self.engine, self.opt_pc, x, y)

    def ipc_step(self) -> None:
        x, y = self.data[self.k_ipc % N_BATCHES]
        self.k_ipc += 1
        self.ipc.train_batch(self.circ_ipc, self.engine, self.opt_ipc, x, y)


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timing:
    """Medians over the timed rounds: wall time (with quartiles) and process CPU time."""

    median_s: float
    q25_s: float
    q75_s: float
    cpu_s: float
    n: int  # timed rounds actually run

    @classmethod
    def fixed(cls, seconds: float) -> Timing:
        """A number quoted from elsewhere (no spread, no CPU time)."""
        return cls(seconds, seconds, seconds, math.nan, 0)


MIN_ROUNDS = 20  # a loop stopped by its time cap still has at least this many rounds


def alternate(
    fns: dict[str, Callable[[], None]],
    reps: int,
    warmup: int,
    before: dict[str, Callable[[], None]] | None = None,
    max_s: float = math.inf,
) -> dict[str, Timing]:
    """Call each function once per round, in order, for ``reps`` rounds after ``warmup``;
    ``before[name]`` runs untimed just before ``name``.

    The loop stops early once it has run ``max_s`` seconds and at least ``MIN_ROUNDS`` timed
    rounds (a busy shared machine can make a loop 100x slower); ``Timing.n`` says how many.
    Process CPU time leaves out time spent waiting for a core (with one BLAS thread it is the
    work done; with more it also counts worker threads spinning).
    """
    before = before or {}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    t_loop = time.perf_counter()
    for r in range(warmup + reps):
        if r - warmup >= MIN_ROUNDS and time.perf_counter() - t_loop > max_s:
            break
        for name, fn in fns.items():
            if name in before:
                before[name]()
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            c1 = time.process_time()
            if r >= warmup:
                wall[name].append(t1 - t0)
                cpu[name].append(c1 - c0)
    out = {}
    for name, ts in wall.items():
        q25, med, q75 = np.percentile(ts, [25, 50, 75])
        out[name] = Timing(float(med), float(q25), float(q75), float(np.median(cpu[name])), len(ts))
    return out


# -- report ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_libraries() -> list[str]:
    return [
        f"{os.path.basename(i['filepath'])} ({i['internal_api']} {i.get('version')}, "
        f"{i['num_threads']} thread{'s' if i['num_threads'] != 1 else ''})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]


@dataclass
class Row:
    """One line of the table; ``base`` is what the "x bare" columns divide by."""

    section: str
    label: str
    timing: Timing | None
    base: Timing | None = None
    note: str = ""
    scale: float = 1.0  # the row's time is divided by scale * base (e.g. 20 for 20 steps)


COLUMNS = ("median ms", "IQR ms", "x bare", "cpu ms", "x bare cpu")


def _cells(r: Row) -> list[str]:
    t, b = r.timing, r.base
    if t is None:
        return ["", "", "", "", ""]
    ms = f"{t.median_s * 1e3:.3f}"
    iqr = "" if t.q25_s == t.q75_s else f"{t.q25_s * 1e3:.3f}-{t.q75_s * 1e3:.3f}"
    cpu = "" if math.isnan(t.cpu_s) else f"{t.cpu_s * 1e3:.3f}"
    x = xc = ""
    if b is not None:
        x = f"{t.median_s / (r.scale * b.median_s):.2f}x"
        if not math.isnan(t.cpu_s):
            xc = f"{t.cpu_s / (r.scale * b.cpu_s):.2f}x"
    return [ms, iqr, x, cpu, xc]


def print_table(rows: list[Row]) -> None:
    w = max(len(r.label) for r in rows) + 2
    widths = (10, 15, 8, 8, 11)
    print(
        f"  {'':{w}}"
        + " ".join(f"{c:>{n}}" for c, n in zip(COLUMNS, widths, strict=True))
        + "  note"
    )
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            print(section)
        cells = " ".join(f"{c:>{n}}" for c, n in zip(_cells(r), widths, strict=True))
        print(f"  {r.label:{w}}{cells}  {r.note}")


def print_markdown(rows: list[Row], header: list[str]) -> None:
    print("```text")
    for line in header:
        print(line)
    print("```")
    print()
    print("| case | " + " | ".join(COLUMNS) + " | note |")
    print("|---|" + "---:|" * len(COLUMNS) + "---|")
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            print(f"| **{section}** |" + " |" * len(COLUMNS) + " |")
        print(f"| {r.label} | " + " | ".join(_cells(r)) + f" | {r.note} |")


def _mean(ts: list[Timing]) -> Timing:
    """The mean of some medians, as one number."""
    m = sum(t.median_s for t in ts) / len(ts)
    return Timing(m, m, m, sum(t.cpu_s for t in ts) / len(ts), min(t.n for t in ts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    p.add_argument("--reps", type=int, default=300, help="timed rounds per loop (>= 200)")
    p.add_argument("--warmup", type=int, default=30, help="untimed rounds before each loop")
    p.add_argument(
        "--max-loop-s",
        type=float,
        default=10.0,
        help="stop a loop after this many seconds (once it has 20 rounds); default 10",
    )
    p.add_argument("--markdown", action="store_true", help="also print a markdown block")
    args = p.parse_args(argv)
    if args.threads < 1 or args.reps < 1 or args.warmup < 0:
        p.error("--threads and --reps must be >= 1, --warmup >= 0")

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    step_nb = StepWorkload(STEP_SIZES, "numba")
    step_np = StepWorkload(STEP_SIZES, "numpy")
    train = TrainWorkload(TRAIN_SIZES)
    # Compile the kernels and load every BLAS (numba loads scipy's lazily) before limiting
    # threads: threadpoolctl only limits libraries that are loaded when it is called.
    for w in (step_nb, step_np):
        w.step()
        w.reset()
        w.bare.kernel_blas()
        w.bare.numpy()
    train.inference()
    train.reset_run()
    train.pc_step()
    train.ipc_step()
    train.bare.kernel_blas()

    reps, wu, cap = args.reps, args.warmup, args.max_loop_s
    with limit_threads(args.threads):
        libs = blas_libraries()
        a = alternate(
            {"step": step_nb.step, "bare": step_nb.bare.kernel_blas},
            reps,
            wu,
            before={"step": step_nb.reset},
            max_s=cap,
        )
        ref = alternate(
            {"step": step_np.step, "bare": step_np.bare.numpy},
            reps,
            wu,
            before={"step": step_np.reset},
            max_s=cap,
        )
        switch = alternate(
            {"np": step_nb.bare.numpy, "kb": step_nb.bare.kernel_blas}, reps, wu, max_s=cap
        )
        b_inf = alternate(
            {"inf": train.inference, "bare": train.bare.kernel_blas},
            reps,
            wu,
            before={"inf": train.reset_run},
            max_s=cap,
        )
        b_bare_np = alternate({"bare": train.bare.numpy}, reps, wu, max_s=cap)
        b_pc = alternate({"pc": train.pc_step}, reps, wu, max_s=cap)
        b_ipc = alternate({"ipc": train.ipc_step}, reps, wu, max_s=cap)
    elapsed = time.perf_counter() - t_start

    ratio_a = a["step"].median_s / a["bare"].median_s
    load_end = os.getloadavg()[0]
    busy = max(load_start, load_end) > len(os.sched_getaffinity(0))
    verdict = "meets" if ratio_a <= TARGET_RATIO else "MISSES"
    if busy:
        verdict = f"busy machine, rerun; {verdict}"
    # the switch row: mean of the two alternating medians, against the two libraries alone
    sw_t = _mean([switch["np"], switch["kb"]])
    alone_t = _mean([ref["bare"], a["bare"]])
    s_a = "(a) 784-256-256-10 tanh, batch 64: one Euler inference step (dt 0.1)"
    s_b = "(b) 784-128-128-10 tanh, batch 64, Adam: training steps"
    s_c = "context: docs/sources.md, measured on ANOTHER 2-core machine"
    bare_b = b_bare_np["bare"]  # numpy np.dot(out=), own loop: hot caches, the fastest
    rows = [
        Row(
            s_a, "bare products, kernel BLAS (numba np.dot)", a["bare"], a["bare"], "3 fwd + 2 bwd"
        ),
        Row(
            s_a,
            "ClockedEngine.step, numba backend",
            a["step"],
            a["bare"],
            f"{verdict} target <= {TARGET_RATIO}x",
        ),
        Row(s_a, "bare products, numpy np.dot(out=)", ref["bare"], ref["bare"], "numpy's BLAS"),
        Row(
            s_a,
            "ClockedEngine.step, numpy backend",
            ref["step"],
            ref["bare"],
            "reference, for information",
        ),
        Row(
            s_a,
            "BLAS switch: numpy <-> kernel BLAS alternating",
            sw_t,
            alone_t,
            "per product set; x = vs the two bare rows above",
        ),
        Row(
            s_b,
            "bare products of one step, numpy np.dot",
            bare_b,
            bare_b,
            "3 fwd + 2 bwd, own loop",
        ),
        Row(
            s_b,
            "bare products of one step, kernel BLAS",
            b_inf["bare"],
            bare_b,
            "alternating with the 20 steps",
        ),
        Row(
            s_b,
            "20 inference steps (engine.run, T=2)",
            b_inf["inf"],
            bare_b,
            "x bare: per step (time / 20)",
            scale=20.0,
        ),
        Row(s_b, "PC train_batch (T=2: 20 steps + update)", b_pc["pc"], bare_b, "own loop"),
        Row(s_b, "iPC train_batch (T=0.1: 1 step + update)", b_ipc["ipc"], bare_b, "own loop"),
        Row(
            s_c,
            "JPC: 20 Euler inference steps",
            Timing.fixed(JPC_20_STEPS_MS / 1e3),
            None,
            f"pcsim here: {b_inf['inf'].median_s * 1e3:.2f} ms",
        ),
        Row(
            s_c,
            "PCX: one training step, T = 20",
            Timing.fixed(PCX_TRAIN_STEP_MS / 1e3),
            None,
            f"pcsim PC here: {b_pc['pc'].median_s * 1e3:.2f} ms",
        ),
    ]
    for r in rows:
        if r.timing is not None and 0 < r.timing.n < reps:
            r.note = f"{r.note}; ONLY {r.timing.n} reps (time cap)".lstrip("; ")
    header = [
        f"pcsim bench_step: float32, BLAS threads = {args.threads}, {reps} reps "
        f"(+{wu} warm-up) per loop, medians",
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {cpu_model()}",
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"scipy {scipy.__version__}",
        "BLAS: " + "; ".join(libs),
        f"wall time {elapsed:.1f} s; load average {load_start:.1f} at start, {load_end:.1f} at end"
        + (" -- BUSY MACHINE: trust the cpu columns more" if busy else ""),
    ]
    for line in header:
        print(line)
    print_table(rows)
    if args.markdown:
        print()
        print_markdown(rows, header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
