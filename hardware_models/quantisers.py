"""Uniform weight levels read from full-precision stored weights.

A read circuit that digitises each stored weight to ``bits`` bits sign-magnitude over
``[-w_max, w_max]`` presents the levels ``k * delta``, ``delta = w_max / k_max``,
``|k| <= k_max = 2^(bits-1) - 1``: the ``2^bits - 1`` mid-tread levels of a ``bits``-bit
crossbar (:class:`hardware_models.synapses.SynapseConfig`, ``bits``) and of a symmetric
converter (:func:`hardware_models.converters.quantise`). Unlike a crossbar, which quantises when
it is programmed, a :class:`UniformQuantiser` quantises every read and leaves the stored value
at full precision (writes accumulate below one level). Rounding is half up,
``floor(w / delta + 1/2)``, a formula every simulator's expression language has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["UniformQuantiser"]


@dataclass(frozen=True)
class UniformQuantiser:
    """Uniform weight levels: ``bits`` bits sign-magnitude over ``[-w_max, w_max]``.

    ``read(w) = clip(floor(w / delta + 1/2), -k_max, k_max) * delta`` (weight units)."""

    bits: int
    w_max: float

    def __post_init__(self) -> None:
        if int(self.bits) < 2:
            raise ValueError(f"quantiser bits must be >= 2, got {self.bits}")
        if not (self.w_max > 0 and math.isfinite(self.w_max)):
            raise ValueError(f"quantiser w_max must be > 0, got {self.w_max}")

    @property
    def k_max(self) -> int:
        """Levels on each side of zero, ``2^(bits-1) - 1``."""
        return 2 ** (int(self.bits) - 1) - 1

    @property
    def delta(self) -> float:
        """The level spacing (one LSB), ``w_max / k_max``."""
        return float(self.w_max) / self.k_max

    def read(self, w: np.ndarray) -> np.ndarray:
        """The levels the read circuit presents for stored weights ``w`` (any shape)."""
        k = float(self.k_max)
        return np.clip(np.floor(w / self.delta + 0.5), -k, k) * self.delta
