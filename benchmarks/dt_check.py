"""Issue 17's convergence check: the default run with only ``engine.dt`` (and optionally the
read noise) changed, per seed: test accuracy, training energy and write pulses per sample.

    python benchmarks/dt_check.py --dt 0.1 0.05 [--seeds 3] [--read-noise 0.4] [--epochs N]

Prints one JSON line per run and a mean per dt. The BP baseline is not trained (it does not
depend on dt). At dt = 0.05 one seed of the default run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pcsim import config
from pcsim.run import execute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dt", type=float, nargs="+", default=[0.1, 0.05])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run: first .. first+seeds-1")
    ap.add_argument("--read-noise", type=float, default=None, help="chip.synapses.read_noise_std")
    ap.add_argument(
        "--no-unit-noise",
        action="store_true",
        help="value units without thermal noise, error units without noise (with --read-noise)",
    )
    ap.add_argument(
        "--epochs", type=int, default=None, help="learning.epochs (default: the default run's)"
    )
    args = ap.parse_args()
    for dt in args.dt:
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            d: dict = {"seed": seed, "engine": {"dt": dt}, "baseline": {"bp": False}}
            if args.epochs is not None:
                d["learning"] = {"epochs": args.epochs}
            if args.read_noise is not None:
                d["chip"] = {"preset": "rram", "synapses": {"read_noise_std": args.read_noise}}
                if args.no_unit_noise:
                    d["chip"]["value_units"] = {"thermal_noise": False}
                    d["chip"]["error_units"] = {"noise_std": 0.0}
            t0 = time.perf_counter()
            s = execute(config.from_dict(d), progress=False).summary
            row = {
                "dt": dt,
                "seed": seed,
                "test_accuracy": s["test_accuracy"],
                "energy_per_sample_j": s["energy_per_sample_j"],
                "write_pulses_per_sample": s["write_pulses_per_sample"],
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("dt", "seed")}
        print(
            f"dt = {dt:g}, {args.seeds} seeds: "
            + ", ".join(f"{k} {v:.4g}" for k, v in mean.items())
        )


if __name__ == "__main__":
    main()
