"""DAC / ADC: uniform quantisation over a range, and energy and latency per conversion.

Quantiser (mid-tread, aihwkit's ``inp_res`` / ``out_res`` convention ``1 / (2^bits - 2)``): a
``bits``-bit converter over ``[lo, hi]`` has ``2^bits - 1`` levels ``c + k * step`` with centre
``c = (lo + hi) / 2`` and ``step = (hi - lo) / (2^bits - 2)``, so a symmetric range represents 0
exactly; values outside the range are clipped.

Energy: the Walden figure of merit ``FoM = P / (2^ENOB f_s)`` gives an energy per conversion of
``E = FoM * 2^bits`` (Walden, IEEE JSAC 1999; state of the art ~1-5 fJ per conversion step,
Murmann ADC survey, REFERENCE_NUMBERS.md). DACs are costed with the same formula.
Latency: a SAR ADC resolves one bit per cycle, ``(bits + 1) * t_cycle`` (NeuroSim's
``(log2 levels + 1)`` ns).
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
