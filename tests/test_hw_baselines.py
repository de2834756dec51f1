"""Digital baselines: closed-form pricing of a small MLP, node scaling from the Stillmaker and
Baas fits, SRAM against DRAM weight traffic by model size, and the three roofline regimes."""

from __future__ import annotations

import pytest

from hardware_models import ChipConfigError, load_preset
from hardware_models.baselines import (
    PRECISIONS,
    Roofline,
    energy_scale,
    memory_for,
    price,
    standard_baselines,
)


def test_node_scaling_is_the_ratio_of_the_stillmaker_fits_at_0p9_v():
    assert energy_scale(45) == pytest.approx(1.0)
    # HP fits: 20 nm 0.373 V^2 - 0.1582 V + 0.04104, 45 nm 1.018 V^2 - 0.3107 V + 0.1539, V = 0.9
    e20 = 0.373 * 0.81 - 0.1582 * 0.9 + 0.04104
    e45 = 1.018 * 0.81 - 0.3107 * 0.9 + 0.1539
    assert energy_scale(20) == pytest.approx(e20 / e45, rel=1e-12)
    # 22 nm lies 1/6 of the way from the 20 nm fit to the 32 nm fit
    e32 = 0.8367 * 0.81 - 0.4341 * 0.9 + 0.1701
    assert energy_scale(22) == pytest.approx((5 * e20 + e32) / 6 / e45, rel=1e-12)
    with pytest.raises(ValueError, match="node_nm"):
        energy_scale(3)


def test_small_mlp_priced_by_hand():
    # 4-3-2 MLP: P = 12 + 6 = 18 weights, P_1 = 12; batch 2; FP32 at 45 nm
    c = price([4, 3, 2], 2, "fp32", 45)
    mac = 3.7e-12 + 0.9e-12
    sram = 10e-12  # 72 B of weights (144 B with the gradient): the 8 kB SRAM
    acc_inf = 18 * 4 / 8 / 2  # one read of W per batch, 64-bit accesses, per sample
    assert c.inference_energy_per_sample_j == pytest.approx(18 * mac + acc_inf * sram, rel=1e-12)
    macs_train = 18 + 6 + 18 + 18 / 2
    acc_train = (5 * 18 + 6) * 4 / 8 / 2
    assert c.train_energy_per_sample_j == pytest.approx(
        macs_train * mac + acc_train * sram, rel=1e-12
    )
    assert c.memory == "SRAM 8 kB"
    # tiny kernels: every one is launch-bound; 2 layers forward, 2 backward, 2 updates
    assert c.inference_bound == "overhead" and c.train_bound == "overhead"
    bw, peak = 5120 * 1.41e9, 19.5e12
    fwd = max(2 * 2 * 12 / peak, 12 * 4 / bw) + max(2 * 2 * 6 / peak, 6 * 4 / bw)
    assert c.inference_latency_per_sample_s == pytest.approx((fwd + 2 * 4e-6) / 2, rel=1e-12)
    bwd = max(2 * 2 * 12 / peak, 12 * 4 / bw) + max(4 * 2 * 6 / peak, 2 * 6 * 4 / bw)
    upd = max(2 * 12 / peak, 3 * 12 * 4 / bw) + max(2 * 6 / peak, 3 * 6 * 4 / bw)
    assert c.train_latency_per_sample_s == pytest.approx(
        (fwd + bwd + upd + 6 * 4e-6) / 2, rel=1e-12
    )


def test_node_scales_energy_not_latency_and_precisions_are_ordered():
    a, b = price([64, 128, 10], 8, "int8", 45), price([64, 128, 10], 8, "int8", 14)
    assert b.train_energy_per_sample_j == pytest.approx(
        a.train_energy_per_sample_j * energy_scale(14), rel=1e-12
    )
    assert b.train_latency_per_sample_s == a.train_latency_per_sample_s
    e = [price([64, 128, 10], 8, p).train_energy_per_sample_j for p in ("fp32", "fp16", "int8")]
    assert e[0] > e[1] > e[2]


def test_a_2m_weight_network_charges_dram_and_a_26k_one_does_not():
    small = [64, 128, 128, 10]  # 25,856 weights (the digits MLP)
    big = [784, 1400, 784, 10]  # 2,205,280 weights
    for b in standard_baselines(small, 32, 22):
        assert "DRAM" not in b.memory, b
    for b in standard_baselines(big, 32, 22):
        assert b.memory == "DRAM", b
    # the DRAM share is the Horowitz 1.3 nJ per 64-bit access, per sample, for inference
    c = price(big, 32, "int8", 45)
    P = 784 * 1400 + 1400 * 784 + 784 * 10
    assert c.inference_energy_per_sample_j == pytest.approx(
        P * PRECISIONS["int8"].mac_j + P / 8 / 32 * 1.3e-9, rel=1e-12
    )
    assert memory_for(1e6) == ("SRAM 1 MB", 100e-12)
    assert memory_for(1e6 + 1)[0] == "DRAM"


def test_roofline_regimes():
    no_overhead = Roofline(overhead_per_kernel_s=0.0)
    # batch 1, DRAM-resident FP32 weights: 2 FLOPs per 4 bytes, far below the A100 balance
    m = price([2000, 2000], 1, "fp32", roofline=no_overhead)
    assert m.inference_bound == "memory"
    assert m.inference_latency_per_sample_s == pytest.approx(2000 * 2000 * 4 / 1555e9)
    # a batch of 4096 on SRAM-resident weights: compute-bound at the FP32 peak
    c = price([200, 200], 4096, "fp32", roofline=no_overhead)
    assert c.inference_bound == "compute"
    assert c.inference_latency_per_sample_s == pytest.approx(2 * 200 * 200 / 19.5e12)
    # the default launch overhead dominates a small MLP at batch 32
    o = price([64, 128, 128, 10], 32, "fp16")
    assert o.inference_bound == "overhead" and o.train_bound == "overhead"
    assert o.inference_latency_per_sample_s >= 3 * 4e-6 / 32


def test_presets_carry_their_node_and_bad_nodes_are_rejected():
    nodes = {p: load_preset(p).node_nm for p in ("pcm", "rram", "sram-cim", "digital")}
    assert nodes == {"pcm": 14, "rram": 22, "sram-cim": 22, "digital": 45}
    names = [b.name for b in load_preset("rram").baselines([64, 10], 1)]
    assert names == [f"{p}@{n}nm" for n in (22, 45) for p in ("fp32", "fp16", "int8")]
    with pytest.raises(ChipConfigError, match="chip.node_nm"):
        load_preset("rram", {"node_nm": 2})
