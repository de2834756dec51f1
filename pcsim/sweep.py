"""Co-design sweeps: many runs over a grid (or a random sample) of configuration fields, on Dask.

A sweep file is TOML: a base run configuration and axes over any dotted field of it::

    base = "run.toml"              # relative to this file; or inline: a [base] table, and/or
                                   # top-level [data], [learning], ... tables merged over the base
    [sweep]
    mode = "grid"                  # every combination; or "random" with samples = N
    seed = 0                       # the sweep seed
    shared_seed = false            # true: every point uses the seed of point 0 (common random
                                   # numbers: the same initialisation and data order at every
                                   # point, so differences come from the axes alone)
    seeds = 1                      # the seeds axis: every combination of the axes runs with
                                   # this many seeds (replicates), for means and error bars

    [axes]
    "chip.synapses.bits" = [2, 4, 6, 8]
    "chip.preset" = ["rram", "pcm"]
    # random mode also takes ranges: "learning.lr" = { low = 1e-4, high = 1e-2, log = true }

Grid points are numbered in file order of the axes, the first axis varying slowest and the
seeds axis (replicate ``r = index % seeds``) fastest. Every point is validated before anything
runs, and gets its own seed, ``SeedSequence(sweep_seed, spawn_key=(index,)).generate_state(1)[0]``,
so its result does not depend on how many workers ran the sweep or in which order (with
``shared_seed``, every point gets the seed of replicate ``r`` of point 0, i.e. index ``r``).
:func:`sweep_from` builds the same from Python values.

Results file (HDF5, format ``pcsim-sweep``, version 1); h5py alone can read it::

    /                    attrs: format, format_version, pcsim_version, created, updated, mode
                         ("grid" | "random"), seed (sweep seed), samples (random), n_points,
                         seeds (replicates per combination of the axes; 1 when absent),
                         axes (JSON list of the swept fields, in order), plan_sha256
    /sweep_toml          the sweep file's text (string)
    /base_toml           the base run file's text ("" when the base is inline)
    /axes/<field>        per axis: its values (attr spec = "values") or [low, high] (spec =
                         "range", attrs log, integer); attr kind = bool|int|float|str|json
    /plan/<column>       every planned point (n_points rows): index, seed, <field> per axis,
                         config_json (the point's full validated run configuration, JSON)
    /points/<column>     one row per finished point, sorted by index: index, seed, <field> per
                         axis, status ("ok" | "failed"), error ("" when ok), test_accuracy,
                         train_accuracy, bp_test_accuracy, energy_per_sample_j,
                         latency_per_sample_s, baseline_energy_per_sample_j,
                         baseline_energy_ratio, inference_energy_per_sample_j,
                         inference_latency_per_sample_s (deployed feedforward settle; NaN
                         when not settled), inference_free_latency_per_sample_s (free
                         relaxation), n_test (test-set size), area_mm2, wall_time_s,
                         summary_json (the run's full summary, JSON)

Strings are variable-length UTF-8 (read with ``ds.asstr()[()]``); axis columns of kind ``json``
(lists, tables, mixed types) hold JSON text; missing numbers are NaN. ``baseline_energy_ratio`` is
``baseline_energy_per_sample_j / energy_per_sample_j``: how many times less energy per sample the
chip spends than the fair digital baseline (FP16 backprop at the chip's node,
:mod:`hardware_models.baselines`; > 1: the chip wins). Energies and latencies per sample
are those of training (one presentation of one sample); the inference_* columns are those of
settling one test sample.

The file is rewritten atomically (temporary file + rename) after every batch of finished points,
so a crash loses at most the points in flight; running the same sweep again skips finished points
and reruns failed ones.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from hardware_models._config import ConfigBase, param
from pcsim import results as _results
from pcsim.config import ConfigError, from_dict, read_small_text
from pcsim.results import ResultsError, atomic_h5, check_format, open_h5

FORMAT = "pcsim-sweep"
FORMAT_VERSION = 1
MODES = ("grid", "random")
STATUSES = ("ok", "failed")
#: numeric result columns, in table order (NaN when a run did not report the quantity)
RESULT_COLUMNS = (
    "test_accuracy",
    "train_accuracy",
    "bp_test_accuracy",
    "energy_per_sample_j",
    "latency_per_sample_s",
    "baseline_energy_per_sample_j",
    "baseline_energy_ratio",
    "inference_energy_per_sample_j",
    "inference_latency_per_sample_s",
    "inference_free_latency_per_sample_s",
    "n_test",
    "area_mm2",
    "wall_time_s",
)
#: result columns every version-1 file has (the others read as NaN when absent)
_REQUIRED_RESULTS = (
    "test_accuracy",
    "energy_per_sample_j",
    "latency_per_sample_s",
    "baseline_energy_ratio",
    "wall_time_s",
)
_FIELD_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = ("seed", "seeds", "blas_threads")  # set per point by the sweep itself


class SweepError(ConfigError):
    """A problem with a sweep file or its points (one line; the CLI exits 2)."""


@dataclass
class SweepTable(ConfigBase):
    """The ``[sweep]`` table, declared like every configuration section (``param``)."""

    _section: ClassVar[str] = "sweep"
    _error: ClassVar[type[ConfigError]] = SweepError
    mode: str = param("grid", "", MODES, "grid: every combination; random: samples draws")
    seed: int = param(0, "", "seed", "the sweep seed; each point's run seed is spawned from it")
    samples: int | None = param(None, "runs", "count_or_none", "random mode: points drawn")
    shared_seed: bool = param(
        False, "", "bool", "every point uses the seeds of point 0 (common random numbers)"
    )
    seeds: int = param(1, "runs", "count", "seeds per point (their mean and spread)")

    def _cross_checks(self) -> None:
        if self.mode == "random" and self.samples is None:
            self._fail("samples", "must be given (a positive integer) in random mode")
        if self.mode != "random" and self.samples is not None:
            self._fail("samples", 'only applies to mode = "random"')
        if self.samples is not None and self.samples > MAX_POINTS:
            raise SweepError(
                f"sweep.samples = {self.samples} is more runs than a sweep plans (at most "
                f"{MAX_POINTS}); split it into several sweeps with different seeds"
            )


# --- sweep files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One swept field: a list of values, or (random mode) a range ``[low, high]``."""

    field: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def spec(self) -> str:
        return "values" if self.values is not None else "range"


@dataclass
class Point:
    """One run of the sweep: its axis values, its spawned seed and its validated config."""

    index: int
    values: dict[str, Any]
    seed: int
    config: dict[str, Any]

    def label(self) -> str:
        return ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())


@dataclass
class Sweep:
    """A parsed, fully validated sweep: every point's configuration is known."""

    text: str
    base_text: str
    mode: str
    seed: int
    samples: int | None
    axes: list[Axis]
    points: list[Point]
    name: str = "sweep"
    seeds: int = 1  # replicates of every combination of the axes (the seeds axis)

    @property
    def fields(self) -> list[str]:
        return [a.field for a in self.axes]

    def kinds(self) -> dict[str, str]:
        """Storage kind of every axis column (bool, int, float, str or json)."""
        return {a.field: _axis_kind(a, [p.values[a.field] for p in self.points]) for a in self.axes}

    def fingerprint(self) -> str:
        """SHA-256 of every point's index, seed and configuration (what a resume must match)."""
        plan = [[p.index, p.seed, p.config] for p in self.points]
        return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        shape = " x ".join(str(len(a.values)) for a in self.axes if a.values is not None)
        reps = f" x {self.seeds} seeds" if self.seeds > 1 else ""
        if self.mode == "grid":
            return (
                f"grid sweep over {' x '.join(self.fields)} "
                f"({shape}{reps} = {len(self.points)} points)"
            )
        return f"random sweep over {', '.join(self.fields)} ({len(self.points)} samples{reps})"


def point_seed(sweep_seed: int, index: int) -> int:
    """The run seed of point ``index``: spawned from the sweep seed and the point's index."""
    ss = np.random.SeedSequence(sweep_seed, spawn_key=(index,))
    return int(ss.generate_state(1)[0])


def _fmt(v: Any) -> str:
    return json.dumps(v)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``d["a"]["b"]["c"] = value`` for ``dotted = "a.b.c"``, creating tables on the way."""
    parts = dotted.split(".")
    node = d
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SweepError(f"axis {dotted!r}: {'.'.join(parts[: i + 1])} is not a table")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def _parse_axis(name: str, spec: Any, mode: str) -> Axis:
    where = f"[axes] {json.dumps(name)}"
    parts = name.split(".")
    if not all(_FIELD_PART.match(p) for p in parts):
        raise SweepError(f'{where}: not a dotted field name like "chip.synapses.bits"')
    if name in _RESERVED:
        raise SweepError(
            f"{where}: {name} is set per point by the sweep (seeds are spawned from [sweep] seed)"
        )
    if isinstance(spec, list):
        if not spec:
            raise SweepError(f"{where} must list at least one value")
        if mode == "grid":
            seen = []
            for v in spec:
                if any(v == s and type(v) is type(s) for s in seen):
                    raise SweepError(f"{where} lists the value {_fmt(v)} twice")
                seen.append(v)
        return Axis(name, values=tuple(spec))
    if isinstance(spec, Mapping):
        if mode == "grid":
            raise SweepError(f'{where}: ranges need [sweep] mode = "random"; a grid takes a list')
        unknown = set(spec) - {"low", "high", "log", "integer"}
        if unknown:
            raise SweepError(
                f"{where}: unknown key {sorted(unknown)[0]}; known: low, high, log, integer"
            )
        low, high = spec.get("low"), spec.get("high")
        for key, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SweepError(f"{where}.{key} must be a finite number, got {v!r}")
        log, integer = spec.get("log", False), spec.get("integer", False)
        for key, v in (("log", log), ("integer", integer)):
            if not isinstance(v, bool):
                raise SweepError(f"{where}.{key} must be true or false, got {v!r}")
        if not low < high:
            raise SweepError(f"{where}: low ({low}) must be below high ({high})")
        if log and low <= 0:
            raise SweepError(f"{where}: log = true needs low > 0, got {low}")
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            raise SweepError(f"{where}: integer = true needs integer low and high")
        return Axis(name, low=float(low), high=float(high), log=log, integer=integer)
    raise SweepError(f"{where} must be a list of values or (random mode) a {{low, high}} table")


def _sample(axis: Axis, rng: np.random.Generator) -> Any:
    if axis.values is not None:
        return axis.values[int(rng.integers(len(axis.values)))]
    lo, hi = axis.low, axis.high
    if axis.log:
        v = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    else:
        v = float(rng.uniform(lo, hi))
    if axis.integer:
        return int(min(max(round(v), lo), hi))
    return v


def _axis_kind(axis: Axis, values: Sequence[Any]) -> str:
    if axis.values is None:
        return "int" if axis.integer else "float"
    vals = list(axis.values) + list(values)
    if all(isinstance(v, bool) for v in vals):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return "int"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return "float"
    if all(isinstance(v, str) for v in vals):
        return "str"
    return "json"


MAX_POINTS = 100_000  # every point is validated before anything runs; beyond this, refuse


def parse_sweep(text: str, base_dir: str | Path = ".", name: str = "sweep") -> Sweep:
    """Parse and validate sweep TOML text; every point's configuration is checked here."""
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: a 4300-digit integer
        raise SweepError(f"malformed TOML: {exc}") from None
    base_text = ""
    base = doc.pop("base", {})
    if isinstance(base, str):
        p = Path(base_dir) / base
        base_text = read_small_text(p, "base file", "a configuration", SweepError)
        try:
            base = tomllib.loads(base_text)
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise SweepError(f"base file {str(p)!r}: malformed TOML: {exc}") from None
    elif not isinstance(base, Mapping):
        raise SweepError(f"base must be a file name or a table, got {base!r}")
    sweep = doc.pop("sweep", {})
    axes_t = doc.pop("axes", None)
    base = _deep_merge(dict(base), doc)  # top-level run tables override the base
    table = SweepTable.from_dict(sweep)
    mode, seed, samples = table.mode, table.seed, table.samples
    seeds, shared = table.seeds, table.shared_seed
    if not isinstance(axes_t, Mapping) or not axes_t:
        raise SweepError('[axes] must name at least one field, e.g. "learning.lr" = [1e-3, 3e-3]')
    axes = [_parse_axis(k, v, mode) for k, v in axes_t.items()]

    if mode == "grid":
        n_grid = math.prod(len(a.values) for a in axes)
        if n_grid > MAX_POINTS:
            raise SweepError(
                f"the grid has {n_grid} points, more runs than a sweep plans (at most "
                f'{MAX_POINTS}); use fewer values per axis or mode = "random"'
            )
        combos = [
            dict(zip([a.field for a in axes], c, strict=True))
            for c in itertools.product(*[a.values for a in axes])
        ]
    else:
        combos = []
        for i in range(samples):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, 1)))
            combos.append({a.field: _sample(a, rng) for a in axes})
    points = []
    for i, values in enumerate(v for v in combos for _ in range(seeds)):
        d = copy.deepcopy(base)
        label = ", ".join(f"{k} = {_fmt(v)}" for k, v in values.items())
        try:
            for k, v in values.items():
                set_dotted(d, k, v)
            d["seed"] = point_seed(seed, i % seeds if shared else i)
            d["blas_threads"] = 1
            cfg = from_dict(d)
        except ValueError as exc:  # ConfigError, or a chip layer's own validation error
            raise SweepError(f"point {i} ({label}): {exc}") from None
        if cfg.seeds != 1:
            raise SweepError(
                f"point {i} ({label}): seeds = {cfg.seeds} in the run configuration; "
                "a sweep takes its seeds from [sweep] seeds"
            )
        points.append(Point(i, values, d["seed"], cfg.to_dict()))
    return Sweep(text, base_text, mode, seed, samples, axes, points, name=name, seeds=seeds)


def sweep_from(
    base: Mapping[str, Any],
    axes: Mapping[str, Sequence[Any]],
    *,
    mode: str = "grid",
    seed: int = 0,
    samples: int | None = None,
    shared_seed: bool = False,
    name: str = "sweep",
    seeds: int = 1,
) -> Sweep:
    """The sweep a file with this inline ``[base]`` table and these axes describes (for
    notebooks and scripts); validated like a file. Axis values are scalars or lists."""
    from pcsim.run import _dump_toml, toml_value

    lines = ["[sweep]", f"mode = {toml_value(mode)}", f"seed = {toml_value(seed)}"]
    if samples is not None:
        lines.append(f"samples = {toml_value(samples)}")
    if shared_seed:
        lines.append("shared_seed = true")
    if seeds != 1:
        lines.append(f"seeds = {toml_value(seeds)}")
    lines.append("[axes]")
    lines += [f"{json.dumps(k)} = {toml_value(list(v))}" for k, v in axes.items()]
    text = (_dump_toml({"base": dict(base)}) if base else "") + "\n".join(lines) + "\n"
    return parse_sweep(text, name=name)


def load_sweep_file(path: str | Path) -> Sweep:
    """Read and validate a sweep file; SweepError naming the file on any problem."""
    p = Path(path)
    text = read_small_text(p, "sweep file", "a sweep file", SweepError)
    try:
        return parse_sweep(text, p.parent, name=p.stem)
    except SweepError as exc:
        raise SweepError(f"{p.name}: {exc}") from None


# --- one point (runs on a worker) -------------------------------------------------------------
def _one_line(exc: BaseException, limit: int = 500) -> str:
    try:
        msg = " ".join(str(exc).split())
    except Exception:  # an exception whose __str__ fails
        msg = ""
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite_or_nan(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def run_point(config: dict[str, Any]) -> dict[str, Any]:
    """Run one point (its validated config dict) and return its row; never raises.

    A failing run (bad value found at run time, divergence, ...) comes back with
    ``status = "failed"`` and the one-line error, so it is recorded rather than retried.
    """
    from pcsim.run import execute  # imported before the clock starts (first point per worker)

    t0 = time.perf_counter()
    try:
        s = execute(from_dict(config), progress=False).summary
        energy = _finite_or_nan(s.get("energy_per_sample_j"))
        base = _finite_or_nan(s.get("baseline_energy_per_sample_j"))
        ratio = s.get("baseline_energy_ratio", s.get("energy_ratio"))
        if ratio is None:
            ratio = base / energy if energy > 0 else math.nan
        row = {
            "status": "ok",
            "error": "",
            "test_accuracy": _finite_or_nan(s.get("test_accuracy")),
            "train_accuracy": _finite_or_nan(s.get("train_accuracy")),
            "bp_test_accuracy": _finite_or_nan(s.get("bp_test_accuracy")),
            "energy_per_sample_j": energy,
            "latency_per_sample_s": _finite_or_nan(s.get("latency_per_sample_s")),
            "baseline_energy_per_sample_j": base,
            "baseline_energy_ratio": _finite_or_nan(ratio),
            "inference_energy_per_sample_j": _finite_or_nan(s.get("inference_energy_per_sample_j")),
            "inference_latency_per_sample_s": _finite_or_nan(
                s.get("inference_latency_per_sample_s")
            ),
            "inference_free_latency_per_sample_s": _finite_or_nan(
                s.get("inference_free_latency_per_sample_s")
            ),
            "n_test": _finite_or_nan(s.get("n_test")),
            "area_mm2": _finite_or_nan(s.get("area_mm2")),
            "summary_json": json.dumps(s, default=_json_default),
        }
    except Exception as exc:  # recorded as a failed point; the sweep goes on
        row = {"status": "failed", "error": _one_line(exc)}
    row["wall_time_s"] = time.perf_counter() - t0
    return row


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _infrastructure_error(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (
            "the worker processes running this point kept dying (killed, or out of memory); "
            f"{_one_line(exc, 300)}"
        )
    return f"could not run on a Dask worker: {_one_line(exc, 400)}"


def _failed_row(error: str) -> dict[str, Any]:
    return {"status": "failed", "error": error, "wall_time_s": math.nan}


# --- the results file -------------------------------------------------------------------------
_STR = h5py.string_dtype()


def _column(values: Sequence[Any], kind: str) -> np.ndarray:
    if kind == "bool":
        return np.asarray(values, dtype=np.bool_)
    if kind == "int":
        return np.asarray(values, dtype=np.int64)
    if kind == "float":
        return np.asarray(values, dtype=np.float64)
    if kind == "str":
        return np.array(list(values), dtype=_STR)
    return np.array([json.dumps(v) for v in values], dtype=_STR)


def write_results(
    out: str | Path, sweep: Sweep, rows: Mapping[int, Mapping[str, Any]], created: str = ""
) -> None:
    """Write the sweep's plan and its finished ``rows`` ({index: row}) to ``out`` atomically.

    A row holds status, error and any of :data:`RESULT_COLUMNS` and summary_json (missing
    numbers are stored as NaN); axis values and seeds come from the plan.
    """
    kinds = sweep.kinds()
    done = sorted(rows)

    def write(f: h5py.File) -> None:
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pcsim_version"] = _results._version()
        f.attrs["created"] = created or now
        f.attrs["updated"] = now
        f.attrs["mode"] = sweep.mode
        f.attrs["seed"] = sweep.seed
        f.attrs["samples"] = sweep.samples if sweep.samples is not None else -1
        f.attrs["n_points"] = len(sweep.points)
        f.attrs["seeds"] = sweep.seeds
        f.attrs["axes"] = json.dumps(sweep.fields)
        f.attrs["plan_sha256"] = sweep.fingerprint()
        f.create_dataset("sweep_toml", data=sweep.text, dtype=_STR)
        f.create_dataset("base_toml", data=sweep.base_text, dtype=_STR)
        ax = f.create_group("axes")
        for a in sweep.axes:
            if a.values is not None:
                ds = ax.create_dataset(a.field, data=_column(a.values, kinds[a.field]))
            else:
                ds = ax.create_dataset(a.field, data=np.array([a.low, a.high]))
                ds.attrs["log"] = a.log
                ds.attrs["integer"] = a.integer
            ds.attrs["spec"] = a.spec
            ds.attrs["kind"] = kinds[a.field]
        plan = f.create_group("plan")
        plan.create_dataset("index", data=np.array([p.index for p in sweep.points], np.int64))
        plan.create_dataset("seed", data=np.array([p.seed for p in sweep.points], np.int64))
        for a in sweep.axes:
            col = [p.values[a.field] for p in sweep.points]
            plan.create_dataset(a.field, data=_column(col, kinds[a.field]))
            plan[a.field].attrs["kind"] = kinds[a.field]
        cfgs = [json.dumps(p.config, sort_keys=True) for p in sweep.points]
        plan.create_dataset("config_json", data=np.array(cfgs, dtype=_STR))
        pts = f.create_group("points")
        pts.create_dataset("index", data=np.array(done, np.int64))
        pts.create_dataset("seed", data=np.array([sweep.points[i].seed for i in done], np.int64))
        for a in sweep.axes:
            col = [sweep.points[i].values[a.field] for i in done]
            pts.create_dataset(a.field, data=_column(col, kinds[a.field]))
            pts[a.field].attrs["kind"] = kinds[a.field]
        pts.create_dataset("status", data=np.array([rows[i]["status"] for i in done], _STR))
        pts.create_dataset("error", data=np.array([rows[i].get("error", "") for i in done], _STR))
        for c in RESULT_COLUMNS:
            vals = [_finite_or_nan(rows[i].get(c, math.nan)) for i in done]
            pts.create_dataset(c, data=np.array(vals, np.float64))
        js = [rows[i].get("summary_json", "") for i in done]
        pts.create_dataset("summary_json", data=np.array(js, dtype=_STR))

    atomic_h5(out, write)


def _open_h5(path: str | Path) -> h5py.File:
    return open_h5(path, "results file")


def _strings(ds: h5py.Dataset) -> list[str]:
    return [str(s) for s in ds.asstr()[()]]


def _read_column(ds: h5py.Dataset) -> list[Any]:
    kind = ds.attrs.get("kind", "float")
    if kind in ("str", "json"):
        return _strings(ds)  # json stays JSON text (hashable, printable)
    return ds[()].tolist()


@dataclass
class _SweepData:
    attrs: dict[str, Any]
    fields: list[str]
    rows: dict[int, dict[str, Any]]  # finished points: result columns (and axes, seed)
    plan: dict[str, list[Any]]
    axes: dict[str, dict[str, Any]]
    sweep_toml: str


def _read_sweep(path: str | Path) -> _SweepData:
    """Read and validate a sweep results file (ResultsError, one line, on any problem)."""
    name = Path(path).name
    with _open_h5(path) as f:
        try:
            check_format(f, name, FORMAT)
            for required in ("points", "plan", "axes", "sweep_toml"):
                if required not in f:
                    raise ResultsError(f"{name}: missing required entry /{required}")
            attrs = {k: f.attrs[k] for k in f.attrs}
            fields = json.loads(str(attrs.get("axes", "[]")))
            n_points = int(attrs["n_points"])
            pts = f["points"]
            needed = ["index", "seed", "status", "error", *fields, *_REQUIRED_RESULTS]
            for c in needed:
                if c not in pts:
                    raise ResultsError(f"{name}: missing column /points/{c}")
            n = pts["index"].shape[0]
            for c in pts:
                if pts[c].shape != (n,):
                    raise ResultsError(f"{name}: /points/{c} does not have one entry per row")
            index = pts["index"][()].astype(np.int64).tolist()
            if len(set(index)) != n or any(not 0 <= i < n_points for i in index):
                raise ResultsError(f"{name}: /points/index has duplicate or out-of-range entries")
            cols: dict[str, list[Any]] = {
                "seed": pts["seed"][()].tolist(),
                "status": _strings(pts["status"]),
                "error": _strings(pts["error"]),
            }
            for c in fields:
                cols[c] = _read_column(pts[c])
            for c in RESULT_COLUMNS:  # optional ones (added later) read as NaN when absent
                cols[c] = pts[c][()].astype(np.float64).tolist() if c in pts else [math.nan] * n
            cols["summary_json"] = (
                _strings(pts["summary_json"]) if "summary_json" in pts else [""] * n
            )
            bad = [s for s in cols["status"] if s not in STATUSES]
            if bad:
                raise ResultsError(f"{name}: unknown point status {bad[0]!r}")
            rows = {i: {c: v[k] for c, v in cols.items()} for k, i in enumerate(index)}
            plan = {c: _read_column(f["plan"][c]) for c in ("index", "seed", *fields)}
            if len(plan["index"]) != n_points:
                raise ResultsError(f"{name}: /plan does not list n_points = {n_points} points")
            axes = {}
            for c in fields:
                ds = f["axes"][c]
                axes[c] = {k: ds.attrs[k] for k in ds.attrs}
                axes[c]["values"] = _read_column(ds)
            sweep_toml = f["sweep_toml"].asstr()[()]
        except ResultsError:
            raise
        except Exception as exc:  # whatever a damaged structure makes h5py or numpy raise
            raise ResultsError(f"{name}: damaged sweep file ({_one_line(exc, 200)})") from None
    return _SweepData(attrs, fields, rows, plan, axes, sweep_toml)


def load_sweep(path: str | Path, as_xarray: bool = False):
    """A sweep's finished points as a pandas DataFrame (index: point), best read with pandas.

    Columns: one per axis (named by its dotted field), seed, status, error, the result columns
    (:data:`RESULT_COLUMNS`) and summary_json. ``df.attrs`` holds mode, axes, n_points, seed and
    sweep_toml. With ``as_xarray=True`` (grid sweeps only; needs xarray) an ``xarray.Dataset``
    with one dimension per axis; points not (yet) run are NaN with status "pending".
    """
    data = _read_sweep(path)
    if as_xarray:
        return _to_xarray(data, Path(path).name)
    import pandas as pd

    order = sorted(data.rows)
    columns = [*data.fields, "seed", "status", "error", *RESULT_COLUMNS, "summary_json"]
    df = pd.DataFrame(
        {c: [data.rows[i][c] for i in order] for c in columns},
        index=pd.Index(order, name="point", dtype=np.int64),
        columns=columns,
    )
    df.attrs.update(
        mode=str(data.attrs.get("mode", "")),
        axes=list(data.fields),
        n_points=int(data.attrs.get("n_points", 0)),
        seed=int(data.attrs.get("seed", 0)),
        seeds=int(data.attrs.get("seeds", 1)),
        sweep_toml=data.sweep_toml,
    )
    return df


def _to_xarray(data: _SweepData, name: str):
    try:
        import xarray as xr
    except ImportError:
        raise ImportError(
            "load_sweep(as_xarray=True) needs xarray: pip install 'pcsim[xarray]'"
        ) from None
    if data.attrs.get("mode") != "grid":
        raise ValueError(f"{name}: as_xarray=True needs a grid sweep (this one is random)")
    coords = {c: data.axes[c]["values"] for c in data.fields}
    seeds = int(data.attrs.get("seeds", 1))
    if seeds > 1:  # the seeds axis, fastest-varying
        coords["replicate"] = list(range(seeds))
    shape = tuple(len(v) for v in coords.values())
    n = int(np.prod(shape))
    if n != int(data.attrs["n_points"]):
        raise ResultsError(f"{name}: axes do not span the {data.attrs['n_points']} grid points")
    status = np.full(n, "pending", dtype=object)
    error = np.full(n, "", dtype=object)
    numbers = {c: np.full(n, np.nan) for c in RESULT_COLUMNS}
    for i, row in data.rows.items():
        status[i], error[i] = row["status"], row["error"]
        for c in RESULT_COLUMNS:
            numbers[c][i] = row[c]
    dims = list(coords)
    variables = {c: (dims, v.reshape(shape)) for c, v in numbers.items()}
    variables["status"] = (dims, status.reshape(shape))
    variables["error"] = (dims, error.reshape(shape))
    variables["seed"] = (dims, np.asarray(data.plan["seed"], np.int64).reshape(shape))
    variables["point"] = (dims, np.arange(n).reshape(shape))
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={"mode": "grid", "n_points": n, "sweep_toml": data.sweep_toml},
    )


def _existing_rows(out: Path, sweep: Sweep) -> tuple[dict[int, dict[str, Any]], str]:
    """Rows already in ``out`` (after checking it holds this very sweep), and its created time."""
    data = _read_sweep(out)
    if data.attrs.get("plan_sha256") != sweep.fingerprint():
        raise SweepError(
            f"{out.name} holds results of a different sweep (its points or their configurations "
            f"differ); choose another --out or delete it"
        )
    keep = ("status", "error", *RESULT_COLUMNS, "summary_json")
    rows = {i: {k: r[k] for k in keep} for i, r in data.rows.items()}
    return rows, str(data.attrs.get("created", ""))


# --- running ----------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What a call of :func:`run_sweep` did."""

    out: Path
    n_points: int
    ran: list[int] = field(default_factory=list)  # indices run this time
    skipped: int = 0  # finished points found in the results file
    ok: int = 0  # points with status ok in the file now
    failed: int = 0  # points with status failed in the file now


@contextlib.contextmanager
def _lock(out: Path):
    """Refuse a second sweep writing the same results file at the same time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = out.with_name(f".{out.name}.lock")
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(f"another pcsim sweep is writing {out.name}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _connect(
    scheduler: str | None, workers: int, stack: contextlib.ExitStack, echo, timeout: str
) -> Any:
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = stack.enter_context(Client(scheduler, timeout=timeout))
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        n = len(client.scheduler_info().get("workers", {}))
        echo(f"on the Dask scheduler at {scheduler} ({n} workers now)")
        if n == 0:
            echo("waiting for workers to join the scheduler")
        return client
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    )
    echo(f"on a local Dask cluster of {workers} worker process{'es' if workers > 1 else ''}")
    return stack.enter_context(Client(cluster))


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    retries: int = 1,
    connect_timeout: str = "10s",
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run the sweep's unfinished points and record each one in ``out`` as soon as it finishes.

    Points run on ``client`` if given, else on the Dask scheduler at ``scheduler``, else on a
    local cluster of ``workers`` single-threaded worker processes (default: one per CPU, at
    most one per point). Points already ``ok`` in ``out`` are skipped; failed ones rerun. A worker
    that dies has its points rescheduled by Dask (``distributed.scheduler.allowed-failures``);
    a point whose workers keep dying is recorded as failed. ``on_result(index, row)`` is called
    in this process after each point is written.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    out = Path(out)
    _results.check_writable(out)
    say = echo or (lambda msg: None)
    outcome = SweepOutcome(out=out, n_points=len(sweep.points))
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        if out.exists():
            rows, created = _existing_rows(out, sweep)
        else:
            rows = {}
            created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            write_results(out, sweep, rows, created)  # the plan is on disk before any run
        todo = [p for p in sweep.points if rows.get(p.index, {}).get("status") != "ok"]
        outcome.skipped = len(sweep.points) - len(todo)
        if todo:
            n_workers = max(1, min(workers or default_workers(), len(todo)))
            say(f"{sweep.describe()}: {len(todo)} to run, {outcome.skipped} already done")
            with contextlib.ExitStack() as stack:
                if client is None:
                    client = _connect(scheduler, n_workers, stack, say, connect_timeout)
                tag = uuid.uuid4().hex[:8]
                futures = {
                    client.submit(
                        run_point,
                        p.config,
                        key=f"pcsim-point-{p.index}-{tag}",
                        pure=False,
                        retries=retries,
                    ): p
                    for p in todo
                }
                bar = tqdm(
                    total=len(sweep.points),
                    initial=outcome.skipped,
                    desc="sweep",
                    unit="point",
                    disable=not progress,
                    file=sys.stderr,
                )
                n_failed = 0
                try:
                    for batch in as_completed(futures).batches():
                        done = []
                        for fut in batch:
                            p = futures[fut]
                            try:
                                row = fut.result()
                            except Exception as exc:  # not the run: its worker, or Dask
                                row = _failed_row(_infrastructure_error(exc))
                            rows[p.index] = row
                            done.append((p, row))
                        write_results(out, sweep, rows, created)
                        for p, row in done:
                            outcome.ran.append(p.index)
                            if row["status"] != "ok":
                                n_failed += 1
                                msg = f"point {p.index} ({p.label()}) failed: {row['error']}"
                                (bar.write if progress else say)(msg)
                            if on_result is not None:
                                on_result(p.index, row)
                        bar.update(len(done))
                        bar.set_postfix(failed=n_failed, refresh=False)
                except BaseException:
                    client.cancel(list(futures))
                    raise
                finally:
                    bar.close()
    outcome.ran.sort()
    outcome.ok = sum(r["status"] == "ok" for r in rows.values())
    outcome.failed = sum(r["status"] != "ok" for r in rows.values())
    return outcome


# --- command line -----------------------------------------------------------------------------
class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``pcsim: error: ...`` and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message)


def _sweep_parser() -> _Parser:
    p = _Parser(
        prog="pcsim sweep",
        description="Run a co-design sweep (grid or random) on a Dask cluster; resumable.",
    )
    p.add_argument("sweep", help="sweep file (TOML): base configuration, [sweep] and [axes]")
    p.add_argument("--out", help="results file (HDF5); default: <sweep file stem>.h5 here")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def sweep_main(args: Sequence[str]) -> int:
    """``pcsim sweep``: exit 0 when every point is ok, 1 when some failed, 2 on usage errors."""
    import signal

    from pcsim.data import DataError

    got: list[int] = []

    def on_term(signum, frame) -> None:  # SIGTERM: the same orderly stop as Ctrl-C
        got.append(signum)
        raise KeyboardInterrupt

    try:
        old_term = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        old_term = None
    try:
        ns = _sweep_parser().parse_args(list(args))
        if ns.workers is not None and ns.workers < 1:
            raise _UsageError(f"--workers must be a positive integer, got {ns.workers}")
        if ns.workers is not None and ns.scheduler:
            raise _UsageError("give --workers (local cluster) or --scheduler, not both")
        sweep = load_sweep_file(ns.sweep)
        out = Path(ns.out) if ns.out else Path(f"{Path(ns.sweep).stem}.h5")
        res = run_sweep(
            sweep,
            out,
            workers=ns.workers,
            scheduler=ns.scheduler,
            progress=not ns.quiet,
            echo=print,
        )
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (_UsageError, ConfigError, ResultsError, DataError) as exc:
        print(f"pcsim: error: {str(exc).replace(chr(10), chr(92) + 'n')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "pcsim: interrupted (finished points are saved; run again to resume)", file=sys.stderr
        )
        return 128 + (got[0] if got else signal.SIGINT)
    except OSError as exc:  # writing the results file, or the cluster's network
        print(f"pcsim: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if not res.ran:
        print(f"nothing to run: all {res.n_points} points of {out} are done")
    else:
        print(
            f"ran {len(res.ran)} points; {out}: {res.ok} ok, {res.failed} failed of {res.n_points}"
        )
    if res.failed:
        print(f"{res.failed} points failed; run the same command again to rerun them")
    return 1 if res.failed else 0
