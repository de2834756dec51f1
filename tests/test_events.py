"""The asynchronous events engine against the clocked engine and its own promises: the same
equilibrium whatever the rates, mismatch, clocks and delays; the explicit-Euler failure it
avoids; a ledger that follows activity; the iPC weight flow; and iPC training on digits."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from pcsim import field, network
from pcsim.algorithms import IPC, IPCEvents, initial_activities
from pcsim.circuit import EXACT_WRITE_BITS, Circuit
from pcsim.data import batches, load_dataset
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.engines.events import EventsEngine
from pcsim.optim import SGD
from pcsim.train import accuracy


def _supervised_free(net):
    return [False] + [True] * (net.n_layers - 1) + [False]


def _mismatched(net, sigma, seed=5, rng_seed=3):
    """A circuit whose units' time constants are lognormal(0, sigma) (median tau_x)."""
    circ = Circuit(net, rng=np.random.default_rng(rng_seed))
    g = np.random.default_rng(seed)
    circ.tau_scale = [np.exp(sigma * g.standard_normal(n)) for n in net.sizes]
    return circ


def _reference(net, xs, free, units=None, T=400.0):
    """The clocked (Euler) equilibrium on a uniform-tau circuit: the fixed point does not
    depend on the units' time constants. Checked to be a fixed point of pcsim.field."""
    circ = Circuit(net)
    if units is not None:
        circ.units = units
    ref = [v.copy() for v in xs]
    ClockedEngine(dt=0.2).run(circ, ref, free, T)
    eps = field.errors(net, ref, units=circ.units)
    drift = field.activity_drift(net, ref, eps, units=circ.units)
    assert max(np.max(np.abs(drift[l])) for l in range(len(xs)) if free[l]) < 1e-12
    return ref


def _max_diff(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))


def _settle(engine, circ, xs, free, ref, tol=1e-6, chunk=50.0, t_max=1000.0):
    """Run in chunks until within ``tol`` of ``ref`` (or ``t_max``); return the last diff."""
    t = 0.0
    d = np.inf
    while t < t_max:
        engine.run(circ, xs, free, chunk)
        t += chunk
        d = _max_diff(xs, ref)
        if d <= tol:
            # stays there: equilibrium, not a crossing
            engine.run(circ, xs, free, chunk)
            return _max_diff(xs, ref)
    return d


@pytest.fixture(scope="module")
def small():
    net = network.build((12, 20, 16, 4), "tanh", bias=True, rng=7)
    g = np.random.default_rng(8)
    x = g.uniform(0, 1, (1, 12))
    y = g.standard_normal((1, 4))
    xs = initial_activities(Circuit(net), x, y)
    free = _supervised_free(net)
    return net, xs, free, _reference(net, xs, free)


@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_same_equilibrium_as_clocked_with_mismatch_and_delays(small, sigma, delay):
    net, xs0, free, ref = small
    circ = _mismatched(net, sigma)
    eng = EventsEngine(delay_up=delay, delay_down=delay)
    xs = [v.copy() for v in xs0]
    assert _max_diff(xs, ref) > 1e-2  # the feedforward start is far from the equilibrium
    assert _settle(eng, circ, xs, free, ref) <= 1e-6
    assert all(np.array_equal(xs[l], xs0[l]) for l in (0, net.n_layers))  # clamps held


@pytest.mark.parametrize(
    "kw",
    [
        dict(clock="periodic"),
        dict(clock="periodic", rate_jitter=0.3, delay_up=0.2),
        dict(error_tau=0.1, delay_down=0.5),
        dict(error_tau=3.0, events_per_tau=4.0),
    ],
)
def test_equilibrium_does_not_depend_on_clocks_error_tau_or_rates(small, kw):
    net, xs0, free, ref = small
    xs = [v.copy() for v in xs0]
    assert _settle(EventsEngine(**kw), _mismatched(net, 0.5), xs, free, ref) <= 1e-6


def test_residual_bias_leak_gain_offset_fixed_point_is_the_fields():
    """muPC residual layers, biases and non-ideal units (gain, offset, leak) enter the event
    updates exactly as in pcsim.field: same fixed point as the clocked engine."""
    net = network.build((6, 10, 10, 3), "tanh", parameterisation="mupc", bias=True, rng=4)
    assert any(net.residual)
    g = np.random.default_rng(9)
    net.biases = [0.1 * g.standard_normal(n) for n in net.sizes[1:]]
    circ = _mismatched(net, 0.5)
    u = circ.units
    for l in range(1, net.n_layers + 1):
        u.error_gain[l][:] = g.uniform(0.8, 1.2, net.sizes[l])
        u.error_offset[l][:] = 0.05 * g.standard_normal(net.sizes[l])
    for l in range(net.n_layers + 1):
        u.leak[l][:] = g.uniform(0.0, 0.1, net.sizes[l])
    xs0 = initial_activities(circ, g.uniform(0, 1, (1, 6)), g.standard_normal((1, 3)))
    free = _supervised_free(net)
    ref = _reference(net, xs0, free, units=u)
    xs = [v.copy() for v in xs0]
    assert _settle(EventsEngine(delay_up=0.1, delay_down=0.1), circ, xs, free, ref) <= 1e-6


def test_large_tanh_network_reaches_the_clocked_equilibrium():
    """784-256-256-10 tanh, batch 1, output clamped, lognormal mismatch sigma = 1, delays on."""
    net = network.build((784, 256, 256, 10), "tanh", rng=0)
    g = np.random.default_rng(1)
    xs0 = initial_activities(Circuit(net), g.uniform(0, 1, (1, 784)), g.standard_normal((1, 10)))
    free = _supervised_free(net)
    ref = _reference(net, xs0, free, T=300.0)
    circ = _mismatched(net, 1.0)
    xs = [v.copy() for v in xs0]
    eng = EventsEngine(delay_up=0.1, delay_down=0.1)
    assert _settle(eng, circ, xs, free, ref, chunk=100.0, t_max=800.0) <= 1e-6


def test_free_output_settles_to_the_feedforward_pass(small):
    """At test time (output free) the unique equilibrium is the feedforward pass."""
    net, xs0, _, _ = small
    g = np.random.default_rng(6)
    xs = [xs0[0].copy()] + [g.standard_normal(v.shape) for v in xs0[1:]]
    ff = field.feedforward(net, xs0[0])
    free = [False, True, True, True]
    eng = EventsEngine(delay_up=0.1, delay_down=0.1)
    assert _settle(eng, _mismatched(net, 1.0), xs, free, ff) <= 1e-6


def test_calls_continue_the_carried_state_in_float32():
    """Two calls of T/2 are one call of T: error units, wires, clocks and random streams are
    carried over (also when the caller's arrays round the activities to float32)."""
    net = network.build((12, 20, 16, 4), "tanh", bias=True, rng=7)
    g = np.random.default_rng(8)
    xs0 = initial_activities(Circuit(net), g.uniform(0, 1, (1, 12)), g.standard_normal((1, 4)))
    xs0 = [v.astype(np.float32) for v in xs0]  # the caller's arrays are float32
    free = _supervised_free(net)
    ends = []
    for parts in (1, 2):
        circ = _mismatched(net, 0.5)
        xs = [v.copy() for v in xs0]
        eng = EventsEngine(delay_up=0.2, sigma=0.01)
        for _ in range(parts):
            eng.run(circ, xs, free, 4.0 / parts)
        ends.append(xs)
    assert _max_diff(ends[0], xs0) > 1e-2
    assert _max_diff(ends[0], ends[1]) < 1e-6


def test_explicit_euler_on_stale_inputs_fails_where_relaxation_converges(small):
    """The same asynchronous schedule (two events per tau on average, Poisson) with Euler
    steps ``x += (h / tau) d`` instead of the exponential relaxation: units silent for more
    than 2 tau overshoot, and the network ends far from the equilibrium or blows up."""
    net, xs0, free, ref = small
    xs = [v.copy() for v in xs0]
    try:
        EventsEngine(update="euler", events_per_tau=2.0).run(_mismatched(net, 1.0), xs, free, 200.0)
        euler = _max_diff(xs, ref)
    except DivergenceError:
        euler = np.inf
    assert euler > 1.0
    xs = [v.copy() for v in xs0]
    eng = EventsEngine(events_per_tau=2.0)
    assert _settle(eng, _mismatched(net, 1.0), xs, free, ref) <= 1e-6


def test_independent_copies_for_a_batch_without_learning(small):
    net, xs0, free, ref = small
    g = np.random.default_rng(2)
    x = np.vstack([xs0[0], g.uniform(0, 1, (1, 12))])
    y = np.vstack([xs0[-1], g.standard_normal((1, 4))])
    xs = initial_activities(Circuit(net), x, y)
    ref2 = _reference(net, xs, free)
    circ = _mismatched(net, 0.5)
    EventsEngine().run(circ, xs, free, 300.0)
    assert circ.t == pytest.approx(300.0)
    assert _max_diff(xs, ref2) <= 1e-6
    assert _max_diff([v[:1] for v in xs], ref) <= 1e-6
    with pytest.raises(ValueError, match="one sample at a time"):
        EventsEngine().run(circ, xs, free, 1.0, tau_w=10.0)


# -- the ledger ------------------------------------------------------------------------------
def _counted(net, tau_factor, events_per_tau, clock="poisson", T=40.0, chip=None):
    """Event counts (and the chip's ledger) of one learning run with mismatched units whose
    time constants are multiplied by ``tau_factor``."""
    circ = Circuit(net.copy(), chip=chip, rng=np.random.default_rng(0))
    circ.tau_scale = [
        tau_factor * np.exp(0.5 * np.random.default_rng(l).standard_normal(n))
        for l, n in enumerate(net.sizes)
    ]
    g = np.random.default_rng(3)
    xs = initial_activities(circ, g.uniform(0, 1, (1, net.sizes[0])), None)
    xs[-1][...] = g.standard_normal((1, net.sizes[-1]))
    eng = EventsEngine(events_per_tau=events_per_tau, clock=clock)
    return eng.run(circ, xs, _supervised_free(net), T, tau_w=100.0), circ


def test_each_device_pair_of_a_weight_is_read_at_every_synapse_read():
    """Ideal devices (the same dynamics whatever the mapping): with two device pairs per
    weight every synapse read conducts through twice the devices, as the clocked engine
    prices it; nothing else in the ledger moves."""
    net = network.build((12, 16, 4), "tanh", rng=3)
    chip = load_preset("ideal")
    one, c1 = _counted(net, 1.0, 10.0, T=5.0, chip=chip)
    two, c2 = _counted(
        net, 1.0, 10.0, T=5.0, chip=chip.with_overrides({"architecture.device_pairs": 2})
    )
    assert np.array_equal(one.synapse_reads, two.synapse_reads)
    assert c2.ledger.counts()["crossbar_read"] == 2 * int(one.synapse_reads.sum())
    e1, e2 = c1.ledger.by_component(), c2.ledger.by_component()
    assert e2["crossbar_read"] == pytest.approx(2 * e1["crossbar_read"], rel=1e-12)
    for k in e1.keys() - {"crossbar_read"}:
        assert e2[k] == pytest.approx(e1[k], rel=1e-12), k


def test_event_counts_and_charged_energy_double_when_rates_double():
    net = network.build((30, 40, 40, 5), "tanh", rng=2)
    chip = load_preset("ideal")  # nominal costs: transition, MAC, write, static power
    one, c1 = _counted(net, 1.0, 10.0, chip=chip)
    runs = [_counted(net, 1.0, 20.0, chip=chip), _counted(net, 0.5, 10.0, chip=chip)]
    n_units = 40 + 40 + 45
    assert one.total_events > 0.9 * 40.0 * n_units * 10.0  # about 10 events per tau per unit
    per_event = ("unit_dynamic", "crossbar_read", "synapse_write")
    e1 = c1.ledger.by_component()
    assert all(e1[k] > 0 for k in per_event)
    for two, c2 in runs:  # twice the events per tau; units twice as fast (tau halved)
        assert two.total_events / one.total_events == pytest.approx(2.0, rel=0.03)
        e2 = c2.ledger.by_component()
        for k in per_event:
            assert e2[k] / e1[k] == pytest.approx(2.0, rel=0.03), k
        assert e2["static"] == pytest.approx(e1["static"])  # bias power x time: unchanged
        assert c2.ledger.counts()["unit_dynamic"] == two.total_events
    # writes follow the error events row by row (fan-in per event), plus one closing write
    # per row at the end of the run (the weight flow up to t_end)
    for i, ev in enumerate(one.error_events):
        assert one.synapse_writes[i] == (ev.sum() + ev.size) * net.sizes[i]
    assert np.all(one.value_events[0] == 0) and np.all(one.value_events[-1] == 0)  # clamped


def test_periodic_clock_without_jitter_fires_at_its_rate():
    net = network.build((5, 6, 6, 3), "tanh", rng=1)
    st, circ = _counted(net, 1.0, 10.0, clock="periodic", T=20.0)
    for l in (1, 2):  # each unit fires floor or ceil of T * 10 / tau_i times
        expect = 20.0 * 10.0 / circ.tau_scale[l]
        assert np.all(np.abs(st.value_events[l] - expect) <= 1.0)
        assert np.all(np.abs(st.error_events[l - 1] - expect) <= 1.0)


# -- learning --------------------------------------------------------------------------------
def test_error_units_integrate_the_ipc_weight_flow():
    """All activities clamped: the errors are constant, so over a time D every row must move
    by D / tau_w * (-dF/dW), biases likewise (to first order in the small weight change)."""
    net = network.build((7, 9, 4), "tanh", bias=True, rng=3)
    g = np.random.default_rng(4)
    xs = [g.standard_normal((1, n)) for n in net.sizes]
    eps = field.errors(net, xs)
    dW, db = field.weight_drift(net, xs, eps)
    W0 = [W.copy() for W in net.weights]
    b0 = [b.copy() for b in net.biases]
    D, tau_w = 50.0, 1e5
    EventsEngine().run(Circuit(net), xs, [False] * 3, D, tau_w=tau_w)
    for W, Wi, d in zip(net.weights, W0, dW, strict=True):
        np.testing.assert_allclose(W - Wi, D / tau_w * d, rtol=2e-3, atol=1e-12)
    for b, bi, d in zip(net.biases, b0, db, strict=True):
        np.testing.assert_allclose(b - bi, D / tau_w * d, rtol=2e-3, atol=1e-12)


def test_modelled_chip_path_writes_through_apply_weight_update():
    """On a non-ideal chip (here: a conductance range, so writes are clipped device updates)
    the MACs use circ.read_weights and the changes go through circ.apply_weight_update every
    sync_every; with clamped activities both paths integrate the same weight flow."""
    net = network.build((7, 9, 4), "tanh", rng=3)
    g = np.random.default_rng(4)
    xs = [g.standard_normal((1, n)) for n in net.sizes]
    dW, _ = field.weight_drift(net, xs, field.errors(net, xs))
    D, tau_w = 10.0, 1e5
    for chip in (None, load_preset("ideal", {"synapses.w_max": 10.0})):
        circ = Circuit(net.copy(), chip=chip, rng=np.random.default_rng(0))
        assert circ.ideal == (chip is None)
        eng = EventsEngine(sync_every=0.5)
        eng.run(circ, [v.copy() for v in xs], [False] * 3, D, tau_w=tau_w)
        for W, W0, d in zip(circ.net.weights, net.weights, dW, strict=True):
            np.testing.assert_allclose(W - W0, D / tau_w * d, rtol=2e-3, atol=1e-12)
        if chip is None:
            assert circ.ledger.by_component() == {}  # no chip, no costs
        else:  # exact writes through the update model, priced by the distance the weights
            # travel: one pulse-equivalent per 8-bit step of w_max (Circuit.exact_write_pulses);
            # clamped activities move every weight one way, so the path is the net change
            lsb = 10.0 / (2 ** (EXACT_WRITE_BITS - 1) - 1)
            pairs = zip(circ.net.weights, net.weights, strict=True)
            moved = sum(float(np.abs(W - W0).sum()) for W, W0 in pairs)
            assert circ.ledger.counts()["synapse_write"] == pytest.approx(moved / lsb, rel=1e-6)


def test_read_noise_in_the_output_domain_has_the_chip_amplitude():
    """Each row read (an error unit's prediction) carries the crossbar's read noise,
    ``a * sigma_s * ||phi|| * m`` with ``m`` the mean over the event interval ``h`` of the
    row's unit OU read line (pcsim.read_noise; ``sigma_s = read_sigma sqrt(e / 2)``). With
    every activity clamped and periodic events (h = tau / 10), an error unit is the AR(1)
    average of its noisy targets: ``e' = d e + (1 - d) c m``, ``d = exp(-h / tau)``. The read
    time is one event interval (10 ns of the ideal preset's 100 ns tau_x), so ``x = h / tau_r
    = 1``: ``Var m = 2 / e`` (one read has std ``read_sigma``), successive means covary by
    ``e^{-(n-1)} (1 - 1/e)^2``, and the stationary variance is
    ``(1 - d)^2 c^2 / (1 - d^2) (Var m + 2 Cov_1 d / (1 - d / e))``."""
    net = network.build((7, 9, 4), "tanh", rng=3)
    synapses = {"read_noise_std": 0.05, "w_max": 1.0, "read_time_s": 1e-8}
    chip = load_preset("ideal", {"synapses": synapses})
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(0))
    if not np.any(getattr(circ, "read_sigma", 0.0)):
        pytest.skip("this Circuit has no output-domain read noise (read_sigma)")
    g = np.random.default_rng(4)
    xs = [g.standard_normal((1, n)) for n in net.sizes]
    eng = EventsEngine(clock="periodic")
    samples = []
    for _ in range(1500):
        eng.run(circ, xs, [False] * 3, 1.0)
        samples.append(eng._states[0].e.copy())  # error-unit states, one sample per tau
    samples = np.array(samples)
    target = np.concatenate([e[0] for e in field.errors(net, xs, circ.read_weights())])
    d = np.exp(-0.1)
    pre = [xs[0], np.tanh(xs[1])]
    s = np.concatenate(
        [np.full(net.sizes[i + 1], circ.read_sigma[i] * np.linalg.norm(pre[i])) for i in (0, 1)]
    )
    s = s * np.sqrt(np.e / 2)  # the OU's stationary std
    a = np.exp(-1.0)
    factor = 2 * a + 2 * (1 - a) ** 2 * d / (1 - d * a)
    ratio = samples.std(axis=0) / (s * np.sqrt((1 - d) / (1 + d) * factor))
    assert np.sqrt(np.mean(ratio**2)) == pytest.approx(1.0, abs=0.05)
    assert np.all(np.abs(ratio - 1) < 0.15)
    assert np.max(np.abs(samples.mean(axis=0) - target)) < 0.1 * s.max()


def test_runs_are_reproducible_from_circ_rng(small):
    net, xs0, free, _ = small
    ends = []
    for seed in (0, 0, 1):
        circ = Circuit(net.copy(), rng=np.random.default_rng(seed))
        xs = [v.copy() for v in xs0]
        EventsEngine(sigma=0.05).run(circ, xs, free, 3.0, tau_w=20.0)
        ends.append(np.concatenate([v.ravel() for v in xs] + [circ.net.weights[0].ravel()]))
    np.testing.assert_array_equal(ends[0], ends[1])
    assert not np.array_equal(ends[0], ends[2])


def test_ipc_on_events_trains_digits_like_the_clocked_ipc():
    """iPC at batch 1 with the same network, presentation time T and weight time constant
    tau_w: events engine (asynchronous, Poisson clocks) vs clocked Euler with lr = dt/tau_w.
    500 training images, 3 epochs, 450 test images; tolerance 2 points."""
    d = load_dataset("digits")
    x, labels = d.x_train[:500], d.y_train[:500]
    y = d.one_hot(labels).astype(np.float64)
    T, dt, tau_w = 2.0, 0.1, 50.0
    acc = {}
    for kind in ("clocked", "events"):
        net = network.build((64, 128, 10), "leaky_relu", rng=0)
        circ = Circuit(net, rng=np.random.default_rng(0))
        if kind == "clocked":
            eng, alg, opt = ClockedEngine(dt=dt), IPC(T=T), SGD(dt / tau_w)
        else:
            eng, alg, opt = EventsEngine(), IPCEvents(T=T), SGD(1.0 / tau_w)
        order = np.random.default_rng(0)
        for _ in range(3):
            for idx in batches(len(x), 1, order):
                alg.train_batch(circ, eng, opt, x[idx], y[idx])
        acc[kind] = accuracy(circ, d.x_test, d.y_test)
    assert acc["clocked"] > 0.85
    assert abs(acc["events"] - acc["clocked"]) <= 0.02, acc


def test_ipc_events_streams_a_minibatch_and_checks_its_optimizer():
    net = network.build((64, 16, 10), "leaky_relu", rng=0)
    circ = Circuit(net)
    d = load_dataset("digits")
    x, y = d.x_train[:4], d.one_hot(d.y_train[:4]).astype(np.float64)
    alg = IPCEvents(T=1.0, tau_w=20.0)
    W0 = net.weights[0].copy()
    e = alg.train_batch(circ, EventsEngine(), None, x, y)
    assert np.isfinite(e) and e > 0
    assert circ.t == pytest.approx(4.0)  # four samples, one after another
    assert not np.array_equal(W0, net.weights[0])
    assert alg.last_stats.total_error_events > 0
    with pytest.raises(ValueError, match="tau_w"):
        IPCEvents(T=1.0).train_batch(circ, EventsEngine(), SGD(0.1, momentum=0.9), x, y)
