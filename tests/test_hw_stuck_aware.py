"""Stuck devices in a differential pair: the unaware and the stuck-aware mapping.

Checked against the conductances themselves (an independent route through g_plus - g_minus)
and against a brute-force search over every level the free partner can hold.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hardware_models import Crossbar, SynapseConfig, load_preset
from hardware_models._config import ChipConfigError
from hardware_models.stuck_aware import map_aware, map_unaware, reachable_end

G_MIN, G_MAX = 1e-6, 11e-6
CASES = list(itertools.product([1.0, -1.0], [True, False]))  # (side, stuck at g_max)


def _pair_weight(w, side, at_gmax, w_max, partner=None):
    """Weight read from the conductances: the standard mapping, the stuck device overridden,
    optionally the partner's conductance replaced (``partner``, siemens)."""
    k = (G_MAX - G_MIN) / w_max
    g = {1.0: G_MIN + max(w, 0.0) * k, -1.0: G_MIN + max(-w, 0.0) * k}
    g[side] = G_MAX if at_gmax else G_MIN
    if partner is not None:
        g[-side] = partner
    return (g[1.0] - g[-1.0]) / k


@pytest.mark.parametrize(("side", "at_gmax"), CASES)
def test_unaware_mapping_is_the_stuck_conductance_read_back(side, at_gmax):
    w_max = 0.8
    ws = np.linspace(-w_max, w_max, 41)
    got = map_unaware(ws, side, at_gmax, w_max)
    want = [_pair_weight(w, side, at_gmax, w_max) for w in ws]
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(("side", "at_gmax"), CASES)
def test_aware_mapping_is_the_best_partner_level(side, at_gmax):
    """The aware weight is the closest weight any partner conductance in [g_min, g_max]
    gives (brute force over 2001 levels): zero error where the partner can compensate, the
    clipped part otherwise."""
    w_max = 0.8
    levels = np.linspace(G_MIN, G_MAX, 2001)
    r = reachable_end(side, at_gmax, w_max)
    for w in np.linspace(-w_max, w_max, 33):
        reach = np.array([_pair_weight(w, side, at_gmax, w_max, p) for p in levels])
        best = reach[np.argmin(np.abs(reach - w))]
        aware = float(map_aware(w, side, at_gmax, w_max))
        assert aware == pytest.approx(best, abs=1e-3 * w_max)
        lo, hi = min(0.0, r), max(0.0, r)
        if lo <= w <= hi:
            assert aware == pytest.approx(w, abs=1e-15)  # the partner compensates exactly
        else:
            assert w - aware == pytest.approx(w - np.clip(w, lo, hi), abs=1e-15)
            assert aware in (lo, hi)


def test_reachable_end_table():
    # plus at g_max: [0, w_max]; plus at g_min: [-w_max, 0]; minus at g_max: [-w_max, 0];
    # minus at g_min: [0, w_max] (module docstring's table)
    got = reachable_end(np.array([1, 1, -1, -1]), np.array([True, False, True, False]), 2.0)
    np.testing.assert_array_equal(got, [2.0, -2.0, -2.0, 2.0])


def _programmed(**kw):
    cfg = dict(w_max=1.0, stuck_fraction=0.2, stuck_at_gmax_fraction=0.7)
    cfg.update(kw)
    rng = np.random.default_rng(3)
    W = rng.uniform(-0.6, 0.6, (120, 90))
    xb = Crossbar(SynapseConfig(**cfg), W.shape)
    xb.program(W, np.random.default_rng(11))
    return W, xb


def test_crossbar_device_model_maps_each_stuck_pair():
    W, pair = _programmed()
    _, unaware = _programmed(stuck_model="device")
    _, aware = _programmed(stuck_model="device", stuck_aware_mapping=True)
    mask = pair.stuck_mask
    # the same seed sticks the same synapses in every model: comparisons are paired
    np.testing.assert_array_equal(unaware.stuck_mask, mask)
    np.testing.assert_array_equal(aware.stuck_mask, mask)
    for xb in (unaware, aware):
        np.testing.assert_array_equal(xb.weights[~mask], W[~mask])
    # recover each stuck pair's defect from the pair model (+-1: a device at g_max; 0: at g_min)
    v = pair.weights[mask]
    r = aware._stuck_val  # reachable ends, in stuck-index order
    at_gmax = v != 0
    side = np.where(at_gmax, np.sign(v), -np.sign(r))
    np.testing.assert_array_equal(reachable_end(side, at_gmax, 1.0), r)
    w = W[mask]
    np.testing.assert_allclose(unaware.weights[mask], map_unaware(w, side, at_gmax, 1.0))
    np.testing.assert_allclose(aware.weights[mask], np.clip(w, np.minimum(r, 0), np.maximum(r, 0)))
    # the aware mapping never does worse than the unaware one, and is exact on about half
    err_aware = np.abs(aware.weights[mask] - w)
    err_unaware = np.abs(unaware.weights[mask] - w)
    assert np.all(err_aware <= err_unaware + 1e-12)
    assert 0.4 < np.mean(err_aware == 0) < 0.6  # w's sign matches the reachable side


def test_device_model_learns_within_the_reachable_interval():
    """Exact writes: a stuck pair follows clip(w + dW) within [min(0, r), max(0, r)]."""
    W, xb = _programmed(stuck_model="device", stuck_aware_mapping=True)
    mask = xb.stuck_mask
    r = xb._stuck_val
    lo, hi = np.minimum(r, 0), np.maximum(r, 0)
    want = xb.weights[mask].copy()
    rng = np.random.default_rng(5)
    for _ in range(6):
        dW = 0.3 * rng.standard_normal(W.shape)
        xb.update(dW, rng)
        want = np.clip(np.clip(want + dW[mask], -1.0, 1.0), lo, hi)
    np.testing.assert_allclose(xb.weights[mask], want)
    assert np.any(want != W[mask])  # the stuck pairs did learn


def test_aware_mapping_needs_the_device_model():
    with pytest.raises(ChipConfigError, match="chip.synapses.stuck_aware_mapping"):
        SynapseConfig(stuck_fraction=0.1, stuck_aware_mapping=True)


def test_presets_keep_the_pair_model():
    for name in ("rram", "pcm"):
        s = load_preset(name).synapses
        assert s.stuck_model == "pair" and not s.stuck_aware_mapping


def test_readout_charged_once_at_placement():
    from pcsim import network
    from pcsim.circuit import Circuit

    chip = load_preset(
        "rram", {"synapses.stuck_model": "device", "synapses.stuck_aware_mapping": True}
    )
    rng = np.random.default_rng(0)
    Ws = [rng.uniform(-0.3, 0.3, (8, 6)), rng.uniform(-0.3, 0.3, (3, 8))]
    circ = Circuit(network.from_weights(Ws, "leaky_relu"), chip=chip, rng=rng)
    n_dev = (48 + 24) * chip.architecture.devices_per_weight
    e = circ.ledger.by_component()["stuck_map_readout"]
    assert e == pytest.approx(n_dev * chip.costs.read_energy_per_mac_j, rel=1e-12)
    assert circ.ledger.counts()["stuck_map_readout"] == n_dev
