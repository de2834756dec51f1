"""Accuracy, energy and latency of the default iPC run on each chip preset (README table).

    python benchmarks/chip_table.py [--presets ideal rram pcm sram-cim] [--epochs 30]

Each preset runs the default configuration (iPC, digits, 64-128-128-10 leaky ReLU) with only
``[chip] preset`` changed; BP on the same network and initialisation is the digital baseline.
Prints a markdown table.
"""

from __future__ import annotations

import argparse

from pcsim import config
from pcsim.run import execute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=["ideal", "rram", "pcm", "sram-cim"])
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    print(
        "| chip | iPC test acc. | BP test acc. | train J/sample (chip / digital BP) | "
        "train s/sample (chip / digital BP) | inference J/sample (chip / digital) | "
        "inference s/sample (chip / digital) |"
    )
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets:
        text = f'[learning]\nepochs = {args.epochs}\n[chip]\npreset = "{preset}"\n'
        s = execute(config.loads(text), progress=False).summary
        settled = "" if s["inference_settled"] else " (not settled)"
        print(
            f"| {preset} | {s['test_accuracy']:.2%} | {s['bp_test_accuracy']:.2%} | "
            f"{s['energy_per_sample_j']:.3g} / {s['baseline_energy_per_sample_j']:.3g} "
            f"({s['energy_ratio']:.3g}x) | "
            f"{s['latency_per_sample_s']:.3g} / {s['baseline_latency_per_sample_s']:.3g} | "
            f"{s['inference_energy_per_sample_j']:.3g} / "
            f"{s['baseline_inference_energy_per_sample_j']:.3g} | "
            f"{s['inference_latency_per_sample_s']:.3g}{settled} / "
            f"{s['baseline_inference_latency_per_sample_s']:.3g} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
