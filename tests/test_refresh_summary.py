"""Refreshes of one-sided PCM pairs in the run summary (``refreshes``, ``refresh_pulses``)."""

from __future__ import annotations

import numpy as np

from hardware_models import load_preset
from pcsim import network
from pcsim.circuit import Circuit
from pcsim.run import refresh_summary


def _pushed_circuit(steps: int = 60) -> Circuit:
    """A pcm-refresh circuit whose first matrix is pushed up 0.05 w_max per write until its
    pairs refresh (g_plus saturates while g_minus holds the initial negative weights)."""
    net = network.build([6, 5, 3], "tanh", rng=0)
    circ = Circuit(net, chip=load_preset("pcm-refresh"), rng=np.random.default_rng(0))
    for _ in range(steps):
        d = [0.05 * circ.crossbars[0].w_max * np.ones_like(net.weights[0])]
        circ.apply_weight_update(d + [np.zeros_like(W) for W in net.weights[1:]], None)
    return circ


def test_refreshes_are_summed_over_the_crossbars_and_are_in_the_write_pulses():
    circ = _pushed_circuit()
    counts = [cb.refresh_counts for cb in circ.crossbars]
    s = refresh_summary(circ)
    assert s == {
        "refreshes": int(sum(c[0] for c in counts)),
        "refresh_pulses": int(sum(c[1] for c in counts)),
    }
    assert s["refreshes"] > 0 and s["refresh_pulses"] >= s["refreshes"]
    # every refresh pulse is one of the write pulses charged
    assert s["refresh_pulses"] <= circ.ledger.counts()["synapse_write"]
    assert refresh_summary(Circuit(network.build([6, 5, 3], "tanh", rng=0))) == {
        "refreshes": 0,
        "refresh_pulses": 0,
    }


def test_refresh_counts_survive_a_checkpoint_state():
    circ = _pushed_circuit()
    cb = circ.crossbars[0]
    fresh = _pushed_circuit(0).crossbars[0]
    fresh.set_state(cb.get_state())
    np.testing.assert_array_equal(fresh.refresh_counts, cb.refresh_counts)
