"""A network placed on a chip: the state that engines integrate.

``Circuit`` owns what the substrate adds to the pure algorithm: per-unit rates (tau mismatch),
leaks, rails, error-unit gain/offset, noise amplitudes, how weights are read and written, and
the simulated time. With no chip (or the ``ideal`` chip) every hook is the identity, so a run
is bit for bit the pure algorithm. Time is in units of ``tau_x``; the chip converts to seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pcsim.field import UnitParams
from pcsim.network import Network


@dataclass
class Workspace:
    """Preallocated per-step buffers for one batch size (shapes as ``pcsim.field``)."""

    phis: tuple[np.ndarray, ...]
    eps: tuple[np.ndarray, ...]
    back: tuple[np.ndarray, ...]
    noise: tuple[np.ndarray, ...]
    grads_w: tuple[np.ndarray, ...]
    grads_b: tuple[np.ndarray, ...]

    @classmethod
    def allocate(cls, sizes: Sequence[int], batch: int, dtype: np.dtype) -> Workspace:
        L = len(sizes) - 1
        phis = tuple(
            np.empty((batch, sizes[i] if i > 0 else 1), dtype) for i in range(L)
        )  # phis[0] unused
        return cls(
            phis=phis,
            eps=tuple(np.empty((batch, sizes[i + 1]), dtype) for i in range(L)),
            back=tuple(np.empty((batch, sizes[i]), dtype) for i in range(L + 1)),
            noise=tuple(np.zeros((batch, n), dtype) for n in sizes),
            grads_w=tuple(np.empty((sizes[i + 1], sizes[i]), dtype) for i in range(L)),
            grads_b=tuple(np.empty(sizes[i + 1], dtype) for i in range(L)),
        )


@dataclass
class Circuit:
    """A network on a substrate. ``chip=None`` means the ideal substrate.

    Attributes set from the chip (per layer ``0..L``): ``tau_scale`` (tau_unit / tau_x),
    ``units`` (error gain/offset, leak), ``rails`` (low, high), ``thermal_sigma`` (noise
    amplitude in activity units per sqrt(tau)).
    """

    net: Network
    chip: object | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    t: float = 0.0
    tau_scale: list[np.ndarray] = field(init=False)
    units: UnitParams = field(init=False)
    rails: tuple[float, float] = (-math.inf, math.inf)
    thermal_sigma: list[np.ndarray] = field(init=False)
    _workspaces: dict[int, Workspace] = field(default_factory=dict, init=False, repr=False)
    _biases_or_dummy: tuple[np.ndarray, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sizes, dt = self.net.sizes, self.net.dtype
        self.tau_scale = [np.ones(n, dt) for n in sizes]
        self.units = UnitParams.ideal(sizes, dt)
        self.thermal_sigma = [np.zeros(n, dt) for n in sizes]
        self._biases_or_dummy = (
            tuple(self.net.biases)
            if self.net.biases is not None
            else tuple(np.zeros(n, dt) for n in sizes[1:])
        )

    # -- substrate hooks ------------------------------------------------------------------
    @property
    def ideal(self) -> bool:
        return self.chip is None

    def read_weights(self) -> tuple[np.ndarray, ...]:
        """The weight matrices a matrix-vector product sees now (ideal: the stored arrays)."""
        return tuple(self.net.weights)

    def apply_weight_update(
        self, deltas_w: Sequence[np.ndarray], deltas_b: Sequence[np.ndarray] | None
    ) -> None:
        """Write ``W += dW`` (and biases) through the substrate's update model."""
        for W, d in zip(self.net.weights, deltas_w, strict=True):
            W += d
        if deltas_b is not None and self.net.biases is not None:
            for b, d in zip(self.net.biases, deltas_b, strict=True):
                b += d

    def gammas(self, dt: float) -> tuple[np.ndarray, ...]:
        """Per-unit Euler rates ``dt / tau_unit`` (dt in units of tau_x)."""
        return tuple((dt / s).astype(self.net.dtype) for s in self.tau_scale)

    def biases(self) -> tuple[np.ndarray, ...]:
        return self._biases_or_dummy

    def workspace(self, batch: int) -> Workspace:
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = Workspace.allocate(self.net.sizes, batch, self.net.dtype)
            self._workspaces[batch] = ws
        return ws
