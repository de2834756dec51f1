"""Crossbar device model: levels, noise, drift, update response, stuck devices, ideal identity."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import Crossbar, SynapseConfig
from hardware_models.synapses import pcm_programming_noise_s


def _xb(shape=(200, 200), dtype=np.float64, **kw) -> Crossbar:
    return Crossbar(SynapseConfig(**kw), shape, dtype)


# -- ideal ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ideal_read_is_stored_array_and_update_is_bit_identical(dtype):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((7, 5)).astype(dtype)
    xb = _xb((7, 5), dtype)
    assert xb.is_ideal
    xb.program(W)  # no rng needed
    assert xb.read(123.0) is xb.weights
    assert xb.read(5.0, rng, out=np.empty_like(W)) is xb.weights
    expected = W.copy()
    for _ in range(50):
        dW = (1e-3 * rng.standard_normal(W.shape)).astype(dtype)
        expected += dW
        n = xb.update(dW)
        assert n == np.count_nonzero(dW)
        assert xb.read(0.0) is xb.weights
    assert xb.weights.dtype == dtype
    assert expected.tobytes() == xb.weights.tobytes()


def test_ideal_program_can_adopt_the_array():
    W = np.arange(6.0).reshape(2, 3)
    xb = _xb((2, 3))
    xb.program(W, copy=False)
    assert xb.weights is W
    xb.update(np.ones((2, 3)))
    assert W[0, 0] == 1.0
    xb.program(W)  # default: copies
    assert xb.weights is not W


# -- levels --------------------------------------------------------------------------------------
def test_b_bit_weights_lie_exactly_on_the_level_grid():
    rng = np.random.default_rng(1)
    W = rng.uniform(-1.3, 1.3, (60, 70))
    xb = _xb((60, 70), bits=3, w_max=1.0)
    xb.program(W, rng)
    # 3-bit signed mid-tread weights: k/3, k = -3..3 (7 levels <= 2^3), by hand
    grid = np.array([-3, -2, -1, 0, 1, 2, 3]) / 3.0
    np.testing.assert_array_equal(xb.levels(), grid)
    assert np.isin(xb.weights, grid).all()
    assert len(np.unique(xb.weights)) <= 2**3
    # nearest level, with clipping of |W| > w_max
    expected = grid[np.argmin(np.abs(np.clip(W, -1, 1)[..., None] - grid), axis=-1)]
    np.testing.assert_allclose(xb.weights, expected, atol=1e-12)
    # each device of a pair holds one of 2^(b-1) = 4 conductances
    g_plus, g_minus = xb.conductances()
    assert len(np.unique(np.round(g_plus, 15))) <= 4
    assert len(np.unique(np.round(g_minus, 15))) <= 4


def test_one_bit_weights_are_binary():
    rng = np.random.default_rng(2)
    xb = _xb((30, 30), bits=1, w_max=0.5)
    W = rng.standard_normal((30, 30))
    xb.program(W, rng)
    np.testing.assert_array_equal(xb.weights, np.where(W >= 0, 0.5, -0.5))


def test_digital_cell_updates_stay_on_the_grid():
    rng = np.random.default_rng(3)
    xb = _xb((40, 40), bits=4, w_max=1.0, update_bound="hard")
    xb.program(rng.uniform(-1, 1, (40, 40)), rng)
    grid = np.arange(-7, 8) / 7.0
    seen = [xb.weights.copy()]
    for _ in range(100):
        xb.update(0.2 * rng.standard_normal((40, 40)), rng)
        seen.append(xb.weights.copy())
    hist = np.stack(seen)
    assert np.isin(np.round(hist * 7), np.arange(-7, 8)).all()
    np.testing.assert_allclose(hist, np.round(hist * 7) / 7, atol=1e-12)
    per_device = [len(np.unique(hist[:, i, j])) for i in range(40) for j in range(40)]
    assert max(per_device) <= 2**4
    assert max(per_device) > 3  # the devices did move through several levels
    assert np.isin(np.round(hist[-1], 12), np.round(grid, 12)).all()


# -- programming noise ---------------------------------------------------------------------------
def test_constant_programming_noise_std():
    rng = np.random.default_rng(4)
    W = rng.uniform(-0.5, 0.5, (300, 300))
    xb = _xb((300, 300), w_max=2.0, prog_noise_std=0.02)
    xb.program(W, rng)
    std = np.std(xb.weights - W)
    assert std == pytest.approx(0.02 * 2.0, rel=0.03)


def test_pcm_programming_noise_polynomial():
    rng = np.random.default_rng(5)
    W = np.full((300, 300), 0.5)
    xb = _xb((300, 300), w_max=1.0, g_min_s=0.0, g_max_s=25e-6, prog_noise_scale=1.0)
    xb.program(W, rng)
    # by hand: g/g_max = 0.5 -> 0.26348 + 1.9650*0.5 - 1.1731*0.25 = 0.952705 uS, / 25 uS
    expected = 0.952705e-6 / 25e-6
    assert pcm_programming_noise_s(0.5) == pytest.approx(0.952705e-6, rel=1e-12)
    assert np.std(xb.weights - W) == pytest.approx(expected, rel=0.03)


# -- read noise ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_noise_std_and_freshness(dtype):
    rng = np.random.default_rng(6)
    W = rng.uniform(-1, 1, (200, 200)).astype(dtype)
    xb = _xb((200, 200), dtype, w_max=2.0, read_noise_std=0.05)
    xb.program(W, rng)
    stored = xb.weights.copy()
    out = np.empty_like(W)
    r1 = xb.read(1.0, rng, out=out).copy()
    r2 = xb.read(1.0, rng, out=out)
    assert r2 is out
    np.testing.assert_array_equal(xb.weights, stored)  # reads do not disturb the state
    n1, n2 = (r1 - stored).ravel(), (r2 - stored).ravel()
    assert np.std(n1) == pytest.approx(0.05 * 2.0, rel=0.03)
    assert abs(np.mean(n1)) < 4 * 0.1 / np.sqrt(n1.size)
    assert abs(np.corrcoef(n1, n2)[0, 1]) < 0.02  # fresh noise on every read


# -- drift ---------------------------------------------------------------------------------------
def test_drift_follows_power_law():
    rng = np.random.default_rng(7)
    W = rng.uniform(0.1, 1, (50, 50))
    xb = _xb((50, 50), w_max=1.0, drift_nu=0.06, t0_s=20.0)
    xb.program(W, rng, t_s=5.0)
    assert xb.read(5.0 + 19.0) is xb.weights  # before t0: no drift
    ages = np.array([40.0, 200.0, 2e3, 2e4, 2e5])
    ratios = [np.mean(xb.read(5.0 + a) / xb.weights) for a in ages]
    slope = np.polyfit(np.log(ages / 20.0), np.log(ratios), 1)[0]
    assert slope == pytest.approx(-0.06, abs=1e-9)


def test_drift_exponent_spread_per_device():
    rng = np.random.default_rng(8)
    W = rng.uniform(0.2, 1, (100, 100))
    xb = _xb((100, 100), w_max=1.0, drift_nu=0.05, drift_nu_std=0.01)
    xb.program(W, rng)
    nu = xb.drift_exponents
    assert np.std(nu) == pytest.approx(0.01, rel=0.05)
    t1, t2 = 200.0, 2e4
    slope = np.log(xb.read(t2) / xb.read(t1)) / np.log(t2 / t1)
    np.testing.assert_allclose(slope, -nu, atol=1e-9)


def test_drift_and_read_noise_fused():
    rng = np.random.default_rng(9)
    W = rng.uniform(0.2, 1, (200, 200))
    xb = _xb((200, 200), w_max=1.0, drift_nu=0.1, read_noise_std=0.01)
    xb.program(W, rng)
    r = xb.read(2000.0, rng)
    f = (2000.0 / 20.0) ** -0.1
    assert np.std(r - f * xb.weights) == pytest.approx(0.01, rel=0.03)


# -- update response ------------------------------------------------------------------------------
@pytest.mark.parametrize("a", [0.2, -0.2])
def test_soft_bounds_saturate_with_aihwkit_device_code_asymmetry(a):
    """aihwkit PulsedRPUDevice::populate: a > 0 shrinks the down pulse to dw (1 - a), a < 0
    shrinks the up pulse to dw (1 + a); the other stays dw."""
    rng = np.random.default_rng(10)
    dw = 0.01
    kw = dict(w_max=1.0, dw_min=dw, up_down_asymmetry=a, update_bound="soft")
    xb = _xb((1, 2), **kw)
    xb.program(np.zeros((1, 2)), rng)
    # one pulse each way from w = 0 (|dW| = exactly one dw_min: the accumulator fires once)
    n = xb.update(np.array([[dw, -dw]]), rng)
    assert n == 2
    up, down = xb.weights[0, 0], -xb.weights[0, 1]
    assert up == pytest.approx(dw * (1 + min(a, 0)), rel=1e-12)
    assert down == pytest.approx(dw * (1 - max(a, 0)), rel=1e-12)
    # the pulse shrinks linearly towards the bound: at w = 0.5 an up pulse is up * (1 - 0.5)
    xb.program(np.full((1, 2), 0.5), rng)
    xb.update(np.array([[dw, 0.0]]), rng)
    assert xb.weights[0, 0] - 0.5 == pytest.approx(dw * (1 + min(a, 0)) * 0.5, rel=1e-12)
    # saturation: many large requests approach but never pass +-w_max
    xb.program(np.zeros((1, 2)), rng)
    for _ in range(200):
        xb.update(np.array([[0.5, -0.5]]), rng)
        assert np.all(np.abs(xb.weights) <= 1.0)
    assert xb.weights[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert xb.weights[0, 1] == pytest.approx(-1.0, abs=1e-6)


def test_soft_bounds_fixed_point_under_alternating_pulses():
    """Alternating up/down pulses settle at the fixed point of the two-pulse map,
    w* = ((1 - rd) ru - rd) / (1 - (1 - ru)(1 - rd)) with ru = dw, rd = dw (1 - a) (aihwkit code
    convention; -> a / (2 - a) as dw -> 0, where the docstring convention would give a / 1)."""
    rng = np.random.default_rng(17)
    a, dw = 0.26, 0.01
    xb = _xb((1, 1), w_max=1.0, dw_min=dw, up_down_asymmetry=a, update_bound="soft")
    xb.program(np.zeros((1, 1)), rng)
    for _ in range(3000):
        xb.update(np.array([[dw]]), rng)
        xb.update(np.array([[-dw]]), rng)
    ru, rd = dw, dw * (1 - a)
    assert xb.weights[0, 0] == pytest.approx(((1 - rd) * ru - rd) / (1 - (1 - ru) * (1 - rd)))
    assert xb.weights[0, 0] == pytest.approx(a / (2 - a), rel=0.05)


def test_hard_bounds_clip():
    rng = np.random.default_rng(11)
    xb = _xb((1, 1), w_max=1.0, dw_min=0.1, update_bound="hard")
    xb.program(np.zeros((1, 1)), rng)
    xb.update(np.array([[0.3]]), rng)
    assert xb.weights[0, 0] == pytest.approx(0.3, rel=1e-12)
    xb.update(np.array([[5.0]]), rng)
    assert xb.weights[0, 0] == 1.0


def test_pulse_residual_carries_to_the_next_call():
    rng = np.random.default_rng(12)
    xb = _xb((300, 300), w_max=1.0, dw_min=1e-3, update_bound="hard")
    xb.program(np.zeros((300, 300)), rng)
    n = xb.update(np.full((300, 300), 2.3e-3), rng)
    assert n == 2 * 300 * 300  # trunc(2.3) pulses fired, 0.3 kept
    np.testing.assert_allclose(xb.weights, 2e-3, rtol=1e-12)
    np.testing.assert_allclose(xb.pulse_accumulator, 0.3, rtol=1e-9)
    n = xb.update(np.full((300, 300), 0.8e-3), rng)  # 0.3 + 0.8 = 1.1: one more pulse each
    assert n == 300 * 300
    np.testing.assert_allclose(xb.weights, 3e-3, rtol=1e-12)
    np.testing.assert_allclose(xb.pulse_accumulator, 0.1, rtol=1e-6)
    xb.program(np.zeros((300, 300)), rng)  # reprogramming clears the counters
    assert not np.any(xb.pulse_accumulator)


@pytest.mark.parametrize("bound", ["soft", "hard"])
def test_pulse_counts_and_mean_change_do_not_depend_on_how_the_flow_is_split(bound):
    """The same total request in 1, 10 and 100 calls: pulse counts equal within one per device
    (accumulate-and-fire), and the same mean weight change, even under large c2c noise."""
    shape, dw, a, sigma = (100, 100), 0.002, 0.26, 3.75
    total = np.random.default_rng(0).uniform(-0.04, 0.04, shape)  # up to 20 pulses
    counts, means = {}, {}
    for calls in (1, 10, 100):
        rng = np.random.default_rng(calls)
        kw = dict(w_max=1.0, dw_min=dw, dw_min_std=sigma, up_down_asymmetry=a)
        xb = _xb(shape, update_bound=bound, **kw)
        xb.program(np.zeros(shape), rng)
        per_device = np.zeros(shape)
        for _ in range(calls):
            before = xb.pulse_accumulator.copy()
            xb.update(total / calls, rng)
            per_device += (before + total / (calls * dw)) - xb.pulse_accumulator
        counts[calls] = per_device
        means[calls] = xb.weights.mean()
        assert xb.update(np.zeros(shape), rng) == 0
    for calls in (10, 100):
        assert np.max(np.abs(counts[calls] - counts[1])) <= 1.0 + 1e-9
        assert abs(counts[calls].sum() - counts[1].sum()) <= 0.01 * np.abs(counts[1]).sum()
    # expected mean from the pulse counts: hard w = n r, soft w = +-(1 - (1 - r)^|n|) (the
    # unclipped per-pulse noise averages out of both); r = dw up, dw (1 - a) down
    n = np.rint(counts[1])
    r = np.where(n > 0, dw, dw * (1 - a))
    if bound == "hard":
        expected = np.mean(n * r)
    else:
        expected = np.mean(np.sign(n) * (1 - (1 - r) ** np.abs(n)))
    se = sigma * dw * np.sqrt(np.mean(np.abs(n)) / n.size)  # std of the mean change
    for calls in (1, 10, 100):
        assert abs(means[calls] - expected) < 4 * se


def test_pulse_count_returned_is_the_pulses_fired():
    rng = np.random.default_rng(18)
    xb = _xb((50, 50), w_max=1.0, dw_min=1e-3, update_bound="hard")
    xb.program(np.zeros((50, 50)), rng)
    fired = 0
    for _ in range(37):
        fired += xb.update(np.full((50, 50), 0.37e-3), rng)
    steps = np.rint(xb.weights / 1e-3)
    assert fired == steps.sum() == 50 * 50 * int(37 * 0.37)


def test_mean_step_is_dw_min_under_large_cycle_to_cycle_noise():
    """aihwkit dw_min_std = 3.75 (ReRamSBPresetDevice): per-pulse noise is not clipped, so the
    mean step stays dw_min (clipping at zero would nearly double it)."""
    rng = np.random.default_rng(19)
    dw, shape = 1e-3, (300, 300)
    xb = _xb(shape, w_max=1.0, dw_min=dw, dw_min_std=3.75, update_bound="hard")
    xb.program(np.zeros(shape), rng)
    n = xb.update(np.full(shape, 10 * dw), rng)
    assert n == 10 * xb.weights.size
    steps = xb.weights / dw / 10
    # std of the mean: 3.75 / sqrt(10 * 9e4) = 0.004
    assert np.mean(steps) == pytest.approx(1.0, abs=0.016)
    assert np.std(steps) == pytest.approx(3.75 / np.sqrt(10), rel=0.03)


def test_many_pulses_in_one_call_keep_the_soft_bounds_mean():
    """Beyond PULSE_LOOP_MAX pulses the closed form keeps E[w] = b - (b - w0)(1 - r)^n."""
    rng = np.random.default_rng(20)
    dw, n, shape = 2e-3, 300, (200, 200)
    xb = _xb(shape, w_max=1.0, dw_min=dw, dw_min_std=3.75, update_bound="soft")
    xb.program(np.zeros(shape), rng)
    xb.update(np.full(shape, n * dw), rng)
    assert np.mean(xb.weights) == pytest.approx(1 - (1 - dw) ** n, rel=0.01)


def test_d2d_spread_realised_in_pulse_size_and_gain():
    rng = np.random.default_rng(13)
    dw = 1e-3
    xb = _xb((200, 200), w_max=1.0, dw_min=dw, d2d_std=0.3)
    xb.program(np.zeros((200, 200)), rng)
    assert np.std(xb.gain) == pytest.approx(0.3, rel=0.03)
    xb.update(np.full((200, 200), dw), rng)  # one pulse per device
    np.testing.assert_allclose(xb.weights, dw * xb.gain, rtol=1e-12)
    assert np.std(xb.weights / dw) == pytest.approx(0.3, rel=0.03)
    # open-loop programming shows the gain spread in the read weights
    xb2 = _xb((200, 200), w_max=2.0, d2d_std=0.3, program_verify=False)
    W = np.full((200, 200), 0.5)
    xb2.program(W, rng)
    np.testing.assert_allclose(xb2.weights, 0.5 * xb2.gain, rtol=1e-12)


def test_cycle_to_cycle_noise():
    rng = np.random.default_rng(14)
    dw = 1e-3
    xb = _xb((200, 200), w_max=1.0, dw_min=dw, dw_min_std=0.5)
    xb.program(np.zeros((200, 200)), rng)
    xb.update(np.full((200, 200), dw), rng)
    steps = xb.weights / dw
    assert np.mean(steps) == pytest.approx(1.0, abs=0.01)
    assert np.std(steps) == pytest.approx(0.5, rel=0.03)


def test_stuck_fraction_realised_and_frozen():
    rng = np.random.default_rng(15)
    xb = _xb((300, 300), w_max=1.0, dw_min=0.01, stuck_fraction=0.1, stuck_at_gmax_fraction=0.8)
    W = rng.uniform(-0.5, 0.5, (300, 300))
    xb.program(W, rng)
    mask = xb.stuck_mask
    n = mask.size
    assert abs(mask.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n)
    stuck_vals = xb.weights[mask]
    at_gmax = np.abs(stuck_vals) == 1.0
    assert np.all(at_gmax | (stuck_vals == 0.0))
    p = at_gmax.mean()
    assert abs(p - 0.8) < 4 * np.sqrt(0.8 * 0.2 / mask.sum())
    np.testing.assert_array_equal(xb.weights[~mask], W[~mask])
    for _ in range(5):
        xb.update(0.05 * rng.standard_normal(W.shape), rng)
    np.testing.assert_array_equal(xb.weights[mask], stuck_vals)
    assert np.any(xb.weights[~mask] != W[~mask])


def test_w_max_remapping_and_clipping():
    rng = np.random.default_rng(16)
    W = np.array([[0.2, -0.8], [0.4, 0.1]])
    xb = _xb((2, 2), w_max_headroom=1.5, prog_noise_std=0.0, bits=8)
    xb.program(W, rng)
    assert xb.w_max == pytest.approx(1.2)
    xb2 = _xb((2, 2), w_max=0.5, read_noise_std=0.0, prog_noise_std=1e-9)
    xb2.program(W, rng)
    assert np.max(np.abs(xb2.weights)) <= 0.5


def test_non_ideal_needs_rng():
    xb = _xb((2, 2), read_noise_std=0.1)
    with pytest.raises(ValueError, match="Generator"):
        xb.program(np.zeros((2, 2)))


# -- drift clocks and compensation ----------------------------------------------------------------
def test_a_write_restarts_the_drift_clock_of_the_written_device_only():
    rng = np.random.default_rng(21)
    nu, t0, dw = 0.1, 20.0, 0.01
    xb = _xb((2, 2), w_max=1.0, dw_min=dw, update_bound="hard", drift_nu=nu, t0_s=t0)
    W = np.array([[0.5, -0.3], [0.2, 0.4]])
    xb.program(W, rng, t_s=0.0)
    n = xb.update(np.array([[dw, 0.0], [0.0, 0.0]]), rng, t_s=1000.0)  # one pulse at 1000 s
    assert n == 1
    written = (0.5 * (1000.0 / t0) ** -nu + dw) * ((2000.0 - 1000.0) / t0) ** -nu
    expected = W * (2000.0 / t0) ** -nu
    expected[0, 0] = written
    np.testing.assert_allclose(xb.read_mean(2000.0), expected, rtol=1e-12)
    np.testing.assert_allclose(xb.read(2000.0, rng), expected, rtol=1e-12)  # no read noise
    assert xb.write_times[0, 0] == 1000.0 and xb.write_times[1, 1] == 0.0
    # a device written within t0 of now does not drift yet
    xb.update(np.full((2, 2), dw), rng, t_s=1990.0)
    assert xb.read_mean(2000.0) is xb.weights


@pytest.mark.parametrize("mode", ["global", "column"])
def test_drift_compensation_restores_the_response_magnitude(mode):
    rng = np.random.default_rng(22)
    W = rng.uniform(-1, 1, (50, 40))
    kw = dict(w_max=1.0, drift_nu=0.05, drift_nu_std=0.02, drift_compensation=mode)
    xb = _xb(W.shape, **kw)
    xb.program(W, rng)
    raw = _xb(W.shape, **dict(kw, drift_compensation="none"))
    raw.program(W, np.random.default_rng(22))
    t = 86400.0  # a day
    r = xb.read_mean(t)
    axis = None if mode == "global" else 1
    np.testing.assert_allclose(np.abs(r).sum(axis=axis), np.abs(W).sum(axis=axis), rtol=1e-12)
    # uncompensated, a day of drift loses about (86400 / 20)^-0.05 - 1 = -34 % of the response
    lost = np.abs(raw.read_mean(t)).sum() / np.abs(W).sum()
    assert lost == pytest.approx((t / 20.0) ** -0.05, rel=0.05)
    # uniform drift is undone exactly by either mode
    xu = _xb(W.shape, w_max=1.0, drift_nu=0.05, drift_compensation=mode)
    xu.program(W, rng)
    np.testing.assert_allclose(xu.read_mean(t), W, rtol=1e-12)


def test_pcm_drift_exponent_follows_the_programmed_conductance():
    """aihwkit PCMLikeNoiseModel: nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1) at g = g/g_max."""
    rng = np.random.default_rng(23)
    levels = np.array([0.05, 0.2, 0.5, 1.0])  # |w| / w_max, so g / g_max with g_min = 0
    W = np.repeat(levels[None, :], 20000, axis=0)
    xb = _xb(W.shape, w_max=1.0, g_min_s=0.0, drift_nu_model="pcm")
    xb.program(W, rng)
    assert xb.config.has_drift and not xb.is_ideal
    nu = xb.drift_exponents
    for k, g in enumerate(levels):
        mean = np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)
        std = np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)
        assert nu[:, k].mean() == pytest.approx(mean, abs=3 * std / np.sqrt(20000) + 1e-3)
        assert nu[:, k].std() == pytest.approx(std, rel=0.05)
    # small weights drift faster: after a day the 0.05 column lost more than the 1.0 column
    r = xb.read_mean(86400.0) / W
    assert r[:, 0].mean() < r[:, 3].mean()


def test_pulse_counts_converge_under_noisy_requests_as_calls_get_finer():
    """A request with white noise of a fixed spectral density (Wiener increments, std ~
    sqrt(1/K) per call): per-call rounding would fire ~ sum |dW| / dw_min pulses, which grows
    like sqrt(K); accumulate-and-fire needs a full pulse of net change to fire again, so its
    count converges (here within 10 % from 1000 to 4000 calls while sum |dW| doubles)."""
    shape, dw = (100, 100), 0.002
    fired, requested = {}, {}
    for K in (1000, 4000):
        rng = np.random.default_rng(K)
        xb = _xb(shape, w_max=1.0, dw_min=dw, update_bound="hard")
        xb.program(np.zeros(shape), rng)
        n, s = 0, 0.0
        for _ in range(K):
            d = 0.02 / K + 0.01 * np.sqrt(1.0 / K) * rng.standard_normal(shape)
            n += xb.update(d, rng)
            s += np.abs(d).sum() / dw
        fired[K], requested[K] = n, s
    assert requested[4000] / requested[1000] == pytest.approx(2.0, rel=0.05)
    assert fired[4000] == pytest.approx(fired[1000], rel=0.10)
    assert fired[4000] < 0.2 * requested[4000]


def test_idle_device_programming_noise_matches_the_clamped_closed_form():
    """aihwkit programs both devices of a pair: the idle one to g_min = 0 with the PCM noise
    there, clamped at 0. For w = +0.1 w_max: mean shift -sigma0 / sqrt(2 pi), variance
    sigma(0.1)^2 + sigma0^2 (pi - 1) / (2 pi) (a normal clamped at 0), in units of g_max."""
    rng = np.random.default_rng(11)
    xb = _xb((400, 400), g_min_s=0.0, w_max=1.0, prog_noise_scale=1.0, prog_noise_idle_device=True)
    W = np.full((400, 400), 0.1)
    xb.program(W, rng)
    g_max = 25e-6
    s0 = pcm_programming_noise_s(0.0) / g_max
    s1 = pcm_programming_noise_s(0.1) / g_max
    d = xb.weights - W
    assert d.mean() == pytest.approx(-s0 / np.sqrt(2 * np.pi), rel=0.02)
    assert d.std() == pytest.approx(np.sqrt(s1**2 + s0**2 * (np.pi - 1) / (2 * np.pi)), rel=0.01)
    # off (the default): only the active device is programmed with noise, unbiased
    xb2 = _xb((400, 400), g_min_s=0.0, w_max=1.0, prog_noise_scale=1.0)
    xb2.program(W, rng)
    assert abs((xb2.weights - W).mean()) < 4 * s1 / 400
    assert (xb2.weights - W).std() == pytest.approx(s1, rel=0.01)
