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

import contextlib
import datetime as _dt
import errno
import glob
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pcsim import integrity

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


_WRITING: set[str] = set()  # temporary files being written now (see writing_now)


def writing_now() -> bool:
    """True while :func:`atomic_h5` is writing a file (a hard stop should wait for it)."""
    return bool(_WRITING)


def remove_temporaries() -> None:
    """Delete the temporary files of writes under way (before a hard exit)."""
    for tmp in list(_WRITING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_h5(path: str | Path, write) -> None:
    """Call ``write(h5file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    if path.exists() and not path.is_file():  # never rename over a device, pipe or directory
        raise (
            IsADirectoryError(errno.EISDIR, "is a directory")
            if path.is_dir()
            else OSError(errno.EINVAL, "not a regular file (a device or pipe)")
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    _WRITING.add(tmp)
    try:
        with contextlib.suppress(OSError):  # mkstemp makes 0600; results are ordinary files
            os.chmod(tmp, 0o666 & ~_umask())
        try:
            with h5py.File(tmp, "w", userblock_size=integrity.USERBLOCK) as f:
                write(f)
        except (RuntimeError, OSError) as exc:  # HDF5's report of a failed write (full disk)
            raise _as_os_error(exc) from None
        integrity.seal(tmp)  # a SHA-256 of every byte, checked before any reader parses it
        _fsync(tmp)  # the bytes are on disk before the rename makes them the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _WRITING.discard(tmp)
    _fsync(path.parent, directory=True)
    _remove_orphans(path)


def _as_os_error(exc: BaseException) -> OSError:
    """An HDF5 write failure as an OSError with the operating system's errno when HDF5's
    message carries one (``errno = 28``: no space left on device)."""
    m = re.search(r"errno = (\d+)", str(exc))
    if m:
        code = int(m.group(1))
        return OSError(code, os.strerror(code))
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return OSError(exc.errno, short(exc.strerror, 120))
    return OSError(errno.EIO, f"HDF5 could not write the file ({short(exc, 120)})")


def _remove_orphans(path: Path) -> None:
    """Delete temporary files left next to ``path`` by writers that were killed (SIGKILL,
    power loss): ``.NAME.PID.*.tmp`` whose process no longer exists."""
    prefix = f".{path.name}."
    for p in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = p.name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (PermissionError, OSError):
            pass  # alive (another user's) or unknowable: leave it


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: str | Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return  # some filesystems cannot open directories; the rename is still atomic
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


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

    try:
        atomic_h5(path, write)
    except OSError as exc:
        raise ResultsError(
            f"cannot write results {str(path)!r}: {exc.strerror or exc}"
            " (any previous file there is unchanged)"
        ) from None


def open_h5(path: str | Path, kind: str = "results file") -> h5py.File:
    """Open a pcsim HDF5 file for reading after checking its seal (:mod:`pcsim.integrity`):
    ResultsError with one line if it is missing, not a regular file, altered or unreadable."""
    p = Path(path)
    if not p.exists():
        raise ResultsError(f"{kind} {str(p)!r} does not exist")
    if p.is_dir():
        raise ResultsError(f"{str(p)!r} is a directory, not a {kind}")
    if not p.is_file():
        raise ResultsError(f"{str(p)!r} is not a regular file (a device or pipe), not a {kind}")
    try:
        integrity.verify(p, p.name, kind)
    except integrity.SealError as exc:
        raise ResultsError(str(exc)) from None
    except OSError as exc:
        raise ResultsError(f"cannot read {kind} {str(p)!r}: {exc.strerror or exc}") from None
    try:
        return h5py.File(p, "r")
    except (OSError, ValueError, RuntimeError):
        raise ResultsError(
            f"{p.name}: not a readable HDF5 file (corrupt, truncated or another format)"
        ) from None


def _open(path: str | Path) -> h5py.File:
    return open_h5(path, "results file")


def short(v: Any, limit: int = 200) -> str:
    """``repr(v)`` (or ``str`` of an exception) on one line, at most ``limit`` characters."""
    try:
        text = str(v) if isinstance(v, BaseException) else repr(v)
    except Exception:  # an object whose repr fails
        text = f"<{type(v).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_format(
    f: h5py.File, name: str, expected: str = FORMAT, version: int = FORMAT_VERSION
) -> None:
    """Raise ResultsError unless ``f`` is a pcsim file of the expected kind and version."""
    try:
        fmt = f.attrs.get("format")
        ver = f.attrs.get("format_version")
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ResultsError(f"{name}: damaged HDF5 file ({short(exc)})") from None
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if not isinstance(fmt, str) or fmt != expected:
        raise ResultsError(f"{name}: not a {expected} file (format attribute is {short(fmt)})")
    if isinstance(ver, np.generic):
        ver = ver.item()
    if isinstance(ver, bool) or not isinstance(ver, int) or ver != version:
        raise ResultsError(f"{name}: unsupported format_version {short(ver)} (expected {version})")
    if f.userblock_size == 0:  # no seal: an older pcsim's file, accepted unverified
        integrity.warn_unsealed(name, expected.removeprefix("pcsim-") + " file")


def load(path: str | Path) -> RunResult:
    """Read a results file, checking its seal, format, version, required groups, shapes and
    dtypes; ResultsError (one line) for anything wrong with it."""
    name = Path(path).name
    with _open(path) as f:
        try:
            return _read(f, name)
        except ResultsError:
            raise
        except Exception as exc:  # whatever a damaged structure makes h5py or numpy raise
            raise ResultsError(f"{name}: damaged results file ({short(exc)})") from None


def _read(f: h5py.File, name: str) -> RunResult:
    check_format(f, name)
    for required in ("config", "summary_json", "metrics", "parameters"):
        if required not in f:
            raise ResultsError(f"{name}: missing required entry /{required}")
    metrics = _metric_group(f["metrics"], "/metrics", name)
    params = {k: f["parameters"][k][()] for k in f["parameters"]}
    conv = _conv_entries(f, name)
    _check_parameters(params, name, conv)
    base = None
    if "baseline/metrics" in f:
        base = _metric_group(f["baseline/metrics"], "/baseline/metrics", name)
    ledger = {k: float(f["ledger"][k][()]) for k in f.get("ledger", {})}
    extra = {k: f["extra"][k][()] for k in f.get("extra", {})}
    config_text, summary_text = f["config"][()], f["summary_json"][()]
    if not isinstance(config_text, bytes) or not isinstance(summary_text, bytes):
        raise ResultsError(f"{name}: /config and /summary_json must be text")
    config_text = config_text.decode()
    summary = json.loads(summary_text.decode())
    if not isinstance(summary, dict):
        raise ResultsError(f"{name}: /summary_json must be a JSON object")
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


def _metric_group(g: h5py.Group, where: str, name: str) -> dict[str, np.ndarray]:
    """Per-epoch arrays: 1-D, numeric, all of one length."""
    if not isinstance(g, h5py.Group):
        raise ResultsError(f"{name}: {where} must be a group")
    out = {}
    for k in g:
        v = g[k][()] if isinstance(g[k], h5py.Dataset) else None
        if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype.kind not in "iuf":
            raise ResultsError(f"{name}: {where}/{k} must be a 1-D numeric array")
        out[k] = v
    if len({len(v) for v in out.values()}) > 1:
        raise ResultsError(f"{name}: {where} arrays must all have one length (one per epoch)")
    return out


def _conv_entries(f: h5py.File, name: str) -> list[dict[str, int] | None] | None:
    """The summary's ``conv_layers`` (one geometry dict or None per weight layer) of a run
    with convolutions, else None."""
    try:
        conv = json.loads(f["summary_json"][()].decode()).get("conv_layers")
    except Exception:  # the summary's own checks name what is wrong with it
        return None
    if conv is None:
        return None
    if not isinstance(conv, list) or not all(c is None or isinstance(c, dict) for c in conv):
        raise ResultsError(f"{name}: /summary_json conv_layers must list geometries or nulls")
    return conv


def _check_parameters(
    params: dict[str, Any], name: str, conv: list[dict[str, int] | None] | None = None
) -> None:
    """W<l> floating 2-D matrices chaining layer to layer; b<l> floating 1-D of n_l. With
    ``conv`` (the summary's ``conv_layers``): a conv layer's W is its kernel matrix
    ``(out_channels, k^2 C_in)`` and its layer has ``out_channels * positions`` units."""
    from hardware_models.conv_geometry import ConvGeometry

    for k, v in params.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            raise ResultsError(f"{name}: /parameters/{k} must be a floating-point array")
    L = sum(1 for k in params if k.startswith("W"))
    if conv is not None and len(conv) != L:
        raise ResultsError(f"{name}: /summary_json conv_layers needs one entry per weight layer")
    n_prev = None  # units of the layer below (None: the input, any size)
    for l in range(1, L + 1):
        W = params.get(f"W{l}")
        if W is None or W.ndim != 2:
            raise ResultsError(f"{name}: /parameters/W{l} must be a 2-D matrix")
        entry = None if conv is None else conv[l - 1]
        if entry is None:
            n_in, n_out, want = W.shape[1], W.shape[0], W.shape
        else:
            try:
                g = ConvGeometry(**entry)
            except (TypeError, ValueError) as exc:
                raise ResultsError(f"{name}: /summary_json conv_layers[{l - 1}]: {exc}") from None
            n_in, n_out, want = g.n_in, g.n_out, g.weight_shape
            if W.shape != tuple(want):
                raise ResultsError(
                    f"{name}: /parameters/W{l} has shape {W.shape}, not the kernel matrix "
                    f"{tuple(want)} of conv layer {l}"
                )
        if n_prev is not None and n_in != n_prev:
            raise ResultsError(
                f"{name}: /parameters/W{l} has shape {W.shape}, which does not follow "
                f"W{l - 1} {params[f'W{l - 1}'].shape}"
            )
        n_prev = n_out
        b = params.get(f"b{l}")
        if b is not None and b.shape != (n_out,):
            raise ResultsError(f"{name}: /parameters/b{l} must have shape ({n_out},)")


def check_writable(path: str | Path) -> None:
    """Fail early (before a long run) if the results path cannot be written."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ResultsError(f"--out {str(p)!r} is a directory")
    if p.exists() and not p.is_file():
        raise ResultsError(f"--out {str(p)!r} is not a regular file (a device or pipe)")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ResultsError(f"--out: directory {str(parent)!r} is not writable")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ResultsError(f"--out: {str(existing)!r} is a file, not a directory")
    try:  # a real write: catches read-only and pseudo file systems (/proc) that access() allows
        fd, probe = tempfile.mkstemp(prefix=".pcsim-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsError(
            f"--out: cannot write in {str(existing)!r}: {exc.strerror or exc}"
        ) from None
