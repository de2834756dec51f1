"""One-sided PCM pairs (SET-only exponential steps, refresh) against written-out recurrences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import ChipConfigError, Crossbar, SynapseConfig
from hardware_models.pcm_pair import REFRESH_MAX_PULSES, _refresh, set_step

# aihwkit PCMPresetDevice in pcsim units (docs/sources.md): dw_min 0.01 on [0, 2] -> 0.005
PCM = dict(
    w_max=1.0,
    dw_min=0.005,
    unit_cell="one_sided",
    set_step_a=27.235,
    set_step_k=5.0,
    reset_level=0.005,
)


def _xb(shape, **kw) -> Crossbar:
    return Crossbar(SynapseConfig(**{**PCM, **kw}), shape)


def test_noise_free_set_pulses_follow_the_exponential_step():
    rng = np.random.default_rng(0)
    xb = _xb((1, 2), refresh_upper=1.0, refresh_lower=1.0)
    xb.program(np.zeros((1, 2)), rng)
    g = 0.0
    pulse = 0.005 * 1.0000001  # one nominal pulse per call
    for _ in range(40):
        xb.update(np.array([[pulse, -pulse]]), rng)
        g = min(g + 0.005 * (1 + 27.235 * math.exp(-5.0 * g)), 1.0)  # by hand
        gp, gm = xb.pair_conductances
        # an increase goes onto g_plus, a decrease onto g_minus: both only grow
        assert gp[0, 0] == pytest.approx(g, abs=1e-12)
        assert gm[0, 0] == 0.0 and gp[0, 1] == 0.0
        assert gm[0, 1] == pytest.approx(g, abs=1e-12)
        np.testing.assert_array_equal(xb.weights, gp - gm)
    # the step shrinks with conductance: 28.2x dw_min at g = 0, 1.18x at g = 1
    assert set_step(0.0, 0.005, 27.235, 5.0) == pytest.approx(0.005 * 28.235)
    assert set_step(1.0, 0.005, 27.235, 5.0) == pytest.approx(0.005 * (1 + 27.235 * math.exp(-5)))


def test_pulse_noise_is_unbiased_with_aihwkits_complex_std():
    """One pulse on many devices at g = 0.3: mean = nominal, std = sigma (dg + add + slope g)."""
    rng = np.random.default_rng(1)
    n = 200_000
    sig, add, slope = 0.6, 0.021, 0.108
    xb = _xb((1, n), dw_min_std=sig, dw_std_add=add, dw_std_slope=slope, refresh_upper=1.0)
    xb.program(np.full((1, n), 0.3), rng)
    xb.update(np.full((1, n), 0.005 * 1.0000001), rng)
    dg = 0.005 * (1 + 27.235 * math.exp(-5.0 * 0.3))
    std = sig * (dg + add + slope * 0.3)
    step = xb.pair_conductances[0] - 0.3
    assert abs(step.mean() - dg) < 4 * std / math.sqrt(n)
    assert step.std() == pytest.approx(std, rel=0.01)


def test_refresh_rewrites_the_difference_onto_the_larger_side():
    b, r, a, k = 1.0, 0.005, 27.235, 5.0
    rng = np.random.default_rng(0)  # unused: noise-free
    gp, gm, pulses = _refresh(0.8, 0.3, b, r, a, k, 0.0, 0.0, 0.0, False, 0.005, 0.75, 0.25, rng)
    assert gm == 0.005  # RESET level
    # closed loop: SET pulses until one more nominal step would not come closer to the target
    target, g, n = 0.005 + 0.5, 0.005, 0
    while g + 0.5 * set_step(g, r, a, k) < target:
        g = min(g + float(set_step(g, r, a, k)), 1.0)
        n += 1
    assert gp == pytest.approx(g, abs=1e-12)
    assert pulses == 2 + n and n < REFRESH_MAX_PULSES
    assert abs((gp - gm) - 0.5) <= 0.5 * set_step(gp, r, a, k)
    # a negative weight is rewritten onto g_minus
    gp2, gm2, _ = _refresh(0.3, 0.8, b, r, a, k, 0.0, 0.0, 0.0, False, 0.005, 0.75, 0.25, rng)
    assert (gp2, gm2) == (0.005, pytest.approx(g, abs=1e-12))
    # not due: larger below upper, or smaller below lower (aihwkit's criterion)
    for pair in ((0.7, 0.3), (0.8, 0.2), (0.2, 0.8)):
        assert _refresh(*pair, b, r, a, k, 0.0, 0.0, 0.0, False, 0.005, 0.75, 0.25, rng) == (
            *pair,
            0,
        )


def test_crossbar_refresh_is_counted_and_keeps_the_weight():
    rng = np.random.default_rng(2)
    xb = _xb((1, 1))
    xb.program(np.array([[0.0]]), rng)
    p = 0.005 * 1.0000001
    # fill g_minus to 0.3 (above lower), then g_plus until it passes 0.75: a refresh
    while xb.pair_conductances[1][0, 0] <= 0.3:
        xb.update(np.array([[-p]]), rng)
    fired = 0
    while xb.refresh_counts[0] == 0:
        gp0, gm0 = (float(g[0, 0]) for g in xb.pair_conductances)
        fired = xb.update(np.array([[p]]), rng)
    gp, gm = xb.pair_conductances
    assert gm[0, 0] == 0.005 and xb.refresh_counts[1] == fired - 1  # one SET, then the refresh
    assert gp0 + set_step(gp0, 0.005, 27.235, 5.0) > 0.75 and gm0 > 0.25
    # the pair's difference after the triggering pulse, rewritten within half a step
    target = gp0 + float(set_step(gp0, 0.005, 27.235, 5.0)) - gm0
    assert abs(xb.weights[0, 0] - target) <= 0.5 * set_step(gp[0, 0], 0.005, 27.235, 5.0)


def test_pulses_do_not_depend_on_how_the_request_is_split():
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    W0 = np.random.default_rng(4).uniform(-0.5, 0.5, (20, 20))
    k = np.random.default_rng(5).integers(-30, 30, (20, 20))
    dW = (k + 0.5 * np.sign(k + 0.1)) * 0.005  # half-integer pulse counts: no boundary cases
    one, ten = _xb((20, 20), refresh_upper=1.0), _xb((20, 20), refresh_upper=1.0)
    one.program(W0, rng1)
    ten.program(W0, rng2)
    n1 = one.update(dW, rng1)
    n10 = sum(ten.update(dW / 10, rng2) for _ in range(10))
    assert n1 == n10 == int(np.abs(k).sum())
    np.testing.assert_allclose(one.weights, ten.weights, atol=1e-12)


def test_one_sided_needs_a_pulse_size():
    with pytest.raises(ChipConfigError, match=r"chip\.synapses\.unit_cell"):
        SynapseConfig(unit_cell="one_sided")
    with pytest.raises(ChipConfigError, match=r"chip\.synapses\.refresh_lower"):
        SynapseConfig(**{**PCM, "refresh_lower": 0.9})


def test_pcm_refresh_preset_steps_as_aihwkits_pcm_preset_device():
    """aihwkit's ExpStep SET step on its range [0, 2], dw_min (1 - A_up exp(gamma_up z)),
    z = -w (a = -1, b = 0), A_up = -27.235, gamma_up = 2.5, halved onto pcsim's [0, 1]."""
    from hardware_models import load_preset

    over = {"synapses.w_max": 1.0, "synapses.d2d_std": 0.0, "synapses.dw_min_std": 0.0}
    over["synapses.prog_noise_scale"] = 0.0  # start exactly at g = 0
    syn = load_preset("pcm-refresh", over).synapses
    assert syn.unit_cell == "one_sided" and syn.read_noise_model == "pcm"
    rng = np.random.default_rng(6)
    xb = Crossbar(syn, (1, 1))
    xb.program(np.zeros((1, 1)), rng)
    w_dev = 0.0  # aihwkit's device state, range [0, 2]
    for _ in range(5):
        xb.update(np.array([[0.005 * 1.0000001]]), rng)
        w_dev = min(w_dev + 0.01 * (1 + 27.235 * math.exp(2.5 * -w_dev)), 2.0)
        assert xb.pair_conductances[0][0, 0] == pytest.approx(w_dev / 2, rel=1e-9)
