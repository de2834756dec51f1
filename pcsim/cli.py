"""Command line: ``pcsim run | info``.

Errors a user can fix (configuration, data, files) print one line ``pcsim: error: ...`` and
exit with code 2; a diverging simulation exits 3; Ctrl-C exits 130. No traceback, and no
results file is written unless the run completed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pcsim import __version__

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def _print_summary(s: dict) -> None:
    rows = [
        ("algorithm", s["algorithm"]),
        ("engine", s["engine"]),
        ("chip", s["chip"]),
        ("data", f"{s['dataset']} ({s['n_train']} train / {s['n_test']} test)"),
        ("network", "-".join(map(str, s["sizes"])) + f" {s['activation']}"),
        ("epochs", s["epochs"]),
        ("train accuracy", f"{s['train_accuracy']:.2%}"),
        ("test accuracy", f"{s['test_accuracy']:.2%}"),
    ]
    if "bp_test_accuracy" in s:
        rows.append(("BP test accuracy", f"{s['bp_test_accuracy']:.2%} (same net and init)"))
    if s.get("energy_per_sample_j"):
        rows += [
            (
                "train energy/sample",
                f"{s['energy_per_sample_j']:.3g} J on the chip, "
                f"{s['baseline_energy_per_sample_j']:.3g} J digital BP "
                f"({s['energy_ratio']:.3g}x less)",
            ),
            (
                "train time/sample",
                f"{s['latency_per_sample_s']:.3g} s on the chip, "
                f"{s['baseline_latency_per_sample_s']:.3g} s digital BP",
            ),
        ]
    if s.get("inference_energy_per_sample_j"):
        settled = "" if s["inference_settled"] else " (not settled)"
        rows += [
            (
                "inference energy",
                f"{s['inference_energy_per_sample_j']:.3g} J/sample on the chip, "
                f"{s['baseline_inference_energy_per_sample_j']:.3g} J digital",
            ),
            (
                "inference latency",
                f"{s['inference_latency_per_sample_s']:.3g} s/sample "
                f"({s['inference_settle_tau']:.0f} tau_x){settled}, "
                f"{s['baseline_inference_latency_per_sample_s']:.3g} s digital",
            ),
        ]
    rows.append(("wall time", f"{s['train_seconds']:.1f} s"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))


def cmd_run(args: argparse.Namespace) -> int:
    from pcsim import config, results
    from pcsim.run import execute

    cfg = config.load(args.config) if args.config else config.RunConfig()
    if args.out:
        results.check_writable(args.out)
    res = execute(cfg, progress=not args.quiet)
    if args.out:
        results.save(args.out, res)
    _print_summary(res.summary)
    if args.out:
        print(f"  results written to {args.out}")
    if args.json:
        print(json.dumps(res.summary, default=float))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from hardware_models import list_presets, load_preset
    from pcsim.config import ConfigError, build_chip

    if args.chip:
        try:
            chip = load_preset(args.chip)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        print(chip.describe_text())
        return 0
    print(
        f"pcsim {__version__}\n\nchip presets (pcsim info --chip NAME for every value and source):"
    )
    for name in list_presets():
        chip = build_chip({"preset": name})
        print(f"  {name:<14} tau_x = {chip.tau_x_s:.3g} s  {chip.description}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pcsim", description="Predictive coding networks on modelled analog chips."
    )
    p.add_argument("--version", action="version", version=f"pcsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate (default: iPC on the embedded digits)")
    r.add_argument("config", nargs="?", help="run configuration (TOML); default run if omitted")
    r.add_argument("--out", help="write results to this HDF5 file (atomically)")
    r.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)
    i = sub.add_parser("info", help="version and chip presets")
    i.add_argument("--chip", metavar="NAME", help="print one preset with every value and source")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from pcsim.config import ConfigError
    from pcsim.data import DataError
    from pcsim.engines.clocked import DivergenceError
    from pcsim.results import ResultsError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, ResultsError) as exc:
        print(f"pcsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DivergenceError as exc:
        print(f"pcsim: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("pcsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
