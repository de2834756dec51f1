"""hardware_models.conv_mapping: a convolution on tiles against hand counts and the dense model."""

from __future__ import annotations

import math

import pytest

from hardware_models import Chip
from hardware_models.architecture import (
    ArchitectureConfig,
    adc_area_um2,
    chip_area,
    map_layer,
    read_period_s,
)
from hardware_models.conv_geometry import ConvGeometry
from hardware_models.conv_mapping import conv_layer_cost, map_conv
from hardware_models.converters import ConverterConfig
from hardware_models.costs import CostConfig

# 2 x 5 x 5 input, 3 kernels of 3 x 3: a 3 x 3 output, 9 positions, 18 rows
SMALL = ConvGeometry(in_channels=2, height=5, width=5, out_channels=3, kernel=3)
ARCH = ArchitectureConfig(tile_rows=8, tile_cols=4, partial_sums="digital", adc_share_columns=2)


def _chip(arch: ArchitectureConfig = ARCH) -> Chip:
    return Chip(
        architecture=arch,
        converters=ConverterConfig(adc_bits=4, dac_bits=8, walden_fom_j=5e-15, sar_cycle_s=1e-9),
        costs=CostConfig(read_energy_per_mac_j=30e-15, static_power_per_unit_w=1e-6),
    )


def test_small_conv_counts_by_hand():
    m = map_conv(SMALL, ARCH, adc_bits=4, sar_cycle_s=1e-9, settle_s=5e-9)
    # 18 rows on 8-row tiles: 3 row tiles; 3 columns on 4-column tiles: 1 column tile
    assert (m.layer.row_tiles, m.layer.col_tiles, m.tiles) == (3, 1, 3)
    # per tile ceil(4/2) forward + ceil(8/2) backward ADCs
    assert m.layer.adcs == 3 * (2 + 4)
    assert m.macs == 9 * 18 * 3
    assert m.reads == 9
    # forward: 9 positions x (3 row tiles x 3 outputs) conversions; 9 x 18 DAC values
    assert m.adc_conversions == 81
    assert m.dac_activations == 162
    # adder tree: 3 partial sums -> 2 adds per output, 3 outputs, 9 positions
    assert m.digital_adds == 54
    # one read: 2 shared columns x (4 + 1) SAR cycles + ceil(log2 3) = 2 adder stages, > settle
    assert m.read_period_s == pytest.approx(12e-9)
    assert m.latency_s == pytest.approx(9 * 12e-9)
    assert m.effective_tau_s == pytest.approx(9 * 12e-9)


def test_bit_serial_sliced_partial_parallel_counts_by_hand():
    m = map_conv(
        SMALL,
        ARCH,
        adc_bits=4,
        sar_cycle_s=1e-9,
        settle_s=5e-9,
        input_cycles=8,
        weight_slices=2,
        parallel_rows=4,
    )
    # 3 kernels x 2 slices = 6 columns: 2 column tiles; 8-row tiles read 4 rows at a time
    assert (m.layer.row_tiles, m.layer.col_tiles, m.row_groups) == (3, 2, 2)
    assert m.reads == 9 * 8
    assert m.cell_reads == 486 * 2 * 8
    # per read 3 row tiles x 6 columns, x 2 row groups x 8 cycles x 9 positions
    assert m.adc_conversions == 9 * 8 * 2 * 18
    # per cycle: tree 6 x (3 x 2 - 1) + weight shift-add 3 x 1; inputs 3 x 7 per position
    assert m.digital_adds == 9 * (8 * (30 + 3) + 21)
    # each read: 2 row groups, each 2 shared columns x 5 cycles + 2 adder stages
    assert m.read_period_s == pytest.approx(2 * 12e-9)


def test_replicas_trade_latency_for_area():
    chip = _chip()
    one = conv_layer_cost(SMALL, chip, backward=False, units=True, row_dacs=True)
    assert one.area_mm2["dac"] > 0
    for r in (3, 9):  # divisors of the 9 positions: latency exactly / r
        many = conv_layer_cost(SMALL, chip, backward=False, units=True, replicas=r, row_dacs=True)
        assert many.map.latency_s == pytest.approx(one.map.latency_s / r)
        for k in ("synapse_cells", "adc", "partial_sum_adders", "dac"):
            assert many.area_mm2[k] == pytest.approx(r * one.area_mm2[k])
        # every position keeps its own units: their area does not replicate
        assert many.area_mm2["value_units"] == one.area_mm2["value_units"]
        # the same reads happen, only in parallel: dynamic energy is unchanged
        for k in ("crossbar_read", "tile_adc", "dac", "partial_sum_adders"):
            assert many.energy_j[k] == pytest.approx(one.energy_j[k])
    full = conv_layer_cost(SMALL, chip, replicas=9)
    assert full.map.effective_tau_s == full.map.read_period_s  # no multiplexing left
    # 4 replicas: ceil(9 / 4) = 3 reads, not 9 / 4
    assert conv_layer_cost(SMALL, chip, replicas=4).map.reads == 3


@pytest.mark.parametrize("partial_sums", ["digital", "analog"])
def test_dense_layer_is_the_positions_one_case(partial_sums):
    arch = ArchitectureConfig(
        tile_rows=8, tile_cols=4, partial_sums=partial_sums, adc_share_columns=2
    )
    chip = _chip(arch)
    # kernel = input size, no padding: one position; the matrix is (7, 3 * 4 * 4)
    g = ConvGeometry(in_channels=3, height=4, width=4, out_channels=7, kernel=4)
    n_in, n_out = g.n_in, 7
    assert g.positions == 1 and g.rows == n_in
    cost = conv_layer_cost(g, chip, backward=True)
    m = cost.map
    assert m.layer == map_layer(n_out, n_in, arch, 4, 1e-9)
    assert m.read_period_s == read_period_s([m.layer], chip.tau_x_s, True)
    assert m.adc_conversions == m.layer.conversions_forward + m.layer.conversions_backward
    # area: the dense network [n_in, n_out] on the same tiles, without its edge converters
    dense = chip_area([n_in, n_out], arch, adc_bits=4, dac_bits=8, value_capacitance_f=1e-12)
    edge_adcs = math.ceil(n_out / 2) * adc_area_um2(4, arch.adc_area_8bit_um2) / 1e6
    assert cost.area_mm2["synapse_cells"] == dense["synapse_cells"]
    assert cost.area_mm2["partial_sum_adders"] == dense["partial_sum_adders"]
    assert cost.area_mm2["adc"] == pytest.approx(dense["adc"] - edge_adcs, rel=1e-12)
    assert cost.area_mm2["error_units"] == dense["error_units"]
    # energy of one read in both directions, as pcsim.circuit charges a dense layer per tau_x:
    # 2 n_in n_out MACs and the tile conversions of both directions
    assert cost.energy_j["crossbar_read"] == 2 * n_in * n_out * 30e-15
    assert cost.energy_j["tile_adc"] == m.adc_conversions * 5e-15 * 2**4


def test_bad_mapping_options_name_the_field():
    with pytest.raises(ValueError, match="replicas"):
        map_conv(SMALL, ARCH, replicas=0)
    with pytest.raises(ValueError, match="parallel_rows"):
        map_conv(SMALL, ARCH, parallel_rows=0)


def test_neurosim_preset_read_energy_is_its_own_device_physics():
    """The preset's read energy per MAC is computed from its own constants (two devices of a
    pair at the mean conductance, the read voltage, one read pulse), not NeuroSim's TOPS/W."""
    from hardware_models import load_preset
    from hardware_models.chip import preset_path, toml_sources

    chip = load_preset("neurosim-rram-22nm")
    s = chip.synapses
    g_mid = 0.5 * (s.g_min_s + s.g_max_s)
    e = chip.architecture.devices_per_weight * chip.value_units.signal_scale_v**2 * g_mid
    assert chip.costs.read_energy_per_mac_j == pytest.approx(e * s.read_time_s, rel=0.01)
    # every constant carries its source comment
    text = preset_path("neurosim-rram-22nm").read_text(encoding="utf-8")
    sources = toml_sources(text)
    keys = [k for k, _, _, _ in chip.describe() if "." in k and k in sources]
    assert len(keys) >= 15 and all(sources[k] for k in keys)


def test_dense_case_charges_what_the_circuit_charges_per_tau():
    """pcsim's Circuit charges a dense layer per tau_x of the dynamics (one read in each
    direction); the one-position conv layer on the same chip costs the same."""
    from pcsim import network
    from pcsim.circuit import Circuit

    chip = _chip()
    g = ConvGeometry(in_channels=3, height=4, width=4, out_channels=7, kernel=4)
    circ = Circuit(network.build((g.n_in, 7), "tanh", rng=0), chip)
    circ.charge_time(1.0, 1)
    led = circ.ledger.by_component()
    cost = conv_layer_cost(g, chip, backward=True)
    assert cost.energy_j["crossbar_read"] == pytest.approx(led["crossbar_read"], rel=1e-12)
    assert cost.energy_j["tile_adc"] == pytest.approx(led["tile_adc"], rel=1e-12)
    assert cost.map.latency_s == pytest.approx(circ.ledger.time_s, rel=1e-12)
    # analog hand-over between PC layers: no row DACs, as the circuit charges none inside
    assert cost.energy_j["dac"] == 0.0 and "dac" not in led
    # the circuit's static power also covers the input layer's value units: compare per unit
    n_units = circ.n_units
    assert cost.energy_j["static"] / (2 * 7) == pytest.approx(led["static"] / n_units)


def test_forward_only_layers_have_adcs_on_the_column_edge_only():
    chip = _chip()
    both = conv_layer_cost(SMALL, chip, backward=True)
    fwd = conv_layer_cost(SMALL, chip, backward=False)
    a_adc = adc_area_um2(4, ARCH.adc_area_8bit_um2) / 1e6
    # 3 tiles, each with ceil(4 / 2) column ADCs (and ceil(8 / 2) row ADCs when read both ways)
    assert both.area_mm2["adc"] == pytest.approx(3 * (2 + 4) * a_adc)
    assert fwd.area_mm2["adc"] == pytest.approx(3 * 2 * a_adc)
    assert fwd.area_mm2["partial_sum_adders"] == pytest.approx(3 * 2 * ARCH.adder_area_um2 / 1e6)
