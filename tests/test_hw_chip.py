"""Chip composition, presets, validation messages, overrides and source comments."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import hardware_models
from hardware_models import Chip, ChipConfigError, list_presets, load_preset
from hardware_models.chip import preset_path

PRESETS = ["ideal", "pcm", "rram", "sram-cim", "subthreshold", "digital"]
PKG = Path(hardware_models.__file__).parent


def test_all_presets_are_listed_and_load():
    assert set(PRESETS) <= set(list_presets())
    assert list_presets()[0] == "ideal"
    for name in PRESETS:
        chip = load_preset(name)
        assert chip.name == name
        assert chip.tau_x_s == pytest.approx(
            chip.value_units.capacitance_f / chip.value_units.conductance_s, rel=1e-15
        )
        assert chip.tau_x_s > 0
        assert chip.costs.read_energy_per_mac_j > 0  # every preset can report energy


def test_ideal_preset_is_ideal_and_others_are_not():
    assert load_preset("ideal").is_ideal
    assert Chip().is_ideal
    for name in ("pcm", "rram", "sram-cim", "subthreshold"):
        assert not load_preset(name).is_ideal


def test_preset_time_scales_are_physical():
    assert load_preset("rram").tau_x_s == pytest.approx(100e-9)  # 100 kOhm x 1 pF
    assert 1e-6 <= load_preset("subthreshold").tau_x_s <= 1e-3  # us-ms subthreshold


_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=\s*(.+?)\s*$")


def _is_number(text: str) -> bool:
    value = text.split("#", 1)[0].strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(parsed, int | float) and not isinstance(parsed, bool)


@pytest.mark.parametrize("name", PRESETS)
def test_every_numeric_preset_value_has_a_source_comment(name):
    lines = preset_path(name).read_text().splitlines()
    n_numeric = 0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") or line.lstrip().startswith("["):
            continue
        m = _KEY_LINE.match(line)
        if not m or not _is_number(m.group(2)):
            continue
        n_numeric += 1
        inline = "#" in m.group(2)
        above = i > 0 and lines[i - 1].lstrip().startswith("#")
        assert inline or above, f"{name}.toml line {i + 1} has no source comment: {line!r}"
    assert n_numeric >= 5


@pytest.mark.parametrize("name", PRESETS)
def test_describe_reports_a_source_for_every_preset_value(name):
    chip = load_preset(name)
    rows = {r[0]: r for r in chip.describe()}
    data = tomllib.loads(preset_path(name).read_text())

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    for key, _ in leaves(data):
        if key in ("name", "description"):
            continue
        assert key in rows, key
        assert rows[key][3] not in ("", "default"), key
    assert rows["value_units.capacitance_f"][2] == "F"
    assert rows["synapses.g_max_s"][2] == "S"
    assert "tau_x_s" in rows
    assert "source" in chip.describe_text().splitlines()[1]


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, field, phrase",
    [
        ({"value_units.capacitance_f": -1e-15}, "chip.value_units.capacitance_f", "must be > 0"),
        ({"synapses": {"bits": 0}}, "chip.synapses.bits", "must be an integer >= 1 or omitted"),
        ({"synapses.bits": 2.5}, "chip.synapses.bits", "must be an integer >= 1 or omitted"),
        ({"synapses.read_noise_std": -0.1}, "chip.synapses.read_noise_std", "must be in [0, 10]"),
        ({"error_units.noise_std": -1.0}, "chip.error_units.noise_std", "must be in [0, 10]"),
        ({"value_units.capacitance_f": "1pF"}, "chip.value_units.capacitance_f", "must be a"),
        ({"value_units.thermal_noise": 1}, "chip.value_units.thermal_noise", "true or false"),
        ({"synapses.stuck_fraction": 1.5}, "chip.synapses.stuck_fraction", "[0, 1]"),
        ({"synapses.update_bound": "squishy"}, "chip.synapses.update_bound", "one of"),
        ({"synapses.foo": 1}, "chip.synapses.foo", "unknown key"),
        ({"bogus": {"x": 1}}, "chip.bogus", "unknown key"),
        ({"synapses": 3}, "chip.synapses", "must be a table"),
        ({"costs.baseline.mult_energy_j": -1}, "chip.costs.baseline.mult_energy_j", ">= 0"),
        ({"synapses.g_min_s": 1.0}, "chip.synapses.g_min_s", "must be < g_max_s"),
        ({"value_units.rail_low": 3.0}, "chip.value_units.rail_low", "must be < rail_high"),
        ({"converters.adc_bits": 1}, "chip.converters.adc_bits", ">= 2"),
        ({"synapses.g_max_s.x": 1}, "chip.synapses.g_max_s", "not a table"),
    ],
)
def test_bad_parameters_raise_one_line_errors_naming_the_field(overrides, field, phrase):
    with pytest.raises(ChipConfigError) as exc:
        load_preset("pcm", overrides)
    msg = str(exc.value)
    assert "\n" not in msg
    assert field in msg
    assert phrase in msg
    assert isinstance(exc.value, ValueError)


def test_error_message_format_exact():
    with pytest.raises(ChipConfigError) as exc:
        Chip.from_dict({"value_units": {"capacitance_f": -1e-15}})
    assert str(exc.value) == "chip.value_units.capacitance_f must be > 0, got -1e-15"


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ChipConfigError) as exc:
        load_preset("xyz")
    msg = str(exc.value)
    assert msg.startswith("chip.preset: unknown preset 'xyz'; available: ideal, ")
    assert all(name in msg for name in PRESETS)
    assert "\n" not in msg


def test_invalid_toml_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[synapses\nbits = 3\n")
    with pytest.raises(ChipConfigError) as exc:
        load_preset(str(bad))
    assert "\n" not in str(exc.value) and "bad.toml" in str(exc.value)


# -- overrides and round trips -------------------------------------------------------------------
def test_overrides_nested_and_dotted_agree_and_mark_sources():
    a = load_preset("pcm", {"synapses": {"bits": 4}, "value_units": {"leak": 0.0}})
    b = load_preset("pcm", {"chip.synapses.bits": 4, "value_units.leak": 0.0})
    assert a == b
    assert a.synapses.bits == 4 and a.value_units.leak == 0.0
    assert a.sources["synapses.bits"] == "override"
    assert "Nandakumar" in a.sources["synapses.prog_noise_scale"]
    back = load_preset("pcm").with_overrides({"synapses.bits": None})
    assert back.synapses.bits is None


def test_to_dict_round_trip():
    for name in PRESETS:
        chip = load_preset(name)
        assert Chip.from_dict(chip.to_dict()) == chip


def test_int_values_are_accepted_for_floats():
    chip = Chip.from_dict({"value_units": {"capacitance_f": 1, "conductance_s": 2}})
    assert chip.value_units.capacitance_f == 1.0 and isinstance(chip.tau_x_s, float)
    assert chip.tau_x_s == 0.5


def test_chip_builds_crossbars_and_units():
    rng = np.random.default_rng(0)
    chip = load_preset("rram")
    xb = chip.crossbar((3, 4), np.float32)
    xb.program(np.zeros((3, 4), np.float32), rng)
    assert xb.read(0.0, rng).shape == (3, 4)
    units = chip.units(5, rng)
    assert units.tau_scale.shape == (5,)
    assert chip.transition_energy_j == pytest.approx(1e-12 * 0.5**2)
    base = chip.digital_baseline([4, 3, 2])
    assert base.train_energy_per_sample_j > base.inference_energy_per_sample_j > 0


def test_hardware_models_never_imports_pcsim():
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+pcsim\b", text, re.M), path
    code = "import sys, hardware_models; hardware_models.load_preset('pcm'); "
    code += "assert not any(m.split('.')[0] == 'pcsim' for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent)


@pytest.mark.parametrize("field", ["value_units.tau_mismatch_std", "synapses.d2d_std"])
def test_absurd_spreads_are_refused(field):
    with pytest.raises(ChipConfigError, match=f"chip.{field} must be in"):
        load_preset("rram", overrides={field: 1e308})
