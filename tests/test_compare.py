"""The run summary's baseline entries: every design named with node and precision, ratios
``baseline / chip``, the fair defaults, and no ratio against a missing chip figure."""

from __future__ import annotations

import math

import pytest

from hardware_models.baselines import standard_baselines
from pcsim.compare import baseline_summary, format_baselines


def test_summary_names_each_baseline_with_ratios_and_fair_defaults():
    bs = standard_baselines([64, 128, 10], 16, 22)
    s = baseline_summary(bs, 22, 1e-8, 2e-7, 4e-9, float("nan"))
    assert [r["name"] for r in s["baselines"]] == [b.name for b in bs]
    for r, b in zip(s["baselines"], bs, strict=True):
        assert r["precision"] in ("fp32", "fp16", "int8") and r["node_nm"] in (22, 45)
        assert r["train_energy_ratio"] == pytest.approx(b.train_energy_per_sample_j / 1e-8)
        assert r["train_latency_ratio"] == pytest.approx(b.train_latency_per_sample_s / 2e-7)
        assert r["inference_energy_ratio"] == pytest.approx(b.inference_energy_per_sample_j / 4e-9)
        assert r["inference_latency_ratio"] is None  # a NaN chip latency has no ratio
    fp16 = next(b for b in bs if b.name == "fp16@22nm")
    int8 = next(b for b in bs if b.name == "int8@22nm")
    assert s["baseline_name"] == "fp16@22nm" and s["baseline_inference_name"] == "int8@22nm"
    assert s["baseline_energy_per_sample_j"] == fp16.train_energy_per_sample_j
    assert s["baseline_inference_energy_per_sample_j"] == int8.inference_energy_per_sample_j
    assert s["energy_ratio"] == pytest.approx(fp16.train_energy_per_sample_j / 1e-8)
    lines = format_baselines(s)
    assert len(lines) == 2 + len(bs) and "n/a" in lines[1]
    assert not math.isnan(s["energy_ratio"])
