"""Command line: ``pcsim run | sweep | report | export | info``.

Errors a user can fix (configuration, data, files) print one line ``pcsim: error: ...`` and
exit with code 2; a diverging simulation exits 3; Ctrl-C exits 130 (SIGTERM 143); a bug in
pcsim exits 1 with one line (``PCSIM_DEBUG=1`` shows its traceback). No traceback, and no
results file is written unless the run completed (README, "Exit codes").
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
from collections.abc import Sequence

from pcsim import __version__
from pcsim.compare import format_baselines

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def _rule_line(s: dict) -> str:
    """One line: the weight rule, where it runs, and whether the chip can run it alone."""
    rule = s.get("learning_rule") or {}
    if s.get("tau_w") is not None:
        what = f"flow tau_w dW/dt = -dF/dW, tau_w = {s['tau_w']:.3g} tau_x"
    else:
        name = {"flow": "sgd"}.get(rule.get("rule"), rule.get("rule"))
        what = f"{name} with step {s.get('weight_lr', float('nan')):.3g} per update (depends on dt)"
    where = "local, on the analog array" if rule.get("local") else "NOT local: digital co-processor"
    return f"{what}; {where}"


def _step_text(s: dict) -> str:
    """`` (steps of ...)`` where engine.dt was cut to resolve the read noise's correlation
    time (``read_time_steps`` > 1, :func:`pcsim.run.resolve_read_time`)."""
    k = s.get("read_time_steps", 1)
    if k <= 1:
        return ""
    return f" (steps of {s['gamma']:.3g} tau_x: engine.dt cut {k}x to resolve the read noise)"


def _pm(s: dict, key: str) -> str:
    """An accuracy as a percentage, with ``± std`` when the summary has several seeds."""
    std = s.get(f"{key}_std")
    if std is None or not math.isfinite(std):
        return f"{s[key]:.2%}"
    return f"{s[key]:.2%} ± {100 * std:.2f}"


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return n


NOT_SETTLED = "NOT SETTLED"  # the marker of an inference that did not settle within its cap


def _inference_text(s: dict, prefix: str) -> str:
    """One protocol's inference figures, or the not-settled marker (never the cap's numbers)."""
    if not s.get(f"{prefix}_settled"):
        return f"{NOT_SETTLED} within {s.get('inference_max_tau', float('nan')):g} tau_x"
    return (
        f"{s[f'{prefix}_energy_per_sample_j']:.3g} J/sample, "
        f"{s[f'{prefix}_latency_per_sample_s']:.3g} s/sample "
        f"({s[f'{prefix}_settle_tau']:.3g} tau_x)"
    )


def _convs_text(s: dict) -> str:
    """`` (conv 8@5x5/2, conv 16@5x5/2, dense)`` for a summary with ``conv_layers``."""
    layers = s.get("conv_layers")
    if not layers:
        return ""
    parts = [
        "dense"
        if g is None
        else f"conv {g['out_channels']}@{g['kernel']}x{g['kernel']}/{g['stride']}"
        for g in layers
    ]
    return " (" + ", ".join(parts) + ")"


def _print_summary(s: dict) -> None:
    rows = [
        ("algorithm", s["algorithm"]),
        ("engine", s["engine"] + _step_text(s)),
        ("chip", s["chip"]),
        ("data", f"{s['dataset']} ({s['n_train']} train / {s['n_test']} test)"),
        ("network", "-".join(map(str, s["sizes"])) + f" {s['activation']}" + _convs_text(s)),
        ("epochs", s["epochs"]),
        ("train accuracy", _pm(s, "train_accuracy")),
        ("test accuracy", _pm(s, "test_accuracy")),
    ]
    if "learning_rule" in s:  # results of older versions have none
        rows[6:6] = [
            ("learning rule", _rule_line(s)),
            ("batch execution", s["learning_rule"].get("batch_execution", "?")),
        ]
    if s.get("n_seeds", 1) > 1:
        rows.append(("seeds", f"{s['n_seeds']} ({', '.join(map(str, s['seeds']))}): mean ± std"))
    if "bp_test_accuracy" in s:
        rows.append(("BP test accuracy", _pm(s, "bp_test_accuracy") + " (same net and init)"))
    if s.get("energy_per_sample_j"):
        ratio, bname = s.get("energy_ratio"), s.get("baseline_name", "digital")
        rows += [
            (
                "train energy/sample",
                f"{s['energy_per_sample_j']:.3g} J on the chip, "
                f"{s['baseline_energy_per_sample_j']:.3g} J {bname} BP"
                + (
                    ""
                    if not ratio
                    else f" ({ratio:.3g}x less)"
                    if ratio >= 1
                    else f" ({1 / ratio:.3g}x more)"
                ),
            ),
            (
                "train time/sample",
                f"{s['latency_per_sample_s']:.3g} s on the chip, "
                f"{s['baseline_latency_per_sample_s']:.3g} s {bname} BP",
            ),
        ]
    if "inference_settled" in s:
        base = s.get("baseline_inference_name", "digital")
        rows += [
            (
                "inference (deployed)",
                _inference_text(s, "inference")
                + f"; {s['baseline_inference_energy_per_sample_j']:.3g} J, "
                f"{s['baseline_inference_latency_per_sample_s']:.3g} s {base}",
            ),
        ]
        if "inference_free_settled" in s:
            rows.append(("inference (free)", _inference_text(s, "inference_free")))
        if "inference_settle_criterion" in s:
            rows.append(("settled means", s["inference_settle_criterion"]))
    rows.append(("wall time", f"{s['train_seconds']:.1f} s"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    table = format_baselines(s)
    if table:
        print("  digital baselines:")
        print("\n".join("    " + line for line in table))


def cmd_run(args: argparse.Namespace) -> int:
    from pcsim import checkpoint as ckpt
    from pcsim import config, results
    from pcsim.run import execute
    from pcsim.train import Interrupted

    resume = ckpt.load(args.resume) if args.resume else None
    if args.config:
        cfg = config.load(args.config)
        if resume is not None:
            _check_same_run(cfg, resume, args.config)
    elif resume is not None:
        try:
            cfg = config.loads(resume.config_text)
        except config.ConfigError as exc:
            raise results.ResultsError(
                f"{args.resume}: the checkpoint holds an invalid configuration ({exc})"
            ) from None
    else:
        cfg = config.RunConfig()
    if args.seeds is not None:
        cfg.seeds = args.seeds
    if cfg.seeds > 1 and (resume is not None or args.checkpoint_every or args.checkpoint):
        raise config.ConfigError(
            "seeds: checkpoints hold one seed; run several seeds without --checkpoint-every "
            "and --resume"
        )
    if args.out:
        results.check_writable(args.out)
    policy = _checkpoint_policy(args, resume)
    stop = _StopOnSignal()
    stop.install()
    try:
        if cfg.seeds > 1:
            from pcsim.seeds import execute_seeds

            res = execute_seeds(
                cfg, lambda c: execute(c, progress=not args.quiet, should_stop=stop)
            )
        else:
            res = execute(
                cfg, progress=not args.quiet, checkpoint=policy, resume=resume, should_stop=stop
            )
    except Interrupted as exc:
        code = 128 + (stop.signum or signal.SIGINT)
        if exc.checkpoint is None:
            print(f"pcsim: error: interrupted; no checkpoint written: {exc.error}", file=sys.stderr)
            return code
        print(
            f"interrupted: checkpoint written to {exc.checkpoint}; resume with: "
            + _resume_command(args, exc.checkpoint),
            file=sys.stderr,
        )
        return code
    finally:
        stop.uninstall()
    if args.out:
        results.save(args.out, res)
    _print_summary(res.summary)
    if args.out:
        print(f"  results written to {args.out}")
    if args.json:
        print(json.dumps(res.summary, default=float))
    return 0


STOP_GRACE_S = 2.0  # seconds a signal waits for a safe point before the run is abandoned
WRITE_WAIT_S = 10.0  # ... or for a checkpoint being written to finish


class _StopOnSignal:
    """SIGINT / SIGTERM: the first asks training to stop at the next safe point (a checkpoint
    is written there); a second one aborts at once. If no safe point comes within
    ``STOP_GRACE_S`` (a long compiled step, a deep network's batch), the process exits with
    128 + signal number without a checkpoint, after removing the temporary file of any write
    under way (a checkpoint being written gets up to ``WRITE_WAIT_S`` to finish first)."""

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.signum: int | None = None
        self.grace_s = grace_s
        self._old: dict[int, object] = {}
        self._timer = None
        self._waited = 0.0

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            "\npcsim: stopping at the next safe point to write a checkpoint "
            "(Ctrl-C again aborts without one)",
            file=sys.stderr,
        )
        self._arm()

    def _arm(self) -> None:
        import threading

        self._timer = threading.Timer(self.grace_s, self._abandon)
        self._timer.daemon = True
        self._timer.start()

    def _abandon(self) -> None:
        import os

        from pcsim.results import remove_temporaries, writing_now

        self._waited += self.grace_s
        if writing_now() and self._waited < WRITE_WAIT_S:  # a checkpoint being written
            self._arm()
            return
        remove_temporaries()
        print(
            f"pcsim: error: no safe point within {self.grace_s:g} s of the signal; stopped "
            "without writing a checkpoint (the previous one, if any, is intact)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + (self.signum or signal.SIGTERM))

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main thread: no handler, Ctrl-C aborts
                pass

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def _checkpoint_policy(args: argparse.Namespace, resume):
    """Where checkpoints go (always somewhere: Ctrl-C writes one) and how often."""
    from pathlib import Path

    from pcsim import checkpoint as ckpt
    from pcsim.config import ConfigError
    from pcsim.results import ResultsError

    if args.checkpoint:
        path = Path(args.checkpoint)
    elif args.resume:
        path = Path(args.resume)
    elif args.out:
        path = Path(args.out).with_suffix(".ckpt.h5")
    else:
        path = Path("pcsim.ckpt.h5")
    if path.is_dir():
        raise ResultsError(f"--checkpoint {str(path)!r} is a directory")
    if path.exists() and not path.is_file():
        raise ResultsError(f"--checkpoint {str(path)!r} is not a regular file (a device or pipe)")
    if args.out and Path(args.out).resolve() == path.resolve():
        raise ResultsError("--checkpoint and --out must be different files")
    every = args.checkpoint_every
    if every is None and resume is not None:
        every = resume.state.get("checkpoint_every") or None
    if every is None and args.checkpoint:
        every = "1"
    if every is None:
        return ckpt.Policy(path)
    try:
        n, unit = ckpt.Policy.parse_every(every)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ckpt.Policy(path, n, unit)


def _check_same_run(cfg, resume, config_path: str) -> None:
    """A config given with --resume must be the checkpoint's (only learning.epochs may grow)."""
    from pcsim import config

    try:
        saved = config.loads(resume.config_text)
    except config.ConfigError:
        return  # nothing to compare with; the checkpoint's own checks still apply

    def flat(c) -> dict:
        d = c.to_dict()
        d["chip"] = c.chip_model().to_dict()
        d.get("learning", {}).pop("epochs", None)
        out: dict = {}

        def walk(prefix: str, v) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), x)
            else:
                out[prefix] = v

        walk("", d)
        return out

    a, b = flat(cfg), flat(saved)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            raise config.ConfigError(
                f"{config_path}: {key} is {a.get(key)!r} but the checkpoint was written with "
                f"{b.get(key)!r} (only learning.epochs may change on --resume; omit the "
                "config to use the checkpoint's)"
            )


def _resume_command(args: argparse.Namespace, checkpoint) -> str:
    parts = ["pcsim", "run"]
    if args.config:
        parts.append(args.config)
    parts += ["--resume", str(checkpoint)]
    if args.out:
        parts += ["--out", args.out]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_export(args: argparse.Namespace) -> int:
    """``pcsim export brian2|spice CONFIG.toml -o FILE``: the configured network on its chip as
    a self-contained Brian2 script (+ .npz) or an ngspice netlist."""
    from pathlib import Path

    from pcsim import config
    from pcsim.engines.brian import BrianUnsupported

    cfg = config.load(args.config)
    out = Path(args.out)
    if out.is_dir():
        raise config.ConfigError(f"-o {str(out)!r} is a directory; name the file to write")
    try:
        if args.kind == "brian2":
            from pcsim.export_brian import export_from_config

            script, npz = export_from_config(cfg, out, n_steps=args.steps)
            print(f"wrote {script} and {npz}; run it with: python {script}")
        else:
            from pcsim.spice import export_spice_from_config

            path = export_spice_from_config(
                cfg, out, n_presentations=args.presentations, source=str(args.config)
            )
            print(f"wrote {path}; run it with: ngspice -b {path}")
    except BrianUnsupported as exc:
        raise config.ConfigError(f"cannot export to Brian2: {exc}") from None
    except ValueError as exc:  # what a netlist cannot express (an activation, a shape)
        raise config.ConfigError(f"cannot export: {exc}") from None
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from hardware_models import list_presets, load_preset
    from pcsim.config import ConfigError, build_chip

    if args.fields:
        print(fields_text())
        return 0
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


def fields_text() -> str:
    """Every configuration field (run, chip, sweep) as one aligned table: dotted name, class
    default ("omitted" when None), unit and doc (``hardware_models._config.describe_fields``)."""
    from hardware_models import Chip
    from hardware_models._config import describe_fields
    from pcsim.config import RunConfig
    from pcsim.sweep import SweepTable

    rows = describe_fields(RunConfig) + describe_fields(Chip)  # with their sections
    rows += describe_fields(SweepTable)  # a sweep file's [sweep] table
    rows = [("field", "default", "unit", "meaning"), *rows]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}".rstrip() for r in rows]
    note = "(chip defaults are the ideal chip's; a preset sets its own: pcsim info --chip NAME)"
    return "\n".join([*lines, note])


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
    r.add_argument(
        "--seeds",
        type=_positive_int,
        metavar="N",
        help="run N seeds (seed, seed + 1, ...) and report mean and std (overrides seeds =)",
    )
    r.add_argument(
        "--checkpoint-every",
        metavar="N[b|m]",
        help="write a checkpoint every N epochs, Nb batches or Nm minutes (atomic HDF5)",
    )
    r.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint file (default: the --resume file, else OUT with .ckpt.h5, else "
        "pcsim.ckpt.h5); alone, it means --checkpoint-every 1",
    )
    r.add_argument(
        "--resume",
        metavar="FILE",
        help="continue from a checkpoint (CONFIG optional; only learning.epochs may change)",
    )
    r.set_defaults(func=cmd_run)
    sub.add_parser("sweep", help="co-design sweep on Dask (pcsim sweep --help)", add_help=False)
    sub.add_parser("report", help="tables and plots of a results file", add_help=False)
    e = sub.add_parser("export", help="the configured network as Brian2 code or an ngspice netlist")
    e.add_argument("kind", choices=("brian2", "spice"), help="what to write")
    e.add_argument("config", help="run configuration (TOML)")
    e.add_argument("-o", "--out", required=True, help="file to write (model.py or net.cir)")
    e.add_argument("--steps", type=int, default=100, help="brian2: Euler steps to simulate")
    e.add_argument(
        "--presentations", type=int, default=1, help="spice: training samples to present"
    )
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("info", help="version and chip presets")
    i.add_argument("--chip", metavar="NAME", help="print one preset with every value and source")
    i.add_argument(
        "--fields",
        action="store_true",
        help="print every field of a run configuration, a chip and a sweep: default, unit, meaning",
    )
    i.set_defaults(func=cmd_info)
    return p


def one_line(text: object) -> str:
    """A message on one line: newlines (a TOML key may hold one) shown as ``\\n``."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, ``pcsim: warning: ...`` (no source line)."""
    print(f"pcsim: warning: {one_line(message)}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; the exit code is the README's table (0 done, 1 internal error, 2 bad
    input or an unwritable file, 3 diverged, 128 + N stopped by signal N)."""
    import warnings

    warnings.showwarning = _show_warning
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a run's own handler (imports, loading)
        print("pcsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line; PCSIM_DEBUG=1 shows the traceback
        import os

        if os.environ.get("PCSIM_DEBUG"):
            raise
        print(
            f"pcsim: internal error: {type(exc).__name__}: {one_line(exc)[:300]} (a bug in "
            "pcsim; rerun with PCSIM_DEBUG=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _main(argv: Sequence[str] | None) -> int:
    from pcsim.blas import limit_threads
    from pcsim.config import ConfigError
    from pcsim.data import DataError
    from pcsim.engines.clocked import DivergenceError
    from pcsim.results import ResultsError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # a run starts here: one BLAS thread unless PCSIM_BLAS_THREADS says otherwise
        limit_threads()
    except ValueError as exc:
        print(f"pcsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if argv and argv[0] == "sweep":
        from pcsim.sweep import sweep_main

        return sweep_main(argv[1:])
    if argv and argv[0] == "report":
        from pcsim.report import report_main

        return report_main(argv[1:])
    args = parser().parse_args(argv)
    if getattr(args, "steps", 1) < 1 or getattr(args, "presentations", 1) < 1:
        print("pcsim: error: --steps and --presentations must be positive", file=sys.stderr)
        return EXIT_USAGE
    for flag in ("out", "checkpoint", "resume", "config"):
        v = getattr(args, flag, None)
        if v is not None and not v.strip():
            print(f"pcsim: error: {'--' * (flag != 'config')}{flag} is empty", file=sys.stderr)
            return EXIT_USAGE
    try:
        return args.func(args)
    except (ConfigError, DataError, ResultsError) as exc:
        print(f"pcsim: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except DivergenceError as exc:
        print(f"pcsim: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_DIVERGED
    except MemoryError:
        print(
            "pcsim: error: out of memory: use a smaller network.sizes or learning.batch_size",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as exc:  # a file named on the command line that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pcsim: error: {where}{one_line(exc.strerror or exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
