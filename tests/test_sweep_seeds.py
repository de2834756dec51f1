"""The seeds axis of a sweep: replicated points with their own seeds, and `pcsim report`'s
mean ± std table, test-set size and error bars (the drawn error-bar data, not just a file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from pcsim import report as rp
from pcsim import sweep as sw

SEEDS_SWEEP = """
[data]
limit_train = 100
[sweep]
seed = 3
seeds = 3
[axes]
"learning.lr" = [1e-3, 3e-3]
"chip.preset" = ["rram", "pcm"]
"""


def test_seeds_axis_replicates_every_combination_with_its_own_seed():
    s = sw.parse_sweep(SEEDS_SWEEP)
    assert s.seeds == 3 and len(s.points) == 2 * 2 * 3
    for c in range(4):  # the seeds axis varies fastest
        reps = s.points[3 * c : 3 * c + 3]
        assert len({tuple(p.values.items()) for p in reps}) == 1
        assert [p.seed for p in reps] == [sw.point_seed(3, 3 * c + r) for r in range(3)]
        assert [p.config["seed"] for p in reps] == [p.seed for p in reps]
    shared = sw.parse_sweep(SEEDS_SWEEP.replace("seeds = 3", "seeds = 3\nshared_seed = true"))
    # common random numbers: replicate r has the same seed at every combination
    assert [p.seed for p in shared.points] == [sw.point_seed(3, r) for r in range(3)] * 4
    one = sw.parse_sweep(SEEDS_SWEEP.replace("seeds = 3\n", ""))
    assert [p.seed for p in one.points] == [sw.point_seed(3, i) for i in range(4)]
    with pytest.raises(sw.SweepError, match="sweep.seeds"):
        sw.parse_sweep(SEEDS_SWEEP.replace("seeds = 3", "seeds = 0"))
    with pytest.raises(sw.SweepError, match=r"\[sweep\] seeds"):
        sw.parse_sweep("seeds = 2\n" + SEEDS_SWEEP)  # a run's seeds inside a sweep


def _finished(path: Path) -> tuple[sw.Sweep, dict]:
    s = sw.parse_sweep(SEEDS_SWEEP)
    rng = np.random.default_rng(0)
    rows = {}
    for p in s.points:
        lr = p.values["learning.lr"]
        rows[p.index] = {
            "status": "ok",
            "error": "",
            "test_accuracy": 0.6 + 20 * lr + 0.05 * rng.random(),
            "energy_per_sample_j": 1e-8 * (1 + rng.random()),
            "latency_per_sample_s": 2e-7,
            "baseline_energy_ratio": 3.0,
            "inference_latency_per_sample_s": np.nan if lr > 2e-3 else 5e-7,
            "n_test": 450,
            "wall_time_s": 1.0,
        }
    sw.write_results(path, s, rows)
    return s, rows


def test_report_draws_mean_and_std_error_bars_and_prints_the_test_set(tmp_path):
    out = tmp_path / "seeds.h5"
    s, rows = _finished(out)
    df = sw.load_sweep(out)
    assert df.attrs["seeds"] == 3
    fig = rp.accuracy_vs_axis_figure(df, "learning.lr")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 2  # one line per chip preset
    for preset, bar in zip(["pcm", "rram"], bars, strict=True):  # groups in sorted order
        means, stds = [], []
        for lr in (1e-3, 3e-3):
            acc = [
                rows[p.index]["test_accuracy"]
                for p in s.points
                if p.values == {"learning.lr": lr, "chip.preset": preset}
            ]
            means.append(100 * np.mean(acc))
            stds.append(100 * np.std(acc, ddof=1))
        line, _caps, (segments,) = bar.lines
        np.testing.assert_allclose(line.get_ydata(), means, rtol=1e-12)
        for seg, m, sd in zip(segments.get_segments(), means, stds, strict=True):
            np.testing.assert_allclose(seg[:, 1], [m - sd, m + sd], rtol=1e-12)
    pareto = rp.pareto_figure(df)
    assert any(c.has_yerr and c.has_xerr for c in pareto.axes[0].containers)
    lines: list[str] = []
    written = rp.report(out, plots=tmp_path / "plots", echo=lines.append)
    text = "\n".join(lines)
    assert "test set: 450 samples (one sample = 0.22 accuracy points)" in text
    assert "mean ± std over 3 seeds" in text and "not settled" in text
    png = tmp_path / "plots" / "accuracy_vs_learning_lr.png"
    assert png in written and imread(png).std() > 0.05


def test_xarray_has_a_replicate_dimension(tmp_path):
    pytest.importorskip("xarray")
    out = tmp_path / "seeds.h5"
    s, rows = _finished(out)
    ds = sw.load_sweep(out, as_xarray=True)
    assert ds["test_accuracy"].dims == ("learning.lr", "chip.preset", "replicate")
    got = ds["test_accuracy"].sel({"learning.lr": 3e-3, "chip.preset": "pcm"}).values
    want = [
        rows[p.index]["test_accuracy"]
        for p in s.points
        if p.values == {"learning.lr": 3e-3, "chip.preset": "pcm"}
    ]
    np.testing.assert_array_equal(got, want)
