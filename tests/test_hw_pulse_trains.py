"""Stochastic pulse-train updates: the coincidence counts' closed-form mean and variance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import ChipConfigError, Crossbar, SynapseConfig
from hardware_models.pulse_trains import coincidence_counts, rank_one_factors, train_length


def test_counts_have_the_binomial_mean_and_variance():
    rng = np.random.default_rng(0)
    dw, bl_max = 0.01, 31
    d = np.array([0.3, -0.1, 0.05, 0.0])
    x = np.array([0.5, -0.25, 0.1])
    reps = 20_000
    counts = np.stack([coincidence_counts(d, x, dw, bl_max, rng) for _ in range(reps)])
    # closed form: BL = ceil(max|d| max|x| / dw) = ceil(15) = 15 slots; update management
    # A xmax = B dmax with A B = 1 / (dw BL); n_ij ~ Binomial(BL, p_i q_j)
    bl = 15
    assert train_length(d, x, dw, bl_max, True) == bl
    ab = 1 / (dw * bl)
    a = math.sqrt(ab * 0.3 / 0.5)
    p, q = (ab / a) * np.abs(d), a * np.abs(x)
    pq = np.outer(p, q)
    mean = np.sign(np.outer(d, x)) * bl * pq
    var = bl * pq * (1 - pq)
    # the mean is the requested change in pulses
    np.testing.assert_allclose(mean, np.outer(d, x) / dw, atol=1e-12)
    se = np.sqrt(var / reps) + 1e-12
    assert np.all(np.abs(counts.mean(0) - mean) < 4.5 * se)
    np.testing.assert_allclose(counts.var(0), var, rtol=0.05, atol=1e-12)
    # the largest entry fires in every slot: max|d| max|x| / dw = BL exactly
    assert np.all(counts[:, 0, 0] == 15)


def test_train_length_is_capped_and_probabilities_clip_beyond_it():
    d, x = np.array([1.0]), np.array([1.0])
    assert train_length(d, x, 0.01, 31, True) == 31
    assert train_length(d, x, 0.01, 31, False) == 31
    assert train_length(0.001 * d, x, 0.01, 31, True) == 1
    # 100 pulses requested, at most 31 slots: every slot fires, the request is not met
    n = coincidence_counts(d, x, 0.01, 31, np.random.default_rng(1))
    assert n[0, 0] == 31


def test_rank_one_factors():
    rng = np.random.default_rng(2)
    d, x = rng.standard_normal(6), rng.standard_normal(5)
    fd, fx = rank_one_factors(np.outer(d, x))
    np.testing.assert_allclose(np.outer(fd, fx), np.outer(d, x), atol=1e-14)
    assert rank_one_factors(rng.standard_normal((6, 5))) is None


def test_crossbar_mean_change_equals_the_request():
    """Hard bounds, no pulse noise, far from the bounds: E[w] = w0 + sum of requests."""
    rng = np.random.default_rng(3)
    cfg = SynapseConfig(w_max=1.0, dw_min=0.002, update_bound="hard", update_scheme="stochastic")
    xb = Crossbar(cfg, (8, 6))
    xb.program(np.zeros((8, 6)), rng)
    d = np.linspace(-0.02, 0.02, 8)
    x = np.linspace(0.1, -0.2, 6)
    steps = 2000
    pulses = sum(xb.update(np.outer(d, x) * 1e-1, rng) for _ in range(steps))
    want = steps * np.outer(d, x) * 1e-1
    # per step n ~ Binomial(1, p q) (BL = 1 at this size): the sum's std
    pq = np.abs(np.outer(d, x)) * 1e-1 / 0.002
    se = 0.002 * np.sqrt(steps * pq * (1 - pq)) + 1e-12
    assert np.all(np.abs(xb.weights - want) < 4.5 * se)
    assert pulses == pytest.approx(np.abs(want).sum() / 0.002, rel=0.05)


def test_stochastic_needs_rank_one_changes_and_a_pulsed_device():
    rng = np.random.default_rng(4)
    cfg = SynapseConfig(w_max=1.0, dw_min=0.01, update_scheme="stochastic")
    xb = Crossbar(cfg, (4, 4))
    xb.program(np.zeros((4, 4)), rng)
    with pytest.raises(ValueError, match=r"update_scheme = 'stochastic' needs rank-one"):
        xb.update(rng.standard_normal((4, 4)), rng)
    with pytest.raises(ChipConfigError, match=r"chip\.synapses\.update_scheme"):
        SynapseConfig(update_scheme="stochastic")
