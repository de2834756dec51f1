"""Bit slicing (``architecture.cell_bits``): weights over ceil(bits / cell_bits) devices,
each slice on its own tiles, shift-and-add after conversion (ISAAC). Hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import ChipConfigError, load_preset
from hardware_models.architecture import ArchitectureConfig, chip_area, map_layer
from pcsim import network
from pcsim.circuit import Circuit

TILE = dict(partial_sums="digital", tile_rows=256, tile_cols=256, adc_share_columns=8)


def test_a_784_wide_layer_of_8_bit_weights_in_2_bit_cells():
    """(100, 784) on 256 x 256 tiles: 4 row tiles x 1 column tile; 4 slices of 2 bits make
    16 tiles, 4 x (4 x 100) forward and 4 x (1 x 784) backward conversions, 4 x 4 x (32 + 32)
    ADCs, and log2(4) = 2 more adder clocks after the 8-column mux of 9 ns conversions."""
    arch = ArchitectureConfig(cell_bits=2, **TILE)
    m = map_layer(100, 784, arch, adc_bits=8, sar_cycle_s=1e-9, weight_bits=8)
    assert (m.slices, m.tiles) == (4, 16)
    assert (m.conversions_forward, m.conversions_backward) == (1600, 3136)
    assert m.adcs == 4 * 4 * (32 + 32)
    assert m.latency_forward_s == pytest.approx(8 * 9e-9 + (2 + 2) * 1e-9)  # tiles + slices
    assert m.latency_backward_s == pytest.approx(8 * 9e-9 + (0 + 2) * 1e-9)
    assert m.cells == 16 * 256 * 256
    # 3-bit cells: ceil(8 / 3) = 3 slices; cell_bits >= bits: one device, as without slicing
    assert map_layer(100, 784, ArchitectureConfig(cell_bits=3, **TILE), weight_bits=8).slices == 3
    whole = map_layer(100, 784, ArchitectureConfig(**TILE), adc_bits=8, weight_bits=8)
    same = map_layer(100, 784, ArchitectureConfig(cell_bits=8, **TILE), adc_bits=8, weight_bits=8)
    assert same == whole and whole.slices == 1


def test_area_grows_with_the_slices_where_it_should():
    sizes, kw = [784, 100, 10], dict(adc_bits=8, dac_bits=8, weight_bits=8)
    base = chip_area(sizes, ArchitectureConfig(**TILE), **kw)
    sliced = chip_area(sizes, ArchitectureConfig(cell_bits=2, **TILE), **kw)
    for key in ("synapse_cells", "partial_sum_adders"):
        assert sliced[key] == pytest.approx(4 * base[key])
    # tile ADCs x 4, the edge ADCs (ceil(10 / 8) = 2) are not sliced
    tile_adcs = 4 * 4 * 64 + 4 * 1 * 64
    a8 = base["adc"] / (tile_adcs / 4 + 2)
    assert sliced["adc"] == pytest.approx(a8 * (tile_adcs + 2))
    for key in ("dac", "value_units", "error_units", "pulse_accumulators"):
        assert sliced[key] == base[key]


def test_presets_are_unchanged_and_a_sliced_rram_chip_reads_4_times_the_devices():
    chip = load_preset("rram")
    sizes = [64, 128, 128, 10]
    same = chip.with_overrides({"architecture.cell_bits": chip.synapses.bits})
    assert same.layer_maps(sizes) == chip.layer_maps(sizes)
    assert same.area_mm2(sizes) == chip.area_mm2(sizes)
    sliced = chip.with_overrides({"architecture.cell_bits": 2})  # 8-bit weights: 4 slices
    assert sliced.weight_slices == 4
    a, b = chip.area_mm2(sizes), sliced.area_mm2(sizes)
    assert b["synapse_cells"] == pytest.approx(4 * a["synapse_cells"])
    conv = [sum(m.conversions_forward + m.conversions_backward for m in c.layer_maps(sizes))
            for c in (chip, sliced)]  # fmt: skip
    assert conv[1] == 4 * conv[0]
    energies = []
    for c in (chip, sliced):
        circ = Circuit(network.build(sizes, "tanh", rng=0), chip=c, rng=np.random.default_rng(0))
        circ.charge_time(10.0, 1)
        energies.append(circ.ledger.by_component()["crossbar_read"])
    assert energies[1] == pytest.approx(4 * energies[0])


def test_slicing_needs_digital_partial_sums_and_weight_bits():
    with pytest.raises(ValueError, match="cell_bits"):
        ArchitectureConfig(cell_bits=2, partial_sums="analog")
    with pytest.raises(ChipConfigError, match="cell_bits"):
        load_preset("pcm").with_overrides({"architecture.cell_bits": 2})
