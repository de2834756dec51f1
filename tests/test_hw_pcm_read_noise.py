"""PCM 1/f read noise: grows with the age of a write, depends on conductance (Nandakumar 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import ChipConfigError, Crossbar, SynapseConfig
from hardware_models.pcm_read_noise import pcm_read_noise_growth, pcm_read_noise_q

T_READ = 250e-9


def test_q_and_growth_closed_forms():
    # Q = min(0.0088 / g^0.65, 0.2), by hand
    assert pcm_read_noise_q(1.0) == pytest.approx(0.0088)
    assert pcm_read_noise_q(0.5) == pytest.approx(0.0088 / 0.5**0.65)
    assert pcm_read_noise_q(1e-3) == pytest.approx(0.2)  # capped
    assert pcm_read_noise_growth(T_READ, T_READ) == 0.0  # nothing accumulated yet
    assert pcm_read_noise_growth(0.0, T_READ) == 0.0
    assert pcm_read_noise_growth(1.0, T_READ) == pytest.approx(
        math.sqrt(math.log((1.0 + T_READ) / (2 * T_READ)))
    )


def _xb(n=400, **kw):
    cfg = SynapseConfig(w_max=1.0, g_min_s=0.0, read_noise_model="pcm", read_time_s=T_READ, **kw)
    return Crossbar(cfg, (n, n))


@pytest.mark.parametrize("age", [1e-5, 1.0, 3600.0])
def test_deviation_std_is_the_closed_form_per_conductance(age):
    rng = np.random.default_rng(0)
    xb = _xb()
    levels = np.array([0.1, 0.5, 0.9])
    W = levels[rng.integers(0, 3, xb.shape)] * np.where(rng.random(xb.shape) < 0.5, -1, 1)
    xb.program(W, rng)
    dev = xb.read_mean(age) - W
    for g in levels:
        sel = np.abs(W) == g
        want = g * pcm_read_noise_q(g) * pcm_read_noise_growth(age, T_READ)
        assert dev[sel].std() == pytest.approx(want, rel=0.03)
        assert abs(dev[sel].mean()) < 4 * want / math.sqrt(sel.sum())
    # it is a slow deviation: two reads at the same time agree, it grows with time
    np.testing.assert_array_equal(xb.read_mean(age), xb.read_mean(age))
    assert not np.array_equal(xb.read_mean(2 * age), xb.read_mean(age))


def test_a_write_restarts_the_deviation():
    rng = np.random.default_rng(1)
    xb = _xb(50)
    W = rng.uniform(-1, 1, xb.shape)
    xb.program(W, rng)
    dW = np.zeros(xb.shape)
    dW[:10] = 0.01  # rows 0-9 written at t = 100 s (exact writes)
    xb.update(dW, rng, t_s=100.0)
    dev = xb.read_mean(100.0) - (W + dW).clip(-1, 1)
    assert np.all(dev[:10] == 0.0)  # age 0 at the write: nothing accumulated
    assert np.all(np.abs(dev[10:]) > 0)
    np.testing.assert_array_equal(xb.write_times[:10], 100.0)


def test_pcm_read_noise_needs_a_read_time():
    with pytest.raises(ChipConfigError, match=r"chip\.synapses\.read_time_s"):
        SynapseConfig(read_noise_model="pcm")
