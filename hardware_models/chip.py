"""Chip: the composition of synapses, units, converters and costs; named presets (TOML).

A chip is a description of a substrate. It says how a stored weight is read and written
(:class:`~hardware_models.synapses.SynapseConfig`), how units integrate
(:class:`~hardware_models.units.ValueUnitConfig`, :class:`~hardware_models.units.ErrorUnitConfig`),
how values are converted (:class:`~hardware_models.converters.ConverterConfig`), what every event
costs (:class:`~hardware_models.costs.CostConfig`), and how many seconds one ``tau_x`` is.

Presets live in ``hardware_models/presets/<name>.toml``; every constant there carries a comment
naming its source, which :meth:`Chip.describe` reports next to the value.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hardware_models import baselines as _baselines
from hardware_models._config import (
    ChipConfigError,
    ConfigBase,
    check_value,
    param,
    unknown_key_error,
)
from hardware_models.architecture import ArchitectureConfig, LayerMap, chip_area, map_network
from hardware_models.baselines import BaselineCost
from hardware_models.converters import ConverterConfig
from hardware_models.costs import CostConfig, DigitalCost, digital_baseline
from hardware_models.mapping import MappedCrossbar
from hardware_models.partial_sums import TileReads
from hardware_models.synapses import Crossbar, SynapseConfig
from hardware_models.units import ErrorUnitConfig, UnitArray, ValueUnitConfig

__all__ = ["Chip", "load_preset", "list_presets", "preset_path", "toml_sources"]

_SECTIONS: dict[str, type[ConfigBase]] = {
    "synapses": SynapseConfig,
    "value_units": ValueUnitConfig,
    "error_units": ErrorUnitConfig,
    "converters": ConverterConfig,
    "costs": CostConfig,
    "architecture": ArchitectureConfig,
}


@dataclass(frozen=True)
class Chip:
    """A modelled substrate. The default ``Chip()`` is the ideal chip with free costs."""

    _section: ClassVar[str] = "chip"  # for describe_fields (hardware_models._config)
    name: str = param("custom", "", "str", "preset name")
    description: str = param("", "", "str", "what the substrate is, in one line")
    # default: Horowitz ISSCC 2014's 45 nm, where the baseline energies were measured
    node_nm: float = param(
        _baselines.REFERENCE_NODE_NM,
        "nm",
        "pos",
        "technology node the digital baselines are scaled to (hardware_models.baselines)",
    )
    synapses: SynapseConfig = field(default_factory=SynapseConfig)
    value_units: ValueUnitConfig = field(default_factory=ValueUnitConfig)
    error_units: ErrorUnitConfig = field(default_factory=ErrorUnitConfig)
    converters: ConverterConfig = field(default_factory=ConverterConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        lo, hi = _baselines.NODE_RANGE_NM
        if (
            isinstance(self.node_nm, bool)
            or not isinstance(self.node_nm, int | float)
            or not lo <= self.node_nm <= hi
        ):
            raise ChipConfigError(
                f"chip.node_nm must be a number of nm within {lo:g}-{hi:g} "
                f"(Stillmaker and Baas 2017 scaling fits), got {self.node_nm!r}"
            )
        for f in dataclasses.fields(self):  # name, description (node_nm: checked above)
            if "check" in f.metadata:  # validated, kept as given (an int node stays an int)
                check_value(f"chip.{f.name}", getattr(self, f.name), f.metadata["check"])
        for key, cls in _SECTIONS.items():
            if not isinstance(getattr(self, key), cls):
                raise ChipConfigError(f"chip.{key} must be a {cls.__name__}")
        if self.architecture.cell_bits is not None and self.synapses.bits is None:
            raise ChipConfigError(
                "chip.architecture.cell_bits needs chip.synapses.bits (an analog weight has no "
                "bits to slice)"
            )

    # -- physics -----------------------------------------------------------------------------
    @property
    def tau_x_s(self) -> float:
        """Seconds per ``tau_x``: the value units' ``C / g``."""
        return self.value_units.tau_s

    @property
    def is_ideal(self) -> bool:
        """True when every part is ideal (costs aside): a run is the pure algorithm."""
        return (
            self.synapses.is_ideal
            and self.value_units.is_ideal
            and self.error_units.is_ideal
            and self.converters.is_ideal
        )

    @property
    def transition_energy_j(self) -> float:
        """Energy of one unit transition: ``costs.transition_energy_j`` or ``C V^2``."""
        if self.costs.transition_energy_j is not None:
            return self.costs.transition_energy_j
        return self.value_units.capacitance_f * self.value_units.signal_scale_v**2

    def crossbar(
        self, shape: tuple[int, int], dtype: np.dtype | type = np.float64
    ) -> Crossbar | MappedCrossbar:
        """An unprogrammed crossbar of this chip's synapses (reading through its tiles' wires
        when ``architecture.ir_drop`` is on and the wires have resistance); with
        ``architecture.device_pairs > 1`` or ``column_remap``, those pairs behind one
        :class:`~hardware_models.mapping.MappedCrossbar` (non-ideal synapses only)."""
        a = self.architecture
        if not self.synapses.is_ideal and (a.device_pairs > 1 or a.column_remap):
            pairs = [self._crossbar(shape, dtype) for _ in range(a.device_pairs)]
            return MappedCrossbar(pairs, a.column_remap)  # hardware_models.mapping
        return self._crossbar(shape, dtype)

    def _crossbar(self, shape: tuple[int, int], dtype: np.dtype | type) -> Crossbar:
        xb = Crossbar(self.synapses, shape, dtype)
        a = self.architecture
        if a.ir_drop and a.wire_segment_ohm > 0 and not self.synapses.is_ideal:
            rows = a.tile_rows if a.tile_rows is not None else int(shape[1])
            cols = a.tile_cols if a.tile_cols is not None else int(shape[0])
            xb.ir_drop = (rows, cols, a.wire_segment_ohm)
        return xb

    def units(
        self, n: int, rng: np.random.Generator | None = None, dtype: np.dtype | type = np.float64
    ) -> UnitArray:
        """Per-unit parameters (mismatch drawn from ``rng``) of a layer of ``n`` units."""
        return UnitArray.build(self.value_units, self.error_units, n, rng, dtype)

    def digital_baseline(
        self, layer_sizes: list[int], batch_size: int = 1, n_samples: int = 1
    ) -> DigitalCost:
        """Backprop on a digital FP32 accelerator with this chip's baseline constants."""
        return digital_baseline(layer_sizes, batch_size, n_samples, self.costs.baseline)

    def baselines(
        self,
        layer_sizes: list[int],
        batch_size: int,
        layer_macs: list[int] | None = None,
        layer_weights: list[int] | None = None,
    ) -> list[BaselineCost]:
        """FP32, FP16 and INT8 digital accelerators at this chip's node and at 45 nm, each
        priced for backprop training and inference (:mod:`hardware_models.baselines`).
        ``layer_macs`` and ``layer_weights`` (per weight layer, both or neither): a network
        with convolutions, priced by its MACs per sample and its weights
        (:func:`~hardware_models.baselines.price_layers`); ``layer_sizes`` is then unused."""
        if (layer_macs is None) != (layer_weights is None):
            raise ValueError("baselines: give layer_macs and layer_weights together")
        if layer_macs is not None and layer_weights is not None:
            return _baselines.standard_baselines_layers(
                layer_macs, layer_weights, batch_size, self.node_nm
            )
        return _baselines.standard_baselines(layer_sizes, batch_size, self.node_nm)

    @property
    def accumulator_add_energy_j(self) -> float:
        """Energy of one add of one per-weight pulse accumulator (J): an
        ``architecture.accumulator_bits``-bit adder, ``accumulator_add_8bit_j * bits / 8`` at
        45 nm (Horowitz ISSCC 2014: 8-bit add 0.03 pJ, 32-bit 0.1 pJ), scaled to ``node_nm``
        (:func:`hardware_models.baselines.energy_scale`)."""
        a = self.architecture
        return (
            a.accumulator_add_8bit_j
            * a.accumulator_bits
            / 8
            * _baselines.energy_scale(self.node_nm)
        )

    def tile_reads(self) -> TileReads | None:
        """How matrix-vector products are read when every tile converts its outputs
        (``architecture.partial_sums = "digital"`` and ``tile_adc_reads`` with a
        finite-resolution ADC, :mod:`hardware_models.partial_sums`); None otherwise (the read
        is then the plain product; per-tile conversions are still charged)."""
        a, cv = self.architecture, self.converters
        if a.partial_sums != "digital" or not a.tile_adc_reads or cv.adc_bits is None:
            return None
        return TileReads(a.tile_rows, a.tile_cols, cv)

    def layer_maps(self, sizes: list[int]) -> list[LayerMap]:
        """Each weight matrix of a network ``sizes`` on this chip's tiles (per-read costs)."""
        cv = self.converters
        return map_network(
            sizes, self.architecture, cv.adc_bits, cv.sar_cycle_s, self.synapses.bits
        )

    @property
    def weight_slices(self) -> int:
        """Devices (pairs) per weight from bit slicing (``architecture.cell_bits``; 1 when
        omitted)."""
        return self.architecture.weight_slices(self.synapses.bits)

    def area_mm2(
        self,
        sizes: list[int],
        digital_state_bits_per_weight: int = 0,
        replicas: int = 1,
        maps: Sequence[LayerMap] | None = None,
    ) -> dict[str, float]:
        """Area in mm^2 by component (:func:`hardware_models.architecture.chip_area`).
        ``maps``: the weight matrices as placed on tiles when they are not the dense
        ``(sizes[l+1], sizes[l])`` (a convolution's kernel matrix ``(out_channels, k^2 C_in)``)."""
        cv = self.converters
        return chip_area(
            sizes,
            self.architecture,
            adc_bits=cv.adc_bits,
            dac_bits=cv.dac_bits,
            value_capacitance_f=self.value_units.capacitance_f,
            pulsed=self.synapses.pulsed,
            digital_state_bits_per_weight=digital_state_bits_per_weight,
            replicas=replicas,
            sar_cycle_s=cv.sar_cycle_s,
            weight_bits=self.synapses.bits,
            maps=maps,
        )

    # -- dicts and overrides -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Chip:
        """Build from a nested dict (a parsed TOML file), validating every key and value."""
        if not isinstance(d, Mapping):
            raise ChipConfigError(f"chip must be a table, got {d!r}")
        known = ["name", "description", "node_nm", *_SECTIONS]
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in _SECTIONS:
                kwargs[key] = _SECTIONS[key].from_dict(value)
            elif key in ("name", "description", "node_nm"):
                kwargs[key] = value
            else:
                raise unknown_key_error("chip", str(key), known)
        return cls(**kwargs, sources=dict(sources or {}))

    def to_dict(self) -> dict[str, Any]:
        """Nested dict (TOML-able; omitted optional values are left out)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "node_nm": self.node_nm,
        }
        for key in _SECTIONS:
            out[key] = getattr(self, key).to_dict()
        return out

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Chip:
        """A copy with some values replaced; keys nested (``{"synapses": {"bits": 4}}``) or
        dotted (``{"synapses.bits": 4}``, optionally prefixed ``chip.``). ``None`` restores the
        default (omitted) value."""
        if not overrides:
            return self
        if not isinstance(overrides, Mapping):
            raise ChipConfigError(f"chip overrides must be a table, got {overrides!r}")
        d = copy.deepcopy(self.to_dict())
        sources = dict(self.sources)
        for dotted, value in _flatten(overrides):
            parts = dotted.split(".")
            if parts[0] == "chip":
                parts = parts[1:]
            node: dict[str, Any] = d
            for i, part in enumerate(parts[:-1]):
                nxt = node.setdefault(part, {})
                if not isinstance(nxt, dict):
                    path = ".".join(["chip", *parts[: i + 1]])
                    raise ChipConfigError(f"{path} is a value, not a table (in override {dotted})")
                node = nxt
            if value is None:
                node.pop(parts[-1], None)
            else:
                node[parts[-1]] = value
            sources[".".join(parts)] = "override"
        return Chip.from_dict(d, sources=sources)

    # -- reporting ---------------------------------------------------------------------------
    def describe(self) -> list[tuple[str, str, str, str]]:
        """Rows ``(field, value, unit, source)`` for every parameter, plus derived ones."""
        rows: list[tuple[str, str, str, str]] = [
            ("name", self.name, "", ""),
            ("description", self.description, "", ""),
            ("node_nm", _fmt(self.node_nm), "nm", self.sources.get("node_nm", "default")),
        ]
        for key in _SECTIONS:
            rows.extend(self._rows(key, getattr(self, key)))
        derived = "derived"
        rows.append(("tau_x_s", _fmt(self.tau_x_s), "s", f"{derived}: C / g of the value units"))
        rows.append(
            (
                "value_units.thermal_sigma",
                _fmt(self.value_units.thermal_sigma),
                "activity/sqrt(tau)",
                f"{derived}: sqrt(2 kT / C) / V",
            )
        )
        rows.append(
            (
                "transition_energy_j",
                _fmt(self.transition_energy_j),
                "J",
                self.sources.get("costs.transition_energy_j", f"{derived}: C V^2"),
            )
        )
        return rows

    def _rows(self, prefix: str, cfg: ConfigBase) -> list[tuple[str, str, str, str]]:
        rows = []
        for f in dataclasses.fields(cfg):  # type: ignore[arg-type]
            name = f"{prefix}.{f.name}"
            value = getattr(cfg, f.name)
            if isinstance(value, ConfigBase):
                rows.extend(self._rows(name, value))
                continue
            src = self.sources.get(name, "default")
            rows.append((name, _fmt(value), f.metadata.get("unit", ""), src))
        return rows

    def describe_text(self) -> str:
        """:meth:`describe` as an aligned text table."""
        body = [r for r in self.describe() if r[0] not in ("name", "description")]
        rows = [("field", "value", "unit", "source"), *body]
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"chip {self.name!r}: {self.description}"]
        lines += [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:<{w[2]}}  {r[3]}".rstrip() for r in rows]
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "omitted"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


# -- presets ---------------------------------------------------------------------------------
def _preset_dir() -> Path:
    return Path(str(resources.files("hardware_models") / "presets"))


def list_presets() -> list[str]:
    """Names of the bundled presets, ``ideal`` first."""
    names = sorted(p.stem for p in _preset_dir().glob("*.toml"))
    return sorted(names, key=lambda n: (n != "ideal", n))


def preset_path(name: str) -> Path:
    """Path of a bundled preset file (raises :class:`ChipConfigError` if unknown)."""
    path = _preset_dir() / f"{name}.toml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise ChipConfigError(
            f"chip.preset: unknown preset {name!r}; available: {', '.join(list_presets())}"
        )
    return path


def toml_sources(text: str) -> dict[str, str]:
    """Map each ``key = value`` of a TOML text to its comment (same line, or the lines above).

    Keys are dotted with their table (``synapses.g_max_s``). Used to carry each constant's
    source from a preset file to :meth:`Chip.describe`.
    """
    out: dict[str, str] = {}
    table = ""
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            pending = []
            continue
        if line.startswith("#"):
            pending.append(line.lstrip("#").strip())
            continue
        if line.startswith("["):
            table = line.strip("[] ").split("#")[0].strip().strip("]")
            pending = []
            continue
        if "=" not in line:
            pending = []
            continue
        key = line.split("=", 1)[0].strip().strip('"')
        comment = _inline_comment(line)
        src = comment or " ".join(pending)
        if src:
            out[f"{table}.{key}" if table else key] = src
        pending = []
    return out


def _inline_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[i + 1 :].strip()
    return ""


def _load_toml(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        if path.stat().st_size > 1 << 20:  # a preset is a few kB of TOML
            raise ChipConfigError(f"chip file {str(path)!r} is larger than 1 MiB")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ChipConfigError(f"cannot read chip file {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ChipConfigError(
            f"chip file {str(path)!r} is not UTF-8 text (byte {e.start}: {e.reason})"
        ) from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:  # ValueError: a 4300-digit integer
        raise ChipConfigError(f"{path.name}: invalid TOML: {e}") from None
    return data, toml_sources(text)


def load_preset(name: str, overrides: Mapping[str, Any] | None = None) -> Chip:
    """Load a bundled preset by name (or a ``.toml`` file by path) and apply overrides."""
    if not isinstance(name, str):
        raise ChipConfigError(f"preset name must be a string, got {name!r}")
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ChipConfigError(f"chip file {name!r} not found")
    else:
        path = preset_path(name)
    data, sources = _load_toml(path)
    data.setdefault("name", path.stem)
    chip = Chip.from_dict(data, sources=sources)
    return chip.with_overrides(overrides)
