"""The command line as a user meets it: the default run, JSON output, results files, and
one-line errors with exit code 2 (never a traceback, never a results file) on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from pcsim import results
from pcsim.cli import main


def pcsim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pcsim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


def test_run_writes_results_and_json(tmp_path):
    cfg = write(tmp_path, "[learning]\nepochs = 2\n[data]\nlimit_train = 300\n")
    out = tmp_path / "r.h5"
    p = pcsim("run", str(cfg), "--out", str(out), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    for key in (
        "algorithm",
        "engine",
        "test_accuracy",
        "train_accuracy",
        "epochs",
        "train_seconds",
    ):
        assert key in summary
    assert summary["epochs"] == 2 and summary["algorithm"] == "ipc"
    assert summary["chip"] == "rram"  # the default run is on a modelled analog chip
    for key in ("energy_per_sample_j", "latency_per_sample_s", "baseline_energy_per_sample_j"):
        assert summary[key] > 0
    # area by component, on rram's 128 x 128 NeuroSim tiles
    from hardware_models import load_preset

    area = summary["area_mm2_by_component"]
    assert summary["area_mm2"] == pytest.approx(sum(area.values())) and summary["area_mm2"] > 0
    cells = load_preset("rram").area_mm2(summary["sizes"])["synapse_cells"]
    assert area["synapse_cells"] == pytest.approx(cells)
    n = summary["sizes"]
    tiles = sum(-(-a // 128) * -(-b // 128) for a, b in zip(n[:-1], n[1:], strict=True))
    assert summary["tiles"] == tiles and summary["partial_sums"] == "digital"
    assert summary["energy_breakdown_j"]["tile_adc"] > 0  # per-tile conversions are charged
    # rram's 8 columns per 8-bit ADC convert in 72 ns, inside tau_x = 100 ns: no stretch
    assert summary["conversion_latency_per_sample_s"] == 0.0
    # iPC clocks every weight's pulse accumulator once per tau_x of its presentation
    chip = load_preset("rram")
    n_w = sum(a * b for a, b in zip(n[:-1], n[1:], strict=True))
    T = 2.0  # presentation_time / tau_x (the default)
    assert summary["energy_breakdown_j"]["pulse_accumulators"] == pytest.approx(
        n_w * T * chip.accumulator_add_energy_j
    )
    assert summary["bound_management_retries"] == 0  # off in the preset
    assert summary["bound_management_energy_per_sample_j"] == 0.0
    r = results.load(out)
    assert r.summary["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert r.metrics["test_accuracy"].shape == (2,)
    assert r.parameters["W1"].shape == (128, 64)
    assert "epochs = 2" in r.config_text


BAD = {
    "unknown key": ("[network]\nsizez = [64, 10]\n", "network.sizez"),
    "unknown section": ("[netwrk]\nsizes = [64, 10]\n", "netwrk"),
    "wrong type": ('[learning]\nepochs = "ten"\n', "learning.epochs"),
    "negative size": ("[network]\nsizes = [64, -3, 10]\n", "network.sizes[1]"),
    "zero dt": ("[engine]\ndt = 0.0\n", "engine.dt"),
    "negative dt": ("[engine]\ndt = -0.1\n", "engine.dt"),
    "nan dt": ("[engine]\ndt = nan\n", "engine.dt"),
    "missing data dir": ('[data]\nname = "mnist"\npath = "/no/such/dir"\n', "data.path"),
    "malformed toml": ("[network\nsizes = [64, 10]\n", "malformed TOML"),
    "input size mismatch": ("[network]\nsizes = [100, 10]\n", "network.sizes[0]"),
    "bad activation": ('[network]\nactivation = "swish"\n', "network.activation"),
    "unknown preset": ('[chip]\npreset = "graphene"\n', "unknown preset 'graphene'"),
    "negative capacitance": (
        "[chip.value_units]\ncapacitance_f = -1e-12\n",
        "chip.value_units.capacitance_f",
    ),
    "zero bits": ("[chip.synapses]\nbits = 0\n", "chip.synapses.bits"),
    "negative noise": ("[chip.synapses]\nread_noise_std = -0.1\n", "chip.synapses.read_noise_std"),
    "unknown chip key": ("[chip.synapses]\nbitz = 4\n", "chip.synapses.bitz"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_is_one_line_exit_2_and_no_results_file(name, tmp_path, capsys):
    text, field_name = BAD[name]
    cfg = write(tmp_path, text)
    out = tmp_path / "r.h5"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcsim: error:"), err
    assert field_name in lines[0]
    assert not out.exists()


def test_bad_config_from_a_real_process_has_no_traceback(tmp_path):
    cfg = write(tmp_path, "[engine]\ndt = nan\n")
    p = pcsim("run", str(cfg))
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "engine.dt" in p.stderr
    assert "Traceback" not in p.stderr


def test_info_lists_presets_and_prints_one_with_sources():
    p = pcsim("info")
    assert p.returncode == 0
    for name in ("ideal", "pcm", "rram", "sram-cim", "subthreshold", "digital"):
        assert f"  {name} " in p.stdout
    p = pcsim("info", "--chip", "pcm")
    assert p.returncode == 0
    line = next(x for x in p.stdout.splitlines() if x.startswith("synapses.g_max_s"))
    assert "2.5e-05" in line and "Nandakumar" in line
    p = pcsim("info", "--chip", "graphene")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown preset" in p.stderr


def test_missing_config_file(tmp_path):
    p = pcsim("run", str(tmp_path / "nope.toml"))
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_diverging_run_names_layer_and_time_and_keeps_old_results(tmp_path):
    out = tmp_path / "r.h5"
    out.write_bytes(b"previous results")
    cfg = write(
        tmp_path,
        "[engine]\ndt = 4.0\n[algorithm]\npresentation_time = 40.0\n[network]\n"
        'activation = "linear"\n[learning]\nepochs = 1\n[chip]\npreset = "ideal"\n',
    )
    p = pcsim("run", str(cfg), "--out", str(out), "--quiet")
    assert p.returncode == 3
    # dt = 4 tau_x is beyond Euler's limit 2 tau_x of a unit with tau = tau_x: said before training
    assert "diverge" in p.stderr and "stability limit 2 tau_x" in p.stderr
    assert "engine.dt" in p.stderr and "Traceback" not in p.stderr
    assert out.read_bytes() == b"previous results"
    assert not any(f.name.endswith(".tmp") for f in tmp_path.iterdir())


def test_results_reader_rejects_foreign_and_truncated_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(results.ResultsError, match="not a pcsim-results file"):
        results.load(foreign)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(results.ResultsError, match="not a readable HDF5 file"):
        results.load(junk)


def test_sweep_report_and_export_are_subcommands(tmp_path, capsys):
    """`pcsim sweep|report|export` reach their implementations, with their one-line errors."""
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        '[network]\nsizes = [64, 6, 10]\nactivation = "tanh"\n[chip]\npreset = "ideal"\n'
    )
    assert main(["export", "spice", str(cfg), "-o", str(tmp_path / "net.cir")]) == 0
    text = (tmp_path / "net.cir").read_text()
    assert str(cfg) in text and text.count("\n") > 50  # names its configuration
    bp = tmp_path / "bp.toml"
    bp.write_text('[algorithm]\nname = "bp"\n')
    assert main(["export", "brian2", str(bp), "-o", str(tmp_path / "m.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot export to Brian2" in err
    assert not (tmp_path / "m.py").exists()
    ipc = tmp_path / "ipc.toml"
    ipc.write_text(
        '[network]\nsizes = [64, 6, 10]\n[learning]\noptimizer = "sgd"\n[chip]\npreset = "ideal"\n'
    )
    assert main(["export", "brian2", str(ipc), "-o", str(tmp_path / "m.py"), "--steps", "5"]) == 0
    assert (tmp_path / "m.py").exists() and (tmp_path / "m.npz").exists()
