"""The kernels' typed Lists that keep their identity while their arrays change
(``kernels.ListSlots``, ``Circuit.kernel_list``) and the divergence test made in a kernel
(``kernels.any_diverged``): a List holds exactly the arrays last given, each presentation's
activities stay its own, and every number is the one a fresh circuit (new Lists) gives."""

import copy

import numpy as np
import pytest
from numba import njit

from pcsim import kernels, network
from pcsim.circuit import Circuit
from pcsim.engines.clocked import DIVERGENCE_BOUND, ClockedEngine, DivergenceError, check_finite
from pcsim.engines.protocol import Batch, Learning
from pcsim.optim import Adam


@njit(cache=False)
def _seen(xs):  # pragma: no cover - compiled
    """What a kernel sees in each item of a List: its shape and last value."""
    out = np.zeros((len(xs), 3))
    for i in range(len(xs)):
        x = xs[i]
        out[i, 0], out[i, 1], out[i, 2] = x.shape[0], x.shape[1], x[-1, -1]
    return out


def _want(arrays):
    return [(v.shape[0], v.shape[1], v[-1, -1]) for v in arrays]


def _arrays(r, dtype=np.float32, sizes=(4, 3, 5)):
    return [r.standard_normal((2, n)).astype(dtype) for n in sizes]


def test_a_slot_keeps_its_list_and_holds_the_arrays_last_given():
    r = np.random.default_rng(0)
    slots = kernels.ListSlots()
    a, b = _arrays(r), _arrays(r)
    a_before = [v.copy() for v in a]
    la = slots.get("xs", a)
    lb = slots.get("xs", b)
    assert lb is la  # the same List object: kernels.call finds its key by identity
    np.testing.assert_array_equal(_seen(lb), _want(b))
    for i, v in enumerate(b):
        assert np.shares_memory(lb[i], v)  # the arrays themselves, not copies
    for v, w in zip(a, a_before, strict=True):  # the arrays replaced are not touched
        np.testing.assert_array_equal(v, w)
    c = [b[0], _arrays(r)[1], b[2]]  # only the changed item is replaced
    assert slots.get("xs", c) is la
    np.testing.assert_array_equal(_seen(la), _want(c))
    assert slots.get("other", a) is not la  # another name, another List


def test_arrays_of_another_type_get_a_list_of_their_own():
    r = np.random.default_rng(1)
    slots = kernels.ListSlots()
    la = slots.get("xs", _arrays(r))
    d = _arrays(r, np.float64)
    ld = slots.get("xs", d)
    assert ld is not la
    np.testing.assert_array_equal(_seen(ld), _want(d))
    mixed = [d[0], d[1].astype(np.float32), d[2]]
    got = slots.get("xs", mixed)
    assert isinstance(got, tuple)  # seq's answer for items of different types
    assert all(g is m for g, m in zip(got, mixed, strict=True))
    strided = [v[:, ::2] for v in _arrays(r)]  # not C-contiguous: not slotted
    assert isinstance(slots.get("s", strided), tuple)
    assert copy.deepcopy(slots).get("xs", d) is not ld  # copies start empty


def _train(circ_for, net, batches, T):
    """iPC with Adam presentation by presentation; the circuit for each from ``circ_for``.
    Returns every presentation's activities (as returned), energy and the final weights."""
    eng, opt = ClockedEngine(dt=0.1), Adam(1e-2)
    free = net.free_mask(training=True)
    kept = []
    for x, y in batches:
        circ = circ_for()
        rec = eng.present(circ, Batch(free, bottom=x, top=y), T, Learning(opt, "during"))
        kept.append((rec.xs, rec.energy))
    return kept, [W.copy() for W in net.weights]


@pytest.mark.parametrize("T", [0.1, 0.4])
def test_presentations_on_one_circuit_equal_fresh_circuits_bit_for_bit(T):
    """One circuit (its activity Lists refilled every presentation, two batch sizes
    interleaved) against a new circuit per presentation (new Lists): the same activities,
    energies and weights to the last bit, and each presentation's activities its own."""
    base = network.build((7, 6, 5, 3), "tanh", bias=True, dtype=np.float32, rng=2)
    r = np.random.default_rng(3)
    batches = [(r.random((B, 7)), np.eye(3)[r.integers(0, 3, B)]) for B in (5, 5, 3, 5, 3, 3, 5)]
    net_a, net_b = base.copy(), base.copy()
    one = Circuit(net_a)
    kept_a, w_a = _train(lambda: one, net_a, batches, T)
    kept_b, w_b = _train(lambda: Circuit(net_b), net_b, batches, T)
    for (xs_a, e_a), (xs_b, e_b) in zip(kept_a, kept_b, strict=True):
        assert e_a == e_b
        for u, v in zip(xs_a, xs_b, strict=True):
            np.testing.assert_array_equal(u, v)
    for u, v in zip(w_a, w_b, strict=True):
        np.testing.assert_array_equal(u, v)
    arrays = [id(v) for xs, _ in kept_a for v in xs]
    assert len(set(arrays)) == len(arrays)  # no presentation's activities reused


def test_stepping_earlier_activities_again_steps_those():
    """A step on the activities of an earlier presentation (the List refilled with them)
    moves those, exactly as a fresh circuit steps them."""
    net = network.build((6, 5, 4), "tanh", dtype=np.float32, rng=4)
    r = np.random.default_rng(5)
    x1, x2, y = r.random((3, 6)), r.random((3, 6)), np.eye(4)[[0, 1, 2]]
    circ, eng = Circuit(net), ClockedEngine(dt=0.1)
    free = net.free_mask(training=True)
    xs1 = circ.initial_activities(x1, y)
    want = [v.copy() for v in xs1]
    xs2 = circ.initial_activities(x2, y)
    eng.step(circ, xs2, free)
    eng.step(circ, xs1, free)
    eng.step(Circuit(net), want, free)
    for u, v in zip(xs1, want, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(xs1[1], xs2[1])


def test_a_copied_circuit_runs_and_gives_the_same_numbers():
    net = network.build((6, 5, 4), "tanh", dtype=np.float32, rng=6)
    r = np.random.default_rng(7)
    x, y = r.random((3, 6)), np.eye(4)[[0, 1, 2]]
    circ, eng = Circuit(net), ClockedEngine(dt=0.1)
    free = net.free_mask(training=True)
    eng.run(circ, circ.initial_activities(x, y), free, 0.5)
    twin = copy.deepcopy(circ)
    a, b = circ.initial_activities(x, y), twin.initial_activities(x, y)
    eng.run(circ, a, free, 0.5)
    copy.deepcopy(eng).run(twin, b, free, 0.5)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_diverged_is_check_finites_test(dtype):
    """The kernel's answer is True exactly where ``check_finite`` raises: a free value that
    is NaN, infinite or beyond the bound in magnitude (the bound itself is allowed)."""
    free = np.array([False, True, True])
    for bad in (np.nan, np.inf, -np.inf, 2 * DIVERGENCE_BOUND, -1.5 * DIVERGENCE_BOUND,
                DIVERGENCE_BOUND, -DIVERGENCE_BOUND, 0.0):  # fmt: skip
        for layer in range(3):
            xs = [np.zeros((3, 17), dtype) for _ in range(3)]
            xs[layer][2, 16] = bad  # the last value of a row (the loop's remainder)
            try:
                check_finite(xs, list(free), 0.0)
                raised = False
            except DivergenceError:
                raised = True
            got = kernels.any_diverged(kernels.seq(xs), free, DIVERGENCE_BOUND)
            assert got == raised, (bad, layer)
            assert raised == (layer > 0 and not abs(bad) <= DIVERGENCE_BOUND)


def test_a_diverging_run_stops_where_check_finite_stops_it():
    """Step by step on the numba path (the check made in the kernel every 16 steps and after
    the last), the run stops at the step, and with the message, that ``check_finite`` on the
    same schedule gives."""
    net = network.build((4, 6, 3), "tanh", dtype=np.float64, rng=8)
    free = [False, True, False]
    x, y = np.ones((2, 4)), np.ones((2, 3))
    eng = ClockedEngine(dt=2.5)  # past Euler's limit: |1 - 2.5| > 1, the error grows
    circ = Circuit(net.copy())
    with pytest.raises(DivergenceError, match="activities of layer 1") as got:
        eng.run(circ, circ.initial_activities(x, y), free, 1000.0, on_step=lambda rec: None)
    ref = Circuit(net.copy())
    xs = ref.initial_activities(x, y)
    with pytest.raises(DivergenceError) as want:
        for k in range(eng.n_steps(1000.0)):
            eng.step(ref, xs, free)
            if (k + 1) % 16 == 0:
                check_finite(xs, free, ref.t)
    assert str(got.value) == str(want.value)
    assert circ.t == ref.t
