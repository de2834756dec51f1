"""`pcsim report`: tables, Pareto fronts, plots (valid, non-trivial PNGs) and bad files.

Budget: about 5 s (no Dask; one tiny in-process run).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from pcsim import integrity, results
from pcsim import report as rp
from pcsim import sweep as sw

CHIP_SWEEP = """
[data]
limit_train = 100
[sweep]
mode = "grid"
seed = 1
[axes]
"chip.synapses.bits" = [2, 4, 6, 8]
"chip.preset" = ["rram", "pcm", "ideal"]
"""


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 500
    assert img.std() > 0.05  # not a blank canvas
    assert len(np.unique(img.reshape(-1, img.shape[2]).round(2), axis=0)) > 20  # lines, text


def chip_sweep_file(path: Path, energies: bool = True) -> sw.Sweep:
    """A synthetic finished sweep: more bits -> more accurate and more energy."""
    s = sw.parse_sweep(CHIP_SWEEP)
    rng = np.random.default_rng(0)
    rows = {}
    for p in s.points:
        bits = p.values["chip.synapses.bits"]
        e = 1e-9 * 2.0**bits * (1 + 0.5 * rng.random())
        rows[p.index] = {
            "status": "ok",
            "error": "",
            "test_accuracy": 0.5 + 0.05 * bits + 0.02 * rng.random(),
            "energy_per_sample_j": e if energies else np.nan,
            "latency_per_sample_s": 1e-6 * bits,
            "area_mm2": 0.25 * bits,
            "baseline_energy_per_sample_j": 1e-5,
            "baseline_energy_ratio": 1e-5 / e,
            "wall_time_s": 1.0,
        }
    rows[5] = {"status": "failed", "error": "DivergenceError: activities left the rails"}
    del rows[7]
    sw.write_results(path, s, rows)
    return s


# --- Pareto fronts -------------------------------------------------------------------------------
def brute_front(acc: np.ndarray, en: np.ndarray) -> np.ndarray:
    n = len(acc)
    out = np.zeros(n, bool)
    for i in range(n):
        if not (np.isfinite(acc[i]) and np.isfinite(en[i])):
            continue
        dominated = False
        for j in range(n):
            if j == i or not (np.isfinite(acc[j]) and np.isfinite(en[j])):
                continue
            if acc[j] >= acc[i] and en[j] <= en[i] and (acc[j] > acc[i] or en[j] < en[i]):
                dominated = True
                break
        out[i] = not dominated
    return out


def test_pareto_front_small_example():
    acc = [0.9, 0.8, 0.95, 0.7, 0.9, np.nan]
    en = [2.0, 1.0, 5.0, 1.5, 3.0, 0.1]
    # 3 is beaten by 1 (more accurate, less energy); 4 by 0; 5 has no accuracy
    assert rp.pareto_front(acc, en).tolist() == [True, True, True, False, False, False]


def test_pareto_front_matches_brute_force_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        acc = rng.integers(0, 6, n) / 5.0  # many ties
        en = rng.integers(1, 6, n).astype(float)
        acc[rng.random(n) < 0.1] = np.nan
        assert rp.pareto_front(acc, en).tolist() == brute_front(acc, en).tolist()


# --- units and labels ----------------------------------------------------------------------------
def test_axis_units_and_labels():
    assert rp.axis_unit("algorithm.presentation_time") == "τ_x"
    assert rp.axis_unit("chip.value_units.capacitance_f") == "F"
    assert rp.axis_unit("chip.costs.read_energy_per_mac_j") == "J"
    assert rp.axis_unit("chip.value_units.tau_s") == "s"
    assert rp.axis_unit("chip.synapses.g_max_s") == "S"
    assert rp.axis_unit("chip.synapses.bits") in ("bit", "bits")
    assert rp.axis_label("learning.lr") == "learning.lr (dimensionless)"
    assert rp.axis_label("learning.batch_size") == "learning.batch_size (samples)"


# --- sweeps --------------------------------------------------------------------------------------
def test_report_sweep_table_and_pngs(tmp_path, capsys, monkeypatch):
    f = tmp_path / "chip.h5"
    chip_sweep_file(f)
    figs = {}
    save = rp._save

    def keep(fig, path):
        figs[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(rp, "_save", keep)
    plots = tmp_path / "plots"
    assert rp.report_main([str(f), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "grid sweep over chip.synapses.bits × chip.preset (12 points)" in lines[0]
    assert "10 ok, 1 failed, 1 not run yet" in lines[1]
    # best first: the first table row is the most accurate point
    df = sw.load_sweep(f)
    best = int(df[df.status == "ok"]["test_accuracy"].idxmax())
    first = lines[4].split()
    assert first[0] == "1" and int(first[1]) == best
    assert "area (mm^2)" in lines[2]  # the chip's area is a column of the table
    bits = df.loc[best, "chip.synapses.bits"]
    assert f"{0.25 * bits:.3g}" in first
    assert "point 5: DivergenceError: activities left the rails" in out
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["accuracy_vs_chip_synapses_bits.png", "pareto.png"]
    for n in names:
        assert_png(plots / n)
    ax = figs["pareto.png"].axes[0]
    assert ax.get_xlabel() == "energy per sample (J)" and ax.get_ylabel() == "test accuracy (%)"
    assert "chip.synapses.bits × chip.preset" in ax.get_title()
    assert ax.get_xscale() == "log"  # energies span 2^6
    ax = figs["accuracy_vs_chip_synapses_bits.png"].axes[0]
    assert ax.get_xlabel().startswith("chip.synapses.bits (bit")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"chip.preset = {p}" for p in ("ideal", "pcm", "rram")]  # one per value


def test_report_sweep_without_energy_skips_pareto(tmp_path, capsys):
    f = tmp_path / "noe.h5"
    chip_sweep_file(f, energies=False)
    assert rp.report_main([str(f), "--plots", str(tmp_path / "p"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "pareto.png skipped" in out and "... 8 more points" in out
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["accuracy_vs_chip_synapses_bits.png"]


def test_pareto_front_marked_in_the_plot(tmp_path, monkeypatch):
    f = tmp_path / "chip.h5"
    chip_sweep_file(f)
    df = sw.load_sweep(f)
    figs = {}
    monkeypatch.setattr(rp, "_save", lambda fig, path: figs.setdefault(path.name, fig) and path)
    rp.plot_pareto(df, tmp_path / "pareto.png")
    ax = figs["pareto.png"].axes[0]
    line = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"][0]
    ok = df[df.status == "ok"]
    front = rp.pareto_front(ok["test_accuracy"], ok["energy_per_sample_j"])
    assert sorted(line.get_xdata()) == sorted(ok["energy_per_sample_j"][front])
    assert 1 < front.sum() < len(ok)


# --- single runs ---------------------------------------------------------------------------------
def test_report_single_run_curves_and_energy_breakdown(tmp_path, capsys):
    from pcsim import config
    from pcsim.run import execute

    cfg = config.from_dict(
        {
            "data": {"limit_train": 150},
            "network": {"sizes": [64, 16, 10]},
            "learning": {"epochs": 3, "lr": 0.003},
        }
    )
    res = execute(cfg, progress=False)
    res.ledger = {"crossbar_read": 2e-6, "static": 5e-7, "adc": 1e-8, "weight_write": 1e-6}
    f = tmp_path / "run.h5"
    results.save(f, res)
    plots = tmp_path / "plots"
    assert rp.report_main([str(f), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "single run, ipc on digits (64-16-10)" in out
    assert f"{res.summary['test_accuracy']:.4g}" in out
    assert "crossbar_read" in out
    for n in ("curves.png", "energy_breakdown.png"):
        assert_png(plots / n)


def test_report_run_without_ledger_skips_breakdown(tmp_path, capsys):
    m = {
        "epoch": np.arange(1, 4),
        "train_accuracy": np.array([0.5, 0.7, 0.8]),
        "test_accuracy": np.array([0.4, 0.6, 0.7]),
        "train_energy": np.array([1.0, 0.5, 0.3]),
    }
    r = results.RunResult("seed = 0\n", {"algorithm": "pc", "dataset": "digits"}, m, {})
    results.save(tmp_path / "r.h5", r)
    assert rp.report_main([str(tmp_path / "r.h5"), "--plots", str(tmp_path / "p")]) == 0
    assert "energy_breakdown.png skipped" in capsys.readouterr().out
    assert_png(tmp_path / "p" / "curves.png")


# --- bad files -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind", ["text", "truncated", "foreign", "missing", "directory", "damaged"]
)
def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys, kind):
    good = tmp_path / "good.h5"
    chip_sweep_file(good)
    f = tmp_path / "bad.h5"
    if kind == "text":
        f.write_text("epoch,accuracy\n1,0.5\n")
    elif kind == "truncated":
        f.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    elif kind == "foreign":
        with h5py.File(f, "w") as h:
            h.attrs["format"] = "netcdf-ish"
            h["data"] = np.arange(10)
    elif kind == "directory":
        f.mkdir()
    elif kind == "damaged":
        f.write_bytes(good.read_bytes())
        with h5py.File(f, "a") as h:
            del h["plan"]
        integrity.seal(f)  # a deliberate edit: sealed again
    assert rp.report_main([str(f), "--plots", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcsim: error: ") and err.count("\n") == 1
    assert not (tmp_path / "plots").exists()


def test_usage_errors(tmp_path, capsys):
    assert rp.report_main([]) == 2
    assert rp.report_main(["x.h5", "--top", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(x.startswith("pcsim: error: ") for x in lines)
