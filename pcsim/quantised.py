"""A circuit whose crossbars present quantised reads of full-precision stored weights.

:class:`QuantisedCircuit` is a :class:`~pcsim.circuit.Circuit` (the ideal substrate otherwise)
whose matrix-vector products read ``quantiser.read(W)``
(:class:`hardware_models.quantisers.UniformQuantiser`) while learning writes the stored ``W``
at full precision. Every engine reads weights through ``Circuit.read_weights``, so every engine
sees the same levels; the Brian2 engine translates the same function into its equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_models.quantisers import UniformQuantiser
from pcsim.circuit import Circuit

__all__ = ["QuantisedCircuit", "UniformQuantiser"]


@dataclass
class QuantisedCircuit(Circuit):
    """A circuit whose MACs read ``quantiser.read(W)`` of the stored weights (writes stay at
    full precision); ``quantiser=None`` reads the stored weights as they are."""

    quantiser: UniformQuantiser | None = None

    def read_weights(self) -> tuple[np.ndarray, ...]:
        if self.quantiser is None:
            return tuple(self.net.weights)
        return tuple(np.ascontiguousarray(self.quantiser.read(W)) for W in self.net.weights)
