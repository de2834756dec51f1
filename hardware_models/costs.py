"""Energy and latency: per-event constants, an energy ledger, and the digital baseline.

Every event the engine reports is charged here: crossbar reads per multiply-accumulate (MAC),
update pulses, converter conversions, unit transitions (``C V^2``), and the static power of
every biased circuit times the simulated seconds. :func:`digital_baseline` prices training the
same MLP by backprop on one configurable digital accelerator (``[costs.baseline]``, FP32 at
45 nm by default); runs compare against :mod:`hardware_models.baselines` instead (FP32, FP16
and INT8 at the chip's node and at 45 nm, with SRAM/DRAM traffic and a roofline latency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hardware_models._config import ConfigBase, param

__all__ = [
    "CostConfig",
    "DigitalConfig",
    "DigitalCost",
    "EnergyLedger",
    "digital_baseline",
    "static_energy",
    "read_energy",
    "settling_latency",
    "rc_settling_time_s",
    "READ",
    "WRITE",
    "STATIC",
    "DYNAMIC",
    "CONVERT",
]

# Ledger component names used across pcsim.
READ = "crossbar_read"
WRITE = "crossbar_write"
STATIC = "static"
DYNAMIC = "unit_dynamic"
CONVERT = "converters"

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm 0.9 V.
HOROWITZ_FP32_MULT_J = 3.7e-12
HOROWITZ_FP32_ADD_J = 0.9e-12
HOROWITZ_SRAM_64B_J = 10e-12  # 64-bit read from an 8 kB SRAM
HOROWITZ_DRAM_64B_J = 1.3e-9  # DRAM access, low end of 1.3-2.6 nJ
# NVIDIA A100 datasheet: 19.5 TFLOP/s FP32 (non-tensor-core) peak.
A100_FP32_FLOPS = 19.5e12


@dataclass(frozen=True)
class DigitalConfig(ConfigBase):
    """Digital FP32 accelerator constants for :func:`digital_baseline` (Horowitz 2014, 45 nm);
    ``pcsim run`` reports :mod:`hardware_models.baselines` instead."""

    _section: ClassVar[str] = "chip.costs.baseline"

    mult_energy_j: float = param(HOROWITZ_FP32_MULT_J, "J", "nonneg", "FP32 multiply")
    add_energy_j: float = param(HOROWITZ_FP32_ADD_J, "J", "nonneg", "FP32 add")
    memory_energy_per_access_j: float = param(
        HOROWITZ_SRAM_64B_J, "J", "nonneg", "one weight-memory access (SRAM; DRAM ~1.3-2.6 nJ)"
    )
    access_bytes: float = param(8.0, "B", "pos", "bytes per memory access (64-bit)")
    word_bytes: float = param(4.0, "B", "pos", "bytes per weight (FP32)")
    throughput_flops: float = param(A100_FP32_FLOPS, "FLOP/s", "pos", "sustained throughput")


@dataclass(frozen=True)
class CostConfig(ConfigBase):
    """Energy per event and static power of the modelled chip (defaults: free)."""

    _section: ClassVar[str] = "chip.costs"

    read_energy_per_mac_j: float = param(0.0, "J", "nonneg", "crossbar read per MAC")
    write_energy_per_pulse_j: float = param(0.0, "J", "nonneg", "one update pulse / cell write")
    static_power_per_unit_w: float = param(0.0, "W", "nonneg", "bias power of one unit circuit")
    transition_energy_j: float | None = param(
        None, "J", "pos_or_none", "one unit update; omitted: C V^2 from the value units"
    )
    baseline: DigitalConfig = field(default_factory=DigitalConfig)

    def read_energy_j(self, n_macs: float) -> float:
        return read_energy(n_macs, self.read_energy_per_mac_j)

    def write_energy_j(self, n_pulses: float) -> float:
        return n_pulses * self.write_energy_per_pulse_j

    def static_energy_j(self, n_units: float, seconds: float) -> float:
        return static_energy(n_units * self.static_power_per_unit_w, seconds)


def static_energy(power_w: float, seconds: float) -> float:
    """``E = P t`` (joules)."""
    return power_w * seconds


def read_energy(n_macs: float, energy_per_mac_j: float) -> float:
    """``E = n_MAC * E_MAC`` (joules)."""
    return n_macs * energy_per_mac_j


def settling_latency(t_tau: float, tau_s: float) -> float:
    """Seconds taken by a settle of ``t_tau`` time constants on a chip with ``tau_s``."""
    return t_tau * tau_s


def rc_settling_time_s(tau_s: float, bits: int) -> float:
    """Time for an RC node to settle to within 1/2 LSB of ``bits``: ``(bits + 1) ln2 tau``."""
    return (bits + 1) * math.log(2.0) * tau_s


class EnergyLedger:
    """Accumulates joules per component, event counts, and simulated seconds."""

    def __init__(self) -> None:
        self._energy: dict[str, float] = {}
        self._counts: dict[str, float] = {}
        self.time_s: float = 0.0

    def charge(self, component: str, joules: float, count: float = 0) -> None:
        """Add ``joules`` (and optionally ``count`` events) to ``component``."""
        self._energy[component] = self._energy.get(component, 0.0) + float(joules)
        if count:
            self._counts[component] = self._counts.get(component, 0) + count

    def add_time(self, seconds: float) -> None:
        self.time_s += float(seconds)

    def by_component(self) -> dict[str, float]:
        return dict(self._energy)

    def counts(self) -> dict[str, float]:
        return dict(self._counts)

    def total(self) -> float:
        return math.fsum(self._energy.values())

    def merge(self, other: EnergyLedger) -> None:
        """Add another ledger's energies, counts and time into this one."""
        for k, v in other._energy.items():
            self.charge(k, v)
        for k, v in other._counts.items():
            self._counts[k] = self._counts.get(k, 0) + v
        self.time_s += other.time_s

    def reset(self) -> None:
        self._energy.clear()
        self._counts.clear()
        self.time_s = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"energy_j": dict(self._energy), "counts": dict(self._counts), "time_s": self.time_s}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnergyLedger:
        led = cls()
        led._energy = {str(k): float(v) for k, v in d.get("energy_j", {}).items()}
        led._counts = dict(d.get("counts", {}))
        led.time_s = float(d.get("time_s", 0.0))
        return led

    def __repr__(self) -> str:
        return f"EnergyLedger(total={self.total():.3e} J, time={self.time_s:.3e} s)"


@dataclass(frozen=True)
class DigitalCost:
    """Energy and latency of an MLP trained by backprop on a digital FP32 accelerator."""

    train_energy_per_sample_j: float
    inference_energy_per_sample_j: float
    train_latency_per_sample_s: float
    inference_latency_per_sample_s: float
    flops_train_per_sample: float
    flops_inference_per_sample: float
    memory_accesses_train_per_sample: float
    memory_accesses_inference_per_sample: float
    train_energy_total_j: float
    train_latency_total_s: float


def digital_baseline(
    layer_sizes: Sequence[int],
    batch_size: int = 1,
    n_samples: int = 1,
    config: DigitalConfig | None = None,
) -> DigitalCost:
    """Price backprop training and inference of an MLP ``layer_sizes`` on a digital chip.

    FLOPs per layer with ``P = n_in * n_out`` weights (a MAC = 1 multiply + 1 add):
    forward ``2P`` per sample; backward data gradient ``2P`` per sample except the first layer;
    weight gradient ``2P`` per sample; SGD update ``2P`` per batch (``W -= lr * G``). Half of
    every count is multiplies (``mult_energy_j``), half adds (``add_energy_j``). Memory: the
    weights are streamed once per batch for the forward pass, once for the backward pass
    (layers >= 2), the gradient written once, and the update reads W and G and writes W:
    ``P * word_bytes / access_bytes`` accesses each. Activations, biases and nonlinearities are
    O(n) and neglected. Latency: FLOPs / ``throughput_flops``.
    """
    cfg = config or DigitalConfig()
    if len(layer_sizes) < 2 or any(int(n) < 1 for n in layer_sizes):
        raise ValueError(f"layer_sizes must be >= 2 positive integers, got {layer_sizes!r}")
    if batch_size < 1 or n_samples < 0:
        raise ValueError("batch_size must be >= 1 and n_samples >= 0")
    sizes = [int(n) for n in layer_sizes]
    params = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    p_all = float(sum(params))
    p_back = float(sum(params[1:]))
    B = float(batch_size)
    fl_inf = 2.0 * p_all
    fl_train = 2.0 * p_all + 2.0 * p_back + 2.0 * p_all + 2.0 * p_all / B
    words_per_access = cfg.access_bytes / cfg.word_bytes
    acc_inf = p_all / words_per_access / B
    acc_train = (p_all + p_back + p_all + 3.0 * p_all) / words_per_access / B
    e_flop = 0.5 * (cfg.mult_energy_j + cfg.add_energy_j)  # mean of a multiply and an add
    e_inf = fl_inf * e_flop + acc_inf * cfg.memory_energy_per_access_j
    e_train = fl_train * e_flop + acc_train * cfg.memory_energy_per_access_j
    t_inf = fl_inf / cfg.throughput_flops
    t_train = fl_train / cfg.throughput_flops
    return DigitalCost(
        train_energy_per_sample_j=e_train,
        inference_energy_per_sample_j=e_inf,
        train_latency_per_sample_s=t_train,
        inference_latency_per_sample_s=t_inf,
        flops_train_per_sample=fl_train,
        flops_inference_per_sample=fl_inf,
        memory_accesses_train_per_sample=acc_train,
        memory_accesses_inference_per_sample=acc_inf,
        train_energy_total_j=e_train * n_samples,
        train_latency_total_s=t_train * n_samples,
    )
