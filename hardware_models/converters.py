"""DAC / ADC: uniform quantisation over a range, and energy and latency per conversion.

Quantiser (mid-tread, aihwkit's ``inp_res`` / ``out_res`` convention ``1 / (2^bits - 2)``): a
``bits``-bit converter over ``[lo, hi]`` has ``2^bits - 1`` levels ``c + k * step`` with centre
``c = (lo + hi) / 2`` and ``step = (hi - lo) / (2^bits - 2)``, so a symmetric range represents 0
exactly; values outside the range are clipped.

Energy: the Walden figure of merit ``FoM = P / (2^ENOB f_s)`` gives an energy per conversion of
``E = FoM * 2^bits`` (Walden, IEEE JSAC 1999; state of the art ~1-5 fJ per conversion step,
Murmann ADC survey; docs/sources.md). DACs are costed with the same formula.
Latency: a SAR ADC resolves one bit per cycle, ``(bits + 1) * t_cycle`` (NeuroSim's
``(log2 levels + 1)`` ns).

Noise and bound management (aihwkit's ``NoiseManagementType.ABS_MAX`` and
``BoundManagementType.ITERATIVE``), options of :class:`ConverterConfig`:

- ``input_management = "abs_max"``: each input vector is divided by its largest magnitude
  and multiplied by the DAC's full scale before conversion, and the result scaled back
  digitally, so a vector using a tenth of the range keeps the DAC's full resolution. Price: two
  digital multiplies per value (:meth:`ConverterConfig.convert_input`).
- ``bound_management = "iterative"``: a read whose outputs leave the ADC range is repeated
  with the input halved, ``k`` times until it fits (at most ``bound_management_max``), and the
  converted result multiplied by ``2^k``. Price: ``k + 1`` conversions of the vector and
  ``k + 1`` ADC latencies (:meth:`ConverterConfig.convert_output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hardware_models._config import ConfigBase, param

__all__ = ["ConverterConfig", "quantise", "conversion_energy_j"]


def quantise(
    x: np.ndarray, bits: int | None, lo: float, hi: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Clip ``x`` to ``[lo, hi]`` and round to the ``2^bits - 1`` mid-tread levels.

    ``bits=None`` is an ideal converter: returns ``x`` itself (no copy, ``out`` ignored).
    """
    if bits is None:
        return x
    if bits < 2:
        raise ValueError(f"converter bits must be >= 2, got {bits}")
    centre = 0.5 * (lo + hi)
    step = (hi - lo) / (2**bits - 2)
    out = np.subtract(x, centre, out=out)
    np.clip(out, lo - centre, hi - centre, out=out)
    out *= 1.0 / step
    np.rint(out, out=out)
    out *= step
    out += centre
    # rounding in the two lines above can land one ulp outside the range: clip again
    np.clip(out, lo, hi, out=out)
    return out


def conversion_energy_j(bits: int | None, fom_j: float) -> float:
    """Energy of one conversion, ``FoM * 2^bits`` (Walden 1999); 0 for an ideal converter."""
    return 0.0 if bits is None else fom_j * 2.0**bits


@dataclass(frozen=True)
class ConverterConfig(ConfigBase):
    """Input DAC and output ADC at the network's edges. Omitted bits = ideal.

    Conversions inside the network (per-tile ADCs with digital partial sums, their sharing
    between columns) are the chip's architecture:
    :class:`hardware_models.architecture.ArchitectureConfig`. (The former ``interlayer_bits``
    was never applied to the dynamics and is removed.)
    """

    _section: ClassVar[str] = "chip.converters"

    dac_bits: int | None = param(None, "bit", "bits", "input DAC resolution; omitted: ideal")
    dac_low: float = param(-1.0, "activity", "real", "input DAC range, low end")
    dac_high: float = param(1.0, "activity", "real", "input DAC range, high end")
    adc_bits: int | None = param(None, "bit", "bits", "output ADC resolution; omitted: ideal")
    adc_low: float = param(-1.0, "activity", "real", "output ADC range, low end")
    adc_high: float = param(1.0, "activity", "real", "output ADC range, high end")
    input_management: str = param(
        "none", "", ("none", "abs_max"), "abs_max: inputs scaled to the full DAC range (aihwkit)"
    )
    bound_management: str = param(
        "none", "", ("none", "iterative"), "iterative: clipped reads repeated at half input"
    )
    bound_management_max: int = param(10, "", "count", "most halvings of one read (iterative)")
    walden_fom_j: float = param(5e-15, "J/step", "nonneg", "energy per conversion step")
    sar_cycle_s: float = param(1e-9, "s", "nonneg", "SAR ADC time per bit cycle")

    def _cross_checks(self) -> None:
        for name in ("dac", "adc"):
            lo, hi = getattr(self, f"{name}_low"), getattr(self, f"{name}_high")
            if not lo < hi:
                self._fail(f"{name}_low", f"must be < {name}_high ({hi!r}), got {lo!r}")
            bits = getattr(self, f"{name}_bits")
            if bits is not None and bits < 2:
                self._fail(f"{name}_bits", f"must be an integer >= 2 or omitted, got {bits!r}")

    @property
    def is_ideal(self) -> bool:
        return self.dac_bits is None and self.adc_bits is None

    def dac(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Input conversion (identity when ``dac_bits`` is omitted)."""
        return quantise(x, self.dac_bits, self.dac_low, self.dac_high, out)

    def adc(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Output conversion (identity when ``adc_bits`` is omitted)."""
        return quantise(x, self.adc_bits, self.adc_low, self.adc_high, out)

    def convert_input(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """DAC conversion with input management: ``(values, digital multiplies)``.

        Vectors are the last axis of ``x``. ``abs_max``: ``y = Q(x * c / m) * m / c`` with
        ``m = max |x|`` per vector and ``c = min(|dac_low|, |dac_high|)`` the full scale.
        """
        if self.input_management == "none" or self.dac_bits is None:
            return self.dac(x), 0
        full = min(abs(self.dac_low), abs(self.dac_high))
        m = np.max(np.abs(x), axis=-1, keepdims=True)
        scale = np.where(m > 0, full / np.where(m > 0, m, 1.0), 1.0).astype(x.dtype)
        y = self.dac(x * scale) / scale
        return y.astype(x.dtype, copy=False), 2 * x.size

    def convert_output(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        """ADC conversion with bound management: ``(values, conversions, most repeats)``.

        ``iterative``: per vector (last axis) the smallest ``k`` with ``x / 2^k`` inside
        ``[adc_low, adc_high]`` (capped at ``bound_management_max``); ``y = 2^k Q(x / 2^k)``;
        the vector is converted ``k + 1`` times. The third value is the largest ``k`` (the
        extra ADC latencies of this read).
        """
        if self.bound_management == "none" or self.adc_bits is None:
            return self.adc(x), x.size, 0
        with np.errstate(divide="ignore", invalid="ignore"):
            over = np.maximum(
                np.where(x > 0, x / self.adc_high, 0.0) if self.adc_high > 0 else 0.0,
                np.where(x < 0, x / self.adc_low, 0.0) if self.adc_low < 0 else 0.0,
            )
        ratio = np.max(over, axis=-1, keepdims=True) if x.ndim else over
        k = np.ceil(np.log2(np.maximum(ratio, 1.0)))
        k = np.minimum(k, self.bound_management_max)
        f = (2.0**k).astype(x.dtype)
        y = self.adc(x / f) * f
        n_per_vector = x.shape[-1] if x.ndim else 1
        conversions = int(((k + 1) * n_per_vector).sum())
        return y.astype(x.dtype, copy=False), conversions, int(k.max())

    @property
    def dac_energy_j(self) -> float:
        return conversion_energy_j(self.dac_bits, self.walden_fom_j)

    @property
    def adc_energy_j(self) -> float:
        return conversion_energy_j(self.adc_bits, self.walden_fom_j)

    @property
    def adc_latency_s(self) -> float:
        """SAR conversion time ``(bits + 1) * sar_cycle_s`` (NeuroSim); 0 when ideal."""
        return 0.0 if self.adc_bits is None else (self.adc_bits + 1) * self.sar_cycle_s
