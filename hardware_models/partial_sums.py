"""Per-tile conversion: what the next layer reads when every tile converts its own outputs.

With ``chip.architecture.partial_sums = "digital"`` and ``tile_adc_reads = true`` (an option,
off in the presets, which charge the per-tile conversions but read exact products: with
thermal noise in the loop an output read through tile ADCs toggles between adjacent codes,
see docs/sources.md) a weight matrix
``W`` of shape ``(n_out, n_in)`` lies on tiles of ``tile_rows`` inputs x ``tile_cols`` outputs
(:mod:`hardware_models.architecture`). Each tile's column currents pass through an ADC before
the partial sums of the tiles that share an output are added digitally (exactly), so a read of
the layer is not ``a x W^T`` but::

    forward   y_o = sum_t Q( a * sum_{i in rows_t} x_i W[o, i] )     (row tiles t)
    backward  z_i = sum_t Q( a * sum_{o in cols_t} e_o W[o, i] )     (column tiles t)

with ``a`` the layer's scale and ``Q`` the chip's ADC (:meth:`ConverterConfig.adc`: clipped to
``[adc_low, adc_high]`` in activity units and rounded to its ``2^bits - 1`` levels). A matrix
that fits one tile is converted once per output; an untiled matrix (tile sizes omitted) is one
tile. Bound management (:class:`~hardware_models.converters.ConverterConfig`) acts on the
network's output ADC, not here: a tile ADC clips what leaves its range.

Shapes: ``x`` is ``(B, n_in)``, ``e`` is ``(B, n_out)``; values in activity units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_models.converters import ConverterConfig

__all__ = ["TileReads", "CLOCKED_ONLY"]

CLOCKED_ONLY = (
    "chip.architecture.tile_adc_reads reads products through the tiles' ADCs, which only "
    "[engine] kind = 'clocked' evaluates; use it, or set tile_adc_reads = false"
)


@dataclass(frozen=True)
class TileReads:
    """Matrix-vector products read through per-tile ADCs (module docstring).

    ``tile_rows`` / ``tile_cols``: inputs / outputs per tile (None: the whole matrix is one
    tile); ``converter``: the ADC (``adc_bits`` set; ideal converters need no tile reads).
    """

    tile_rows: int | None
    tile_cols: int | None
    converter: ConverterConfig

    def __post_init__(self) -> None:
        if self.converter.adc_bits is None:
            raise ValueError("TileReads needs an ADC: converters.adc_bits is omitted (ideal)")

    def _sum_of_converted(
        self, v: np.ndarray, M: np.ndarray, scale: float, block: int | None
    ) -> np.ndarray:
        """``sum_t Q(scale * v[:, t] @ M[t, :])`` over blocks of ``block`` rows of ``M``."""
        n = M.shape[0]
        step = n if block is None else block
        out = None
        for s in range(0, n, step):
            part = self.converter.adc(scale * (v[:, s : s + step] @ M[s : s + step]))
            out = part if out is None else out + part
        return out.astype(v.dtype, copy=False)

    def forward(self, x: np.ndarray, W: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The prediction read ``(B, n_out)``: per row tile, ``Q(scale * x_t @ W_t^T)``, summed."""
        return self._sum_of_converted(x, W.T, scale, self.tile_rows)

    def backward(self, e: np.ndarray, W: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The error read ``(B, n_in)``: per column tile, ``Q(scale * e_t @ W_t)``, summed."""
        return self._sum_of_converted(e, W, scale, self.tile_cols)
