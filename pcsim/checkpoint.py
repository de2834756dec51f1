"""Training checkpoints: everything a run needs to continue bit for bit, in one HDF5 file.

A run is rebuilt from its configuration and seed (data, network initialisation, the chip's
programmed devices and unit mismatch are deterministic), then the checkpoint overwrites every
piece of state that training changes. Layout (format ``pcsim-checkpoint``, version 1)::

    /                       attrs: format, format_version, pcsim_version, created
    /config                 the run configuration as TOML text
    /state                  JSON text: position (epochs done, batch within the epoch, global
                            step), simulated time, RNG states (batch order, circuit noise) as
                            numpy bit-generator state dicts, the energy ledger, optimiser
                            scalars, elapsed training seconds, the data fingerprint, the
                            checkpoint policy, the partial epoch's batch energies
    /parameters/W<l>, b<l>  weights as stored on the devices, biases
    /crossbars/<l>/...      device state per weight layer: gain, drift exponents (nu),
                            write-pulse accumulators (acc), drift clocks (t_write),
                            persistent weights under write noise (wp), stuck_idx, stuck_val
                            (datasets, when present); attrs w_max,
                            t_program_s, refreshes, refresh_pulses
    /optimizer/<name>/<i>   optimiser arrays (Adam m and v, SGD velocity), one per parameter
    /algorithm/carry/<l>    iPC's carried activities (init = "carry"), when present
    /metrics/<name>         per-epoch history so far (as in results files)
    /order                  the current epoch's sample permutation (mid-epoch only)
    /engine/state_<b>       events engine only: each copy's carried state (clocks, wires in
                            flight, error units, its own random stream); attr key
    /algorithm/<stats>      events engine only: event counts so far (last_stats, total_stats)

Objects of the events engine are stored field by field (arrays as datasets, scalars as JSON)
and rebuilt only as the classes named in :func:`_tree_classes`.

Files are written atomically (temporary file, fsync, rename), so a kill at any moment leaves
the previous checkpoint intact. Reading validates format, version, groups, shapes and dtypes
and raises :class:`pcsim.results.ResultsError` with one line. Nothing is deserialised as
code: RNG states and scalars are JSON, arrays are plain datasets.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import h5py
import numpy as np

from hardware_models.costs import EnergyLedger
from hardware_models.mapping import MappedCrossbar
from pcsim.results import ResultsError, _version, atomic_h5, check_format, open_h5, short

FORMAT = "pcsim-checkpoint"
FORMAT_VERSION = 1

UNITS = {"e": "epochs", "b": "batches", "m": "minutes"}
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([ebm]?)\s*$")


# --- policy ------------------------------------------------------------------------------------
@dataclass
class Policy:
    """Where checkpoints go and how often: every ``every`` epochs, batches or minutes of wall
    time (``every=None``: only when interrupted, and at the end of training)."""

    path: Path
    every: float | None = None
    unit: str = "epochs"
    _last_write: float = field(default_factory=time.monotonic, repr=False)

    @staticmethod
    def parse_every(text: str) -> tuple[float, str]:
        """``"3"``/``"3e"`` -> every 3 epochs, ``"50b"`` -> 50 batches, ``"10m"`` -> 10 minutes."""
        m = _EVERY.match(str(text))
        if not m:
            raise ValueError(
                f"--checkpoint-every must be N (epochs), Nb (batches) or Nm (minutes), got {text!r}"
            )
        n, unit = float(m.group(1)), UNITS[m.group(2) or "e"]
        if n <= 0 or (unit != "minutes" and n != int(n)):
            kind = "number" if unit == "minutes" else "integer"
            raise ValueError(f"--checkpoint-every needs a positive {kind} of {unit}, got {text!r}")
        return (n if unit == "minutes" else int(n)), unit

    def describe(self) -> str:
        if self.every is None:
            return ""
        suffix = {"epochs": "", "batches": "b", "minutes": "m"}[self.unit]
        n = self.every if self.unit == "minutes" else int(self.every)
        return f"{n:g}{suffix}"

    def due_after_batch(self, step: int) -> bool:
        if self.every is None:
            return False
        if self.unit == "batches":
            return step % int(self.every) == 0
        if self.unit == "minutes":
            return time.monotonic() - self._last_write >= 60.0 * self.every
        return False

    def due_after_epoch(self, epochs_done: int) -> bool:
        return self.every is not None and self.unit == "epochs" and epochs_done % self.every == 0

    def written(self) -> None:
        self._last_write = time.monotonic()


# --- the file's content ----------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What a checkpoint file holds (see the module docstring)."""

    config_text: str
    state: dict[str, Any]
    parameters: dict[str, np.ndarray]
    crossbars: list[dict[str, Any]] | None
    optimizer: dict[str, list[np.ndarray]]
    carry: list[np.ndarray] | None
    metrics: dict[str, np.ndarray]
    order: np.ndarray | None
    version: str = ""
    # engine and algorithm state beyond arrays (the events engine's carried per-sample
    # states and event counts): name -> dataclass object, restored by attribute
    engine_state: dict[str, Any] = field(default_factory=dict)
    algorithm_state: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        return int(self.state["epoch"])


def data_fingerprint(data) -> str:
    """SHA-256 of the training and test arrays: a resumed run must see the same data."""
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.integer | bool | np.bool_):
        return v.item() if isinstance(v, np.generic) else v
    if isinstance(v, np.floating):
        return float(v)
    return v


def _copies(arrays) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in arrays]


def capture(
    trainer, *, config_text: str, fingerprint: str, policy: Policy | None, elapsed_s: float
) -> Checkpoint:
    """Snapshot a trainer (and its circuit, optimiser, algorithm) between batches."""
    circ, net, opt, alg = trainer.circ, trainer.circ.net, trainer.optimizer, trainer.algorithm
    pos = trainer.position
    params = {f"W{i + 1}": np.array(W, copy=True) for i, W in enumerate(net.weights)}
    if net.biases is not None:
        params.update({f"b{i + 1}": np.array(b, copy=True) for i, b in enumerate(net.biases)})
    crossbars = None
    if circ.crossbars is not None:
        if any(isinstance(cb, MappedCrossbar) for cb in circ.crossbars):
            raise ValueError(
                "checkpoints hold one device array per weight layer: chip.architecture."
                "device_pairs > 1 or column_remap cannot be checkpointed; run without "
                "--checkpoint"
            )
        crossbars = [cb.get_state() for cb in circ.crossbars]
    optimizer: dict[str, list[np.ndarray]] = {}
    opt_state: dict[str, Any] = {"name": type(opt).__name__.lower()}
    if hasattr(opt, "step_count"):
        opt_state["step_count"] = int(opt.step_count)
        if opt.m is not None:
            optimizer["m"], optimizer["v"] = _copies(opt.m), _copies(opt.v)
    if getattr(opt, "velocity", None) is not None:
        optimizer["velocity"] = _copies(opt.velocity)
    algorithm_state = _state_of(alg)
    carry = algorithm_state.pop("carry", None)
    algorithm_state = {k: v for k, v in algorithm_state.items() if v}
    # the events engine carries each copy's clocks, wires and error units
    engine_state = _state_of(trainer.engine)
    state = {
        "epoch": len(trainer.history.epoch),
        "batch": 0 if pos is None else pos.batch,
        "step": trainer.step,
        "epoch_energies": [] if pos is None else list(pos.energies),
        "epoch_wall_s": 0.0 if pos is None else pos.wall,
        "t": float(circ.t),
        "rng_order": trainer.rng.bit_generator.state,
        "rng_noise": circ.rng.bit_generator.state,
        "read_noise_ou": circ.get_read_noise_state(),
        "ledger": circ.ledger.to_dict(),
        "optimizer": opt_state,
        "algorithm": getattr(alg, "name", type(alg).__name__.lower()),
        "sizes": list(net.sizes),
        # a conv layer's weight is its kernel matrix (out_channels, k^2 C_in), not (n_out, n_in)
        **({"weight_shapes": [list(W.shape) for W in net.weights]} if net.has_conv else {}),
        "dtype": np.dtype(net.dtype).name,
        "n_train": int(len(trainer.data.x_train)),
        "batch_size": int(trainer.batch_size),
        "data_sha256": fingerprint,
        "elapsed_s": float(elapsed_s),
        "checkpoint_every": "" if policy is None else policy.describe(),
    }
    return Checkpoint(
        config_text=config_text,
        state=_jsonable(state),
        parameters=params,
        crossbars=crossbars,
        optimizer=optimizer,
        carry=None if carry is None else _copies(carry),
        metrics={k: np.array(v) for k, v in trainer.history.as_arrays().items()},
        order=None if pos is None else pos.order.astype(np.int64),
        version=_version(),
        engine_state=copy.deepcopy(engine_state),
        algorithm_state=copy.deepcopy(algorithm_state),
    )


def _state_of(obj) -> dict[str, Any]:
    """``obj.get_state()``, or nothing for an object that carries no state between batches."""
    get = getattr(obj, "get_state", None)
    return {} if get is None else dict(get())


def save(path: str | Path, ck: Checkpoint) -> None:
    """Write ``ck`` atomically (the previous file at ``path`` survives any failure)."""

    def write(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pcsim_version"] = ck.version or _version()
        f.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        f.create_dataset("config", data=ck.config_text)
        f.create_dataset("state", data=json.dumps(ck.state, allow_nan=True))
        g = f.create_group("parameters")
        for k, v in ck.parameters.items():
            g.create_dataset(k, data=v)
        if ck.crossbars is not None:
            g = f.create_group("crossbars")
            for i, cb in enumerate(ck.crossbars):
                c = g.create_group(str(i))
                c.attrs["w_max"] = cb["w_max"]
                c.attrs["t_program_s"] = cb["t_program_s"]
                if cb.get("refresh_counts") is not None:  # one-sided pairs' refreshes, pulses
                    c.attrs["refreshes"], c.attrs["refresh_pulses"] = (
                        int(v) for v in cb["refresh_counts"]
                    )
                for k in (
                    "gain",
                    "nu",
                    "acc",
                    "t_write",
                    "gp",
                    "gm",
                    "z1f",
                    "wp",
                    "stuck_idx",
                    "stuck_val",
                ):
                    if cb.get(k) is not None:
                        c.create_dataset(k, data=cb[k])
        g = f.create_group("optimizer")
        for name, arrays in ck.optimizer.items():
            o = g.create_group(name)
            for i, a in enumerate(arrays):
                o.create_dataset(str(i), data=a)
        if ck.carry is not None:
            g = f.create_group("algorithm/carry")
            for i, a in enumerate(ck.carry):
                g.create_dataset(str(i), data=a)
        g = f.create_group("metrics")
        for k, v in ck.metrics.items():
            g.create_dataset(k, data=v)
        if ck.order is not None:
            f.create_dataset("order", data=ck.order)
        if ck.engine_state:
            g = f.create_group("engine")
            g.attrs["key"] = json.dumps(ck.engine_state["key"])
            for k, v in ck.engine_state.items():
                if k != "key":
                    _dump_obj(g.create_group(k), v)
        for k, v in ck.algorithm_state.items():
            _dump_obj(f.create_group(f"algorithm/{k}"), v)

    try:
        atomic_h5(path, write)
    except OSError as exc:
        raise ResultsError(f"cannot write checkpoint {str(path)!r}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- reading, with validation ----------------------------------------------------------------
_STATE_SCHEMA: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "batch": (int,),
    "step": (int,),
    "epoch_energies": (list,),
    "epoch_wall_s": (int, float),
    "t": (int, float),
    "rng_order": (dict,),
    "rng_noise": (dict,),
    "ledger": (dict,),
    "optimizer": (dict,),
    "algorithm": (str,),
    "sizes": (list,),
    "dtype": (str,),
    "n_train": (int,),
    "batch_size": (int,),
    "data_sha256": (str,),
    "elapsed_s": (int, float),
    "checkpoint_every": (str,),
}


def _weight_shapes(state: dict[str, Any], sizes: list[int], name: str) -> list[tuple[int, int]]:
    """Each weight matrix's shape: ``/state.weight_shapes`` (networks with convolutions, whose
    kernel matrices are ``(out_channels, k^2 C_in)``), else the dense ``(n_{l+1}, n_l)``."""
    dense = [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]
    shapes = state.get("weight_shapes")
    if shapes is None:
        return dense
    if (
        not isinstance(shapes, list)
        or len(shapes) != len(dense)
        or not all(
            isinstance(sh, list)
            and len(sh) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sh)
            for sh in shapes
        )
    ):
        raise ResultsError(
            f"{name}: /state.weight_shapes must list one [rows, columns] of positive integers "
            "per weight layer"
        )
    return [(sh[0], sh[1]) for sh in shapes]


def _indexed(g: h5py.Group, where: str, name: str) -> list[np.ndarray]:
    keys = sorted(g.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise ResultsError(f"{name}: {where} must hold datasets 0..n-1, found {list(g.keys())}")
    out = []
    for k in keys:
        if not isinstance(g[k], h5py.Dataset):
            raise ResultsError(f"{name}: {where}/{k} is not a dataset")
        out.append(g[k][()])
    return out


def _float_array(a: Any, where: str, name: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        raise ResultsError(f"{name}: {where} must be a floating-point array")
    if ndim is not None and a.ndim != ndim:
        raise ResultsError(f"{name}: {where} must be {ndim}-D, has shape {a.shape}")
    if a.size and not np.all(np.isfinite(a)):
        raise ResultsError(f"{name}: {where} holds non-finite values; the run cannot resume")
    if a.size and float(np.max(np.abs(a))) > MAX_STATE_VALUE:
        raise ResultsError(
            f"{name}: {where} holds {float(np.max(np.abs(a))):.3g}, beyond any state a run "
            f"keeps (at most {MAX_STATE_VALUE:.0e}); the run cannot resume"
        )
    return a


# weights, activities, device gains and optimiser moments of a run that has not diverged stay
# far below this (a diverged run stops at 1e6, pcsim.engines.clocked.DIVERGENCE_BOUND; Adam's v
# holds squared gradients)
MAX_STATE_VALUE = 1e12


def load(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; ResultsError (one line) for anything wrong with it."""
    p = Path(path)
    name = p.name
    f = open_h5(p, "checkpoint")
    try:
        with f:
            return _read(f, name)
    except ResultsError:
        raise
    except Exception as exc:  # whatever a damaged structure makes h5py or numpy raise
        raise ResultsError(f"{name}: damaged checkpoint file ({short(exc)})") from None


def _read(f: h5py.File, name: str) -> Checkpoint:
    """Read and validate every section of an open checkpoint file, in the file's layout order."""
    config_text, state = _read_header(f, name)
    sizes, dtype = state["sizes"], np.dtype(state["dtype"])
    w_shapes = _weight_shapes(state, sizes, name)
    params, shapes = _read_parameters(f, name, sizes, dtype, w_shapes)
    crossbars = _read_crossbars(f, name, dtype, w_shapes)
    optimizer = _read_optimizer(f, name, shapes)
    carry = _read_carry(f, name, sizes)
    metrics = _read_metrics(f, name, state)
    order = _read_order(f, name, state)
    engine_state, algorithm_state = _read_engine(f, name)
    return Checkpoint(
        config_text=config_text.decode(),
        state=state,
        parameters=params,
        crossbars=crossbars,
        optimizer=optimizer,
        carry=carry,
        metrics=metrics,
        order=order,
        version=str(f.attrs.get("pcsim_version", "")),
        engine_state=engine_state,
        algorithm_state=algorithm_state,
    )


def _read_header(f: h5py.File, name: str) -> tuple[bytes, dict[str, Any]]:
    """Format attributes, the required entries, /config (TOML text) and /state (JSON, checked
    against ``_STATE_SCHEMA``). Returns (config as UTF-8 bytes, state dict)."""
    if str(f.attrs.get("format")) == "pcsim-results":
        raise ResultsError(f"{name}: this is a results file, not a checkpoint (use --checkpoint)")
    check_format(f, name, FORMAT, FORMAT_VERSION)
    for required in ("config", "state", "parameters", "optimizer", "metrics"):
        if required not in f:
            raise ResultsError(f"{name}: missing required entry /{required}")
    config_text = f["config"][()]
    state_text = f["state"][()]
    if not isinstance(config_text, bytes) or not isinstance(state_text, bytes):
        raise ResultsError(f"{name}: /config and /state must be text")
    try:
        state = json.loads(state_text.decode())
    except ValueError:
        raise ResultsError(f"{name}: /state is not valid JSON") from None
    if not isinstance(state, dict):
        raise ResultsError(f"{name}: /state must be a JSON object")
    _check_state(state, name)
    return config_text, state


def _check_state(state: dict[str, Any], name: str) -> None:
    """Types and ranges of the /state entries: position counters, times, sizes, dtype."""
    for key, types in _STATE_SCHEMA.items():
        v = state.get(key)
        if v is None or isinstance(v, bool) or not isinstance(v, types):
            raise ResultsError(f"{name}: /state.{key} is missing or has the wrong type")
    for key in ("epoch", "batch", "step", "n_train", "batch_size"):
        if state[key] < 0:
            raise ResultsError(f"{name}: /state.{key} must be >= 0, got {state[key]}")
    for key in ("t", "elapsed_s", "epoch_wall_s"):
        if not (math.isfinite(state[key]) and 0 <= state[key] <= MAX_STATE_VALUE):
            raise ResultsError(f"{name}: /state.{key} must be a finite time >= 0")
    sizes = state["sizes"]
    if len(sizes) < 2 or not all(isinstance(n, int) and n > 0 for n in sizes):
        raise ResultsError(f"{name}: /state.sizes must list positive layer sizes")
    if state["dtype"] not in ("float32", "float64"):
        raise ResultsError(f"{name}: /state.dtype must be float32 or float64")


def _read_parameters(
    f: h5py.File,
    name: str,
    sizes: list[int],
    dtype: np.dtype,
    w_shapes: list[tuple[int, int]],
) -> tuple[dict[str, np.ndarray], list[tuple[int, ...]]]:
    """/parameters: W<l> of shape ``w_shapes[l-1]`` and, when present, b<l> of shape
    (sizes[l],), all of the run's dtype. Returns (arrays by name, shapes in optimiser order:
    weights then biases)."""
    L = len(sizes) - 1
    params = {}
    for k in f["parameters"]:
        params[k] = _float_array(f["parameters"][k][()], f"/parameters/{k}", name)
    for i in range(L):
        W = params.get(f"W{i + 1}")
        want = w_shapes[i]
        if W is None or W.shape != want or W.dtype != dtype:
            raise ResultsError(f"{name}: /parameters/W{i + 1} must be {dtype.name} of shape {want}")
    has_bias = "b1" in params
    for i in range(L):
        b = params.get(f"b{i + 1}")
        if has_bias and (b is None or b.shape != (sizes[i + 1],) or b.dtype != dtype):
            raise ResultsError(
                f"{name}: /parameters/b{i + 1} must be {dtype.name} of shape ({sizes[i + 1]},)"
            )
    expected = {f"W{i + 1}" for i in range(L)} | (
        {f"b{i + 1}" for i in range(L)} if has_bias else set()
    )
    if set(params) != expected:
        raise ResultsError(f"{name}: unexpected entries in /parameters: {sorted(params)}")
    shapes = [params[f"W{i + 1}"].shape for i in range(L)]
    if has_bias:
        shapes += [params[f"b{i + 1}"].shape for i in range(L)]
    return params, shapes


def _read_crossbars(
    f: h5py.File, name: str, dtype: np.dtype, w_shapes: list[tuple[int, int]]
) -> list[dict[str, Any]] | None:
    """/crossbars: one device-state dict per weight layer (None when the run has no chip)."""
    if "crossbars" not in f:
        return None
    g = f["crossbars"]
    if sorted(g.keys()) != sorted(str(i) for i in range(len(w_shapes))):
        raise ResultsError(f"{name}: /crossbars must hold one group per weight layer")
    return [
        _read_crossbar(g[str(i)], name, i, dtype, shape[0] * shape[1])
        for i, shape in enumerate(w_shapes)
    ]


def _read_crossbar(c: h5py.Group, name: str, i: int, dtype: np.dtype, n: int) -> dict[str, Any]:
    """/crossbars/<i>: attributes, per-device float64 arrays of length n (devices of the layer)
    and the stuck devices (flat indices in [0, n), values in the run's dtype)."""
    cb: dict[str, Any] = {}
    for attr in ("w_max", "t_program_s"):
        v = c.attrs.get(attr)
        if not isinstance(v, float | np.floating):
            raise ResultsError(f"{name}: /crossbars/{i} attribute {attr} is missing")
        cb[attr] = float(v)
    if "refreshes" in c.attrs and "refresh_pulses" in c.attrs:
        counts = [c.attrs["refreshes"], c.attrs["refresh_pulses"]]
        if not all(isinstance(v, int | np.integer) and v >= 0 for v in counts):
            raise ResultsError(f"{name}: /crossbars/{i} refresh counts must be integers >= 0")
        cb["refresh_counts"] = np.array(counts, np.int64)
    for k in ("gain", "nu", "acc", "t_write", "gp", "gm", "z1f", "wp"):
        cb[k] = None
        if k in c:
            a = _float_array(c[k][()], f"/crossbars/{i}/{k}", name, 1)
            if a.shape != (n,) or a.dtype != np.float64:
                raise ResultsError(f"{name}: /crossbars/{i}/{k} must be float64 of shape ({n},)")
            cb[k] = a
    idx = c["stuck_idx"][()] if "stuck_idx" in c else np.zeros(0, np.int64)
    val = c["stuck_val"][()] if "stuck_val" in c else np.zeros(0, dtype)
    if (
        idx.ndim != 1
        or idx.dtype.kind not in "iu"
        or val.shape != idx.shape
        or val.dtype != dtype
        or (idx.size and (idx.min() < 0 or idx.max() >= n))
    ):
        raise ResultsError(f"{name}: /crossbars/{i} stuck-device entries are inconsistent")
    cb["stuck_idx"], cb["stuck_val"] = idx.astype(np.intp), val
    return cb


def _read_optimizer(
    f: h5py.File, name: str, shapes: list[tuple[int, ...]]
) -> dict[str, list[np.ndarray]]:
    """/optimizer: Adam's m and v (both or neither) or SGD's velocity, one array per parameter
    with the parameters' shapes; Adam's v never negative."""
    optimizer = {}
    for k in f["optimizer"]:
        if k not in ("m", "v", "velocity"):
            raise ResultsError(f"{name}: unknown optimiser state /optimizer/{k}")
        arrays = _indexed(f["optimizer"][k], f"/optimizer/{k}", name)
        if [a.shape for a in arrays] != shapes:
            raise ResultsError(f"{name}: /optimizer/{k} shapes do not match the parameters")
        for i, a in enumerate(arrays):
            _float_array(a, f"/optimizer/{k}/{i}", name)
            if k == "v" and a.size and float(a.min()) < 0:
                raise ResultsError(
                    f"{name}: /optimizer/v/{i} holds {float(a.min()):.3g}; Adam's second "
                    "moments are never negative"
                )
        optimizer[k] = arrays
    if ("m" in optimizer) != ("v" in optimizer):
        raise ResultsError(f"{name}: /optimizer needs both m and v")
    return optimizer


def _read_carry(f: h5py.File, name: str, sizes: list[int]) -> list[np.ndarray] | None:
    """/algorithm/carry: iPC's carried activities, one (batch, sizes[l]) array per layer, or
    None when absent."""
    if "algorithm/carry" not in f:
        return None
    carry = _indexed(f["algorithm/carry"], "/algorithm/carry", name)
    if len(carry) != len(sizes) or any(
        _float_array(a, "/algorithm/carry", name, 2).shape[1] != n
        or a.shape[0] != carry[0].shape[0]
        for a, n in zip(carry, sizes, strict=False)
    ):
        raise ResultsError(f"{name}: /algorithm/carry does not match the layer sizes")
    return carry


def _read_metrics(f: h5py.File, name: str, state: dict[str, Any]) -> dict[str, np.ndarray]:
    """/metrics: finite 1-D numeric histories, one entry per epoch done."""
    metrics = {k: f["metrics"][k][()] for k in f["metrics"]}
    for k, v in metrics.items():
        if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype.kind not in "iuf":
            raise ResultsError(f"{name}: /metrics/{k} must be a 1-D numeric array")
        if v.size and not np.all(np.isfinite(v)):
            raise ResultsError(f"{name}: /metrics/{k} holds non-finite values")
        if len(v) != state["epoch"]:
            raise ResultsError(
                f"{name}: /metrics/{k} has {len(v)} entries for {state['epoch']} epochs"
            )
    return metrics


def _read_order(f: h5py.File, name: str, state: dict[str, Any]) -> np.ndarray | None:
    """/order: the current epoch's permutation of the training set (int64), consistent with the
    position in /state; None between epochs. Also checks /state.epoch_energies."""
    order = None
    if "order" in f:
        order = f["order"][()]
        if (
            not isinstance(order, np.ndarray)
            or order.ndim != 1
            or order.dtype.kind not in "iu"
            or len(order) != state["n_train"]
            or not np.array_equal(np.sort(order), np.arange(state["n_train"]))
        ):
            raise ResultsError(f"{name}: /order is not a permutation of the training set")
        n_batches = -(-state["n_train"] // state["batch_size"]) if state["batch_size"] else 0
        if state["batch"] > n_batches or len(state["epoch_energies"]) != state["batch"]:
            raise ResultsError(f"{name}: /state position is inconsistent with /order")
    elif state["batch"] != 0:
        raise ResultsError(f"{name}: /state.batch is {state['batch']} but /order is missing")
    if not all(
        isinstance(e, int | float) and not isinstance(e, bool) and math.isfinite(e)
        for e in state["epoch_energies"]
    ):
        raise ResultsError(f"{name}: /state.epoch_energies must be finite numbers")
    return order.astype(np.int64) if order is not None else None


def _read_engine(f: h5py.File, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """/engine (the events engine's carried per-copy states and their key) and
    /algorithm/<stats> (its event counts). Returns (engine state, algorithm state); both empty
    for the other engines."""
    engine_state: dict[str, Any] = {}
    if "engine" in f:
        g = f["engine"]
        try:
            key = json.loads(g.attrs["key"])
            sizes_k, free_k, batch_k = key
            engine_state["key"] = [
                [int(n) for n in sizes_k],
                [bool(b) for b in free_k],
                int(batch_k),
            ]
        except (KeyError, ValueError, TypeError):
            raise ResultsError(f"{name}: /engine has no valid key attribute") from None
        for k in g:
            if not re.fullmatch(r"state_\d+", k):
                raise ResultsError(f"{name}: unexpected entry /engine/{k}")
            engine_state[k] = _load_obj(g[k], f"/engine/{k}", name)
    algorithm_state = {}
    for k in ("last_stats", "total_stats"):
        if f"algorithm/{k}" in f:
            algorithm_state[k] = _load_obj(f[f"algorithm/{k}"], f"/algorithm/{k}", name)
    return engine_state, algorithm_state


# --- dataclass trees (the events engine's state), field by field ----------------------------
def _tree_classes() -> dict[str, type]:
    """The only classes a checkpoint may rebuild (no arbitrary class loading)."""
    from pcsim.engines import events

    return {c.__name__: c for c in (events._SampleState, events._Fifo, events.EventStats)}


def _dump_obj(g: h5py.Group, obj: Any) -> None:
    kinds: dict[str, str] = {}
    scalars: dict[str, Any] = {}
    for fd in dataclasses.fields(obj):
        v = getattr(obj, fd.name)
        if v is None:
            kinds[fd.name] = "none"
        elif isinstance(v, np.ndarray):
            g.create_dataset(fd.name, data=v)
            kinds[fd.name] = "array"
        elif dataclasses.is_dataclass(v):
            _dump_obj(g.create_group(fd.name), v)
            kinds[fd.name] = "object"
        elif isinstance(v, list) and all(isinstance(a, np.ndarray) for a in v):
            sub = g.create_group(fd.name)
            for i, a in enumerate(v):
                sub.create_dataset(str(i), data=a)
            kinds[fd.name] = "arrays"
        elif isinstance(v, tuple) and all(isinstance(b, bool | np.bool_) for b in v):
            scalars[fd.name] = [bool(b) for b in v]
            kinds[fd.name] = "bools"
        elif isinstance(v, bool | int | float | np.generic):
            scalars[fd.name] = v.item() if isinstance(v, np.generic) else v
            kinds[fd.name] = "scalar"
        else:
            raise TypeError(f"cannot checkpoint {type(obj).__name__}.{fd.name}")
    g.attrs["class"] = type(obj).__name__
    g.attrs["fields"] = json.dumps({"kinds": kinds, "scalars": scalars}, allow_nan=True)


def _load_obj(g: Any, where: str, name: str) -> Any:
    if not isinstance(g, h5py.Group):
        raise ResultsError(f"{name}: {where} must be a group")
    cls = _tree_classes().get(str(g.attrs.get("class", "")))
    if cls is None:
        raise ResultsError(f"{name}: {where} holds an unknown object {g.attrs.get('class')!r}")
    try:
        meta = json.loads(g.attrs["fields"])
        kinds, scalars = meta["kinds"], meta["scalars"]
    except (KeyError, ValueError, TypeError):
        raise ResultsError(f"{name}: {where} has no valid field list") from None
    wanted = {fd.name for fd in dataclasses.fields(cls)}
    if not isinstance(kinds, dict) or set(kinds) != wanted:
        raise ResultsError(f"{name}: {where} does not hold the fields of {cls.__name__}")
    kw: dict[str, Any] = {}
    for k, kind in kinds.items():
        if kind == "none":
            kw[k] = None
        elif kind == "array":
            if not isinstance(g.get(k), h5py.Dataset):
                raise ResultsError(f"{name}: {where}/{k} is missing")
            kw[k] = np.asarray(g[k][()])
        elif kind == "object":
            kw[k] = _load_obj(g.get(k), f"{where}/{k}", name)
        elif kind == "arrays":
            kw[k] = [np.asarray(a) for a in _indexed(g[k], f"{where}/{k}", name)]
        elif kind == "bools" and isinstance(scalars.get(k), list):
            kw[k] = tuple(bool(b) for b in scalars[k])
        elif kind == "scalar" and isinstance(scalars.get(k), int | float):
            kw[k] = scalars[k]
        else:
            raise ResultsError(f"{name}: {where}.{k} is damaged")
    return cls(**kw)


# --- putting it back ---------------------------------------------------------------------------
def restore(ck: Checkpoint, trainer, fingerprint: str, name: str = "checkpoint") -> None:
    """Overwrite a freshly built trainer (same config and seed) with the checkpoint's state.

    Raises ResultsError when the checkpoint does not fit the rebuilt run (other network, data
    or optimiser)."""
    _check_fits(ck, trainer, fingerprint, name)
    _restore_parameters(ck, trainer.circ)
    _restore_optimizer(ck, trainer.optimizer, name)
    _restore_algorithm(ck, trainer.algorithm, trainer.circ.net.dtype, name)
    _restore_engine(ck, trainer, name)
    _restore_clocks(ck, trainer, name)
    _restore_position(ck, trainer, name)


def _fail(name: str, msg: str) -> NoReturn:
    raise ResultsError(f"{name}: {msg}")


def _check_fits(ck: Checkpoint, trainer, fingerprint: str, name: str) -> None:
    """The checkpoint was written for this network, data, batch size, algorithm, bias and chip
    settings and optimiser."""
    circ, net, opt, alg = trainer.circ, trainer.circ.net, trainer.optimizer, trainer.algorithm
    s = ck.state
    if list(net.sizes) != s["sizes"] or np.dtype(net.dtype).name != s["dtype"]:
        _fail(
            name,
            f"written for a {s['dtype']} network {s['sizes']}, the configuration builds a "
            f"{np.dtype(net.dtype).name} network {list(net.sizes)}",
        )
    if s["data_sha256"] != fingerprint or s["n_train"] != len(trainer.data.x_train):
        _fail(name, "written for different data (the data files or data settings changed)")
    if s["batch_size"] != trainer.batch_size:
        _fail(
            name,
            f"written with batch_size {s['batch_size']}, "
            f"the configuration has {trainer.batch_size}",
        )
    if s["algorithm"] != getattr(alg, "name", ""):
        _fail(name, f"written by algorithm {s['algorithm']!r}, the configuration runs {alg.name!r}")
    if (net.biases is not None) != ("b1" in ck.parameters):
        _fail(name, "bias setting differs from the configuration")
    if (circ.crossbars is None) != (ck.crossbars is None):
        _fail(name, "chip setting differs from the configuration")
    opt_name = type(opt).__name__.lower()
    if s["optimizer"].get("name") != opt_name:
        _fail(name, f"written with optimizer {s['optimizer'].get('name')!r}, not {opt_name!r}")


def _restore_parameters(ck: Checkpoint, circ) -> None:
    """Weights and biases (in place: the network's arrays are the crossbars' device arrays),
    then each crossbar's device state and the circuit's read-noise levels."""
    net = circ.net
    for i, W in enumerate(net.weights):
        W[...] = ck.parameters[f"W{i + 1}"]
    if net.biases is not None:
        for i, b in enumerate(net.biases):
            b[...] = ck.parameters[f"b{i + 1}"]
    if ck.crossbars is not None:
        for cb, saved in zip(circ.crossbars, ck.crossbars, strict=True):
            cb.set_state(saved)
        circ.read_sigma = np.array([cb.read_sigma for cb in circ.crossbars])


def _restore_optimizer(ck: Checkpoint, opt, name: str) -> None:
    """Adam's step count and moments, SGD's velocity (copies of the checkpoint's arrays)."""
    if hasattr(opt, "step_count"):
        sc = ck.state["optimizer"].get("step_count")
        if not isinstance(sc, int) or sc < 0:
            _fail(name, "optimizer step_count is missing")
        opt.step_count = sc
        opt.m = _copy_or_none(ck.optimizer.get("m"))
        opt.v = _copy_or_none(ck.optimizer.get("v"))
    if hasattr(opt, "velocity"):
        opt.velocity = _copy_or_none(ck.optimizer.get("velocity"))


def _restore_algorithm(ck: Checkpoint, alg, dtype, name: str) -> None:
    """The algorithm's own state (iPC's carry, the events engine's event counts) through its
    ``set_state``; refuses state the algorithm does not keep."""
    known = _state_of(alg)
    for k in ck.algorithm_state:
        if k not in known or k == "carry":
            _fail(name, f"holds {k} for an algorithm that has none")
    if known:
        state = {k: copy.deepcopy(v) for k, v in ck.algorithm_state.items()}
        if "carry" in known:
            state["carry"] = ck.carry
        alg.set_state(state, dtype=dtype)


def _restore_engine(ck: Checkpoint, trainer, name: str) -> None:
    """The events engine's carried per-sample states, keyed to this circuit."""
    if ck.engine_state:
        engine, circ = trainer.engine, trainer.circ
        if getattr(engine, "set_state", None) is None:
            _fail(name, "holds engine state for another engine kind")
        try:
            engine.set_state(copy.deepcopy(ck.engine_state), circ)
        except ValueError:
            _fail(name, "holds engine state for another engine kind")


def _restore_clocks(ck: Checkpoint, trainer, name: str) -> None:
    """Circuit clock (s), read-noise processes, energy ledger, random streams."""
    circ, s = trainer.circ, ck.state
    circ.t = float(s["t"])
    try:
        circ.set_read_noise_state(s.get("read_noise_ou"))
        circ.ledger = EnergyLedger.from_dict(s["ledger"])
        circ.rng.bit_generator.state = s["rng_noise"]
        trainer.rng.bit_generator.state = s["rng_order"]
    except (TypeError, ValueError, KeyError, AttributeError):
        _fail(name, "damaged ledger or random-generator state")


def _restore_position(ck: Checkpoint, trainer, name: str) -> None:
    """Per-epoch history, global step and, mid-epoch, the position within the epoch."""
    from pcsim.train import EpochPosition, History

    s = ck.state
    h = History()
    for k in h.__dict__:
        if k not in ck.metrics:
            _fail(name, f"missing metric {k}")
        getattr(h, k).extend(ck.metrics[k].tolist())
    trainer.history = h
    trainer.step = int(s["step"])
    if ck.order is not None:
        trainer.position = EpochPosition(
            order=ck.order.astype(np.int64),
            batch=int(s["batch"]),
            energies=[float(e) for e in s["epoch_energies"]],
            wall=float(s["epoch_wall_s"]),
        )
    else:
        trainer.position = None


def _copy_or_none(arrays) -> list[np.ndarray] | None:
    return None if arrays is None else [np.array(a, copy=True) for a in arrays]
