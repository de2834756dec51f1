"""Notebook 03's read-noise points that learn, with the step cut to resolve the read time.

    python benchmarks/read_noise_resolved.py [--points rram:0.03 rram:0.1 pcm:0.1] [--seeds 3]
                                             [--workers 2]

Notebook 03 keeps the default step (``engine.resolve_read_time = false``) and flags the points
whose write pulses read noise fires (one read's noise at least 10 pulses); this trains them
with its settings (450 digits, 3 epochs, the default network, batch 1, the weight flow) and
pcsim's default, the step cut to an eighth of the read time (``pcsim.run.resolve_read_time``),
and prints per point the test accuracy of each seed, their mean and std, the step used and the
write pulses per training sample, as one JSON line per run and a line per point.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

BASE = {"learning": {"epochs": 3}, "data": {"limit_train": 450}, "baseline": {"bp": False}}


def train(preset: str, level: float, seed: int, resolve: bool) -> dict:
    """One run of notebook 03's settings; its test accuracy, step and pulses per sample."""
    from pcsim import config
    from pcsim.run import execute

    d = {
        **BASE,
        "seed": seed,
        "engine": {"resolve_read_time": resolve},
        "algorithm": {"inference_samples": 8},  # inference is not what is read here
        "chip": {"preset": preset, "synapses": {"read_noise_std": level}},
    }
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut is announced; here it is the point
        s = execute(config.from_dict(d), progress=False).summary
    return {
        "preset": preset,
        "level": level,
        "seed": seed,
        "resolve": resolve,
        "test_accuracy": s["test_accuracy"],
        "step": s["gamma"],
        "write_pulses_per_sample": s["write_pulses_per_sample"],
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", nargs="+", default=["rram:0.03", "rram:0.1", "pcm:0.1"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep-step", action="store_true", help="resolve_read_time = false")
    args = ap.parse_args()
    points = [(p.split(":")[0], float(p.split(":")[1])) for p in args.points]
    jobs = [(p, lv, s, not args.keep_step) for p, lv in points for s in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(train, *zip(*jobs, strict=True)))
    for r in rows:
        print(json.dumps(r), flush=True)
    for p, lv in points:
        acc = np.array([r["test_accuracy"] for r in rows if (r["preset"], r["level"]) == (p, lv)])
        mine = [r for r in rows if (r["preset"], r["level"]) == (p, lv)]
        print(
            f"{p:5s} read noise {lv:<5g} step {mine[0]['step']:.3g}: test accuracy "
            f"{100 * acc.mean():.2f} +- {100 * acc.std(ddof=1) if len(acc) > 1 else 0:.2f} % "
            f"(seeds {', '.join(f'{100 * a:.1f}' for a in acc)}), "
            f"{np.mean([r['write_pulses_per_sample'] for r in mine]):.4g} pulses per sample"
        )


if __name__ == "__main__":
    main()
