"""The vector field against finite differences of the energy, and the numba kernel against the
numpy reference (1e-12 relative, float64)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_state

from pcsim import field, network
from pcsim.activations import ACTIVATIONS
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine

CASES = [
    dict(sizes=(5, 6, 6, 6, 3), parameterisation="sp", bias=True),
    dict(sizes=(5, 6, 6, 6, 3), parameterisation="mupc", bias=False),
    dict(sizes=(4, 7, 7, 2), parameterisation="sp", bias=False, residual=True),
]


def _fd_energy(net, xs, l, idx, h=1e-6):
    xp = [x.copy() for x in xs]
    xm = [x.copy() for x in xs]
    xp[l][idx] += h
    xm[l][idx] -= h
    return (field.energy(net, xp) - field.energy(net, xm)) / (2 * h)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("case", CASES)
def test_activity_drift_is_minus_batch_times_energy_gradient(act, case, rng):
    net = network.build(activation=act, rng=3, **case)
    B = 3
    xs = random_state(net, B, rng)
    drift = field.activity_drift(net, xs, field.errors(net, xs))
    for l in range(len(xs)):
        for idx in [(0, 0), (2, net.sizes[l] - 1)]:
            assert drift[l][idx] == pytest.approx(-B * _fd_energy(net, xs, l, idx), abs=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_weight_drift_is_minus_energy_gradient(case, rng):
    net = network.build(activation="tanh", rng=4, **case)
    xs = random_state(net, 4, rng)
    dW, db = field.weight_drift(net, xs, field.errors(net, xs))
    h = 1e-6
    for i, W in enumerate(net.weights):
        for r, c in [(0, 0), (W.shape[0] - 1, W.shape[1] - 1)]:
            W[r, c] += h
            fp = field.energy(net, xs)
            W[r, c] -= 2 * h
            fm = field.energy(net, xs)
            W[r, c] += h
            assert dW[i][r, c] == pytest.approx(-(fp - fm) / (2 * h), abs=1e-7)
        if db is not None:
            b = net.biases[i]
            b[0] += h
            fp = field.energy(net, xs)
            b[0] -= 2 * h
            fm = field.energy(net, xs)
            b[0] += h
            assert db[i][0] == pytest.approx(-(fp - fm) / (2 * h), abs=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_backprop_matches_finite_differences_of_the_loss(case, rng):
    net = network.build(activation="tanh", rng=5, **case)
    x, y = rng.standard_normal((4, net.sizes[0])), rng.standard_normal((4, net.sizes[-1]))
    _, dW, _ = field.backprop_gradients(net, x, y)
    h = 1e-6
    for i, W in enumerate(net.weights):
        W[0, 1] += h
        lp = field.backprop_gradients(net, x, y)[0]
        W[0, 1] -= 2 * h
        lm = field.backprop_gradients(net, x, y)[0]
        W[0, 1] += h
        assert dW[i][0, 1] == pytest.approx(-(lp - lm) / (2 * h), abs=1e-7)


@pytest.mark.parametrize("parameterisation", ["sp", "mupc"])
def test_settled_weight_drift_is_gradient_of_closed_form_equilibrium_energy(parameterisation, rng):
    """Envelope theorem: at the activity equilibrium, -dF/dW equals -dF*/dW, where F*(W) is the
    closed-form equilibrium energy of a linear network (pcsim.theory). Links engine, field and
    theory; the feedforward state has zero energy."""
    from pcsim import theory
    from pcsim.engines.adaptive import AdaptiveEngine

    net = network.build((4, 6, 6, 6, 3), "linear", parameterisation=parameterisation, rng=6)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    xs = field.feedforward(net, x)
    assert field.energy(net, xs) == 0.0
    xs[-1] = y.copy()
    AdaptiveEngine().solve(Circuit(net), xs, [False, True, True, True, False], duration=400.0)
    dW, _ = field.weight_drift(net, xs, field.errors(net, xs))
    h = 1e-6
    for i, W in enumerate(net.weights):
        for r, c in [(0, 0), (2, 3)]:
            W[r, c] += h
            fp = theory.equilibrium_energy(net, x, y)
            W[r, c] -= 2 * h
            fm = theory.equilibrium_energy(net, x, y)
            W[r, c] += h
            assert dW[i][r, c] == pytest.approx(-(fp - fm) / (2 * h), rel=1e-5, abs=1e-8)


def _kernel_vs_reference(net, xs, free, method, seed):
    ref, ker = [x.copy() for x in xs], [x.copy() for x in xs]
    c_ref = Circuit(net, rng=np.random.default_rng(seed))
    c_ker = Circuit(net, rng=np.random.default_rng(seed))
    e_ref = ClockedEngine(method=method, dt=0.07, sigma=0.3, backend="numpy")
    e_ker = ClockedEngine(method=method, dt=0.07, sigma=0.3, backend="numba")
    for _ in range(5):
        r_ref = e_ref.step(c_ref, ref, free)
        r_ker = e_ker.step(c_ker, ker, free)
        w_ref = e_ref.weight_drift(c_ref, r_ref)
        w_ker = e_ker.weight_drift(c_ker, r_ker)
    return ref, ker, w_ref, w_ker


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["euler", "euler_maruyama"])
def test_numba_kernel_equals_numpy_reference(act, case, method, rng):
    net = network.build(activation=act, rng=7, **case)
    xs = random_state(net, 4, rng)
    free = [False] + [True] * (net.n_layers - 1) + [False]
    ref, ker, (wr, br), (wk, bk) = _kernel_vs_reference(net, xs, free, method, seed=9)
    for a, b in zip(ref, ker, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    for a, b in zip(wr, wk, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    if br is not None:
        for a, b in zip(br, bk, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


def test_kernel_with_free_bottom_layer_and_unit_nonidealities(rng):
    """Generative inference (layer 0 free) with leak, gain, offset and rails on every unit."""
    net = network.build((3, 5, 4), "tanh", bias=True, mode="generative", rng=8)
    xs = random_state(net, 2, rng)
    free = [True, True, False]
    results = []
    for backend in ("numpy", "numba"):
        c = Circuit(net)
        c.units.leak = [np.full(n, 0.1) for n in net.sizes]
        c.units.error_gain = [np.linspace(0.9, 1.1, n) for n in net.sizes]
        c.units.error_offset = [np.linspace(-0.05, 0.05, n) for n in net.sizes]
        c.tau_scale = [np.linspace(0.5, 2.0, n) for n in net.sizes]
        c.rails = (-0.8, 0.8)
        x = [v.copy() for v in xs]
        for _ in range(20):
            ClockedEngine(dt=0.1, backend=backend).step(c, x, free)
        results.append(x)
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    assert max(np.abs(v).max() for v in results[0][:2]) <= 0.8


@pytest.mark.parametrize("act", ["tanh", "leaky_relu", "linear"])
def test_fused_ipc_stream_equals_the_general_path(act):
    """Batch-1 iPC with SGD: the fused presentation kernel equals step-by-step iPC."""
    from pcsim.algorithms import IPC
    from pcsim.engines.protocol import Learning
    from pcsim.optim import SGD

    base = network.build((7, 9, 8, 3), act, rng=22)
    finals = []
    for fused in (True, False):
        net = base.copy()
        circ, eng, ipc = Circuit(net), ClockedEngine(dt=0.2), IPC(T=1.0, fused=fused)
        # the batch-1 kernel applies here; IPC(fused=False) declines it (Learning.fused)
        assert eng._fuses_batch1(circ, Learning(SGD(0.05)), 1)
        r = np.random.default_rng(23)
        energies = [
            ipc.train_batch(circ, eng, SGD(0.05), r.random((1, 7)), np.eye(3)[[k % 3]])
            for k in range(6)
        ]
        finals.append((net.weights, ipc._carry, energies, circ.t))
    (Wf, xf, ef, tf), (Ws, xs, es, ts) = finals
    for a, b in zip(Wf + xf, Ws + xs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ef, es, rtol=1e-10)
    assert tf == pytest.approx(ts)
    assert not np.allclose(Wf[1], base.weights[1])  # it did learn


def _train_ipc_batches(net, chip, fused, dtype=np.float64, steps=4, lr=0.05):
    from hardware_models import load_preset
    from pcsim.algorithms import IPC
    from pcsim.optim import SGD

    circ = Circuit(net, chip=None if chip is None else load_preset(chip))
    eng, ipc = ClockedEngine(dt=0.2), IPC(T=1.0, fused=fused)
    r = np.random.default_rng(31)
    energies = [
        ipc.train_batch(
            circ,
            eng,
            SGD(lr),
            r.random((6, 7)).astype(dtype),
            np.eye(3, dtype=dtype)[r.integers(0, 3, 6)],
        )
        for _ in range(steps)
    ]
    return circ, energies


@pytest.mark.parametrize("chip", [None, "ideal"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_fused_batch_ipc_equals_step_by_step_ipc(act, chip):
    """Mini-batch iPC with SGD in one kernel call (:func:`kernels.euler_run`; without a chip
    W_1 is folded, x_0 W_1(t)^T = x_0 W_1(0)^T + (x_0 x_0^T) F_t) against one engine step and
    one optimiser step at a time: the same weights, biases, activities, energies and ledger."""
    base = network.build((7, 9, 8, 3), act, bias=True, rng=24)
    out = []
    for fused in (True, False):
        net = base.copy()
        circ, energies = _train_ipc_batches(net, chip, fused)
        out.append((net.parameters(), energies, circ))
    (pf, ef, cf), (ps, es, cs) = out
    for a, b in zip(pf, ps, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ef, es, rtol=1e-12)
    assert cf.t == pytest.approx(cs.t)
    for k, v in cs.ledger.by_component().items():
        assert cf.ledger.by_component()[k] == pytest.approx(v, rel=1e-12), k
    assert not np.allclose(pf[0], base.weights[0])  # W_1 learned (folded)


def test_fused_batch_ipc_float32_within_rounding():
    base = network.build((7, 9, 8, 3), "tanh", bias=True, dtype=np.float32, rng=25)
    nets = [base.copy(), base.copy()]
    for net, fused in zip(nets, (True, False), strict=True):
        _train_ipc_batches(net, None, fused, dtype=np.float32)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", CASES)
def test_fused_run_is_the_step_loop_bit_for_bit(case):
    """A deterministic ``run`` (one kernel call, x_0 W_1^T hoisted) equals ``step`` called in
    a loop exactly, including the time and the divergence schedule."""
    net = network.build(activation="tanh", dtype=np.float32, rng=26, **case)
    xs0 = random_state(net, 5, np.random.default_rng(27))
    free = [False] + [True] * (net.n_layers - 1) + [False]
    a, b = [x.copy() for x in xs0], [x.copy() for x in xs0]
    ca, cb = Circuit(net), Circuit(net)
    eng = ClockedEngine(dt=0.1)
    assert eng.fusable(ca)
    eng.run(ca, a, free, 3.0)
    for _ in range(30):
        eng.step(cb, b, free)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert ca.t == cb.t


@pytest.mark.parametrize("chip", [None, "pcm"])
@pytest.mark.parametrize("case", CASES)
def test_kernel_feedforward_equals_the_reference(case, chip):
    """The feedforward start (numba) against ``field.feedforward``, with a chip's error-unit
    gains, offsets and leaks; it leaves x_0 W_1^T for the run that follows."""
    from hardware_models import load_preset
    from pcsim.algorithms import initial_activities

    for act in ACTIVATIONS:
        net = network.build(activation=act, rng=28, **case)
        circ = Circuit(net, chip=None if chip is None else load_preset(chip))
        x = np.random.default_rng(29).random((4, net.sizes[0]))
        got = initial_activities(circ, x, None)
        want = field.feedforward(
            net, got[0], circ.read_weights(), None if circ.ideal else circ.units
        )
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(
            circ.workspace(4).prod0, got[0] @ circ.read_weights()[0].T, rtol=1e-12
        )


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_deep_networks_take_the_list_path_and_equal_the_reference(act):
    """The layers reach the kernels as typed Lists (compiled once for every depth), deep
    networks too; the numbers are the reference's."""
    from pcsim import kernels
    from pcsim.algorithms import initial_activities

    H = 16
    net = network.build([5] + [6] * H + [3], act, parameterisation="mupc", rng=30)
    assert not isinstance(kernels.seq(net.weights), tuple)
    r = np.random.default_rng(31)
    x, y = r.random((4, 5)), np.eye(3)[r.integers(0, 3, 4)]
    free = [False] + [True] * H + [False]
    out = []
    for backend in ("numba", "numpy"):
        circ = Circuit(net.copy())
        xs = initial_activities(circ, x, y)
        eng = ClockedEngine(dt=0.1, backend=backend)
        eng.run(circ, xs, free, 2.0)
        rec = eng.step(circ, xs, free)
        out.append((xs, list(eng.weight_drift(circ, rec)[0])))
    for a, b in zip(out[0][0] + out[0][1], out[1][0] + out[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def _nonideal_units(circ, r):
    """Error-unit gains and offsets, leaks and finite rails, set by hand (deterministic, so
    the fused kernel still runs)."""
    for l in range(1, circ.net.n_layers + 1):
        n = circ.net.sizes[l]
        circ.units.error_gain[l][:] = r.uniform(0.8, 1.2, n)
        circ.units.error_offset[l][:] = r.uniform(-0.01, 0.01, n)
        circ.units.leak[l][:] = r.uniform(0.0, 0.05, n)
    circ.rails = (-1.5, 1.5)


@pytest.mark.parametrize("units", ["ideal", "nonideal"])
@pytest.mark.parametrize("act,depth", [("tanh", 3), ("relu", 16), ("leaky_relu", 5)])
def test_settle_from_the_feedforward_start_equals_the_reference(units, act, depth):
    """PC's inference phase in one kernel call (``ClockedEngine.settle``: products formed only
    when their input moved, starting from the feedforward pass's) against the numpy
    reference run step by step, then its errors: the activities, the errors and the weight
    gradients, residual and plain, tuples and typed Lists (16 layers)."""
    from pcsim.algorithms import initial_activities

    net = network.build(
        [5] + [6] * depth + [3], act, parameterisation="mupc" if depth > 8 else "sp",
        bias=depth <= 8, rng=40,
    )  # fmt: skip
    r = np.random.default_rng(41)
    x, y = r.random((4, 5)), np.eye(3)[r.integers(0, 3, 4)]
    free = [False] + [True] * depth + [False]
    out = []
    for backend in ("numba", "numpy"):
        circ = Circuit(net.copy())
        if units == "nonideal":
            _nonideal_units(circ, np.random.default_rng(42))
        xs = initial_activities(circ, x, y)
        eng = ClockedEngine(dt=0.2, backend=backend)
        rec = eng.settle(circ, xs, free, 3.0, from_feedforward=True)
        dW, _ = eng.weight_drift(circ, rec)
        out.append(xs + [e.copy() for e in rec.eps] + [g.copy() for g in dW])
        assert circ.t == pytest.approx(3.0)
    for a, b in zip(*out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_from_the_feedforward_start_the_error_descends_one_layer_per_step():
    """What the fused settle exploits: with ideal units and the top clamped, after k Euler
    steps the layers below L - k have not moved at all (their errors are exactly zero, the
    kernels computing each prediction as the feedforward pass did)."""
    from pcsim.algorithms import initial_activities

    L = 8
    net = network.build([5] + [6] * (L - 1) + [3], "tanh", parameterisation="mupc", rng=43)
    r = np.random.default_rng(44)
    circ = Circuit(net)
    xs = initial_activities(circ, r.random((3, 5)), np.eye(3)[[0, 1, 2]])
    start = [x.copy() for x in xs]
    eng = ClockedEngine(dt=0.3, backend="numba")
    free = [False] + [True] * (L - 1) + [False]
    for k in range(1, L):
        eng.step(circ, xs, free)
        for l in range(1, L):
            moved = not np.array_equal(xs[l], start[l])
            assert moved == (l >= L - k), (k, l)


def test_in_place_sgd_rounds_as_numpy():
    """``kernels.add_scaled`` (PC's SGD step without temporaries) equals ``W += lr * d`` to the
    last bit in float32."""
    from pcsim import kernels

    r = np.random.default_rng(45)
    Ws = [r.standard_normal((7, 5)).astype(np.float32) for _ in range(2)]
    ds = [r.standard_normal((7, 5)).astype(np.float32) * 1e-3 for _ in range(2)]
    want = [W.copy() for W in Ws]
    for W, d in zip(want, ds, strict=True):
        W += 0.0137 * d
    kernels.add_scaled(tuple(Ws), tuple(ds), 0.0137)
    for a, b in zip(Ws, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", CASES)
def test_pc_step_in_one_call_equals_its_parts(case, optimizer):
    """``PC.train_batch`` on the pure algorithm runs in one kernel call
    (``ClockedEngine.pc_step``); its weights, biases and energies equal, to the last bit in
    float32, those of its parts called one by one: the feedforward start, ``settle``,
    ``weight_drift`` and the optimiser."""
    from pcsim.algorithms import PC
    from pcsim.engines.protocol import write_update
    from pcsim.optim import make_optimizer

    net = network.build(activation="tanh", dtype=np.float32, rng=46, **case)
    r = np.random.default_rng(47)
    batches = [
        (r.random((5, net.sizes[0])), np.eye(net.sizes[-1])[r.integers(0, net.sizes[-1], 5)])
        for _ in range(3)
    ]
    fused, parts = Circuit(net.copy()), Circuit(net.copy())
    eng, pc = ClockedEngine(dt=0.2), PC(T=2.0)
    opt_a, opt_b = make_optimizer(optimizer, 0.01), make_optimizer(optimizer, 0.01)
    free = [False] + [True] * (net.n_layers - 1) + [False]
    for x, y in batches:
        e_fused = pc.train_batch(fused, eng, opt_a, x, y)
        xs = parts.initial_activities(x, y)
        rec = eng.settle(parts, xs, free, 2.0, from_feedforward=True)
        dW, db = eng.weight_drift(parts, rec)
        e_parts = field.energy_of(rec.eps, 5)
        write_update(parts, opt_b, dW, db)
        assert e_fused == e_parts
    for a, b in zip(fused.net.parameters(), parts.net.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fused.t == parts.t
