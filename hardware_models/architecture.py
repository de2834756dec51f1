"""The chip as a designer draws it: weight matrices on tiles, converters, area in mm^2.

Mapping. A weight matrix ``W`` of shape ``(n_out, n_in)`` is held on tiles of ``tile_rows x
tile_cols`` cells: inputs drive the rows, outputs are read on the columns, so it takes
``ceil(n_in / tile_rows) x ceil(n_out / tile_cols)`` tiles (omitted tile sizes: one crossbar of
exactly ``n_in x n_out``). A tile is fabricated whole, so a partly used tile costs its full area.
A predictive-coding crossbar is read in both directions: predictions ``W x`` along the columns
and errors ``W^T e`` along the rows, so each tile has read circuits on both edges.

Partial sums (``partial_sums``):

- ``"analog"``: the column currents of tiles that share outputs are summed on one wire into the
  unit that integrates them; nothing is converted inside the network. Converters sit only at
  the edges (:class:`~hardware_models.converters.ConverterConfig`: a DAC per clamped input or
  target, an ADC per output read).
- ``"digital"`` (NeuroSim's and IBM HERMES's scheme): every tile converts its own outputs; the
  partial sums of the ``row_tiles`` tiles of one output are added digitally in an adder tree of
  ``ceil(log2(row_tiles))`` stages. One read of a layer converts ``row_tiles * n_out``
  (forward) and ``col_tiles * n_in`` (backward) values.

ADC sharing: ``adc_share_columns = k`` columns share one SAR ADC through a multiplexer
(NeuroSim ``numColMuxed``), so one read takes ``min(k, lines) * t_adc`` with ``t_adc = (bits +
1) * sar_cycle_s`` (NeuroSim), plus one clock per adder stage.
With per-tile conversion and ``tile_adc_reads = true`` the products the next layer reads are
the sums of converted partial sums (:mod:`hardware_models.partial_sums`; off by default, when
the conversions are charged but the products read exact), and the loop closes once per read: a read
takes ``max(tau_x, t_conv)`` (:func:`read_period_s`), so tiles whose shared ADCs convert
slower than ``tau_x`` stretch every presentation. The network's output is read at the edge by
``ceil(n_out / k)`` ADCs, ``min(k, n_out) * t_adc`` per read, repeated by bound management
(:func:`output_conversion_s`).

Why the products are read exact by default (``tile_adc_reads = false``) while the per-tile
conversions are charged: the conversions are what a chip with digital partial sums spends
(``tile_adc`` energy, and the read period when they are slower than ``tau_x``), so they are
charged whenever ``partial_sums = "digital"``; their rounding of the products is an option
because, measured on the default run (rram preset: 128 x 128 tiles, 8-bit tile ADCs over +-4
activity units, one code 0.031; 3 seeds, 2026-12-07), it lowers no reported accuracy: test
accuracy 95.33 +- 0.80 % with exact reads, 96.00 +- 0.22 % through the tile ADCs, with 12 %
more write pulses (836 -> 933 per sample) and 1 % more training energy per sample. But with
the units' thermal noise in the loop an output read through tile ADCs toggles between adjacent
codes, so neither inference protocol settles within half an ADC code (the default criterion:
latency and energy NaN, "not settled"); on a shorter run (300 training digits) they settle
within 1.5 codes, deployed in 6.3 tau_x (5.5 with exact reads at that tolerance). And the
products through the tile ADCs have no fused kernel: the default run takes 2.4 times as long.
So the option is for studying the rounding itself; making it the default needs a settling
criterion that allows the one-code toggle.

Bit slicing (``cell_bits = c``, ISAAC: Shafiee et al. ISCA 2016, 16-bit weights in eight 2-bit
cells): a weight of ``bits`` bits (``chip.synapses.bits``) is held by ``s = ceil(bits / c)``
devices (pairs), one per ``c``-bit slice. Each slice of a matrix sits on its own tiles and is
read and converted like a whole matrix; the slices' converted partial sums are shifted and
added digitally (``ceil(log2 s)`` more adder stages per read). So tiles, cells, tile ADCs,
conversions per read and crossbar reads (energy) grow ``s`` times; the latency only by the
shift-and-add. Needs ``partial_sums = "digital"``. Omitted (the presets): one device (pair)
holds the whole weight, as a multi-level cell. Costs only: the weight levels a run learns and
reads are those of ``bits``; noise per slice is not modelled.

Area (mm^2, :func:`chip_area`), each constant with its source in the field's doc:
synapse cells ``tiles * tile_rows * tile_cols * devices_per_weight * device_pairs *
cell_area_f2 * F^2`` (``device_pairs``: :mod:`hardware_models.mapping`);
ADCs ``A_8 * 2^(bits - 8)`` and DACs ``A_1 * 2^(bits - 1)`` (ISAAC, Shafiee et al. ISCA 2016:
an 8-bit 1.28 GS/s SAR ADC of 1200 um^2 after Kull et al. ISSCC 2013, a 1-bit DAC of
0.166 um^2, both at 32 nm, scaled as a capacitive DAC with ``2^bits``); value and error units
an OTA plus their capacitor at MIM density; pulse accumulators (accumulate-and-fire writes,
:mod:`hardware_models.synapses`) ``accumulator_bits`` SRAM cells per weight; the digital
co-processor its state in SRAM cells plus one FP32 multiply-add lane (Horowitz ISSCC 2014,
45 nm: 7700 + 4184 um^2, scaled by ``(F / 45 nm)^2``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hardware_models._config import ConfigBase, param

__all__ = [
    "ArchitectureConfig",
    "LayerMap",
    "map_layer",
    "map_network",
    "chip_area",
    "layer_area_um2",
    "read_period_s",
    "output_conversion_s",
]

# ISAAC (Shafiee et al., ISCA 2016) periphery at 32 nm, as tabulated by the Accelergy
# hwcomponents library: 8-bit SAR ADC 9600 um^2 / 8 = 1200 um^2 (Kull et al., ISSCC 2013);
# 1-bit DAC 170 um^2 / (128 x 8) = 0.166 um^2; 16-bit shift-and-add 60 um^2.
ISAAC_ADC_8BIT_UM2 = 1200.0
ISAAC_DAC_1BIT_UM2 = 0.166
ISAAC_SHIFT_ADD_UM2 = 60.0
# Horowitz, ISSCC 2014 ("Computing's energy problem"), 45 nm: FP32 multiplier 7700 um^2,
# FP32 adder 4184 um^2.
HOROWITZ_FP32_FMA_UM2 = 7700.0 + 4184.0
HOROWITZ_NODE_M = 45e-9
# Horowitz, ISSCC 2014, 45 nm 0.9 V: 8-bit integer add 0.03 pJ (32-bit add 0.1 pJ)
HOROWITZ_ADD_8BIT_J = 0.03e-12
UM2_PER_MM2 = 1e6


@dataclass(frozen=True)
class ArchitectureConfig(ConfigBase):
    """Tiles, partial sums, converter sharing and the area constants of a chip.

    Defaults are one crossbar per matrix with analog hand-over and no ADC sharing; the
    presets set the tile size and scheme of the chip they model.
    """

    _section: ClassVar[str] = "chip.architecture"

    tile_rows: int | None = param(
        None, "cell", "count_or_none", "inputs per tile; omitted: one crossbar per matrix"
    )
    tile_cols: int | None = param(
        None, "cell", "count_or_none", "outputs per tile; omitted: one crossbar per matrix"
    )
    partial_sums: str = param(
        "analog", "", ("analog", "digital"), "analog: summed on wires; digital: per-tile ADCs"
    )
    adc_share_columns: int = param(1, "column", "count", "columns multiplexed onto one ADC")
    tile_adc_reads: bool = param(
        False,
        "",
        "bool",
        "digital partial sums: products read through the tile ADCs (else charged, read exact)",
    )
    devices_per_weight: int = param(
        2, "device", "count", "cells per weight (2: differential pair; SRAM: bits)"
    )
    device_pairs: int = param(
        1, "pair", "count", "pairs summed per weight (hardware_models.mapping): n x cells"
    )
    cell_bits: int | None = param(
        None,
        "bit",
        "count_or_none",
        "bits one device stores: weights bit-sliced over ceil(bits / cell_bits) (ISAAC)",
    )
    column_remap: bool = param(
        False, "", "bool", "each column programmed at full range, rescaled digitally"
    )
    feature_size_m: float = param(22e-9, "m", "pos", "technology feature size F")
    cell_area_f2: float = param(
        4.0, "F^2", "pos", "area of one cell (NeuroSim cross-point cell 2F x 2F)"
    )
    sram_cell_area_f2: float = param(
        178.6, "F^2", "pos", "SRAM bit cell (NeuroSim 7.69F x 23.23F) for digital state"
    )
    accumulator_bits: int = param(
        8, "bit", "count", "per-weight write-pulse accumulator (pulsed devices only)"
    )
    adc_area_8bit_um2: float = param(
        ISAAC_ADC_8BIT_UM2, "um^2", "nonneg", "8-bit SAR ADC (ISAAC / Kull 2013, 32 nm)"
    )
    dac_area_1bit_um2: float = param(
        ISAAC_DAC_1BIT_UM2, "um^2", "nonneg", "1-bit DAC (ISAAC, 32 nm)"
    )
    adder_area_um2: float = param(
        ISAAC_SHIFT_ADD_UM2, "um^2", "nonneg", "partial-sum adder per ADC (ISAAC, 32 nm)"
    )
    ota_area_um2: float = param(
        20.0, "um^2", "nonneg", "OTA of a value or error unit (pcsim estimate)"
    )
    mim_density_f_per_m2: float = param(
        2e-3, "F/m^2", "pos", "MIM capacitor density, 2 fF/um^2 (pcsim estimate)"
    )
    error_unit_capacitance_f: float = param(
        100e-15, "F", "pos", "error-node capacitor (the 100 fF of the presets' kT/C noise)"
    )
    wire_segment_ohm: float = param(
        0.0, "ohm", "nonneg", "row/column wire between adjacent cells (IR drop; 0: ideal wires)"
    )
    ir_drop: bool = param(
        False,
        "",
        "bool",
        "reads go through the wires (hardware_models.ir_drop); re-solved after every write",
    )
    fma_area_um2: float = param(
        HOROWITZ_FP32_FMA_UM2, "um^2", "nonneg", "co-processor FP32 mult+add (Horowitz, 45 nm)"
    )
    accumulator_add_8bit_j: float = param(
        HOROWITZ_ADD_8BIT_J,
        "J",
        "nonneg",
        "one 8-bit add of a pulse accumulator at 45 nm (Horowitz ISSCC 2014); x bits/8, to node",
    )

    def _cross_checks(self) -> None:
        if (self.tile_rows is None) != (self.tile_cols is None):
            self._fail("tile_rows", "and tile_cols must be given together or both omitted")
        if self.cell_bits is not None and self.partial_sums != "digital":
            self._fail(
                "cell_bits",
                "needs partial_sums = 'digital' (each slice is converted, then shifted and "
                "added digitally)",
            )

    def weight_slices(self, weight_bits: int | None) -> int:
        """Devices (or device pairs) holding one weight of ``weight_bits`` bits side by side:
        ``ceil(weight_bits / cell_bits)``; 1 when ``cell_bits`` is omitted or the weight is
        analog (``weight_bits`` None)."""
        if self.cell_bits is None or weight_bits is None:
            return 1
        return math.ceil(weight_bits / self.cell_bits)

    @property
    def tiled(self) -> bool:
        return self.tile_rows is not None


@dataclass(frozen=True)
class LayerMap:
    """One weight matrix ``(n_out, n_in)`` on tiles, and what one read of it costs.

    ``rows x cols`` is the physical tile (the whole matrix when untiled). ``adcs`` counts the
    converters inside the layer (0 with analog partial sums); conversions and latencies are per
    read in one direction (forward ``W x``, backward ``W^T e``).
    """

    n_out: int
    n_in: int
    rows: int
    cols: int
    row_tiles: int
    col_tiles: int
    adcs: int
    conversions_forward: int
    conversions_backward: int
    latency_forward_s: float
    latency_backward_s: float
    slices: int = 1  # bit slices: each on its own tiles, shifted and added after conversion

    @property
    def tiles(self) -> int:
        return self.slices * self.row_tiles * self.col_tiles

    @property
    def cells(self) -> int:
        """Weight positions fabricated (whole tiles)."""
        return self.tiles * self.rows * self.cols


def _adc_time_s(bits: int | None, sar_cycle_s: float) -> float:
    """SAR conversion time ``(bits + 1) * t_cycle`` (NeuroSim); 0 for an ideal converter."""
    return 0.0 if bits is None else (bits + 1) * sar_cycle_s


def map_layer(
    n_out: int,
    n_in: int,
    arch: ArchitectureConfig,
    adc_bits: int | None = None,
    sar_cycle_s: float = 1e-9,
    weight_bits: int | None = None,
) -> LayerMap:
    """Place one ``(n_out, n_in)`` matrix of ``weight_bits``-bit weights on ``arch``'s tiles
    (see the module docstring; ``arch.cell_bits``: bit slices)."""
    if n_out < 1 or n_in < 1:
        raise ValueError(f"a weight matrix needs n_out, n_in >= 1, got ({n_out}, {n_in})")
    rows = arch.tile_rows if arch.tile_rows is not None else n_in
    cols = arch.tile_cols if arch.tile_cols is not None else n_out
    rt, ct = math.ceil(n_in / rows), math.ceil(n_out / cols)
    if arch.partial_sums == "analog":
        return LayerMap(n_out, n_in, rows, cols, rt, ct, 0, 0, 0, 0.0, 0.0)
    s = arch.weight_slices(weight_bits)
    k = arch.adc_share_columns
    adcs_per_tile = math.ceil(cols / k) + math.ceil(rows / k)
    t_adc = _adc_time_s(adc_bits, sar_cycle_s)
    # each ADC converts its min(k, lines) lines one after another; then the adder tree over
    # the tiles and, with bit slices, the shift-and-add over the slices (converted at once)
    shift = math.ceil(math.log2(s))
    fwd = min(k, cols) * t_adc + (math.ceil(math.log2(rt)) + shift) * sar_cycle_s
    bwd = min(k, rows) * t_adc + (math.ceil(math.log2(ct)) + shift) * sar_cycle_s
    return LayerMap(
        n_out,
        n_in,
        rows,
        cols,
        rt,
        ct,
        s * rt * ct * adcs_per_tile,
        s * rt * n_out,
        s * ct * n_in,
        fwd,
        bwd,
        s,
    )


def map_network(
    sizes: Sequence[int],
    arch: ArchitectureConfig,
    adc_bits: int | None = None,
    sar_cycle_s: float = 1e-9,
    weight_bits: int | None = None,
) -> list[LayerMap]:
    """:func:`map_layer` for every weight matrix ``(sizes[l+1], sizes[l])``."""
    return [
        map_layer(sizes[i + 1], sizes[i], arch, adc_bits, sar_cycle_s, weight_bits)
        for i in range(len(sizes) - 1)
    ]


def read_period_s(maps: Sequence[LayerMap], tau_x_s: float, backward: bool = True) -> float:
    """Seconds per crossbar read (s): the analog read settles in ``tau_x_s``; with per-tile
    conversion the feedback loop closes only when the slowest layer's ADCs have converted
    their lines (``LayerMap.latency_*``, column sharing included), so a read takes
    ``max(tau_x_s, t_conv)``. Layers convert at once, and so do the forward and backward ADCs
    on the two edges of a tile; ``backward=False``: forward reads only (deployed inference)."""
    t_conv = max(
        (max(m.latency_forward_s, m.latency_backward_s if backward else 0.0) for m in maps),
        default=0.0,
    )
    return max(tau_x_s, t_conv)


def output_conversion_s(
    n_out: int,
    arch: ArchitectureConfig,
    adc_bits: int | None,
    sar_cycle_s: float,
    retries: int = 0,
) -> float:
    """Seconds to convert ``n_out`` outputs at the network's edge: ``adc_share_columns = k``
    outputs share one SAR ADC, so each converts ``min(k, n_out)`` one after another, and
    iterative bound management repeats the whole read ``retries`` times:
    ``(1 + retries) * min(k, n_out) * (bits + 1) * t_cycle``; 0 for an ideal ADC."""
    return (1 + retries) * min(arch.adc_share_columns, n_out) * _adc_time_s(adc_bits, sar_cycle_s)


def adc_area_um2(bits: int | None, area_8bit_um2: float) -> float:
    """SAR ADC area ``A_8 * 2^(bits - 8)`` (capacitive-DAC scaling); 0 when ideal."""
    return 0.0 if bits is None else area_8bit_um2 * 2.0 ** (bits - 8)


def dac_area_um2(bits: int | None, area_1bit_um2: float) -> float:
    """DAC area ``A_1 * 2^(bits - 1)``; 0 when ideal."""
    return 0.0 if bits is None else area_1bit_um2 * 2.0 ** (bits - 1)


def layer_area_um2(m: LayerMap, arch: ArchitectureConfig, adc_bits: int | None) -> dict[str, float]:
    """Area in um^2 of one mapped matrix ``m`` (its whole tiles): ``synapse_cells`` (``cells *
    devices_per_weight * device_pairs * cell_area_f2 * F^2``), its per-tile ``adc``s and the
    ``partial_sum_adders`` beside them (one per tile ADC). Units and edge converters are not
    included (:func:`chip_area` adds them per network)."""
    f2_um2 = (arch.feature_size_m * 1e6) ** 2  # F^2 in um^2
    cells = m.cells * arch.devices_per_weight * arch.cell_area_f2 * f2_um2
    cells *= arch.device_pairs  # hardware_models.mapping: n pairs per weight
    return {
        "synapse_cells": cells,
        "adc": m.adcs * adc_area_um2(adc_bits, arch.adc_area_8bit_um2),
        "partial_sum_adders": m.adcs * arch.adder_area_um2,
    }


def chip_area(
    sizes: Sequence[int],
    arch: ArchitectureConfig,
    *,
    adc_bits: int | None = None,
    dac_bits: int | None = None,
    value_capacitance_f: float = 1e-12,
    pulsed: bool = False,
    digital_state_bits_per_weight: int = 0,
    replicas: int = 1,
    sar_cycle_s: float = 1e-9,
    weight_bits: int | None = None,
    maps: Sequence[LayerMap] | None = None,
) -> dict[str, float]:
    """Area in mm^2 by component of a network ``sizes`` on ``arch`` (see the module docstring).

    ``pulsed``: writes go through per-weight pulse accumulators; ``digital_state_bits_per_weight``
    is the state a digital co-processor keeps per weight (e.g. 64 for Adam's two FP32 moments;
    0: no co-processor). ``replicas`` copies of the analog circuit (a batch executed as parallel
    replicas) multiply every analog component. Returns ``{component: mm^2}`` (all keys present,
    zeros included). ``weight_bits``: the weights' precision, bit-sliced over
    ``arch.weight_slices(weight_bits)`` devices (``arch.cell_bits``). ``maps``: the weight
    matrices as placed (one per layer) when they are not the dense ``(sizes[l+1], sizes[l])``:
    a convolution is its kernel matrix ``(out_channels, k^2 C_in)``
    (:mod:`hardware_models.conv_mapping`), with a value and an error unit per output position
    and channel (``sizes``) and one accumulator per kernel weight.
    """
    if maps is None:
        maps = map_network(sizes, arch, adc_bits, sar_cycle_s, weight_bits)
    elif len(maps) != len(sizes) - 1:
        raise ValueError(f"chip_area: {len(maps)} layer maps for {len(sizes) - 1} weight layers")
    f2_um2 = (arch.feature_size_m * 1e6) ** 2  # F^2 in um^2
    n_weights = sum(m.n_out * m.n_in for m in maps)
    n_value, n_error = sum(sizes), sum(sizes[1:])
    per_layer = [layer_area_um2(m, arch, adc_bits) for m in maps]
    cells = sum(a["synapse_cells"] for a in per_layer)
    a_adc = adc_area_um2(adc_bits, arch.adc_area_8bit_um2)
    tile_adcs = sum(m.adcs for m in maps)
    # the edges: a DAC per input and target line, an ADC per output read (shared as the tiles)
    edge_adcs = math.ceil(sizes[-1] / arch.adc_share_columns) if adc_bits is not None else 0
    edge_dacs = (sizes[0] + sizes[-1]) if dac_bits is not None else 0
    unit_cap = value_capacitance_f / arch.mim_density_f_per_m2 * 1e12  # m^2 -> um^2
    err_cap = arch.error_unit_capacitance_f / arch.mim_density_f_per_m2 * 1e12
    sram_bit = arch.sram_cell_area_f2 * f2_um2
    digital_scale = (arch.feature_size_m / HOROWITZ_NODE_M) ** 2
    coproc = 0.0
    if digital_state_bits_per_weight > 0:
        coproc = n_weights * digital_state_bits_per_weight * sram_bit
        coproc += arch.fma_area_um2 * digital_scale
    um2 = {
        "synapse_cells": replicas * cells,
        "adc": replicas * (tile_adcs + edge_adcs) * a_adc,
        "dac": replicas * edge_dacs * dac_area_um2(dac_bits, arch.dac_area_1bit_um2),
        "partial_sum_adders": replicas * tile_adcs * arch.adder_area_um2,
        "value_units": replicas * n_value * (arch.ota_area_um2 + unit_cap),
        "error_units": replicas * n_error * (arch.ota_area_um2 + err_cap),
        "pulse_accumulators": replicas * n_weights * arch.accumulator_bits * sram_bit
        if pulsed
        else 0.0,
        "digital_coprocessor": coproc,
    }
    return {k: v / UM2_PER_MM2 for k, v in um2.items()}
