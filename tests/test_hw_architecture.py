"""Tiles, partial sums, ADC sharing and area: closed forms from the mapping and cited constants."""

from __future__ import annotations

import math

import pytest

from hardware_models import ChipConfigError, load_preset
from hardware_models.architecture import (
    HOROWITZ_FP32_FMA_UM2,
    ArchitectureConfig,
    chip_area,
    map_layer,
)

SIZES = [784, 128, 10]


def _arch(**kw) -> ArchitectureConfig:
    base = dict(partial_sums="digital", adc_share_columns=8, feature_size_m=22e-9)
    base.update(kw)
    return ArchitectureConfig(**base)


def test_784_wide_layer_on_256_tiles_versus_one_crossbar():
    one = map_layer(128, 784, _arch())
    tiled = map_layer(128, 784, _arch(tile_rows=256, tile_cols=256))
    assert (one.row_tiles, one.col_tiles) == (1, 1)
    assert (tiled.row_tiles, tiled.col_tiles) == (4, 1)  # ceil(784 / 256) = 4
    # every row tile converts its own partial sums of the 128 outputs
    assert tiled.conversions_forward == 4 * 128 > one.conversions_forward == 128
    assert tiled.conversions_backward == one.conversions_backward == 784
    # latency: 8 columns per ADC, 9 ns each (8-bit SAR), plus log2(4) = 2 adder clocks
    t_adc = 9e-9
    one_t = map_layer(128, 784, _arch(), adc_bits=8)
    tiled_t = map_layer(128, 784, _arch(tile_rows=256, tile_cols=256), adc_bits=8)
    assert one_t.latency_forward_s == pytest.approx(8 * t_adc)
    assert tiled_t.latency_forward_s == pytest.approx(8 * t_adc + 2e-9)
    # area: 4 x 256 x 256 fabricated cells against 784 x 128, and more ADCs
    kw = dict(adc_bits=8, dac_bits=8)
    a_one = chip_area(SIZES, _arch(), **kw)
    a_tiled = chip_area(SIZES, _arch(tile_rows=256, tile_cols=256), **kw)
    assert a_tiled["synapse_cells"] / a_one["synapse_cells"] == pytest.approx(
        (4 * 256 * 256 + 256 * 256) / (784 * 128 + 128 * 10)
    )
    assert a_tiled["adc"] > a_one["adc"]
    assert sum(a_tiled.values()) > sum(a_one.values())


def test_adc_sharing_multiplies_the_read_latency_as_stated():
    for k in (1, 2, 8, 32):
        m = map_layer(128, 784, _arch(tile_rows=256, tile_cols=256, adc_share_columns=k), 8)
        assert m.latency_forward_s == pytest.approx(min(k, 256) * 9e-9 + 2e-9)
        assert m.latency_backward_s == pytest.approx(min(k, 256) * 9e-9)  # one column tile
        # fewer ADCs: ceil(256/k) per edge, two edges per tile, 4 tiles
        assert m.adcs == 4 * 2 * math.ceil(256 / k)


def test_analog_partial_sums_convert_nothing_inside():
    m = map_layer(128, 784, _arch(tile_rows=256, tile_cols=256, partial_sums="analog"), 8)
    assert m.adcs == m.conversions_forward == m.conversions_backward == 0
    assert m.latency_forward_s == 0.0
    area = chip_area(SIZES, _arch(partial_sums="analog"), adc_bits=8, dac_bits=8)
    # only the edge ADCs remain: ceil(10 / 8) = 2 of 1200 um^2
    assert area["adc"] == pytest.approx(2 * 1200e-6)
    assert area["partial_sum_adders"] == 0.0


def test_area_components_from_their_formulas():
    arch = _arch(cell_area_f2=16.0, devices_per_weight=2, partial_sums="analog")
    a = chip_area(
        SIZES,
        arch,
        adc_bits=6,
        dac_bits=8,
        value_capacitance_f=1e-12,
        pulsed=True,
        digital_state_bits_per_weight=64,
    )
    f2 = (22e-9 * 1e6) ** 2  # um^2
    n_w = 784 * 128 + 128 * 10
    assert a["synapse_cells"] == pytest.approx(n_w * 2 * 16 * f2 * 1e-6)
    assert a["adc"] == pytest.approx(2 * 1200 * 2.0**-2 * 1e-6)  # 6-bit: A8 / 4
    assert a["dac"] == pytest.approx((784 + 10) * 0.166 * 2**7 * 1e-6)
    # value unit: OTA 20 um^2 + 1 pF at 2 fF/um^2 = 500 um^2
    assert a["value_units"] == pytest.approx(sum(SIZES) * 520 * 1e-6)
    assert a["error_units"] == pytest.approx((128 + 10) * (20 + 50) * 1e-6)
    sram = 178.6 * f2
    assert a["pulse_accumulators"] == pytest.approx(n_w * 8 * sram * 1e-6)
    fma = HOROWITZ_FP32_FMA_UM2 * (22 / 45) ** 2
    assert a["digital_coprocessor"] == pytest.approx((n_w * 64 * sram + fma) * 1e-6)
    # replicas multiply the analog circuit, not the co-processor
    a2 = chip_area(
        SIZES, arch, adc_bits=6, dac_bits=8, digital_state_bits_per_weight=64, replicas=3
    )
    assert a2["synapse_cells"] == pytest.approx(3 * a["synapse_cells"])
    assert a2["digital_coprocessor"] == pytest.approx(a["digital_coprocessor"])


@pytest.mark.parametrize("name", ["rram", "pcm", "sram-cim"])
def test_presets_draw_tiles_and_report_area(name):
    chip = load_preset(name)
    assert chip.architecture.tiled and chip.architecture.partial_sums == "digital"
    area = chip.area_mm2(SIZES)
    assert all(v >= 0 for v in area.values()) and area["synapse_cells"] > 0
    # a small MNIST network on any of these chips is well under a square centimetre
    assert 1e-3 < sum(area.values()) < 100
    rows = {r[0]: r for r in chip.describe()}
    assert rows["architecture.tile_rows"][3] != "default"  # the preset cites a source


def test_ideal_chip_is_untiled_with_analog_hand_over():
    chip = load_preset("ideal")
    assert not chip.architecture.tiled
    m = chip.layer_maps(SIZES)[0]
    assert (m.rows, m.cols, m.adcs) == (784, 128, 0)


@pytest.mark.parametrize(
    "over, field",
    [
        ({"architecture.tile_rows": 0}, "chip.architecture.tile_rows"),
        ({"architecture.tile_rows": 64}, "chip.architecture.tile_rows"),
        ({"architecture.adc_share_columns": 2.5}, "chip.architecture.adc_share_columns"),
        ({"architecture.partial_sums": "optical"}, "chip.architecture.partial_sums"),
    ],
)
def test_bad_architecture_names_the_field(over, field):
    with pytest.raises(ChipConfigError, match=field):
        load_preset("ideal", over)
