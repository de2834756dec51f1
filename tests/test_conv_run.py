"""``pcsim run`` with ``network.conv``: area, digital baselines, latency and the ledger of a
tiny conv net (digits, conv 2@3x3 s2 p1 -> dense 10 on rram) against
:mod:`hardware_models.conv_mapping` and :mod:`hardware_models.baselines` called directly and
against a hand count of its MACs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hardware_models import baselines, load_preset
from hardware_models.architecture import UM2_PER_MM2, layer_area_um2
from hardware_models.conv_geometry import ConvGeometry
from hardware_models.conv_mapping import conv_layer_cost
from pcsim import checkpoint as ckpt
from pcsim import config, results
from pcsim.run import execute

B = 4  # circuit replicas (learning.batch_size)
T = 2.0  # presentation time (tau_x)
CONV_TOML = f"""
seed = 1
blas_threads = 1
[network]
conv = [{{channels = 2, kernel = 3, stride = 2, padding = 1}}]
sizes = [32, 10]
bias = false
[data]
name = "digits"
limit_train = 16
test_fraction = 0.05  # 90 test images: the accuracy is not what these tests check
[learning]
epochs = 1
batch_size = {B}
[algorithm]
presentation_time = {T}
[baseline]
bp = false
[chip]
preset = "rram"
"""

# by hand: 1x8x8 image, kernel 3, stride 2, padding 1 -> 2 channels of 4x4 = 32 outputs;
# 16 positions x 9 rows x 2 channels = 288 MACs on 18 weights; dense 32 -> 10: 320 and 320
GEOM = ConvGeometry(in_channels=1, height=8, width=8, out_channels=2, kernel=3, stride=2, padding=1)
CONV_MACS, CONV_WEIGHTS, DENSE = 16 * 9 * 2, 9 * 2, 32 * 10
SIZES = [64, 32, 10]


@pytest.fixture(scope="module")
def run():
    return execute(config.loads(CONV_TOML), progress=False).summary


def test_hand_count_of_the_tiny_conv_net(run):
    assert GEOM.positions == 16 and GEOM.rows == 9 and GEOM.n_out == 32
    assert GEOM.macs_per_sample == CONV_MACS
    assert run["sizes"] == SIZES
    assert run["macs_per_read"] == CONV_MACS + DENSE


def test_digital_baselines_price_the_conv_macs_and_kernel_weights(run):
    chip = load_preset("rram")
    assert run["baselines"], "a conv run prices its digital baselines"
    for row in run["baselines"]:
        want = baselines.price_layers(
            [CONV_MACS, DENSE], [CONV_WEIGHTS, DENSE], 32, row["precision"], row["node_nm"]
        )
        for k, v in want.to_dict().items():
            assert row[k] == v, k
    # the fair inference baseline by hand: (MACs x MAC energy + weight reads) at the node
    p = baselines.PRECISIONS["int8"]
    access_j = baselines.memory_for((CONV_WEIGHTS + DENSE) * p.word_bytes)[1]
    accesses = (CONV_WEIGHTS + DENSE) * p.word_bytes / baselines.ACCESS_BYTES / 32
    hand = baselines.energy_scale(chip.node_nm) * (
        (CONV_MACS + DENSE) * p.mac_j + accesses * access_j
    )
    assert run["baseline_inference_energy_per_sample_j"] == pytest.approx(hand, rel=1e-12)
    assert run["energy_ratio"] == pytest.approx(
        run["baseline_energy_per_sample_j"] / run["energy_per_sample_j"], rel=1e-12
    )
    # the MLP of the same sizes would be priced on 64 x 32 + 320 weights: not this
    mlp = baselines.price(SIZES, 32, "int8", chip.node_nm)
    assert run["baseline_inference_energy_per_sample_j"] < 0.5 * mlp.inference_energy_per_sample_j


def test_price_layers_of_dense_layers_is_price():
    for prec in baselines.PRECISIONS:
        a = baselines.price([784, 300, 10], 16, prec, 22)
        b = baselines.price_layers([784 * 300, 3000], [784 * 300, 3000], 16, prec, 22)
        assert a == b


def test_area_is_conv_mapping_beside_the_dense_layers(run):
    chip = load_preset("rram")
    arch, cv = chip.architecture, chip.converters
    area = run["area_mm2_by_component"]
    conv = conv_layer_cost(GEOM, chip)  # one copy of the kernel array and its units
    dense = chip.layer_maps([32, 10])[0]
    dense_um2 = layer_area_um2(dense, arch, cv.adc_bits)
    for k in ("synapse_cells", "adc", "partial_sum_adders"):
        edge = 0.0
        if k == "adc":  # the output edge's ADCs
            edge = math.ceil(10 / arch.adc_share_columns) * (
                conv.area_mm2["adc"] / conv.map.layer.adcs
            )
        want = B * (conv.area_mm2[k] + dense_um2[k] / UM2_PER_MM2 + edge)
        assert area[k] == pytest.approx(want, rel=1e-12), k
    # a value unit per activity (input pixels included), an error unit above the input
    per_value = conv.area_mm2["value_units"] / GEOM.n_out
    per_error = conv.area_mm2["error_units"] / GEOM.n_out
    assert area["value_units"] == pytest.approx(B * per_value * sum(SIZES), rel=1e-12)
    assert area["error_units"] == pytest.approx(B * per_error * sum(SIZES[1:]), rel=1e-12)
    # one pulse accumulator per weight: the kernel's 18, not 64 x 32
    acc_per_weight = area["pulse_accumulators"] / (B * (CONV_WEIGHTS + DENSE))
    mlp = chip.area_mm2(SIZES, replicas=B)["pulse_accumulators"] / (B * (64 * 32 + DENSE))
    assert acc_per_weight == pytest.approx(mlp, rel=1e-12)
    assert run["area_mm2"] == pytest.approx(sum(area.values()), rel=1e-12)


def test_latency_and_ledger_follow_the_streamed_patches(run):
    chip = load_preset("rram")
    conv = conv_layer_cost(GEOM, chip)
    # one read of the network waits for the conv layer's 16 patches (each tau_x)
    period = max(conv.map.latency_s, chip.tau_x_s)
    assert conv.map.latency_s == pytest.approx(16 * chip.tau_x_s, rel=1e-12)
    assert run["latency_per_sample_s"] == pytest.approx(T * period, rel=1e-12)
    e = run["energy_breakdown_j"]
    for k in ("crossbar_read", "tile_adc", "static", "dac", "synapse_write", "unit_dynamic"):
        assert e[k] > 0, k
    assert "pulse_accumulators" in e  # rram is pulsed
    # T reads of the network per sample, forward and backward, every MAC of every position
    want = (
        T * 2 * (CONV_MACS + DENSE) * chip.costs.read_energy_j(1) * chip.architecture.device_pairs
    )
    assert e["crossbar_read"] == pytest.approx(want, rel=1e-9)
    # T reads, each the conv layer's conversions at its 16 positions and the dense layer's
    dense = chip.layer_maps([32, 10])[0]
    conv_conv = conv.map.adc_conversions  # both directions, one sweep
    per_read = conv_conv + dense.conversions_forward + dense.conversions_backward
    assert run["adc_conversions_per_read"] == per_read
    assert e["tile_adc"] == pytest.approx(T * per_read * chip.converters.adc_energy_j, rel=1e-9)
    # every value and error unit biased for the whole presentation
    n_units = sum(SIZES) + sum(SIZES[1:])
    want_static = chip.costs.static_energy_j(n_units, T * period)
    assert e["static"] == pytest.approx(want_static, rel=1e-9)
    assert run["energy_per_sample_j"] == pytest.approx(sum(e.values()), rel=1e-12)


def test_conv_run_killed_midway_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL a conv run after its first checkpoints (one per batch), resume it from the
    last one: the results equal the uninterrupted run's bit for bit (tests/test_checkpoint.py
    kills dense runs at random points the same way)."""
    text = CONV_TOML.replace("epochs = 1", "epochs = 2")
    ref = execute(config.loads(text), progress=False)
    ref_file = tmp_path / "ref.h5"
    results.save(ref_file, ref)
    ref = results.load(ref_file)
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    out, ck = tmp_path / "r.h5", tmp_path / "r.ckpt.h5"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = ["run", str(cfg), "--out", str(out), "--quiet", "--checkpoint-every", "1b"]
    p = subprocess.Popen([sys.executable, "-m", "pcsim.cli", *args], env=env)
    try:
        # kill once the checkpoint has moved past the first batch (mid-way: 8 batches in all)
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            if ck.exists():
                try:
                    state = ckpt.load(ck).state
                except Exception:  # being written (atomically replaced): look again
                    state = None
                if state is not None and (state["epoch"], state["batch"]) >= (0, 2):
                    break
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before the kill"
    assert not out.exists()
    state = ckpt.load(ck).state
    assert (state["epoch"], state["batch"]) < (2, 0)  # killed before the end
    r = subprocess.run(
        [sys.executable, "-m", "pcsim.cli", "run", "--resume", str(ck), "--out", str(out)]
        + ["--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    got = results.load(out)
    for k in ref.parameters:
        assert np.array_equal(ref.parameters[k], got.parameters[k]), k
    for k in ref.metrics:
        if k != "wall_seconds":
            assert np.array_equal(ref.metrics[k], got.metrics[k]), k
    skip = {"train_seconds"}
    assert {k: v for k, v in ref.summary.items() if k not in skip} == {
        k: v for k, v in got.summary.items() if k not in skip
    }
    assert ref.ledger == got.ledger


def test_results_check_a_conv_layer_against_its_geometry():
    """A results file's W of a conv layer must be its kernel matrix, and the next layer must
    take the conv layer's units; anything else is one ResultsError line."""
    conv = [
        {"in_channels": 1, "height": 8, "width": 8, "out_channels": 2, "kernel": 3}
        | {"stride": 2, "padding": 1},
        None,
    ]
    good = {"W1": np.zeros((2, 9)), "W2": np.zeros((10, 32))}
    results._check_parameters(good, "r.h5", conv)  # no error
    with pytest.raises(results.ResultsError, match=r"W1 has shape \(9, 2\), not the kernel"):
        results._check_parameters({"W1": np.zeros((9, 2)), "W2": good["W2"]}, "r.h5", conv)
    with pytest.raises(results.ResultsError, match="W2 has shape .* does not follow"):
        results._check_parameters({"W1": good["W1"], "W2": np.zeros((10, 31))}, "r.h5", conv)
    # without the geometry (a dense run) the same W1, W2 do not chain
    with pytest.raises(results.ResultsError, match="does not follow"):
        results._check_parameters(good, "r.h5")
