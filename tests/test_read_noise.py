"""Read noise with a bandwidth (pcsim.read_noise): one Ornstein-Uhlenbeck process per read line.

- the exact step reproduces the OU's closed forms at any step (dt << tau_r, ~ tau_r, >> tau_r):
  stationary variance, lag-one autocorrelation, variance and covariance of step means;
- the mean over one read window has std ``read_noise_std`` (the preset's cited meaning);
- the numba kernels and the numpy reference step see the same noise, step for step;
- the OU state survives a checkpoint (get/set) and a continued run is identical;
- the pulse count of an accumulate-and-fire crossbar driven by OU noise converges at first
  order as dt -> 0, where white noise's does not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import Chip, load_preset
from hardware_models.synapses import Crossbar, SynapseConfig
from hardware_models.units import ValueUnitConfig
from pcsim import network, noise_pulses, read_noise
from pcsim.algorithms import initial_activities
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine


@pytest.mark.parametrize("x", [0.01, 0.3, 1.0, 20.0])
def test_exact_step_matches_the_ou_closed_forms(x):
    """From the stationary law, with ``a = e^{-x}``: ``Var u' = 1``, ``Cov(u, u') = a``,
    ``Var m = 2 (x - 1 + a) / x^2``, ``Cov(u, m) = (1 - a) / x``, successive step means covary
    by ``(1 - a)^2 / x^2``; for ``x >> 1`` the step mean is white, ``Var m -> 2 / x``."""
    rng = np.random.default_rng(int(x * 100))
    n = 200_000
    u0 = rng.standard_normal(n)
    u, m0, m1, scratch = u0.copy(), np.empty(n), np.empty(n), np.empty(2 * n)
    read_noise.advance(u, x, rng, m0, scratch)
    u1 = u.copy()
    read_noise.advance(u, x, rng, m1, scratch)
    a = math.exp(-x)
    tol = 4.0 / math.sqrt(n)  # ~4 standard errors of a unit covariance
    assert np.var(u1) == pytest.approx(1.0, abs=3 * tol)
    assert np.mean(u0 * u1) == pytest.approx(a, abs=tol)
    var_m = 2.0 * (x - 1.0 + a) / x**2
    assert var_m == pytest.approx(read_noise.window_variance(x, 1.0), rel=1e-9)
    assert np.var(m0) == pytest.approx(var_m, rel=3 * tol)
    assert np.mean(u0 * m0) == pytest.approx((1.0 - a) / x, abs=tol)
    assert np.mean(m0 * m1) == pytest.approx((1.0 - a) ** 2 / x**2, abs=tol)
    if x > 10:
        assert var_m * x == pytest.approx(2.0, rel=0.06)


def test_coefficients_are_continuous_and_tend_to_a_frozen_line():
    """The small-step series and the closed form agree where they meet (x = 1e-2), and as
    ``x -> 0`` the line does not move and its step mean is its value."""
    lo = np.array(read_noise.ou_coefficients(1e-2 * (1 - 1e-9)))
    hi = np.array(read_noise.ou_coefficients(1e-2 * (1 + 1e-9)))
    np.testing.assert_allclose(lo, hi, rtol=1e-6)
    a, sx, cm, bm, sm = read_noise.ou_coefficients(1e-9)
    assert (a, cm) == pytest.approx((1.0, 1.0), abs=1e-8)
    assert max(sx, bm, sm) < 1e-4
    # conditional variance of the mean given both ends: Brownian-bridge limit x / 6
    assert sm**2 == pytest.approx(1e-9 / 6, rel=1e-3)


def test_one_read_window_has_the_cited_std():
    """A step of exactly one read time sees std ``read_noise_std`` (the preset's meaning)."""
    read_sigma = 0.3
    sig = float(read_noise.stationary_std(np.array([read_sigma]))[0])
    assert sig == pytest.approx(read_sigma * math.sqrt(math.e / 2))
    rng = np.random.default_rng(5)
    n = 200_000
    u, m, scratch = rng.standard_normal(n), np.empty(n), np.empty(2 * n)
    read_noise.advance(u, 1.0, rng, m, scratch)
    assert sig * np.std(m) == pytest.approx(read_sigma, rel=0.01)


def _noisy_circuit(seed: int, read_time_s: float = 30e-9) -> Circuit:
    vu = ValueUnitConfig(capacitance_f=1e-12, conductance_s=1e-5)  # tau_x = 100 ns
    chip = Chip(
        name="read-noise-only",
        synapses=SynapseConfig(read_noise_std=0.2, read_time_s=read_time_s),
        value_units=vu,
    )
    net = network.build((5, 7, 3), "tanh", dtype=np.float64, rng=2)
    return Circuit(net, chip=chip, rng=np.random.default_rng(seed))


def _start(circ: Circuit) -> list[np.ndarray]:
    x0 = np.random.default_rng(9).standard_normal((4, 5))
    return initial_activities(circ, x0, None)


def test_numba_kernels_equal_the_numpy_reference_step_for_step():
    """Both backends draw the same OU means (Circuit.read_noise_step) and add them alike."""
    runs = {}
    for backend in ("numba", "numpy"):
        circ = _noisy_circuit(3)
        xs = _start(circ)
        eng = ClockedEngine("euler", dt=0.05, backend=backend)
        traj = []
        for _ in range(40):
            rec = eng.step(circ, xs, [False, True, True])
            traj.append(np.concatenate([xs[1], xs[2], np.asarray(rec.eps[1])], axis=1))
        runs[backend] = np.array(traj)
    assert np.std(runs["numpy"][1:] - runs["numpy"][:-1]) > 0  # it moves
    np.testing.assert_allclose(runs["numba"], runs["numpy"], rtol=1e-9, atol=1e-12)


def test_read_noise_state_round_trips_and_continues_identically():
    """A run continued from get/set state (and the rng state) equals the uninterrupted run."""
    circ = _noisy_circuit(4)
    xs = _start(circ)
    eng = ClockedEngine("euler", dt=0.1)
    free = [False, True, True]
    eng.run(circ, xs, free, 1.0)
    saved = circ.get_read_noise_state()
    rng_state = circ.rng.bit_generator.state
    xs_saved, t_saved = [x.copy() for x in xs], circ.t
    eng.run(circ, xs, free, 1.0)
    want = [x.copy() for x in xs]
    # scramble the state, then restore it
    circ.set_read_noise_state(None)
    circ.read_noise_state(7)
    circ.set_read_noise_state(saved)
    circ.rng.bit_generator.state = rng_state
    circ.t = t_saved
    xs = xs_saved
    eng.run(circ, xs, free, 1.0)
    for a, b in zip(xs, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ou_driven_pulse_count_converges_at_first_order():
    """benchmarks/noise_pulses.py in small: the same noise path at dt = 0.1 ... 0.0125
    (fine means block-averaged). With OU read noise (tau_r = 0.1, 3 pulses per sqrt(tau)) the
    change in the count halves (or better) with each halving of dt; with white noise of the same
    low-frequency spectrum it barely shrinks (the sqrt(dt) undercount of a Brownian path)."""
    s, tau_r, n, t_end, fine = 3.0, 0.1, 16, 4.0, 0.0125
    rng = np.random.default_rng(1)
    steps = round(t_end / fine)
    ou = noise_pulses.ou_requests(s, fine, n, steps, tau_r, rng)
    white = noise_pulses.white_requests(s, fine, n, steps, rng)
    blocks = (8, 4, 2, 1)  # dt = 0.1, 0.05, 0.025, 0.0125
    c_ou = [noise_pulses.pulses_per_device(ou, b) for b in blocks]
    c_w = [noise_pulses.pulses_per_device(white, b) for b in blocks]
    d_ou = np.diff(c_ou)
    d_w = np.diff(c_w)
    assert np.all(d_ou > 0) and np.all(d_w > 0)  # a coarse step misses crossings
    assert np.all(d_ou[:-1] / d_ou[1:] > 1.7)  # first order or better
    assert np.all(d_w[:-1] / d_w[1:] < 1.5)  # white: no better than sqrt(dt)
    assert d_ou[-1] < 0.02 * c_ou[-1] < d_w[-1]


def test_a_step_longer_than_the_read_time_warns_when_noise_fires_pulses():
    """The warning names the field and the step to use, names the devices' asymmetry when
    they have one, and appears only for dt > tau_r / STEPS_PER_READ with noise of at least
    NOISE_DRIVEN_PULSES pulses per read."""
    q = 0.1 / read_noise.STEPS_PER_READ
    msg = read_noise.unresolved_warning(1.5 * q, 0.1, 200.0)
    assert msg is not None and "chip.synapses.read_time_s" in msg and "\n" not in msg
    assert "up_down_asymmetry" not in msg and f"engine.dt <= {q:.3g}" in msg
    asym = read_noise.unresolved_warning(1.5 * q, 0.1, 200.0, 0.26)
    assert asym is not None and "up_down_asymmetry = 0.26" in asym and "\n" not in asym
    assert read_noise.unresolved_warning(q, 0.1, 200.0) is None
    assert read_noise.unresolved_warning(1.5 * q, 0.1, 5.0) is None


NOISY_RRAM = {"preset": "rram", "synapses": {"read_noise_std": 0.4}}  # 200 pulses per read


def _warnings_of(d: dict) -> list[str]:
    import warnings

    from pcsim import config
    from pcsim.run import prepare

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        prepare(config.from_dict(d), progress=False)
    return [str(w.message) for w in got if "read_time_s" in str(w.message)]


def test_steps_to_resolve_follow_the_read_time_when_noise_fires_the_writes():
    """``ceil(dt STEPS_PER_READ / tau_r)`` when one read's noise is at least
    NOISE_DRIVEN_PULSES pulses and the step is longer than ``tau_r / STEPS_PER_READ``; else 1."""
    assert read_noise.STEPS_PER_READ == 8
    assert read_noise.steps_to_resolve(0.1, 0.1, 200.0) == 8
    assert read_noise.steps_to_resolve(0.25, 0.1, 200.0) == 20
    assert read_noise.steps_to_resolve(0.05, 0.1, 200.0) == 4
    assert read_noise.steps_to_resolve(0.0125, 0.1, 200.0) == 1
    assert read_noise.steps_to_resolve(0.1, 0.1, 5.0) == 1  # rram's own read noise


def test_a_run_cuts_its_step_to_resolve_the_read_time_and_warns_where_it_cannot():
    """rram (10 ns reads, tau_x = 100 ns, pulses of 0.002) with read_noise_std = 0.4: the
    weight flow at dt = 0.1 and 0.05 tau_x runs in steps of 0.0125 (8 per read), announced in
    one line naming the switch; with ``engine.resolve_read_time = false``, or iPC with Adam (a
    per-step rule, whose learning per unit time the cut would change), the step stays and one
    warning names the step to use; at dt = 0.0125 nothing is cut or warned, nor in the default
    run (rram's own 0.01 per read, 5 pulses) at its dt = 0.25."""
    from pcsim import config
    from pcsim.run import resolve_read_time

    for dt, k in ((0.1, 8), (0.05, 4)):
        with pytest.warns(UserWarning, match="engine.resolve_read_time = false") as got:
            cfg, cut = resolve_read_time(
                config.from_dict({"engine": {"dt": dt}, "chip": NOISY_RRAM})
            )
        assert (cut, cfg.engine.dt, len(got)) == (k, 0.0125, 1)
    (msg,) = _warnings_of({"engine": {"dt": 0.1}, "chip": NOISY_RRAM})
    assert "runs as 8 steps of 0.0125" in msg
    kept = {"engine": {"dt": 0.1, "resolve_read_time": False}, "chip": NOISY_RRAM}
    adam = {"engine": {"dt": 0.1}, "learning": {"optimizer": "adam"}, "chip": NOISY_RRAM}
    for d in (kept, adam):
        (msg,) = _warnings_of(d)
        assert "use engine.dt <= 0.0125" in msg and "\n" not in msg
    assert _warnings_of({"engine": {"dt": 0.0125}, "chip": NOISY_RRAM}) == []
    assert _warnings_of({}) == []


def test_a_cut_step_runs_exactly_as_the_step_it_is_cut_to(capsys, monkeypatch):
    """``engine.dt = 0.1`` cut into 8 steps is the run at ``engine.dt = 0.0125``: the same
    accuracy, energy and pulses to the last bit (the weight flow's rate, the presentation's
    steps and the evaluation all take the cut step); the summary says the step was cut. (The
    inference pricing, 500 tau_x of free relaxation at the cut step, is left out: it reads
    nothing this test checks.)"""
    import warnings

    from pcsim import config, run
    from pcsim.run import execute

    monkeypatch.setattr(run, "_measure_inference", lambda *args: (None, None))

    small = {
        "learning": {"epochs": 1},
        "data": {"limit_train": 12},
        "network": {"sizes": [64, 16, 10]},
        "baseline": {"bp": False},
        "algorithm": {"inference_samples": 4},
        "chip": NOISY_RRAM,
    }
    out = []
    for dt in (0.1, 0.0125):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(execute(config.from_dict({**small, "engine": {"dt": dt}}), progress=False))
    cut, fine = (r.summary for r in out)
    assert (cut["read_time_steps"], fine["read_time_steps"]) == (8, 1)
    assert cut["gamma"] == fine["gamma"] == 0.0125
    for key in ("test_accuracy", "energy_per_sample_j", "write_pulses_per_sample"):
        assert cut[key] == fine[key], key
    assert config.loads(out[0].config_text).engine.dt == 0.1  # the results keep what was asked
    from pcsim.cli import _print_summary

    _print_summary(cut)
    assert "steps of 0.0125 tau_x: engine.dt cut 8x" in capsys.readouterr().out


def _antithetic_ou(s: float, tau_r: float, n: int, t_end: float, dt: float) -> np.ndarray:
    """OU requests (steps, n, 2n) in pulses, ``c m dt`` with ``c = s / sqrt(2 tau_r)``: the
    right half of the devices receives the negated path of the left half."""
    rng = np.random.default_rng(1)
    steps = round(t_end / dt)
    u, scratch = rng.standard_normal((n, n)), np.empty(2 * n * n)
    ou = np.empty((steps, n, n))
    for k in range(steps):
        read_noise.advance(u, dt / tau_r, rng, ou[k], scratch)
    ou *= s / math.sqrt(2 * tau_r) * dt
    return np.concatenate([ou, -ou], axis=2)


def _mean_weight(requests: np.ndarray, block: int, asymmetry: float) -> float:
    """Mean weight (w_max units) of a bare soft-bounds crossbar programmed to 0 and fed
    ``requests`` summed over blocks of ``block`` steps; pulses of 0.02 w_max, no spreads."""
    steps, n, m = requests.shape
    syn = noise_pulses.bare_rram(bits=None, dw_min=0.02, up_down_asymmetry=asymmetry)
    rng = np.random.default_rng(0)
    cb = Crossbar(syn, (n, m))
    cb.program(np.zeros((n, m)), rng)
    pulse = syn.relative_dw_min() * cb.w_max
    for r in requests.reshape(steps // block, block, n, m).sum(axis=1):
        cb.update(pulse * r, rng)
    return float(cb.weights.mean() / cb.w_max)


def test_read_noise_alone_drives_asymmetric_devices_to_their_symmetry_point():
    """Why strong read noise makes rram's pulse count slow to converge in dt (issue 17,
    benchmarks/RESULTS.md): zero-mean noise fires up and down pulses in pairs, and on a
    soft-bounds device with up/down asymmetry a pair does not cancel. Fed only OU read noise
    (every path and its negation, so a symmetric device's mean stays exactly 0), the devices
    drift to the symmetry point where up and down pulses cancel,
    ``w* = (r_up - r_down) / (r_up + r_down) w_max`` (0.149 for rram's asymmetry 0.26)."""
    up, down = load_preset("rram").synapses.pulse_sizes()
    w_star = (up - down) / (up + down)
    req = _antithetic_ou(3.0, 0.1, 16, 200.0, 0.05)
    assert abs(_mean_weight(req, 1, 0.0)) < 1e-12
    assert _mean_weight(req, 1, 0.26) == pytest.approx(w_star, rel=0.03)


def test_the_noise_driven_drift_converges_at_first_order_in_dt():
    """The drift is carried by pulse pairs, which a step longer than the read time nets
    away: over 4 tau_x the mean weight grows as dt shrinks from 0.1 (one read time) to
    0.0125, the changes shrinking at each halving and by at least 4x over two halvings
    (first order or better), the last below 0.5 % of the drift."""
    req = _antithetic_ou(3.0, 0.1, 16, 4.0, 0.0125)
    w = [_mean_weight(req, b, 0.26) for b in (8, 4, 2, 1)]  # dt = 0.1, 0.05, 0.025, 0.0125
    d = np.diff(w)
    assert np.all(d > 0)
    assert np.all(d[1:] < 0.7 * d[:-1]) and d[-1] < d[0] / 4
    assert d[-1] < 0.005 * w[-1]
