"""A convolution on crossbar tiles, as a designer maps it: counts, latency, energy and area.

Mapping (:class:`~hardware_models.conv_geometry.ConvGeometry`): the kernel is unrolled into the
rows (``rows = kernel^2 * in_channels``), the output channels into the columns, and the
``positions = out_height * out_width`` input patches of a sample are streamed through that one
kernel matrix, one patch per read. The matrix is placed on tiles exactly as a dense layer
(:func:`hardware_models.architecture.map_layer`), so a dense layer is the special case
``positions = 1``. Options a designer has:

- ``replicas``: copies of the kernel matrix that read different patches at once (NeuroSim's
  weight duplication, ``speedUpDegree``): ``ceil(positions / replicas)`` reads per sweep,
  ``replicas`` times the tiles, their converters and adders.
- ``input_cycles``: inputs applied bit-serially (NeuroSim applies an 8-bit activation as 8
  one-bit read pulses and shift-adds the results): every read is repeated ``input_cycles``
  times and each input line is driven by a 1-bit pulse per cycle instead of one multi-bit DAC
  value.
- ``weight_slices``: columns per weight (NeuroSim's ``cellBit = 1`` stores an 8-bit weight in 8
  one-bit cells, shift-added after conversion): the matrix has ``out_channels *
  weight_slices`` columns.
- ``parallel_rows``: rows switched on at once (NeuroSim's partial parallel read): a tile is
  read in ``ceil(tile_rows / parallel_rows)`` sub-reads, each converted.

Counts of one *sweep* (every position read once; forward ``W x``, and with ``backward`` also
``W^T e``), for one sample: ``macs = positions * rows * out_channels`` per direction (the
weights' multiply-accumulates; cell reads are ``macs * weight_slices * input_cycles``); ADC
conversions ``positions * input_cycles * row_groups * LayerMap.conversions_*``; DAC
activations ``positions * rows`` (forward; ``positions * out_channels`` backward), each a
``dac_bits`` conversion, or ``input_cycles`` one-bit pulses; digital adds: the adder tree
(``row_tiles * row_groups - 1`` per output column and cycle), the weight shift-add
(``weight_slices - 1`` per output and cycle) and the input shift-add (``input_cycles - 1`` per
output).

Latency of a sweep: ``reads = ceil(positions / replicas) * input_cycles`` read periods, each
``row_groups * max(settle_s, t_conv)`` with ``t_conv`` the tile's conversion time with ADC
sharing (:func:`hardware_models.architecture.read_period_s`); ``settle_s`` is ``tau_x`` on a
predictive-coding chip, or the read pulse (``synapses.read_time_s``) on an inference chip.

Row drivers (``row_dacs``). On a feedforward inference chip the activations between layers
are digital (a buffer feeds the patches), so every row is driven by a DAC. On a
predictive-coding chip the patch comes from the previous layer's analog value units (and the
errors from the analog error units) through analog multiplexers, without conversion, as a
dense layer's analog hand-over: no DACs are charged (the default follows ``units``).

Energy uses the dense layers' prices: ``costs.read_energy_per_mac_j`` per weight read
(``device_pairs`` of them), :attr:`ConverterConfig.adc_energy_j` per conversion and the same
Walden energy per DAC value (:func:`~hardware_models.converters.conversion_energy_j`), one
``architecture.accumulator_add_8bit_j`` add at the chip's node per digital add, and, with
``units``, ``costs.static_power_per_unit_w`` for every value and error unit over the sweep.
Area (:func:`~hardware_models.architecture.layer_area_um2`): the replicas' cells, tile ADCs
and adders (on both edges of a tile; on the column edge only without ``backward``), with
``row_dacs`` a row driver (``dac_bits`` DAC, 1-bit with ``input_cycles > 1``) per tile row,
and with ``units`` the layer's value and error units.

Streaming in a predictive-coding chip. Continuous relaxation needs every output position's
value unit ``x`` and error unit ``e`` to exist at once: they are the state of the dynamics
(``out_channels * positions`` of each, as in a dense layer of that width). What is shared is
only the kernel array: a time-multiplexed array visits the positions in turn, and between
visits each position's units hold their state (sample-and-hold). The design priced here lets a
unit integrate only while its position is read, so that its drive is always fresh: it
integrates during one read in every ``m = ceil(positions / replicas)``, and in wall-clock time
its relaxation runs ``m`` times slower: the layer's effective time constant is ``m`` read
periods (:attr:`ConvMap.effective_tau_s`) and it needs ``m`` times more seconds to settle.
(Letting the units integrate a held drive all the time instead keeps ``tau_x`` but makes the
layer a sampled-data loop whose drive is up to ``m`` reads old, close to the continuous
dynamics only while ``m`` read periods are short against ``tau_x``.) pcsim's engines integrate
the continuous limit; layers with different ``m`` relax at different wall-clock rates unless
the chip clocks them all to the slowest. ``replicas = positions`` removes the multiplexing
(one array per position, ``effective_tau_s = read_period``) at ``positions`` times the array
area.

Writes. The kernel is shared by all positions, so the local rule's update of a weight is the
sum over positions of ``e_p x_p`` (what the per-weight pulse accumulator integrates while the
array sweeps the positions) and is written once per weight, to every replica:
:attr:`ConvMap.write_copies` times the pulses of one copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hardware_models.architecture import (
    UM2_PER_MM2,
    ArchitectureConfig,
    LayerMap,
    dac_area_um2,
    layer_area_um2,
    map_layer,
    read_period_s,
)
from hardware_models.baselines import energy_scale
from hardware_models.chip import Chip
from hardware_models.conv_geometry import ConvGeometry
from hardware_models.converters import conversion_energy_j

__all__ = ["ConvMap", "map_conv", "conv_layer_cost", "ConvLayerCost"]


@dataclass(frozen=True)
class ConvMap:
    """One convolution on tiles: counts per sweep (every position read once) of one sample.

    ``layer`` is one copy of the kernel matrix ``(out_channels * weight_slices, rows)`` on
    tiles (:class:`~hardware_models.architecture.LayerMap`); everything else is derived.
    """

    geometry: ConvGeometry
    layer: LayerMap
    replicas: int
    input_cycles: int
    weight_slices: int
    row_groups: int
    backward: bool
    read_period_s: float

    @property
    def tiles(self) -> int:
        """Tiles of all replicas."""
        return self.replicas * self.layer.tiles

    @property
    def multiplexing(self) -> int:
        """Positions each array serves in turn: ``ceil(positions / replicas)``."""
        return math.ceil(self.geometry.positions / self.replicas)

    @property
    def reads(self) -> int:
        """Read periods per sweep: ``multiplexing * input_cycles``."""
        return self.multiplexing * self.input_cycles

    @property
    def latency_s(self) -> float:
        """Seconds per sweep (s): ``reads * read_period_s``."""
        return self.reads * self.read_period_s

    @property
    def effective_tau_s(self) -> float:
        """Wall-clock time constant of the layer's units under time multiplexing (s):
        ``multiplexing * read_period_s`` (see the module docstring)."""
        return self.multiplexing * self.read_period_s

    @property
    def write_copies(self) -> int:
        """Copies of every kernel weight a write must program (the replicas)."""
        return self.replicas

    @property
    def directions(self) -> int:
        return 2 if self.backward else 1

    @property
    def macs(self) -> int:
        """Weight multiply-accumulates per sweep (both directions with ``backward``)."""
        return self.directions * self.geometry.macs_per_sample

    @property
    def cell_reads(self) -> int:
        """Weight reads per sweep: ``macs * weight_slices * input_cycles`` (each weight read
        is ``devices_per_weight * device_pairs`` devices)."""
        return self.macs * self.weight_slices * self.input_cycles

    @property
    def adc_conversions(self) -> int:
        """Tile ADC conversions per sweep (0 with analog partial sums)."""
        per_read = self.layer.conversions_forward
        if self.backward:
            per_read += self.layer.conversions_backward
        return self.geometry.positions * self.input_cycles * self.row_groups * per_read

    @property
    def dac_activations(self) -> int:
        """Input values driven onto the lines per sweep: ``positions * rows`` forward (and
        ``positions * out_channels`` backward), each ``input_cycles`` pulses when bit-serial."""
        g = self.geometry
        n = g.positions * g.rows
        if self.backward:
            n += g.positions * g.out_channels
        return n

    @property
    def digital_adds(self) -> int:
        """Digital adds per sweep (forward): adder tree, weight and input shift-add."""
        if self.layer.adcs == 0:
            return 0
        g, ws, ic = self.geometry, self.weight_slices, self.input_cycles
        tree = g.out_channels * ws * (self.layer.row_tiles * self.row_groups - 1)
        per_cycle = tree + g.out_channels * (ws - 1)
        return g.positions * (ic * per_cycle + g.out_channels * (ic - 1))


def map_conv(
    geometry: ConvGeometry,
    arch: ArchitectureConfig,
    *,
    adc_bits: int | None = None,
    sar_cycle_s: float = 1e-9,
    settle_s: float = 0.0,
    replicas: int = 1,
    backward: bool = False,
    input_cycles: int = 1,
    weight_slices: int = 1,
    parallel_rows: int | None = None,
) -> ConvMap:
    """Map ``geometry`` onto ``arch``'s tiles (module docstring); ``settle_s``: seconds an
    analog read takes before conversion (``tau_x`` or the read pulse)."""
    for name, v in (
        ("replicas", replicas),
        ("input_cycles", input_cycles),
        ("weight_slices", weight_slices),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"conv mapping {name} must be an integer >= 1, got {v!r}")
    if parallel_rows is not None and (isinstance(parallel_rows, bool) or parallel_rows < 1):
        raise ValueError(f"conv mapping parallel_rows must be >= 1 or None, got {parallel_rows!r}")
    if settle_s < 0:
        raise ValueError(f"conv mapping settle_s must be >= 0, got {settle_s!r}")
    layer = map_layer(
        geometry.out_channels * weight_slices, geometry.rows, arch, adc_bits, sar_cycle_s
    )
    groups = (
        1 if parallel_rows is None else math.ceil(min(layer.rows, geometry.rows) / parallel_rows)
    )
    period = groups * read_period_s([layer], settle_s, backward)
    return ConvMap(geometry, layer, replicas, input_cycles, weight_slices, groups, backward, period)


@dataclass(frozen=True)
class ConvLayerCost:
    """What one sweep of one convolutional layer costs on a chip, for one sample: the map
    (counts and latency), energy (J) and area (mm^2) by component."""

    map: ConvMap
    energy_j: dict[str, float]
    area_mm2: dict[str, float]

    @property
    def energy_total_j(self) -> float:
        return math.fsum(self.energy_j.values())

    @property
    def area_total_mm2(self) -> float:
        return math.fsum(self.area_mm2.values())

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (keys of the run summary's conv entries)."""
        m = self.map
        return {
            "rows": m.geometry.rows,
            "positions": m.geometry.positions,
            "replicas": m.replicas,
            "tiles": m.tiles,
            "reads": m.reads,
            "read_period_s": m.read_period_s,
            "latency_s": m.latency_s,
            "effective_tau_s": m.effective_tau_s,
            "macs": m.macs,
            "adc_conversions": m.adc_conversions,
            "dac_activations": m.dac_activations,
            "digital_adds": m.digital_adds,
            "energy_j": dict(self.energy_j),
            "energy_total_j": self.energy_total_j,
            "area_mm2": dict(self.area_mm2),
            "area_total_mm2": self.area_total_mm2,
        }


def conv_layer_cost(
    geometry: ConvGeometry,
    chip: Chip,
    *,
    replicas: int = 1,
    backward: bool = True,
    units: bool = True,
    settle_s: float | None = None,
    input_cycles: int = 1,
    weight_slices: int = 1,
    parallel_rows: int | None = None,
    row_dacs: bool | None = None,
) -> ConvLayerCost:
    """One sweep of a convolutional layer on ``chip`` (module docstring), for one sample.

    Defaults are a predictive-coding layer: both read directions, value and error units for
    every output position, reads settling in ``tau_x`` (``settle_s=None``). For deployed
    feedforward inference pass ``backward=False``; ``units=False`` leaves the PC units out
    (a feedforward inference chip). ``row_dacs``: rows driven by DACs (default: without
    ``units``; see the module docstring). Multiply by the sweeps of a presentation (one per
    ``tau_x`` of the dynamics, as dense layers are read) for a run's totals.
    """
    cv, arch, costs = chip.converters, chip.architecture, chip.costs
    m = map_conv(
        geometry,
        arch,
        adc_bits=cv.adc_bits,
        sar_cycle_s=cv.sar_cycle_s,
        settle_s=chip.tau_x_s if settle_s is None else settle_s,
        replicas=replicas,
        backward=backward,
        input_cycles=input_cycles,
        weight_slices=weight_slices,
        parallel_rows=parallel_rows,
    )
    bit_serial = input_cycles > 1
    if row_dacs is None:
        row_dacs = not units
    e_dac = (
        input_cycles * conversion_energy_j(1, cv.walden_fom_j) if bit_serial else cv.dac_energy_j
    )
    add_j = arch.accumulator_add_8bit_j * energy_scale(chip.node_nm)
    energy = {
        "crossbar_read": costs.read_energy_j(m.cell_reads * arch.device_pairs),
        "tile_adc": m.adc_conversions * cv.adc_energy_j,
        "dac": m.dac_activations * e_dac if row_dacs else 0.0,
        "partial_sum_adders": m.digital_adds * add_j,
    }
    n_units = 2 * geometry.n_out  # a value and an error unit per output position and channel
    if units:
        energy["static"] = costs.static_energy_j(n_units, m.latency_s)
    area_um2 = {k: replicas * v for k, v in layer_area_um2(m.layer, arch, cv.adc_bits).items()}
    if not backward and m.layer.adcs:  # read one way only: no ADCs (and adders) on the rows' edge
        forward = m.layer.tiles * math.ceil(m.layer.cols / arch.adc_share_columns)
        area_um2["adc"] *= forward / m.layer.adcs
        area_um2["partial_sum_adders"] *= forward / m.layer.adcs
    dac_bits = 1 if bit_serial else cv.dac_bits
    driver = 0.0 if dac_bits is None else dac_area_um2(dac_bits, arch.dac_area_1bit_um2)
    area_um2["dac"] = replicas * m.layer.tiles * m.layer.rows * driver if row_dacs else 0.0
    if units:
        unit_cap = chip.value_units.capacitance_f / arch.mim_density_f_per_m2 * 1e12
        err_cap = arch.error_unit_capacitance_f / arch.mim_density_f_per_m2 * 1e12
        area_um2["value_units"] = geometry.n_out * (arch.ota_area_um2 + unit_cap)
        area_um2["error_units"] = geometry.n_out * (arch.ota_area_um2 + err_cap)
    area = {k: v / UM2_PER_MM2 for k, v in area_um2.items()}
    return ConvLayerCost(m, energy, area)
