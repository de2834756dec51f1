"""What the chip's digital periphery adds to a run's summary: pulse accumulators and the
price of noise and bound management.

Pulse accumulators (accumulate-and-fire writes, :mod:`hardware_models.synapses`): each pulsed
device sums the change asked of it in an ``architecture.accumulator_bits``-bit digital
accumulator beside the cell (its area: ``pulse_accumulators`` in
:func:`hardware_models.architecture.chip_area`) and fires a pulse when the sum reaches the
pulse size. The accumulators are clocked with the crossbar reads, once per ``tau_x`` while the
weights learn: iPC learns throughout a presentation of ``T`` tau_x, so every weight adds ``T``
times per sample; PC's one weight step after settling is one add per weight per sample (a
batch of B on B replicas: B adds per weight per batch). Each add costs
``Chip.accumulator_add_energy_j`` (Horowitz ISSCC 2014's 8-bit add, scaled to the width and
the node). Backprop trains digitally (no accumulators).

Noise management (input abs-max scaling) and bound management (repeated output reads,
:class:`hardware_models.converters.ConverterConfig`) are priced in the ledger at each conversion
(``noise_management``: digital multiplies; ``bound_management``: the repeated conversions);
their latency is the repeats of the output read at the edge ADCs
(:meth:`pcsim.circuit.Circuit.output_conversion_s`). The digital scaling of noise management
is not timed (its multiplies run beside the conversions).
"""

from __future__ import annotations

from collections.abc import Sequence

from hardware_models import Chip

__all__ = ["accumulator_adds_per_sample", "accumulator_energy", "management_summary"]


def accumulator_adds_per_sample(
    algorithm: str, sizes: Sequence[int], T: float, macs: int | None = None
) -> float:
    """Accumulator adds per training sample: ``n_weights * T`` for iPC (``T`` in tau_x),
    ``n_weights`` for PC, 0 for backprop (module docstring). ``macs``: for a network with
    convolutions, the products one update sums (:attr:`pcsim.network.Network.n_macs`): a
    shared kernel weight adds one patch's contribution per position."""
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    n_weights = n_weights if macs is None else macs
    if algorithm == "ipc":
        return n_weights * T
    if algorithm == "pc":
        return float(n_weights)
    return 0.0


def accumulator_energy(
    chip: Chip, algorithm: str, sizes: Sequence[int], T: float, macs: int | None = None
) -> dict:
    """``{"pulse_accumulators": J per training sample}`` for a chip with pulsed devices, else
    ``{}`` (exactly written devices need no accumulator). ``macs``: as
    :func:`accumulator_adds_per_sample`."""
    if not chip.synapses.pulsed:
        return {}
    adds = accumulator_adds_per_sample(algorithm, sizes, T, macs)
    return {"pulse_accumulators": adds * chip.accumulator_add_energy_j} if adds else {}


def management_summary(circ, inference) -> dict:
    """Summary keys for the deployed inference's noise and bound management: the repeats of
    the output read, their latency (s) and energy (J per sample), and the input scaling's
    energy (J per sample). ``circ``: the run's :class:`pcsim.circuit.Circuit`; ``inference``:
    its :class:`pcsim.inference.InferenceCost` (feedforward protocol)."""
    retries = int(inference.adc_retries)
    extra_s = circ.output_conversion_s(retries) - circ.output_conversion_s(0)
    return {
        "bound_management_retries": retries,
        "bound_management_latency_per_sample_s": extra_s,
        "bound_management_energy_per_sample_j": inference.breakdown_j.get("bound_management", 0.0),
        "noise_management_energy_per_sample_j": inference.breakdown_j.get("noise_management", 0.0),
    }
