"""Training on real data (a shortened default run) and the algorithms' relations."""

from __future__ import annotations

import numpy as np
import pytest

from pcsim import config
from pcsim.run import execute

SHORT = """
[learning]
epochs = 8
[chip]
preset = "ideal"
"""


@pytest.fixture(scope="module")
def ipc_result():
    return execute(config.loads(SHORT), progress=False)


def test_ipc_learns_digits_close_to_backprop(ipc_result):
    s = ipc_result.summary
    assert s["algorithm"] == "ipc"
    assert s["test_accuracy"] >= 0.94
    assert s["bp_test_accuracy"] - s["test_accuracy"] <= 0.03
    acc = ipc_result.metrics["test_accuracy"]
    assert acc[-1] > acc[0]  # learning, not chance (10 %)


def test_pc_also_trains():
    r = execute(config.loads(SHORT + '[algorithm]\nname = "pc"\npresentation_time = 4.0\n'), False)
    assert r.summary["test_accuracy"] >= 0.80


def test_runs_are_reproducible_from_the_seed():
    # default chip: rram (noisy reads and writes); the BP baseline is not among the parameters
    text = "[learning]\nepochs = 1\n[data]\nlimit_train = 100\n[baseline]\nbp = false\n"
    text += "[algorithm]\ninference_samples = 8\n"  # priced on 8 test images: cheaper, as exact
    a = execute(config.loads(text), progress=False)
    b = execute(config.loads(text), progress=False)
    c = execute(config.loads("seed = 1\n" + text), progress=False)
    for k in a.parameters:
        np.testing.assert_array_equal(a.parameters[k], b.parameters[k])
    assert a.summary["test_accuracy"] == b.summary["test_accuracy"]
    assert not np.array_equal(a.parameters["W1"], c.parameters["W1"])


def test_generative_mode_infers_the_label_from_the_data():
    text = """
[network]
mode = "generative"
activation = "tanh"
sizes = [10, 64, 64]
[learning]
epochs = 4
[chip]
preset = "ideal"
"""
    r = execute(config.loads(text), progress=False)
    assert r.summary["test_accuracy"] > 0.5  # chance is 0.1
