"""Validated configuration dataclasses: the one parameter framework of both packages.

Every section of a configuration (a chip part such as ``chip.synapses``, or a run section such
as ``engine``) is a small dataclass whose fields are declared with :func:`param`, which records
the physical unit, the check (the allowed values) and a one-line doc. Construction validates
every field and raises :class:`ConfigError` (for chip parts its subclass
:class:`ChipConfigError`) with ONE line naming the dotted field
(``chip.value_units.capacitance_f must be > 0, got -1e-15``), so a bad TOML file or override
never surfaces as a traceback from deep inside numpy. ``pcsim.config`` declares the run's
sections with the same machinery (``hardware_models`` never imports ``pcsim``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

__all__ = [
    "ChipConfigError",
    "ConfigBase",
    "ConfigError",
    "ListOf",
    "TableOf",
    "check_value",
    "describe_fields",
    "param",
]


# Largest spread a device parameter may have: a standard deviation relative to its scale
# (w_max, the activity unit, a gain of 1) or a lognormal sigma. Beyond it a "device" is noise
# alone, and lognormal draws leave the floating-point range.
MAX_STD = 10.0
MAX_SEED = 2**32 - 1  # seeds are 32-bit (scikit-learn's random_state, numpy's legacy seeding)
OR_NONE = "_or_none"  # a check name with this suffix also accepts None (omitted)
CHECKS = frozenset(  # the check names of param (its docstring says what each allows)
    ("real", "pos", "nonneg", "frac", "open_frac", "bits", "bool", "count", "nonneg_int")
    + ("seed", "ext", "pos_ext", "asym", "std", "str")
)


class ConfigError(ValueError):
    """An invalid configuration (a run's or a chip's); the message is one line naming the
    dotted field."""


class ChipConfigError(ConfigError):
    """An invalid chip description; the message is one line naming the dotted field."""


@dataclasses.dataclass(frozen=True)
class ListOf:
    """Check of a list whose items all pass ``item``; the value becomes a tuple.

    ``what`` completes the error "<field> must be <what>, got ..." (e.g. "a list of at least
    two layer sizes"); ``or_none`` also accepts None (omitted)."""

    item: Any
    what: str
    min_len: int = 1
    or_none: bool = False


@dataclasses.dataclass(frozen=True)
class TableOf:
    """Check of a table (dict) with the given keys, each with its own check; the value becomes
    a dict of the keys given (a key left out is not filled in). ``required`` keys must be
    present; ``what`` completes "<field> must be <what>, got ..."."""

    keys: tuple[tuple[str, Any], ...]
    what: str
    required: tuple[str, ...] = ()


def param(default: Any, unit: str = "", check: Any = "real", doc: str = "") -> Any:
    """Declare a validated dataclass field.

    ``check`` is one of ``real``, ``pos`` (> 0), ``nonneg`` (>= 0), ``frac`` ([0, 1]),
    ``open_frac`` ((0, 1)), ``bits`` (1..24 or None), ``bool``, ``count`` (an integer >= 1),
    ``nonneg_int`` (an integer >= 0), ``seed`` (0 .. 2**32 - 1), ``ext`` (any float, +-inf
    allowed), ``pos_ext`` (> 0, inf allowed), ``asym`` (-1 < v < 1), ``std`` (a spread:
    0 <= v <= MAX_STD), ``str``; any of these with the suffix ``_or_none`` (None allowed:
    omitted); a tuple of allowed strings; or a :class:`ListOf` / :class:`TableOf`.
    ``unit`` is the physical unit ("s", "F", "tau_x", ...; "" when dimensionless).
    """
    base = check[: -len(OR_NONE)] if isinstance(check, str) and check.endswith(OR_NONE) else check
    if isinstance(base, str) and base not in CHECKS:
        raise TypeError(f"unknown check {check!r}; known: {', '.join(sorted(CHECKS))}")
    return dataclasses.field(default=default, metadata={"unit": unit, "check": check, "doc": doc})


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_value(
    path: str, value: Any, check: Any, error: type[ConfigError] = ChipConfigError
) -> Any:
    """Validate ``value`` against ``check`` (see :func:`param`) and return it normalised (ints
    become floats for real-valued checks, lists become tuples); raise ``error`` naming
    ``path`` in one line."""
    if isinstance(check, ListOf):
        return _check_list(path, value, check, error)
    if isinstance(check, TableOf):
        return _check_table(path, value, check, error)
    if isinstance(check, tuple):
        if not isinstance(value, str) or value not in check:
            allowed = ", ".join(repr(c) for c in check)
            raise error(f"{path} must be one of {allowed}, got {value!r}")
        return value
    optional = check.endswith(OR_NONE)
    if optional:
        if value is None:
            return None
        check = check[: -len(OR_NONE)]
    omitted = " or omitted" if optional else ""
    if check == "str":
        if not isinstance(value, str):
            raise error(f"{path} must be a string{omitted}, got {value!r}")
        return value
    if check == "bool":
        if not isinstance(value, bool):
            raise error(f"{path} must be true or false{omitted}, got {value!r}")
        return value
    if check == "bits":
        if value is None:
            return None
        if not _is_int(value) or value < 1:
            raise error(f"{path} must be an integer >= 1 or omitted, got {value!r}")
        if value > 24:
            raise error(f"{path} must be <= 24 (use omitted for analog), got {value!r}")
        return int(value)
    if check == "count":
        if not _is_int(value) or value < 1:
            raise error(f"{path} must be a positive integer{omitted}, got {value!r}")
        return int(value)
    if check in ("nonneg_int", "seed"):
        if not _is_int(value) or value < 0:
            raise error(f"{path} must be a non-negative integer{omitted}, got {value!r}")
        if check == "seed" and value > MAX_SEED:
            raise error(f"{path} must be at most {MAX_SEED} (a 32-bit seed), got {value!r}")
        return int(value)
    if not _is_number(value):
        what = {"pos": "a number > 0", "nonneg": "a number >= 0"}.get(check, "a number")
        raise error(f"{path} must be {what}{omitted}, got {value!r}")
    v = float(value)
    if math.isnan(v):
        raise error(f"{path} must not be NaN")
    if check == "ext":
        return v
    if check == "pos_ext":
        if not v > 0:
            raise error(f"{path} must be > 0, got {value!r}")
        return v
    if math.isinf(v):
        raise error(f"{path} must be finite, got {value!r}")
    if check == "pos" and not v > 0:
        raise error(f"{path} must be > 0, got {value!r}")
    if check == "nonneg" and not v >= 0:
        raise error(f"{path} must be >= 0, got {value!r}")
    if check == "std" and not 0 <= v <= MAX_STD:
        raise error(f"{path} must be in [0, {MAX_STD:g}] (a spread), got {value!r}")
    if check == "frac" and not 0 <= v <= 1:
        raise error(f"{path} must be in [0, 1], got {value!r}")
    if check == "open_frac" and not 0 < v < 1:
        raise error(f"{path} must be between 0 and 1 (exclusive), got {value!r}")
    if check == "asym" and not -1 < v < 1:
        raise error(f"{path} must be in (-1, 1), got {value!r}")
    return v


def _check_list(path: str, value: Any, check: ListOf, error: type[ConfigError]) -> Any:
    if value is None and check.or_none:
        return None
    if not isinstance(value, list | tuple) or len(value) < check.min_len:
        raise error(f"{path} must be {check.what}, got {value!r}")
    return tuple(check_value(f"{path}[{i}]", x, check.item, error) for i, x in enumerate(value))


def _check_table(path: str, value: Any, check: TableOf, error: type[ConfigError]) -> dict:
    if not isinstance(value, Mapping):
        raise error(f"{path} must be {check.what}, got {value!r}")
    keys = dict(check.keys)
    for key in value:
        if key not in keys:
            raise unknown_key_error(path, str(key), list(keys), error)
    for key in check.required:
        if key not in value:
            raise error(f"{path}.{key} is missing")
    return {
        k: check_value(f"{path}.{k}", value[k], c, error) for k, c in keys.items() if k in value
    }


def unknown_key_error(
    path: str, key: str, known: list[str], error: type[ConfigError] = ChipConfigError
) -> ConfigError:
    """The one-line error for a key that is not a field, with a close match if there is one
    (``path`` is the table's dotted name; "" at the top level)."""
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(known)}"
    return error(f"unknown key {_join(path, key)}{hint}")


def _join(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


class ConfigBase:
    """Mixin for config dataclasses: validation, dict round trip, field metadata.

    Subclasses set ``_section`` to their dotted path (``chip.synapses``, ``engine``; "" at the
    top level) and ``_error`` to the error class they raise, and may override
    ``_cross_checks`` for constraints between fields.
    """

    _section: ClassVar[str] = "chip"
    _error: ClassVar[type[ConfigError]] = ChipConfigError

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is None:
                continue  # nested config (validated by its own __post_init__) or no check
            value = check_value(
                _join(self._section, f.name), getattr(self, f.name), check, self._error
            )
            object.__setattr__(self, f.name, value)
        self._cross_checks()

    def _cross_checks(self) -> None:
        """Constraints between fields (override)."""

    def _fail(self, name: str, message: str) -> None:
        raise self._error(f"{_join(self._section, name)} {message}")

    @classmethod
    def from_dict(cls, d: Any) -> Self:
        """Build from a (TOML) table, rejecting unknown keys and wrong types in one line."""
        if not isinstance(d, Mapping):
            raise cls._error(f"{cls._section or 'the configuration'} must be a table, got {d!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            f = known.get(key)
            if f is None:
                raise unknown_key_error(cls._section, str(key), list(known), cls._error)
            sub = _nested_type(f)
            kwargs[key] = sub.from_dict(value) if sub is not None else value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of every field (tuples as lists); ``None`` (omitted / ideal)
        values are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, ConfigBase):
                out[f.name] = v.to_dict()
            elif isinstance(v, tuple):
                out[f.name] = list(v)
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


def describe_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """``(dotted field, default, unit, doc)`` of every :func:`param` field of the dataclass
    ``cls`` (a ConfigBase, or the Chip: any with a ``_section``) and of its nested sections, in
    declaration order: the one field listing of both packages."""
    rows = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        sub = _nested_type(f)
        if sub is not None:
            rows.extend(describe_fields(sub))
        elif "check" in f.metadata:
            default = f.default if f.default is not dataclasses.MISSING else None
            shown = "omitted" if default is None else repr(default)
            shown = shown.lower() if isinstance(default, bool) else shown  # as TOML writes it
            name = _join(getattr(cls, "_section", ""), f.name)
            rows.append((name, shown, f.metadata.get("unit", ""), f.metadata.get("doc", "")))
    return rows


def _nested_type(f: dataclasses.Field) -> type[ConfigBase] | None:
    if "check" in f.metadata:
        return None
    factory = f.default_factory  # nested configs are declared with default_factory=Class
    if isinstance(factory, type) and issubclass(factory, ConfigBase):
        return factory
    return None
