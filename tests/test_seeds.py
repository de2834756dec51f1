"""Several seeds: a 3-seed run is exactly 3 one-seed runs with seeds seed, seed + 1, seed + 2,
its figures are their means with sample standard deviations, and a NaN seed makes a NaN mean."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from pcsim import config, results
from pcsim.run import execute
from pcsim.seeds import combine_summaries, execute_seeds, seed_config

TOML = """
seed = 5
[learning]
epochs = 1
batch_size = 16
[data]
limit_train = 60
[network]
sizes = [64, 12, 10]
[baseline]
bp = false
[algorithm]
inference_samples = 8  # inference priced on 8 test images (the default 64 costs more)
"""

FIGURES = (
    "test_accuracy",
    "train_accuracy",
    "energy_per_sample_j",
    "inference_energy_per_sample_j",
    "inference_latency_per_sample_s",
    "inference_free_latency_per_sample_s",
)


def test_three_seeds_are_three_independent_runs_with_mean_and_sample_std():
    cfg = config.loads("seeds = 3\n" + TOML)
    assert cfg.seeds == 3
    combined = execute_seeds(cfg, lambda c: execute(c, progress=False)).summary
    singles = [
        execute(config.loads(TOML.replace("seed = 5", f"seed = {s}")), progress=False)
        for s in (5, 6, 7)
    ]
    assert combined["seeds"] == [5, 6, 7] and combined["n_seeds"] == 3
    for key in FIGURES:
        values = [r.summary[key] for r in singles]
        assert combined["per_seed"][key] == values, key
        assert combined[key] == pytest.approx(np.mean(values), rel=1e-12)
        assert combined[f"{key}_mean"] == combined[key]
        assert combined[f"{key}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=0)
    assert len(set(combined["per_seed"]["test_accuracy"])) > 1  # the seeds do differ
    # the baselines' ratios are against the mean chip figures
    row = combined["baselines"][0]
    assert row["train_energy_ratio"] == pytest.approx(
        row["train_energy_per_sample_j"] / combined["energy_per_sample_j"]
    )


def test_a_seed_that_did_not_settle_makes_nan_and_a_false_flag():
    a = {
        "seed": 0,
        "test_accuracy": 0.5,
        "inference_latency_per_sample_s": 1e-6,
        "inference_settled": True,
        "n_test": 450,
    }
    b = {
        "seed": 1,
        "test_accuracy": 0.7,
        "inference_latency_per_sample_s": float("nan"),
        "inference_settled": False,
        "n_test": 450,
    }
    s = combine_summaries([a, b])
    assert math.isnan(s["inference_latency_per_sample_s"]) and s["inference_settled"] is False
    assert s["test_accuracy_std"] == pytest.approx(math.sqrt(0.02))
    assert s["n_test"] == 450 and "n_test_std" not in s
    assert seed_config(config.loads("seeds = 3\n" + TOML), 2).seed == 7


def test_seeds_must_be_positive_one_line_exit_2(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text("seeds = 0\n")
    r = subprocess.run(
        [sys.executable, "-m", "pcsim.cli", "run", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "seeds" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(
        [sys.executable, "-m", "pcsim.cli", "run", "--seeds", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--seeds" in r.stderr


def test_cli_seeds_flag_prints_mean_and_std_and_keeps_per_seed_values(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(TOML)
    out = tmp_path / "r.h5"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcsim.cli",
            "run",
            str(p),
            "--seeds",
            "2",
            "--quiet",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["seeds"] == [5, 6] and len(s["per_seed"]["test_accuracy"]) == 2
    assert s["test_accuracy_std"] == pytest.approx(np.std(s["per_seed"]["test_accuracy"], ddof=1))
    assert "test accuracy" in r.stdout and " ± " in r.stdout and "2 (5, 6)" in r.stdout
    assert results.load(out).summary["per_seed"] == s["per_seed"]
