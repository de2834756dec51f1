"""Running ngspice in batch mode and reading its raw files back.

:func:`run` writes a netlist into a working folder, runs ``ngspice -b`` there and returns the
node trajectories (seconds, volts, amperes) and the ``.measure`` results as a
:class:`SpiceResult`; :func:`read_raw` parses a raw file (binary or ASCII, real data).
``PCSIM_NGSPICE`` names another ngspice executable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcsim.spice.netlist import SpiceNetlist

INSTALL_HINT = "ngspice not found: apt-get install ngspice"


class SpiceError(RuntimeError):
    """ngspice failed, or its output could not be read."""


class SpiceNotFound(SpiceError):
    """The ngspice binary is not installed (``apt-get install ngspice``)."""


def ngspice_path() -> str | None:
    """The ngspice executable on PATH (``PCSIM_NGSPICE`` overrides), or None."""
    env = os.environ.get("PCSIM_NGSPICE")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return shutil.which("ngspice")


@dataclass
class RawData:
    """One plot of an ngspice raw file: variable names (as written) and values (n_t, n_vars)."""

    title: str
    plotname: str
    names: list[str]
    kinds: list[str]
    values: np.ndarray


def read_raw(path: str | Path) -> RawData:
    """Parse an ngspice raw file (binary or ASCII, real data; the first plot)."""
    blob = Path(path).read_bytes()
    header: dict[str, str] = {}
    names: list[str] = []
    kinds: list[str] = []
    pos = 0
    n_vars = None
    while pos < len(blob):
        end = blob.find(b"\n", pos)
        if end < 0:
            raise SpiceError(f"{path}: truncated raw header")
        line = blob[pos:end].decode("latin-1").rstrip("\r")
        pos = end + 1
        key, _, rest = line.partition(":")
        key = key.strip().lower()
        if key == "variables":
            if n_vars is None:
                raise SpiceError(f"{path}: 'Variables' before 'No. Variables'")
            for _ in range(n_vars):
                end = blob.find(b"\n", pos)
                parts = blob[pos:end].decode("latin-1").split()
                pos = end + 1
                names.append(parts[1])
                kinds.append(parts[2] if len(parts) > 2 else "")
            continue
        if key in ("binary", "values"):
            fmt = key
            break
        header[key] = rest.strip()
        if key == "no. variables":
            n_vars = int(rest)
    else:
        raise SpiceError(f"{path}: no data section in the raw file")
    flags = header.get("flags", "real").lower()
    if "complex" in flags:
        raise SpiceError(f"{path}: complex data is not supported (transient raw files only)")
    n_pts = int(header.get("no. points", "0").split()[0] or 0)
    if fmt == "binary":
        count = len(blob[pos:]) // 8
        arr = np.frombuffer(blob[pos : pos + 8 * count], dtype="<f8")
        n = count // n_vars
        if n_pts:
            n = min(n, n_pts)
        values = arr[: n * n_vars].reshape(n, n_vars).copy()
    else:
        tok = blob[pos:].decode("latin-1").split()
        stride = n_vars + 1  # point index, then the values
        n = len(tok) // stride
        if n_pts:
            n = min(n, n_pts)
        values = np.array(
            [float(t) for k in range(n) for t in tok[k * stride + 1 : (k + 1) * stride]],
            dtype=np.float64,
        ).reshape(n, n_vars)
    return RawData(
        title=header.get("title", ""),
        plotname=header.get("plotname", ""),
        names=names,
        kinds=kinds,
        values=values,
    )


def _trace_key(name: str) -> str:
    n = name.lower()
    if n.startswith("v(") and n.endswith(")") and "," not in n:
        return n[2:-1]
    return n


@dataclass
class SpiceResult:
    """Trajectories from one ngspice run: ``time_s`` (n_t,), ``traces[node]`` (n_t,) in volts
    (node names without ``v(...)``; branch currents as ``i(name)``, amperes), the
    ``.measure`` results, and ``energy`` (the ``e_*`` joules and ``q_*`` coulombs among them)."""

    time_s: np.ndarray
    traces: dict[str, np.ndarray]
    measures: dict[str, float]
    energy: dict[str, float]
    stdout: str
    wall_s: float  # the ngspice process, start to exit
    analysis_s: float | None = None  # ngspice's own "Total analysis time"

    def __getitem__(self, node: str) -> np.ndarray:
        return self.traces[node.lower()]


_MEAS = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _parse_measures(stdout: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        m = _MEAS.match(line)
        if m:
            out[m.group(1).lower()] = float(m.group(2))
    return out


def run(
    netlist: SpiceNetlist | str | os.PathLike,
    nodes: Sequence[str] | None = None,
    timeout: float = 300.0,
    keep_dir: str | Path | None = None,
) -> SpiceResult:
    """Run ngspice in batch mode on a netlist (a :class:`SpiceNetlist`, its text, or a path)
    and read back the trajectories. ``nodes`` keeps only those traces (KeyError naming any
    missing one). Raises :class:`SpiceNotFound` when ngspice is not installed and
    :class:`SpiceError` when it fails (with the tail of its output)."""
    exe = ngspice_path()
    if exe is None:
        raise SpiceNotFound(INSTALL_HINT)
    if isinstance(netlist, SpiceNetlist):
        text = netlist.text
    elif isinstance(netlist, os.PathLike) or ("\n" not in str(netlist) and Path(netlist).is_file()):
        text = Path(netlist).read_text(encoding="utf-8")
    else:
        text = str(netlist)
    m = re.search(r"^\s*write\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    has_control = re.search(r"^\s*\.control\b", text, flags=re.MULTILINE | re.IGNORECASE)
    with tempfile.TemporaryDirectory(prefix="pcsim_spice_") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cir = work / "net.cir"
        cir.write_text(text, encoding="utf-8")
        cmd = [exe, "-b"]
        if has_control and m:
            raw = work / m.group(1)
        else:
            raw = work / "net.raw"
            cmd += ["-r", raw.name]
        cmd.append(cir.name)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=work,
                capture_output=True,
                text=True,
                errors="replace",  # ngspice may echo stray bytes of a broken netlist
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SpiceError(f"ngspice ran past {timeout:g} s") from exc
        wall = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        fatal = [ln for ln in out.splitlines() if re.search(r"fatal|aborted|error", ln, re.I)]
        if proc.returncode != 0 or not raw.is_file() or fatal:
            tail = "\n".join((fatal or out.splitlines())[-8:])
            raise SpiceError(f"ngspice failed (exit {proc.returncode}):\n{tail}")
        data = read_raw(raw)
    keys = [_trace_key(n) for n in data.names]
    if not keys or keys[0] != "time":
        raise SpiceError("the raw file holds no transient (its first variable is not time)")
    traces = {k: data.values[:, c] for c, k in enumerate(keys) if c > 0}
    if nodes is not None:
        missing = [n for n in nodes if n.lower() not in traces]
        if missing:
            raise KeyError(f"not in the ngspice output: {', '.join(missing)}")
        traces = {n.lower(): traces[n.lower()] for n in nodes}
    measures = _parse_measures(proc.stdout)
    energy = {k: v for k, v in measures.items() if k.startswith(("e_", "q_"))}
    m_an = re.search(r"Total analysis time \(seconds\)\s*=\s*([0-9.eE+-]+)", out)
    return SpiceResult(
        time_s=data.values[:, 0].copy(),
        traces=traces,
        measures=measures,
        energy=energy,
        stdout=proc.stdout,
        wall_s=wall,
        analysis_s=float(m_an.group(1)) if m_an else None,
    )
