"""The modelled chip's overhead on one clocked step, measured side by side.

    python benchmarks/bench_chip.py [--preset pcm] [--reps 200] [--threads 1]

One Euler inference step of a 784-256-256-10 tanh network at batch 64 (float32), on the ideal
substrate and on a preset (default pcm: read noise on every read, drift, programming noise,
mismatch, leak, offsets, rails, thermal noise). The two are timed alternately in one loop; the
ratio of medians is the chip's overhead (target <= 2x).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hardware_models import load_preset
from pcsim import network
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="pcm")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    net = network.build((784, 256, 256, 10), "tanh", dtype=np.float32, rng=0)
    rng = np.random.default_rng(1)
    circuits = {
        "ideal": Circuit(net.copy()),
        args.preset: Circuit(net.copy(), chip=load_preset(args.preset), rng=rng),
    }
    states = {
        k: [rng.random((args.batch, n), dtype=np.float32) for n in net.sizes] for k in circuits
    }
    free = [False, True, True, False]
    eng = ClockedEngine(dt=0.1)
    times: dict[str, list[float]] = {k: [] for k in circuits}
    with limit_threads(args.threads, user_api=None):
        for k, c in circuits.items():
            for _ in range(10):
                eng.step(c, states[k], free)
        for _ in range(args.reps):
            for k, c in circuits.items():
                t0 = time.perf_counter()
                eng.step(c, states[k], free)
                times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"784-256-256-10 tanh, batch {args.batch}, float32, BLAS threads {args.threads}")
    for k, v in med.items():
        print(f"  {k:<10} {v * 1e3:8.3f} ms per step (median of {args.reps})")
    print(f"  overhead of {args.preset}: {med[args.preset] / med['ideal']:.2f}x the ideal step")


if __name__ == "__main__":
    main()
