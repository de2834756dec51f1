"""The two inference protocols: the deployed feedforward settle (closed forms on the ideal
chip) and free relaxation; an inference that does not settle is NaN and flagged, never a
number, in the summary, its JSON and the printed table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hardware_models import load_preset
from pcsim import field, network
from pcsim.circuit import Circuit
from pcsim.cli import NOT_SETTLED, _print_summary
from pcsim.engines.clocked import ClockedEngine
from pcsim.inference import measure_feedforward, measure_inference, settle_feedforward


def _net(sizes, activation="tanh", seed=0):
    return network.build(sizes, activation, rng=np.random.default_rng(seed))


def test_feedforward_settle_ends_exactly_at_the_forward_pass_on_the_ideal_chip():
    net = _net((5, 7, 6, 3))
    circ = Circuit(net, chip=load_preset("ideal"), rng=np.random.default_rng(1))
    x0 = np.random.default_rng(2).standard_normal((4, 5))
    xs, out, swing = settle_feedforward(circ, x0, circ.read_weights(), 0.1, 2000)
    exact = field.feedforward(net, x0)
    for a, b in zip(xs[1:], exact[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # each unit rises from rest to its target: the swing is at least sum |x_l|
    assert swing[-1] >= sum(np.abs(v).sum() for v in exact[1:]) - 1e-9


def test_one_layer_settle_time_and_energy_in_closed_form():
    # one linear layer, ideal units: x(n dt) = mu (1 - (1 - dt)^n); settled once
    # max|mu| (1 - dt)^n <= tol, at n = ceil(ln(tol / max|mu|) / ln(1 - dt))
    net = _net((4, 3), "linear")
    chip = load_preset("ideal")
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(1))
    x = np.random.default_rng(3).standard_normal((5, 4))
    mu = x @ net.weights[0].T
    tol, dt = 1e-3, 0.1
    n = math.ceil(math.log(tol / np.abs(mu).max()) / math.log(1 - dt))
    cost = measure_feedforward(circ, x, ClockedEngine(dt=dt), tol=tol, max_time=50.0)
    assert cost.settled and cost.protocol == "feedforward"
    assert cost.settle_tau == pytest.approx(n * dt, abs=1e-9)
    assert cost.latency_s == pytest.approx(n * dt * chip.tau_x_s)
    # forward crossbar reads only: n_synapses MACs per tau_x per sample
    reads = cost.breakdown_j["crossbar_read"]
    assert reads == pytest.approx(12 * n * dt * chip.costs.read_energy_per_mac_j)
    static = 4 + 3 + 3  # input and output value units and the output error units, per sample
    assert cost.breakdown_j["static"] == pytest.approx(
        static * chip.costs.static_power_per_unit_w * n * dt * chip.tau_x_s
    )


def test_an_inference_that_cannot_settle_in_its_cap_is_nan_and_flagged():
    net = _net((6, 8, 3))
    circ = Circuit(net, chip=load_preset("ideal"), rng=np.random.default_rng(1))
    x = np.random.default_rng(3).standard_normal((4, 6))
    for measure in (measure_feedforward, measure_inference):
        cost = measure(circ, x, ClockedEngine(), tol=1e-6, max_time=1.0)  # far too short
        assert not cost.settled and cost.max_tau == pytest.approx(1.0)
        for v in (cost.settle_tau, cost.latency_s, cost.energy_j):
            assert math.isnan(v)
    s = {"inference_settled": False, "inference_free_settled": False, "inference_max_tau": 1.0}
    s.update(inference_latency_per_sample_s=float("nan"))
    assert math.isnan(json.loads(json.dumps(s))["inference_latency_per_sample_s"])


def test_subthreshold_chip_does_not_settle_and_the_table_says_so(capsys):
    # kT/C and error-unit noise of the subthreshold units (1e-3 per sqrt(tau) and more)
    # keep the output from staying within the 1e-3 criterion of a chip with no ADC
    net = _net((8, 16, 4))
    circ = Circuit(net, chip=load_preset("subthreshold"), rng=np.random.default_rng(1))
    x = np.random.default_rng(3).standard_normal((16, 8))
    ff = measure_feedforward(circ, x, ClockedEngine(), max_time=60.0)
    assert not ff.settled and math.isnan(ff.latency_s) and math.isnan(ff.energy_j)
    assert ff.tol == 1e-3
    s = {
        "algorithm": "ipc",
        "engine": "clocked/euler",
        "chip": "subthreshold",
        "dataset": "digits",
        "n_train": 10,
        "n_test": 450,
        "sizes": [8, 16, 4],
        "activation": "tanh",
        "epochs": 1,
        "train_accuracy": 0.5,
        "test_accuracy": 0.5,
        "train_seconds": 1.0,
        "inference_settled": False,
        "inference_energy_per_sample_j": float("nan"),
        "inference_latency_per_sample_s": float("nan"),
        "inference_max_tau": 60.0,
        "baseline_inference_energy_per_sample_j": 1e-9,
        "baseline_inference_latency_per_sample_s": 1e-7,
        "inference_free_settled": True,
        "inference_free_energy_per_sample_j": 2e-8,
        "inference_free_latency_per_sample_s": 3e-6,
        "inference_free_settle_tau": 12.0,
        "inference_settle_criterion": ff.criterion,
    }
    _print_summary(s)
    out = capsys.readouterr().out
    deployed = next(line for line in out.splitlines() if "inference (deployed)" in line)
    assert NOT_SETTLED in deployed and "nan" not in deployed.lower()
    assert "3e-06 s/sample" in out and "within 0.001" in out
