"""Value and error unit circuits: integrators with a time constant, leak, rails and noise.

A value unit is a capacitor ``C`` charged by its input current through a transconductance
``g`` (an OTA-C / RC integrator), so its time constant is ``tau = C / g``. In activity units
(activity 1.0 = ``signal_scale_v`` volts) a unit with tau mismatch ``s_i`` and leak ``l`` obeys::

    s_i * tau * dx_i/dt = drive_i(x) - leak * x_i  (+ thermal noise)

Thermal (kT/C) noise: the stationary voltage variance of any RC node is ``kT / C`` whatever
``g`` (Johnson-Nyquist noise filtered by the node; e.g. Sarpeshkar et al. 1993, "White noise in
MOS transistors and resistors", IEEE Circuits Devices Mag.). The Euler-Maruyama increment
``x += -x dt/tau + sigma sqrt(dt/tau) N(0,1)`` has stationary variance ``sigma^2 / 2``, hence
``sigma^2 = 2 kT / (C V^2)`` in activity units (:func:`thermal_noise_sigma`).

An error unit is a difference amplifier ``eps = gain_i * (x - mu) + offset_i + noise``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hardware_models._config import ConfigBase, param

__all__ = [
    "BOLTZMANN_J_PER_K",
    "ValueUnitConfig",
    "ErrorUnitConfig",
    "UnitArray",
    "thermal_noise_sigma",
    "kt_over_c_v2",
]

BOLTZMANN_J_PER_K = 1.380649e-23  # exact in the 2019 SI (CODATA); kT(300 K) = 4.14e-21 J


def kt_over_c_v2(capacitance_f: float, temperature_k: float = 300.0) -> float:
    """Thermal noise variance of a capacitive node, ``kT / C``, in volts^2."""
    return BOLTZMANN_J_PER_K * temperature_k / capacitance_f


def thermal_noise_sigma(
    capacitance_f: float, temperature_k: float = 300.0, signal_scale_v: float = 1.0
) -> float:
    """Euler-Maruyama noise amplitude (activity units per sqrt(tau)) giving kT/C at rest.

    ``sigma = sqrt(2 kT / C) / V``: with ``dx = -x dt/tau + sigma sqrt(dt/tau) N(0,1)`` the
    stationary variance ``sigma^2/2`` equals ``kT / C / V^2``.
    """
    return math.sqrt(2.0 * kt_over_c_v2(capacitance_f, temperature_k)) / signal_scale_v


@dataclass(frozen=True)
class ValueUnitConfig(ConfigBase):
    """Integrating value unit. Defaults: ideal unit with tau = 1 pF / 10 uS = 100 ns."""

    _section: ClassVar[str] = "chip.value_units"

    capacitance_f: float = param(1e-12, "F", "pos", "integration capacitance C")
    conductance_s: float = param(1e-5, "S", "pos", "integrator transconductance g; tau = C/g")
    tau_mismatch_std: float = param(
        0.0, "", "std", "lognormal sigma of the per-unit tau scale (median 1)"
    )
    leak: float = param(0.0, "1/tau", "nonneg", "leak conductance as a fraction of g")
    rail_low: float = param(-math.inf, "activity", "ext", "lower output rail (saturation)")
    rail_high: float = param(math.inf, "activity", "ext", "upper output rail (saturation)")
    thermal_noise: bool = param(False, "", "bool", "add kT/C noise to the integrators")
    temperature_k: float = param(300.0, "K", "pos", "temperature for kT/C")
    signal_scale_v: float = param(1.0, "V", "pos", "voltage that represents activity 1.0")

    def _cross_checks(self) -> None:
        if not self.rail_low < self.rail_high:
            self._fail(
                "rail_low", f"must be < rail_high ({self.rail_high!r}), got {self.rail_low!r}"
            )

    @property
    def tau_s(self) -> float:
        """Time constant ``tau = C / g`` in seconds."""
        return self.capacitance_f / self.conductance_s

    @property
    def thermal_sigma(self) -> float:
        """Noise amplitude in activity units per sqrt(tau); 0 when thermal noise is off."""
        if not self.thermal_noise:
            return 0.0
        return thermal_noise_sigma(self.capacitance_f, self.temperature_k, self.signal_scale_v)

    @property
    def is_ideal(self) -> bool:
        return (
            self.tau_mismatch_std == 0
            and self.leak == 0
            and self.rail_low == -math.inf
            and self.rail_high == math.inf
            and not self.thermal_noise
        )


@dataclass(frozen=True)
class ErrorUnitConfig(ConfigBase):
    """Difference amplifier ``eps = gain * (x - mu) + offset + noise`` (activity units)."""

    _section: ClassVar[str] = "chip.error_units"

    offset_std: float = param(0.0, "activity", "std", "static per-unit offset std")
    gain_error_std: float = param(0.0, "", "std", "per-unit gain = 1 + N(0, std)")
    noise_std: float = param(
        0.0, "activity", "std", "white noise std added to each error evaluation"
    )

    @property
    def is_ideal(self) -> bool:
        return self.offset_std == 0 and self.gain_error_std == 0 and self.noise_std == 0


@dataclass(frozen=True)
class UnitArray:
    """Per-unit parameters of one layer of ``n`` value units and their error units.

    ``tau_scale`` multiplies tau (``tau_i = tau_scale_i * tau``), ``leak`` is per tau,
    ``error_gain`` / ``error_offset`` are the difference-amplifier gains and offsets,
    ``thermal_sigma`` the per-unit noise amplitude (activity units per sqrt(tau)).
    """

    tau_scale: np.ndarray
    leak: np.ndarray
    error_gain: np.ndarray
    error_offset: np.ndarray
    thermal_sigma: np.ndarray
    error_noise_std: float
    rail_low: float
    rail_high: float

    @classmethod
    def build(
        cls,
        value_units: ValueUnitConfig,
        error_units: ErrorUnitConfig,
        n: int,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float64,
    ) -> UnitArray:
        """Draw the per-unit mismatch of ``n`` units (ideal configs draw nothing)."""
        needs_rng = value_units.tau_mismatch_std > 0 or (
            error_units.offset_std > 0 or error_units.gain_error_std > 0
        )
        if needs_rng and rng is None:
            raise ValueError("units with mismatch need a numpy Generator")
        if value_units.tau_mismatch_std > 0:
            # lognormal: ln(tau_i / tau) ~ N(0, sigma^2) (mismatch of C and g, Pelgrom 1989)
            tau_scale = np.exp(value_units.tau_mismatch_std * rng.standard_normal(n))
        else:
            tau_scale = np.ones(n)
        if error_units.gain_error_std > 0:
            gain = 1.0 + error_units.gain_error_std * rng.standard_normal(n)
        else:
            gain = np.ones(n)
        if error_units.offset_std > 0:
            offset = error_units.offset_std * rng.standard_normal(n)
        else:
            offset = np.zeros(n)
        return cls(
            tau_scale=tau_scale.astype(dtype),
            leak=np.full(n, value_units.leak, dtype),
            error_gain=gain.astype(dtype),
            error_offset=offset.astype(dtype),
            thermal_sigma=np.full(n, value_units.thermal_sigma, dtype),
            error_noise_std=error_units.noise_std,
            rail_low=value_units.rail_low,
            rail_high=value_units.rail_high,
        )
