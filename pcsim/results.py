"""HDF5 results files: written atomically, read back with validation.

Layout (format ``pcsim-results``, version 1)::

    /                      attrs: format, format_version, pcsim_version, created (ISO time)
    /config                the run configuration as TOML text (string dataset)
    /summary               attrs: one scalar per summary key (accuracy, energy, ...); also
                           a JSON copy in the string dataset /summary_json
    /metrics/<name>        per-epoch arrays of the main algorithm (epoch, train_accuracy, ...)
    /baseline/metrics/...  the same for the BP baseline, when it ran
    /parameters/W<l>       final weights W_l, shape (n_l, n_{l-1}); /parameters/b<l> biases
    /ledger/<component>    energy in joules by component (modelled chip runs)
    /extra/...             engine-specific records (event counts, traces)

Writes go to a temporary file in the same directory and are renamed over the target only when
complete, so an existing file is never half-written or clobbered by a failed run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT = "pcsim-results"
FORMAT_VERSION = 1


class ResultsError(ValueError):
    """A results file is missing, corrupt, truncated or not a pcsim file (one-line message)."""


@dataclass
class RunResult:
    """Everything a run produced (what the HDF5 file holds)."""

    config_text: str
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]
    parameters: dict[str, np.ndarray]
    baseline_metrics: dict[str, np.ndarray] | None = None
    ledger: dict[str, float] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    version: str = ""


def _version() -> str:
    from pcsim import __version__

    return __version__


def atomic_h5(path: str | Path, write) -> None:
    """Call ``write(h5file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_group(g: h5py.Group, arrays: Mapping[str, Any]) -> None:
    for k, v in arrays.items():
        g.create_dataset(k, data=np.asarray(v))


def save(path: str | Path, result: RunResult) -> None:
    """Write a run's results atomically."""

    def write(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pcsim_version"] = result.version or _version()
        f.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        f.create_dataset("config", data=result.config_text)
        s = f.create_group("summary")
        for k, v in result.summary.items():
            if isinstance(v, int | float | str | bool | np.number):
                s.attrs[k] = v
        f.create_dataset("summary_json", data=json.dumps(result.summary, default=float))
        _write_group(f.create_group("metrics"), result.metrics)
        if result.baseline_metrics is not None:
            _write_group(f.create_group("baseline/metrics"), result.baseline_metrics)
        _write_group(f.create_group("parameters"), result.parameters)
        _write_group(f.create_group("ledger"), result.ledger)
        if result.extra:
            _write_group(f.create_group("extra"), result.extra)

    atomic_h5(path, write)


def _open(path: str | Path) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise ResultsError(f"results file {str(p)!r} does not exist")
    try:
        return h5py.File(p, "r")
    except OSError:
        raise ResultsError(
            f"{p.name}: not a readable HDF5 file (corrupt, truncated or another format)"
        ) from None


def check_format(f: h5py.File, name: str, expected: str = FORMAT) -> None:
    """Raise ResultsError unless ``f`` is a pcsim file of the expected kind and version."""
    fmt = f.attrs.get("format")
    if fmt != expected:
        raise ResultsError(f"{name}: not a {expected} file (format attribute is {fmt!r})")
    ver = f.attrs.get("format_version")
    if ver != FORMAT_VERSION:
        raise ResultsError(
            f"{name}: unsupported format_version {ver!r} (expected {FORMAT_VERSION})"
        )


def load(path: str | Path) -> RunResult:
    """Read a results file, checking format, version, required groups, shapes and dtypes."""
    name = Path(path).name
    with _open(path) as f:
        check_format(f, name)
        for required in ("config", "summary_json", "metrics", "parameters"):
            if required not in f:
                raise ResultsError(f"{name}: missing required entry /{required}")
        try:
            metrics = {k: f["metrics"][k][()] for k in f["metrics"]}
            lengths = {v.shape[0] for v in metrics.values() if v.ndim == 1}
            if len(lengths) > 1 or any(v.ndim != 1 for v in metrics.values()):
                raise ResultsError(f"{name}: /metrics arrays must be 1-D of one length")
            for k, v in metrics.items():
                if not np.issubdtype(v.dtype, np.number):
                    raise ResultsError(f"{name}: /metrics/{k} is not numeric")
            params = {k: f["parameters"][k][()] for k in f["parameters"]}
            base = None
            if "baseline/metrics" in f:
                base = {k: f["baseline/metrics"][k][()] for k in f["baseline/metrics"]}
            ledger = {k: float(f["ledger"][k][()]) for k in f.get("ledger", {})}
            extra = {k: f["extra"][k][()] for k in f.get("extra", {})}
            config_text = f["config"][()].decode()
            summary = json.loads(f["summary_json"][()].decode())
        except ResultsError:
            raise
        except (KeyError, OSError, ValueError, TypeError, AttributeError) as exc:
            raise ResultsError(f"{name}: damaged results file ({exc})") from None
        return RunResult(
            config_text=config_text,
            summary=summary,
            metrics=metrics,
            parameters=params,
            baseline_metrics=base,
            ledger=ledger,
            extra=extra,
            version=str(f.attrs.get("pcsim_version", "")),
        )


def check_writable(path: str | Path) -> None:
    """Fail early (before a long run) if the results path cannot be written."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ResultsError(f"--out {str(p)!r} is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ResultsError(f"--out: directory {str(parent)!r} is not writable")
