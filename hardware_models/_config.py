"""Validated frozen configuration dataclasses: the shared machinery of every chip part.

Each chip part (synapses, value units, ...) is a small frozen dataclass whose fields are declared
with :func:`param`, which records the physical unit, the allowed values and a one-line doc.
Construction validates every field and raises :class:`ChipConfigError` with ONE line naming the
dotted field (``chip.value_units.capacitance_f must be > 0, got -1e-15``), so a bad TOML file or
override never surfaces as a traceback from deep inside numpy.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

__all__ = ["ChipConfigError", "ConfigBase", "param", "check_value"]


# Largest spread a device parameter may have: a standard deviation relative to its scale
# (w_max, the activity unit, a gain of 1) or a lognormal sigma. Beyond it a "device" is noise
# alone, and lognormal draws leave the floating-point range.
MAX_STD = 10.0


class ChipConfigError(ValueError):
    """An invalid chip description; the message is one line naming the dotted field."""


def param(default: Any, unit: str = "", check: Any = "real", doc: str = "") -> Any:
    """Declare a validated dataclass field.

    ``check`` is one of ``real``, ``pos``, ``nonneg``, ``frac``, ``pos_or_none``, ``bits``,
    ``bool``, ``count`` (an integer >= 1), ``count_or_none``, ``ext`` (any float, +-inf
    allowed), ``pos_ext`` (> 0, inf allowed), ``asym``
    (-1 < v < 1), ``std`` (a spread: 0 <= v <= MAX_STD), ``str``, or a tuple of allowed
    strings.
    """
    return dataclasses.field(default=default, metadata={"unit": unit, "check": check, "doc": doc})


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_value(path: str, value: Any, check: Any) -> Any:
    """Validate ``value`` against ``check`` and return it normalised (ints become floats)."""
    if isinstance(check, tuple):
        if not isinstance(value, str) or value not in check:
            allowed = ", ".join(repr(c) for c in check)
            raise ChipConfigError(f"{path} must be one of {allowed}, got {value!r}")
        return value
    if check == "str":
        if not isinstance(value, str):
            raise ChipConfigError(f"{path} must be a string, got {value!r}")
        return value
    if check == "bool":
        if not isinstance(value, bool):
            raise ChipConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if check == "bits":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ChipConfigError(f"{path} must be an integer >= 1 or omitted, got {value!r}")
        if value > 24:
            raise ChipConfigError(f"{path} must be <= 24 (use omitted for analog), got {value!r}")
        return int(value)
    if check in ("count", "count_or_none"):
        if value is None and check == "count_or_none":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            what = "an integer >= 1" + (" or omitted" if check == "count_or_none" else "")
            raise ChipConfigError(f"{path} must be {what}, got {value!r}")
        return int(value)
    if check == "pos_or_none" and value is None:
        return None
    if not _is_number(value):
        what = "a number > 0 or omitted" if check == "pos_or_none" else "a number"
        raise ChipConfigError(f"{path} must be {what}, got {value!r}")
    v = float(value)
    if math.isnan(v):
        raise ChipConfigError(f"{path} must not be NaN")
    if check == "ext":
        return v
    if check == "pos_ext":
        if not v > 0:
            raise ChipConfigError(f"{path} must be > 0, got {value!r}")
        return v
    if math.isinf(v):
        raise ChipConfigError(f"{path} must be finite, got {value!r}")
    if check in ("pos", "pos_or_none") and not v > 0:
        raise ChipConfigError(f"{path} must be > 0, got {value!r}")
    if check == "nonneg" and not v >= 0:
        raise ChipConfigError(f"{path} must be >= 0, got {value!r}")
    if check == "std" and not 0 <= v <= MAX_STD:
        raise ChipConfigError(f"{path} must be in [0, {MAX_STD:g}] (a spread), got {value!r}")
    if check == "frac" and not 0 <= v <= 1:
        raise ChipConfigError(f"{path} must be in [0, 1], got {value!r}")
    if check == "asym" and not -1 < v < 1:
        raise ChipConfigError(f"{path} must be in (-1, 1), got {value!r}")
    return v


def unknown_key_error(path: str, key: str, known: list[str]) -> ChipConfigError:
    """The one-line error for a key that is not a field, with a close match if there is one."""
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(known)}"
    return ChipConfigError(f"unknown key {path}.{key}{hint}")


class ConfigBase:
    """Mixin for frozen config dataclasses: validation, dict round trip, field metadata.

    Subclasses set ``_section`` to their dotted path in the chip (``chip.synapses``) and may
    override ``_cross_checks`` for constraints between fields.
    """

    _section: ClassVar[str] = "chip"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is None:
                continue  # nested config: validated by its own __post_init__
            value = check_value(f"{self._section}.{f.name}", getattr(self, f.name), check)
            object.__setattr__(self, f.name, value)
        self._cross_checks()

    def _cross_checks(self) -> None:
        """Constraints between fields (override)."""

    def _fail(self, name: str, message: str) -> None:
        raise ChipConfigError(f"{self._section}.{name} {message}")

    @classmethod
    def from_dict(cls, d: Any) -> Self:
        """Build from a (TOML) table, rejecting unknown keys and wrong types in one line."""
        if not isinstance(d, Mapping):
            raise ChipConfigError(f"{cls._section} must be a table, got {d!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            f = known.get(key)
            if f is None:
                raise unknown_key_error(cls._section, str(key), list(known))
            sub = _nested_type(f)
            kwargs[key] = sub.from_dict(value) if sub is not None else value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of every field; ``None`` (omitted / ideal) values are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, ConfigBase):
                out[f.name] = v.to_dict()
            elif v is not None:
                out[f.name] = v
        return out

    @classmethod
    def field_info(cls) -> dict[str, dict[str, Any]]:
        """``{name: {"unit", "doc", "check"}}`` for every leaf field."""
        return {
            f.name: dict(f.metadata)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if "check" in f.metadata
        }


def _nested_type(f: dataclasses.Field) -> type[ConfigBase] | None:
    if "check" in f.metadata:
        return None
    factory = f.default_factory  # nested configs are declared with default_factory=Class
    if isinstance(factory, type) and issubclass(factory, ConfigBase):
        return factory
    return None
