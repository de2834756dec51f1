"""Accuracy, energy and latency of the default iPC run on each chip preset (README table).

    python benchmarks/chip_table.py [--presets ideal rram pcm sram-cim] [--epochs N] [--seeds 3]
        [--dt DT]

Each preset runs the default configuration (iPC, digits, 64-128-128-10 leaky ReLU) with only
``[chip] preset`` changed, with ``--seeds`` seeds (mean ± sample std over them). Beside the chip:
BP on the same network and initialisation (accuracy), and the fair digital baselines of
``hardware_models.baselines`` (FP16 at the chip's node for training, INT8 at the chip's node
for inference). Inference: the deployed feedforward settle and free relaxation; an inference
that does not settle within its cap is "not settled", never a number. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math

from pcsim import config
from pcsim.run import execute
from pcsim.seeds import execute_seeds


def _pm(s: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    m, sd = s[key], s.get(f"{key}_std", math.nan)
    if m is None or not math.isfinite(m):
        return "not settled" if "inference" in key else "n/a"
    text = format(scale * m, fmt)
    return text if not math.isfinite(sd) else f"{text} ± {format(scale * sd, fmt)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--presets", nargs="+", default=["ideal", "rram", "pcm", "sram-cim", "subthreshold"]
    )
    ap.add_argument("--epochs", type=int, default=None, help="default: the default run's")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--dt", type=float, default=None, help="engine step (tau_x); default: 0.25")
    args = ap.parse_args()
    print(
        "| chip | iPC test acc. (%) | BP test acc. (%) | train J/sample: chip / fair digital "
        "(ratio) | train s/sample: chip / digital | inference J/sample, deployed: chip / "
        "digital | inference s/sample: deployed / free / digital |"
    )
    print("|---|---|---|---|---|---|---|")
    criteria: dict[str, str] = {}
    for preset in args.presets:
        lines = [f"seeds = {args.seeds}"]
        if args.epochs is not None:
            lines += ["[learning]", f"epochs = {args.epochs}"]
        if args.dt is not None:
            lines += ["[engine]", f"dt = {args.dt}"]
        text = "\n".join([*lines, "[chip]", f'preset = "{preset}"', ""])
        cfg = config.loads(text)
        s = execute_seeds(cfg, lambda c: execute(c, progress=False)).summary
        print(
            f"| {preset} | {_pm(s, 'test_accuracy', '.2f', 100)} | "
            f"{_pm(s, 'bp_test_accuracy', '.2f', 100)} | "
            f"{_pm(s, 'energy_per_sample_j', '.3g')} / {s['baseline_energy_per_sample_j']:.3g} "
            f"{s['baseline_name']} ({_pm(s, 'energy_ratio', '.3g')}x) | "
            f"{s['latency_per_sample_s']:.3g} / {s['baseline_latency_per_sample_s']:.3g} | "
            f"{_pm(s, 'inference_energy_per_sample_j', '.3g')} / "
            f"{s['baseline_inference_energy_per_sample_j']:.3g} {s['baseline_inference_name']} | "
            f"{_pm(s, 'inference_latency_per_sample_s', '.3g')} / "
            f"{_pm(s, 'inference_free_latency_per_sample_s', '.3g')} / "
            f"{s['baseline_inference_latency_per_sample_s']:.3g} |",
            flush=True,
        )
        criteria[preset] = s.get("inference_settle_criterion", "?")
    settled = "; ".join(f"{p}: {c}" for p, c in criteria.items())
    print(
        f"\n({args.seeds} seeds, mean ± sample std; test set: {s['n_test']} samples, one sample "
        f"= {100 / s['n_test']:.2g} accuracy points; settled means, {settled})"
    )


if __name__ == "__main__":
    main()
