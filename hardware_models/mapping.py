"""Mapping options a designer expects: several device pairs per weight, per-column remapping.

Both wrap the devices of one weight matrix (:class:`hardware_models.synapses.Crossbar`, shape
``(n_out, n_in)``; row ``o`` of ``W`` is the column read for output ``o``):

- ``architecture.device_pairs = n``: every weight is held by ``n`` differential pairs, each
  programmed to the weight and written with the same requested change, whose column currents
  add; the periphery divides by ``n``. Every device draws its own programming noise, read
  noise, drift exponent, stuck state and update noise, so independent errors average:
  their standard deviation falls as ``1 / sqrt(n)``. The price: ``n`` times the cells (area),
  the read energy and the write pulses.
- ``architecture.column_remap = true``: each output's column is programmed at a gain
  ``s_o = P / max_i |W[o, i]|`` (``P`` the largest weight of the matrix; ``s_o = 1`` for an
  all-zero column), so every column uses the full conductance range; reads are divided by
  ``s_o`` digitally after the ADC (forward) and the errors multiplied by ``1 / s_o`` before
  the DAC (backward), and requested changes are multiplied by ``s_o`` before the write. Errors
  that are a fixed fraction of the conductance range (levels, programming noise) shrink by
  ``1 / s_o`` in weight units. The price: one digital multiply per output and read direction
  (charged per read by :class:`pcsim.circuit.Circuit`). The gains are fixed when the matrix is
  programmed. Read noise enters the engines in the output domain with one standard deviation
  per layer: there it is the unscaled one (the column with the largest weights), so remapping's
  read-noise gain on the other columns is not credited (conservative).

Checkpoints and ngspice export handle plain crossbars only; they refuse a mapped one.
"""

from __future__ import annotations

import math

import numpy as np

from hardware_models.synapses import Crossbar

__all__ = ["MappedCrossbar"]


class MappedCrossbar:
    """``len(pairs)`` crossbars holding one matrix, with optional per-column gains.

    Offers what :class:`pcsim.circuit.Circuit` uses of a crossbar: ``program``, ``update``,
    ``read``, ``read_mean``, ``read_sigma``, ``weights`` (the represented matrix, kept in one
    array updated in place), ``w_max``, ``config``, ``is_ideal``, ``shape``, ``dtype``.
    """

    def __init__(self, pairs: list[Crossbar], column_remap: bool = False) -> None:
        if not pairs:
            raise ValueError("a mapped crossbar needs at least one device pair")
        self.pairs = pairs
        self.column_remap = bool(column_remap)
        first = pairs[0]
        self.config = first.config
        self.shape = first.shape
        self.dtype = first.dtype
        self.ir_drop = first.ir_drop
        self.scale = np.ones((self.shape[0], 1))  # s_o, one per output column
        self._w = np.zeros(self.shape, self.dtype)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def is_ideal(self) -> bool:
        return self.config.is_ideal

    @property
    def w_max(self) -> float:
        return self.pairs[0].w_max

    @property
    def weights(self) -> np.ndarray:
        """The matrix the devices represent: the mean of the pairs over ``s_o`` (no noise)."""
        return self._w

    def _combine(self, parts: list[np.ndarray], out: np.ndarray | None) -> np.ndarray:
        if out is None:
            out = np.empty(self.shape, self.dtype)
        np.copyto(out, parts[0])
        for p in parts[1:]:
            out += p
        out *= (1.0 / (self.n_pairs * self.scale)).astype(self.dtype)
        return out

    def _refresh(self) -> None:
        self._combine([p.weights for p in self.pairs], self._w)

    def program(
        self,
        W_target: np.ndarray,
        rng: np.random.Generator | None = None,
        t_s: float = 0.0,
        copy: bool = True,
    ) -> None:
        """Program every pair to ``s_o W[o, :]`` (``s_o = 1`` without remapping)."""
        W = np.asarray(W_target, dtype=np.float64)
        if W.shape != self.shape:
            raise ValueError(f"W_target has shape {W.shape}, crossbar is {self.shape}")
        if self.column_remap:
            row = np.max(np.abs(W), axis=1, keepdims=True)
            peak = float(row.max()) if row.size else 0.0
            self.scale = np.where(row > 0, peak / np.where(row > 0, row, 1.0), 1.0)
        for p in self.pairs:
            p.program(W * self.scale, rng, t_s)
        self._refresh()

    def update(
        self, dW: np.ndarray, rng: np.random.Generator | None = None, t_s: float | None = None
    ) -> int:
        """Write ``s_o dW`` into every pair; returns the pulses fired by all of them."""
        scaled = np.asarray(dW) * self.scale.astype(self.dtype)
        fired = sum(p.update(scaled, rng, t_s) for p in self.pairs)
        self._refresh()
        return fired

    def read_mean(self, t_s: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
        return self._combine([p.read_mean(t_s) for p in self.pairs], out)

    def read(
        self,
        t_s: float = 0.0,
        rng: np.random.Generator | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        return self._combine([p.read(t_s, rng) for p in self.pairs], out)

    @property
    def read_sigma(self) -> float:
        """Read-noise std of the averaged read in weight units: ``sigma / sqrt(n)`` (the
        unscaled column's; see the module docstring on remapping)."""
        return self.pairs[0].read_sigma / math.sqrt(self.n_pairs)
