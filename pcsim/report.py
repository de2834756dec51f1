"""``pcsim report``: print a results file as a table and draw its plots (PNG).

For a sweep (``pcsim-sweep`` file): the points, best first (test accuracy, then energy), and
plots of test accuracy vs energy per sample with the Pareto front marked, and of test accuracy vs
each numeric axis (one line per value of the other axes). For a single run (``pcsim-results``
file): the summary and per-epoch metrics, training curves and the energy breakdown by component.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend
change), so this is safe to call from a notebook too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pcsim import results as _results
from pcsim.compare import format_baselines
from pcsim.results import ResultsError
from pcsim.sweep import RESULT_COLUMNS, _open_h5, load_sweep

_SHOWN_UNITS = {"tau_x": "τ_x", "1/tau_x": "1/τ_x"}  # declared units as a plot labels them
_SUFFIX_UNITS = {  # the project names quantities with their unit (docs/architecture.md)
    "_j": "J",
    "_f": "F",
    "_v": "V",
    "_w": "W",
    "_hz": "Hz",
    "_k": "K",
    "_a": "A",
    "_m": "m",
    "_ohm": "Ω",
    "bits": "bits",
}


# --- helpers ------------------------------------------------------------------------------------
def pareto_front(accuracy: Sequence[float], energy: Sequence[float]) -> np.ndarray:
    """Mask of the points no other point dominates (higher accuracy, lower energy).

    A point is dominated when another has accuracy >= and energy <= with one of them strict;
    points with a NaN coordinate are never on the front. O(n log n): sort by energy (ties: higher
    accuracy first) and keep every point that beats the best accuracy seen so far.
    """
    acc = np.asarray(accuracy, dtype=float)
    en = np.asarray(energy, dtype=float)
    front = np.zeros(acc.shape, dtype=bool)
    ok = np.flatnonzero(np.isfinite(acc) & np.isfinite(en))
    order = ok[np.lexsort((-acc[ok], en[ok]))]
    best, best_e = -np.inf, np.nan
    for i in order:
        if acc[i] > best:
            front[i], best, best_e = True, acc[i], en[i]
        elif acc[i] == best and en[i] == best_e:  # an exact duplicate of a front point
            front[i] = True
    return front


def axis_unit(field: str) -> str:
    """The unit of a swept field: the unit its ``param`` declares (run and chip fields alike),
    else one read off the name's suffix."""
    parts = field.split(".")
    unit = _declared_unit(parts)
    if unit:
        return _SHOWN_UNITS.get(unit, unit)
    leaf = parts[-1].lower()
    if leaf.endswith("_s"):  # seconds, except conductances g_*_s (siemens)
        return "S" if leaf.startswith("g_") or "conductance" in leaf else "s"
    for suffix, unit in _SUFFIX_UNITS.items():
        if leaf.endswith(suffix):
            return unit
    return ""


def _declared_unit(parts: list[str]) -> str:
    """The unit in the field's ``param`` metadata (pcsim's RunConfig, or hardware_models' Chip
    for ``chip.*``); '' if the field is unknown or has none (never raises)."""
    try:
        import dataclasses

        from hardware_models.chip import Chip
        from pcsim.config import RunConfig

        cls: Any = Chip if parts[0] == "chip" else RunConfig
        names = parts[1:] if parts[0] == "chip" else parts
        for i, name in enumerate(names):
            f = {g.name: g for g in dataclasses.fields(cls)}[name]
            if "check" in f.metadata:
                return str(f.metadata.get("unit", "")) if i == len(names) - 1 else ""
            cls = f.default_factory
        return ""
    except Exception:  # an unknown or malformed name: fall back to its suffix
        return ""


def axis_label(field: str) -> str:
    unit = axis_unit(field)
    return f"{field} ({unit})" if unit else f"{field} (dimensionless)"


def _fmt_num(v: Any, spec: str) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if not math.isfinite(x) else format(x, spec)


def _fmt_val(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _new_figure(figsize=(6.4, 4.4)):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


# --- sweeps -------------------------------------------------------------------------------------
def _sweep_title(df) -> str:
    mode = df.attrs.get("mode", "")
    fields = df.attrs.get("axes", [])
    what = " × ".join(fields)
    n = df.attrs.get("n_points", len(df))
    run = ""
    for s in df["summary_json"]:
        if s:
            try:
                d = json.loads(s)
                run = f"; {d.get('algorithm', '?')} on {d.get('dataset', '?')}"
            except ValueError:
                pass
            break
    reps = int(df.attrs.get("seeds", 1))
    what += f" × {reps} seeds" if reps > 1 else ""
    return f"{mode} sweep over {what} ({n} points{run})"


def _ordered(df):
    key = df.assign(_failed=(df["status"] != "ok").astype(int))
    key = key.sort_values(
        ["_failed", "test_accuracy", "energy_per_sample_j"],
        ascending=[True, False, True],
        na_position="last",
        kind="stable",
    )
    return df.loc[key.index]


def sweep_table(df, top: int | None = None) -> str:
    """The sweep's points as a text table, best first."""
    fields = df.attrs.get("axes", [])
    d = _ordered(df)
    shown = d if top is None else d.head(top)
    header = [
        "rank",
        "point",
        *fields,
        "status",
        "test acc (%)",
        "energy/sample (J)",
        "latency/sample (s)",
        "area (mm^2)",
        "baseline/chip energy",
        "wall (s)",
    ]
    rows = []
    for rank, (idx, r) in enumerate(shown.iterrows(), start=1):
        rows.append(
            [
                str(rank),
                str(idx),
                *(_fmt_val(r[f]) for f in fields),
                str(r["status"]),
                _fmt_num(100 * r["test_accuracy"], ".2f"),
                _fmt_num(r["energy_per_sample_j"], ".3g"),
                _fmt_num(r["latency_per_sample_s"], ".3g"),
                _fmt_num(r.get("area_mm2", float("nan")), ".3g"),
                _fmt_num(r["baseline_energy_ratio"], ".3g"),
                _fmt_num(r["wall_time_s"], ".1f"),
            ]
        )
    right = {0, 1, *range(len(fields) + 3, len(header))}
    text = _table(header, rows, right)
    if top is not None and len(d) > top:
        text += f"\n... {len(d) - top} more points (see --top)"
    failed = d[d["status"] != "ok"]
    if len(failed):
        text += "\n\nfailed points:\n" + "\n".join(
            f"  point {i}: {r['error']}" for i, r in failed.iterrows()
        )
    return text


def _numeric_axes(df) -> list[str]:
    out = []
    for f in df.attrs.get("axes", []):
        col = df[f]
        if col.dtype.kind in "iuf" and col.dtype.kind != "b":
            out.append(f)
    return out


def _use_log(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return len(x) > 1 and bool(np.all(x > 0)) and x.max() / x.min() >= 50


def plot_pareto(df, path: Path) -> Path | None:
    """Test accuracy vs energy per sample, Pareto front marked; None if no energies. With a
    seeds axis: the means over seeds, with std error bars on both, front of the means."""
    fig = pareto_figure(df)
    return None if fig is None else _save(fig, path)


def pareto_figure(df):
    """The figure of :func:`plot_pareto` (None if no energies)."""
    title, reps = _sweep_title(df), n_seeds(df)
    if reps > 1:
        agg = aggregate_seeds(df)
        agg = agg.rename(
            columns={
                "test_accuracy_mean": "test_accuracy",
                "energy_per_sample_j_mean": "energy_per_sample_j",
            }
        ).assign(status="ok")
        agg.attrs.update(df.attrs)
        df = agg
    ok = df[(df["status"] == "ok") & np.isfinite(df["energy_per_sample_j"])]
    ok = ok[np.isfinite(ok["test_accuracy"]) & (ok["energy_per_sample_j"] > 0)]
    if ok.empty:
        return None
    fields = df.attrs.get("axes", [])
    e = ok["energy_per_sample_j"].to_numpy(float)
    a = 100 * ok["test_accuracy"].to_numpy(float)
    front = pareto_front(a, e)
    fig = _new_figure()
    ax = fig.subplots()
    if "test_accuracy_std" in ok:
        ax.errorbar(
            e,
            a,
            xerr=np.nan_to_num(ok["energy_per_sample_j_std"].to_numpy(float)),
            yerr=100 * np.nan_to_num(ok["test_accuracy_std"].to_numpy(float)),
            fmt="none",
            ecolor="0.5",
            capsize=2,
            label=f"mean ± std over {reps} seeds",
        )
    ax.scatter(e[~front], a[~front], s=28, color="0.6", label="dominated points")
    order = np.argsort(e[front])
    ax.plot(e[front][order], a[front][order], "-o", color="C3", ms=6, lw=1.5, label="Pareto front")
    for (_, r), on in zip(ok.iterrows(), front, strict=True):
        if on:
            text = ", ".join(_fmt_val(r[f]) for f in fields)
            ax.annotate(
                text,
                (r["energy_per_sample_j"], 100 * r["test_accuracy"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    if _use_log(e):
        ax.set_xscale("log")
    ax.set_xlabel("energy per sample (J)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy vs energy per sample\n{title}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="labels: " + ", ".join(fields), title_fontsize=7)
    return fig


def n_seeds(df) -> int:
    """Replicates per combination of the axes (the sweep's seeds axis; 1 for older files)."""
    return int(df.attrs.get("seeds", 1))


SEED_STATS = (
    "test_accuracy",
    "energy_per_sample_j",
    "latency_per_sample_s",
    "inference_latency_per_sample_s",
    "baseline_energy_ratio",
)


def aggregate_seeds(df):
    """One row per combination of the axes over its finished ("ok") seeds: ``n_seeds`` and
    ``<column>_mean``, ``<column>_std`` (sample std, ddof = 1; NaN for one seed) of
    :data:`SEED_STATS`. A NaN value (an inference that did not settle) makes a NaN mean."""
    import pandas as pd

    fields = list(df.attrs.get("axes", []))
    ok = df[df["status"] == "ok"]
    rows = []
    for key, g in ok.groupby(fields, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(fields, key, strict=True))
        row["n_seeds"] = len(g)
        for c in SEED_STATS:
            x = g[c].to_numpy(float)
            row[f"{c}_mean"] = float(x.mean())
            row[f"{c}_std"] = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(df.attrs)
    return out


def seed_table(df) -> str:
    """Mean ± std over the seeds of every combination of the axes, best mean accuracy first."""
    agg = aggregate_seeds(df)
    if agg.empty:
        return ""
    fields = list(df.attrs.get("axes", []))
    agg = agg.sort_values("test_accuracy_mean", ascending=False, na_position="last")
    header = [*fields, "seeds", "test acc (%)", "energy/sample (J)", "inference latency (s)"]
    rows = []
    for _, r in agg.iterrows():
        acc = _fmt_num(100 * r["test_accuracy_mean"], ".2f")
        acc += " ± " + _fmt_num(100 * r["test_accuracy_std"], ".2f")
        en = _fmt_num(r["energy_per_sample_j_mean"], ".3g")
        en += " ± " + _fmt_num(r["energy_per_sample_j_std"], ".2g")
        lat = r["inference_latency_per_sample_s_mean"]
        rows.append(
            [
                *(_fmt_val(r[f]) for f in fields),
                str(int(r["n_seeds"])),
                acc,
                en,
                _fmt_num(lat, ".3g") if math.isfinite(lat) else "not settled",
            ]
        )
    return _table(header, rows, set(range(len(fields), len(header))))


def test_set_line(df) -> str:
    """The test-set size of a sweep's runs and what one test sample is worth in accuracy."""
    sizes = set()
    if "n_test" in df:
        sizes = {int(v) for v in df["n_test"].to_numpy(float) if math.isfinite(v)}
    if not sizes:
        for text in df["summary_json"]:
            try:
                sizes.add(int(json.loads(text)["n_test"]))
            except (ValueError, KeyError, TypeError):
                continue
    if not sizes:
        return "  test set: size not recorded"
    n = min(sizes)
    what = ", ".join(str(k) for k in sorted(sizes))
    return f"  test set: {what} samples (one sample = {100 / n:.2g} accuracy points)"


def accuracy_vs_axis_figure(df, field: str, max_lines: int = 10):
    """The figure of :func:`plot_accuracy_vs_axis` (None if nothing finished). With a seeds
    axis, each line is the mean over seeds with the sample std as error bars."""
    ok = df[(df["status"] == "ok") & np.isfinite(df["test_accuracy"])]
    if ok.empty:
        return None
    if n_seeds(df) > 1:
        return _accuracy_errorbar_figure(df, field, max_lines)
    others = [f for f in df.attrs.get("axes", []) if f != field]
    grid = df.attrs.get("mode") == "grid"
    fig = _new_figure()
    ax = fig.subplots()
    groups = list(ok.groupby(others, sort=True)) if others else [((), ok)]
    style = "-o" if grid else "o"
    if len(groups) > max_lines:  # too many lines to read: the mean over the other axes
        mean = ok.groupby(field)["test_accuracy"].agg(["mean", "min", "max"])
        x = mean.index.to_numpy(float)
        ax.plot(x, 100 * mean["mean"], style, label=f"mean over {', '.join(others)}")
        ax.fill_between(x, 100 * mean["min"], 100 * mean["max"], alpha=0.2, label="min to max")
    else:
        for key, g in groups:
            g = g.sort_values(field)
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{f} = {_fmt_val(v)}" for f, v in zip(others, key, strict=True))
            ax.plot(g[field].to_numpy(float), 100 * g["test_accuracy"], style, label=label or None)
        if others:
            ax.legend(fontsize=7)
    if _use_log(ok[field].to_numpy(float)):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(field))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy vs {field}\n{_sweep_title(df)}", fontsize=9)
    ax.grid(True, alpha=0.3)
    return fig


def _accuracy_errorbar_figure(df, field: str, max_lines: int):
    agg = aggregate_seeds(df)
    others = [f for f in df.attrs.get("axes", []) if f != field]
    fig = _new_figure()
    ax = fig.subplots()
    groups = list(agg.groupby(others, sort=True)) if others else [((), agg)]
    for key, g in groups[:max_lines]:
        g = g.sort_values(field)
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{f} = {_fmt_val(v)}" for f, v in zip(others, key, strict=True))
        ax.errorbar(
            g[field].to_numpy(float),
            100 * g["test_accuracy_mean"].to_numpy(float),
            yerr=100 * np.nan_to_num(g["test_accuracy_std"].to_numpy(float)),
            fmt="-o",
            capsize=3,
            label=label or None,
        )
    if others:
        ax.legend(fontsize=7)
    if _use_log(agg[field].to_numpy(float)):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(field))
    ax.set_ylabel(f"test accuracy (%), mean ± std over {n_seeds(df)} seeds")
    ax.set_title(f"Test accuracy vs {field}\n{_sweep_title(df)}", fontsize=9)
    ax.grid(True, alpha=0.3)
    return fig


def plot_accuracy_vs_axis(df, field: str, path: Path, max_lines: int = 10) -> Path | None:
    """Test accuracy vs one numeric axis, one line per combination of the other axes' values
    (with a seeds axis: means with std error bars)."""
    fig = accuracy_vs_axis_figure(df, field, max_lines)
    return None if fig is None else _save(fig, path)


def report_sweep(
    path: str | Path, plots: str | Path | None = None, top: int | None = None, echo=print
) -> list[Path]:
    df = load_sweep(path)
    name = Path(path).name
    n = df.attrs.get("n_points", len(df))
    n_ok = int((df["status"] == "ok").sum())
    n_failed = len(df) - n_ok
    echo(f"{name}: {_sweep_title(df)}")
    tests = f"; {test_set_line(df).strip()}" if len(df) else ""
    echo(f"  {n_ok} ok, {n_failed} failed, {n - len(df)} not run yet{tests}")
    if len(df):
        echo(sweep_table(df, top))
        if n_seeds(df) > 1:
            echo(f"mean ± std over {n_seeds(df)} seeds per combination of the axes:")
            echo(seed_table(df))
    written: list[Path] = []
    if plots is not None:
        outdir = _plot_dir(plots)
        p = plot_pareto(df, outdir / "pareto.png")
        if p is None:
            echo(
                "  no energy per sample recorded (no chip cost model in these runs): "
                "pareto.png skipped"
            )
        else:
            written.append(p)
        for f in _numeric_axes(df):
            p = plot_accuracy_vs_axis(df, f, outdir / f"accuracy_vs_{f.replace('.', '_')}.png")
            if p is not None:
                written.append(p)
    return written


# --- single runs --------------------------------------------------------------------------------
def _run_title(s: dict[str, Any]) -> str:
    sizes = "-".join(str(n) for n in s.get("sizes", []))
    return (
        f"{s.get('algorithm', '?')} on {s.get('dataset', '?')} ({sizes}), chip {s.get('chip', '?')}"
    )


def plot_curves(res: _results.RunResult, path: Path) -> Path | None:
    """Accuracy and PC energy per epoch (BP baseline dashed, when it ran)."""
    m = res.metrics
    if "epoch" not in m or len(m["epoch"]) == 0:
        return None
    fig = _new_figure(figsize=(9.0, 4.0))
    ax_acc, ax_e = fig.subplots(1, 2)
    ep = m["epoch"]
    for key, label, color in (("train_accuracy", "train", "C0"), ("test_accuracy", "test", "C1")):
        if key in m:
            ax_acc.plot(
                ep,
                100 * m[key],
                "-o",
                ms=3,
                color=color,
                label=f"{res.summary.get('algorithm', '')} {label}",
            )
    b = res.baseline_metrics or {}
    if "epoch" in b:
        for key, label, color in (
            ("train_accuracy", "train", "C0"),
            ("test_accuracy", "test", "C1"),
        ):
            if key in b:
                ax_acc.plot(
                    b["epoch"], 100 * b[key], "--", color=color, alpha=0.7, label=f"BP {label}"
                )
    from matplotlib.ticker import MaxNLocator

    for a in (ax_acc, ax_e):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy", fontsize=9)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8)
    if "train_energy" in m:
        ax_e.plot(ep, m["train_energy"], "-o", ms=3, color="C2")
        if np.all(np.asarray(m["train_energy"]) > 0):
            ax_e.set_yscale("log")
    ax_e.set_xlabel("epoch")
    ax_e.set_ylabel("mean energy F per batch (dimensionless)")
    ax_e.set_title("Predictive-coding energy during training", fontsize=9)
    ax_e.grid(True, alpha=0.3)
    fig.suptitle(f"Training curves: {_run_title(res.summary)}", fontsize=10)
    return _save(fig, path)


def _finite_items(d: Any) -> dict[str, float]:
    out = {}
    for k, v in (d or {}).items() if isinstance(d, dict) else ():
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out[str(k)] = x
    return out


def plot_energy_breakdown(res: _results.RunResult, path: Path) -> Path | None:
    """Energy by component: per training sample and per inference (from the summary) when the
    run reports them, else the run's ledger totals. None if there is no nonzero energy."""
    s = res.summary
    series = {
        "training, per sample": _finite_items(s.get("energy_breakdown_j")),
        "inference, per sample": _finite_items(s.get("inference_energy_breakdown_j")),
    }
    series = {k: v for k, v in series.items() if any(x > 0 for x in v.values())}
    xlabel = "energy per sample (J)"
    if not series:
        ledger = _finite_items(res.ledger)
        if not any(v > 0 for v in ledger.values()):
            return None
        series = {"whole run": ledger}
        xlabel = "energy over the whole run (J)"
    names = sorted(
        {k for v in series.values() for k in v},
        key=lambda k: max(v.get(k, 0.0) for v in series.values()),
    )
    fig = _new_figure(figsize=(6.4, max(3.2, 1.4 + 0.3 * len(names) * len(series))))
    ax = fig.subplots()
    height = 0.8 / len(series)
    y = np.arange(len(names))
    positive = []
    for j, (label, vals) in enumerate(series.items()):
        v = np.array([vals.get(n, 0.0) for n in names])
        positive.extend(v[v > 0])
        total = v.sum()
        ax.barh(
            y + (j - (len(series) - 1) / 2) * height, v, height, label=f"{label}: {total:.3g} J"
        )
    ax.set_yticks(y, names)
    positive = np.array(positive)
    if len(positive) and positive.max() / positive.min() >= 100:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(f"Energy by component\n{_run_title(s)}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def _check_drawable(res: _results.RunResult, name: str) -> None:
    """What :func:`report_run` prints and draws, checked first (ResultsError, one line)."""
    s = res.summary
    sizes = s.get("sizes", [])
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in sizes
    ):
        raise ResultsError(f"{name}: /summary_json sizes must be a list of layer sizes")
    for k in ("algorithm", "chip", "engine", "dataset"):
        if k in s and not isinstance(s[k], str):
            raise ResultsError(f"{name}: /summary_json {k} must be text")
    for k, v in s.items():  # the breakdowns drawn as bars (joules, areas by component)
        drawn = "breakdown" in k or k.endswith("_by_component")
        if drawn and not (
            isinstance(v, dict)
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
        ):
            raise ResultsError(f"{name}: /summary_json {k} must map names to numbers")
    epoch = res.metrics.get("epoch")
    if epoch is not None and len(epoch):
        if not np.all(np.isfinite(epoch)) or np.any(np.diff(epoch) <= 0) or epoch[0] < 1:
            raise ResultsError(f"{name}: /metrics/epoch must count epochs 1, 2, ...")


def report_run(path: str | Path, plots: str | Path | None = None, echo=print) -> list[Path]:
    res = _results.load(path)
    _check_drawable(res, Path(path).name)
    s = res.summary
    echo(f"{Path(path).name}: single run, {_run_title(s)}")
    if s.get("n_test"):
        n = int(s["n_test"])
        echo(f"  test set: {n} samples (one sample = {100 / n:.2g} accuracy points)")
    scalars = {
        k: v
        for k, v in s.items()
        if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))
    }
    width = max((len(k) for k in scalars), default=0)
    for k, v in scalars.items():
        val = "-".join(map(str, v)) if isinstance(v, list) else _fmt_val(v)
        echo(f"  {k:<{width}}  {val}")
    for k, v in s.items():
        if k == "per_seed" and isinstance(v, dict):
            for name, vals in v.items():
                echo(f"  {name} per seed: " + ", ".join(_fmt_num(x, ".4g") for x in vals))
        elif isinstance(v, dict) and v:
            items = sorted(_finite_items(v).items(), key=lambda kv: -kv[1])
            echo(f"  {k}: " + ", ".join(f"{n} {x:.3g}" for n, x in items))
    for line in format_baselines(s):
        echo(f"  {line}")
    m = res.metrics
    if "epoch" in m and len(m["epoch"]):
        cols = [
            c for c in ("train_accuracy", "test_accuracy", "train_energy", "wall_seconds") if c in m
        ]
        rows = [
            [str(int(m["epoch"][i])), *(_fmt_num(m[c][i], ".4g") for c in cols)]
            for i in range(len(m["epoch"]))
        ]
        echo(_table(["epoch", *cols], rows, set(range(len(cols) + 1))))
    if res.ledger:
        echo("energy by component over the whole run (J):")
        for k, v in sorted(res.ledger.items(), key=lambda kv: -kv[1]):
            echo(f"  {k:<24} {v:.4g}")
    written: list[Path] = []
    if plots is not None:
        outdir = _plot_dir(plots)
        p = plot_curves(res, outdir / "curves.png")
        if p is not None:
            written.append(p)
        p = plot_energy_breakdown(res, outdir / "energy_breakdown.png")
        if p is None:
            echo("  no energy recorded in this run: energy_breakdown.png skipped")
        else:
            written.append(p)
    return written


# --- entry points -------------------------------------------------------------------------------
def _plot_dir(plots: str | Path) -> Path:
    d = Path(plots)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--plots: cannot create directory {str(d)!r}: {exc.strerror}") from None
    return d


def file_kind(path: str | Path) -> str:
    """``"sweep"`` or ``"run"``; ResultsError (one line) for anything else."""
    name = Path(path).name
    with _open_h5(path) as f:
        try:
            fmt = f.attrs.get("format")
        except Exception as exc:  # a damaged attribute table
            raise ResultsError(f"{name}: damaged HDF5 file ({_results.short(exc)})") from None
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if isinstance(fmt, str) and fmt == "pcsim-sweep":
        return "sweep"
    if isinstance(fmt, str) and fmt == _results.FORMAT:
        return "run"
    raise ResultsError(
        f"{name}: not a pcsim results or sweep file (format attribute is {_results.short(fmt)})"
    )


def report(
    path: str | Path, plots: str | Path | None = None, top: int | None = None, echo=print
) -> list[Path]:
    """Print the report of a results file; write its plots into ``plots``; return their paths."""
    kind = file_kind(path)
    try:
        if kind == "sweep":
            written = report_sweep(path, plots, top, echo)
        else:
            written = report_run(path, plots, echo)
    except (ResultsError, OSError):
        raise
    except Exception as exc:  # content the loaders accept but that cannot be drawn
        raise ResultsError(
            f"{Path(path).name}: cannot report this file: its content is not what pcsim writes "
            f"({type(exc).__name__}: {_results.short(exc)})"
        ) from None
    for p in written:
        echo(f"  wrote {p}")
    return written


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message)


def report_main(args: Sequence[str]) -> int:
    """``pcsim report RESULTS.h5 [--plots DIR] [--top N]``: exit 0, or 2 with one error line."""
    p = _Parser(prog="pcsim report", description="Print a results file; draw its plots (PNG).")
    p.add_argument("results", help="an HDF5 file from `pcsim run --out` or `pcsim sweep`")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots into this directory")
    p.add_argument("--top", type=int, metavar="N", help="show only the N best sweep points")
    try:
        ns = p.parse_args(list(args))
        if ns.top is not None and ns.top < 1:
            raise _UsageError(f"--top must be a positive integer, got {ns.top}")
        report(ns.results, ns.plots, ns.top)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (_UsageError, ResultsError) as exc:
        print(f"pcsim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing a plot
        print(f"pcsim: error: cannot write plots: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "RESULT_COLUMNS",
    "axis_label",
    "axis_unit",
    "file_kind",
    "pareto_front",
    "report",
    "report_main",
    "sweep_table",
]
