"""One parameter framework for both packages (issue 20): pcsim's run configuration is declared
with hardware_models' ``param`` and raises the same error hierarchy, one line naming the field."""

from __future__ import annotations

import dataclasses

import pytest

from hardware_models import ChipConfigError, SynapseConfig
from hardware_models._config import (
    ConfigError,
    ListOf,
    TableOf,
    check_value,
    describe_fields,
    param,
)
from pcsim import config


def test_one_error_hierarchy():
    assert config.ConfigError is ConfigError
    assert issubclass(ChipConfigError, config.ConfigError)
    with pytest.raises(ChipConfigError, match=r"^chip\.synapses\.bits must be"):
        config.loads('[chip]\npreset = "rram"\nsynapses = {bits = 0}')


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[algorithm]\npresentation_time = -1", "algorithm.presentation_time must be > 0, got -1"),
        ("[network]\nsizes = [64, -3]", "network.sizes[1] must be a positive integer, got -3"),
        ("[network]\nsizes = [64]", "network.sizes must be a list of at least two layer sizes"),
        ("seed = 4294967296", "seed must be at most 4294967295 (a 32-bit seed), got 4294967296"),
        ("seed = -1", "seed must be a non-negative integer, got -1"),
        ("[data]\ntest_fraction = 1.0", "data.test_fraction must be between 0 and 1 (exclusive)"),
        ("[data]\nlimit_train = 0", "data.limit_train must be a positive integer or omitted"),
        ("[engine]\nkind = 'x'", "engine.kind must be one of 'clocked', 'events', 'brian2', got"),
        ("[engine]\ndt = nan", "engine.dt must not be NaN"),
        ("[engine]\ndt = inf", "engine.dt must be finite, got inf"),
        ("[network]\nbias = 1", "network.bias must be true or false, got 1"),
        ("[data]\npath = 3", "data.path must be a string or omitted, got 3"),
        ("[learning]\nepochs = 2.5", "learning.epochs must be a positive integer, got 2.5"),
        ("[enginee]\ndt = 1", "unknown key enginee (did you mean 'engine'?)"),
        ("[engine]\nddt = 1", "unknown key engine.ddt (did you mean 'dt'?)"),
        ("engine = 3", "engine must be a table, got 3"),
        ("chip = 3", "chip must be a table, got 3"),
        ("[network]\nconv = [{kernel = 3}]", "network.conv[0].channels is missing"),
        ("[network]\nconv = [{channels = 2, kernel = 3, strides = 1}]", "network.conv[0].strides"),
        ("[network]\nconv = [{channels = 2, kernel = 3, padding = -1}]", "conv[0].padding must"),
        ("[network]\nconv = [3]", "network.conv[0] must be a table like {channels = 8"),
    ],
)
def test_bad_fields_are_one_line_naming_the_dotted_field(toml, message):
    with pytest.raises(config.ConfigError) as err:
        config.loads(toml)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sections_validate_when_built_directly():
    """Construction is the one validation path: a section built in Python is checked too."""
    with pytest.raises(config.ConfigError, match=r"^engine\.dt must be > 0, got 0$"):
        config.EngineConfig(dt=0)
    with pytest.raises(config.ConfigError, match=r"^seeds must be a positive integer"):
        config.RunConfig(seeds=0)
    assert config.NetworkConfig(sizes=[64, 10]).sizes == (64, 10)  # lists become tuples
    assert config.AlgorithmConfig(presentation_time=3).presentation_time == 3.0
    assert type(config.AlgorithmConfig(presentation_time=3).presentation_time) is float


def test_a_configuration_round_trips_through_its_dict():
    text = (
        "seed = 7\nseeds = 3\n[data]\ntest_fraction = 0.3\n[network]\nsizes = [144, 20, 10]\n"
        "conv = [{channels = 4, kernel = 3}]\nactivation = 'tanh'\n[engine]\ndt = 0.125\n"
        "[learning]\ntau_w = 40.0\n[chip]\npreset = 'ideal'\n"
    )
    cfg = config.loads(text)
    d = cfg.to_dict()
    assert d["network"]["sizes"] == [144, 20, 10] and d["seeds"] == 3
    assert d["network"]["conv"] == [{"channels": 4, "kernel": 3}]  # no defaults filled in
    assert "lr" not in d["learning"]  # omitted fields stay omitted
    again = config.from_dict(d)
    assert again.to_dict() == d
    assert dataclasses.replace(again, source_text="") == dataclasses.replace(cfg, source_text="")


def test_every_field_of_both_packages_has_a_check_a_unit_and_a_doc():
    rows = describe_fields(config.RunConfig) + describe_fields(SynapseConfig)
    names = [r[0] for r in rows]
    want = ["seed", "seeds", "blas_threads"]  # every field, enumerated independently
    for section, cls in config.SECTIONS.items():
        want += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    want += [f"chip.synapses.{f.name}" for f in dataclasses.fields(SynapseConfig)]
    assert names == want
    assert "algorithm.presentation_time" in names and "chip.synapses.g_max_s" in names
    assert "seed" in names and "network.conv" in names
    run_docs = {r[0]: r[3] for r in rows if not r[0].startswith("chip.")}
    assert all(run_docs.values()), [n for n, d in run_docs.items() if not d]
    units = {r[0]: r[2] for r in rows}
    for timed in ("algorithm.presentation_time", "engine.dt", "learning.tau_w", "engine.delay_up"):
        assert units[timed] == "tau_x"
    assert units["chip.synapses.g_max_s"] == "S"
    defaults = {r[0]: r[1] for r in rows}
    assert defaults["engine.dt"] == "0.25" and defaults["learning.lr"] == "omitted"


def test_check_vocabulary():
    assert check_value("x", None, "pos_or_none") is None
    assert check_value("x", None, "open_frac_or_none") is None
    assert check_value("x", 0.5, "open_frac_or_none") == 0.5
    with pytest.raises(ChipConfigError, match="x must be between 0 and 1"):
        check_value("x", 0.0, "open_frac_or_none")
    with pytest.raises(ConfigError) as err:
        check_value("x", 0, "nonneg", ConfigError) or check_value("x", -1, "nonneg", ConfigError)
    assert type(err.value) is ConfigError  # the error class the caller names
    sizes = ListOf("count", "sizes", min_len=2)
    assert check_value("s", [3, 4], sizes) == (3, 4)
    with pytest.raises(ChipConfigError, match=r"^s\[1\] must be a positive integer, got 0$"):
        check_value("s", [3, 0], sizes)
    table = TableOf((("a", "count"), ("b", "bool")), "a table", required=("a",))
    assert check_value("t", {"a": 2}, table) == {"a": 2}
    with pytest.raises(ChipConfigError, match=r"^t\.b must be true or false"):
        check_value("t", {"a": 2, "b": 1}, table)
    with pytest.raises(TypeError, match="unknown check 'positive'"):
        param(1.0, "", "positive")


def test_pcsim_info_fields_prints_both_packages_alike(capsys):
    from pcsim import cli

    assert cli.main(["info", "--fields"]) == 0
    lines = capsys.readouterr().out.splitlines()
    dt = next(line for line in lines if line.startswith("engine.dt "))
    g = next(line for line in lines if line.startswith("chip.synapses.g_max_s "))
    assert dt.split()[1:3] == ["0.25", "tau_x"] and g.split()[1:3] == ["2.5e-05", "S"]
    unit_col = lines[0].index("unit")
    assert dt[unit_col:].startswith("tau_x") and g[unit_col:].startswith("S ")
    assert any(line.startswith("chip.costs.baseline.") for line in lines)  # nested sections
    node = next(line for line in lines if line.startswith("chip.node_nm "))
    assert node.split()[1:3] == ["45.0", "nm"]  # the Chip's own fields are declared alike
    seeds = next(line for line in lines if line.startswith("sweep.seeds "))
    assert seeds.split()[1:3] == ["1", "runs"]  # and a sweep file's [sweep] table


def test_the_sweep_table_is_a_section_like_the_others():
    from pcsim import sweep as sw

    axes = '\n[axes]\n"engine.dt" = [0.25, 0.5]'
    s = sw.parse_sweep('[sweep]\nmode = "random"\nsamples = 3\nseed = 5' + axes)
    assert (s.mode, s.seed, s.samples, len(s.points)) == ("random", 5, 3, 3)
    for table, message in [
        ("seeds = 0", "sweep.seeds must be a positive integer, got 0"),
        ('mode = "random"', "sweep.samples must be given (a positive integer) in random mode"),
        ("samples = 3", 'sweep.samples only applies to mode = "random"'),
        ("sed = 1", "unknown key sweep.sed (did you mean 'seed'?)"),
    ]:
        with pytest.raises(sw.SweepError) as err:
            sw.parse_sweep(f"[sweep]\n{table}" + axes)
        assert str(err.value) == message
        assert isinstance(err.value, config.ConfigError)


def test_equal_chip_tables_share_a_chip_but_a_chip_file_is_read_again(tmp_path):
    a = config.build_chip({"preset": "pcm", "synapses": {"bits": 4}})
    assert config.build_chip({"synapses": {"bits": 4}, "preset": "pcm"}) is a
    assert a.synapses.bits == 4
    assert config.build_chip({"preset": "pcm", "synapses": {"bits": 5}}).synapses.bits == 5
    with pytest.raises(ChipConfigError, match="got 1.0"):  # 1.0 is not the int 1: not shared
        config.build_chip({"preset": "pcm", "synapses": {"bits": 1.0}})
    f = tmp_path / "mine.toml"
    for bits in (3, 6):
        f.write_text(f'description = "test"\n[synapses]\nbits = {bits}\n')
        assert config.build_chip({"preset": str(f)}).synapses.bits == bits
