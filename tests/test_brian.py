"""The Brian2 engine and exporter against pcsim's clocked Euler engine.

Deterministic trajectories (activities, weights, biases; learning on; quantised reads; chip
leak/gain/offset/tau/rails; residual skips; every activation) agree to 1e-9; with noise the
per-unit stationary variances agree within 5 %; the exported script runs without pcsim and
reproduces the pcsim run; what Brian2 cannot express is refused with a clear message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from hardware_models.quantisers import UniformQuantiser
from pcsim import config, field, network
from pcsim.algorithms import IPC, initial_activities
from pcsim.circuit import Circuit
from pcsim.engines.brian import (
    BrianEngine,
    BrianUnsupported,
    check_config,
    clocked_reference,
)
from pcsim.engines.clocked import ClockedEngine
from pcsim.export_brian import export_brian2, export_from_config, trajectory_difference
from pcsim.optim import SGD
from pcsim.quantised import QuantisedCircuit

pytest.importorskip("brian2")

TOL = 1e-9


def _supervised_start(net, rng, batch=1):
    x0 = rng.standard_normal((batch, net.sizes[0]))
    y = 0.5 * rng.standard_normal((batch, net.sizes[-1]))
    xs = field.feedforward(net, x0)
    xs[-1] = y
    return [np.ascontiguousarray(v) for v in xs]


def _max_diff(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))


def _chip_like(circ, rng):
    """Mismatched time constants, leaks, error-unit gains/offsets and rails."""
    sizes = circ.net.sizes
    circ.tau_scale = [rng.uniform(0.7, 1.3, n) for n in sizes]
    circ.units.leak = [rng.uniform(0.0, 0.2, n) for n in sizes]
    circ.units.error_gain = [rng.uniform(0.8, 1.2, n) for n in sizes]
    circ.units.error_offset = [rng.uniform(-0.05, 0.05, n) for n in sizes]
    circ.rails = (-0.45, 0.45)
    return circ


def test_learning_trajectories_match_pcsim_to_1e_9():
    rng = np.random.default_rng(0)
    net = network.build((20, 32, 16, 10), "tanh", bias=True, rng=3)
    xs = _supervised_start(net, rng)
    free = [False, True, True, False]
    dt, lr, n = 0.1, 0.05, 60
    W0 = [W.copy() for W in net.weights]
    run = BrianEngine(dt=dt).simulate(net, xs, free, n * dt, lr=lr, record_weights=True)
    ref = clocked_reference(Circuit(net), xs, free, dt, n, lr, record_weights=True)
    times, bx, bw = run
    assert times.shape == (n,) and np.allclose(times, dt * np.arange(1, n + 1))
    assert [v.shape for v in bx] == [(n, 1, s) for s in net.sizes]
    assert _max_diff(bx, ref.xs) < TOL
    assert _max_diff(run.weight_traces, ref.weight_traces) < TOL
    assert _max_diff(bw, ref.weights) < TOL
    assert _max_diff(run.final_biases, ref.final_biases) < TOL
    # the comparison is not vacuous: weights and free activities moved
    assert min(float(np.max(np.abs(W - V))) for W, V in zip(bw, W0, strict=True)) > 1e-3
    assert float(np.max(np.abs(bx[1][-1] - xs[1]))) > 1e-2
    # the network itself is left untouched
    assert all(np.array_equal(W, V) for W, V in zip(net.weights, W0, strict=True))


def test_matches_ipc_train_batch_with_sgd():
    rng = np.random.default_rng(1)
    net = network.build((20, 32, 16, 10), "tanh", rng=4)
    x, y = rng.standard_normal((1, 20)), np.eye(10)[[7]]
    dt, lr, T = 0.2, 0.02, 8.0
    circ = Circuit(net.copy())
    xs = initial_activities(circ, x, y)
    run = BrianEngine(dt=dt).simulate(circ, xs, [False, True, True, False], T, lr=lr)
    alg = IPC(T=T, init="feedforward")
    alg.train_batch(circ, ClockedEngine("euler", dt=dt), SGD(lr), x, y)
    assert _max_diff(run.weights, circ.net.weights) < TOL
    assert _max_diff(run.final_xs, alg._carry) < TOL


def test_engine_contract_run_learning_over_a_stream_matches_ipc():
    rng = np.random.default_rng(11)
    net = network.build((12, 10, 4), "tanh", bias=True, rng=12)
    brian_circ, clocked_circ = Circuit(net.copy()), Circuit(net.copy())
    eng, alg = BrianEngine(dt=0.1), IPC(T=1.0)
    free = [False, True, False]
    for k in range(3):  # three samples: the built Brian2 network is reused
        x, y = rng.standard_normal((1, 12)), np.eye(4)[[k]]
        xs = initial_activities(brian_circ, x, y)
        assert eng.run_learning(brian_circ, xs, free, 1.0, SGD(0.05)) == 10
        alg.train_batch(clocked_circ, ClockedEngine(dt=0.1), SGD(0.05), x, y)
        assert _max_diff(brian_circ.net.weights, clocked_circ.net.weights) < TOL
        assert _max_diff(brian_circ.net.biases, clocked_circ.net.biases) < TOL
        assert _max_diff(xs, alg._carry) < TOL
    assert len(eng._cache) == 1 and brian_circ.t == pytest.approx(3.0)
    with pytest.raises(BrianUnsupported, match="run_learning"):
        eng.run(brian_circ, xs, free, 1.0, on_step=lambda rec: None)
    with pytest.raises(BrianUnsupported, match="SGD without momentum"):
        eng.run_learning(brian_circ, xs, free, 1.0, SGD(0.05, momentum=0.9))


def test_quantised_weights_with_chip_units_and_residual_skips():
    rng = np.random.default_rng(2)
    net = network.build(
        (6, 8, 8, 8, 4), "leaky_relu", parameterisation="mupc", bias=True, residual=True, rng=5
    )
    assert any(net.residual)
    q = UniformQuantiser(bits=4, w_max=1.5)
    circ = _chip_like(QuantisedCircuit(net.copy(), quantiser=q), rng)
    xs = [0.5 * rng.standard_normal((1, n)) for n in net.sizes]
    free = [False, True, True, True, False]
    dt, lr, n = 0.2, 0.02, 40
    run = BrianEngine(dt=dt).simulate(circ, xs, free, n * dt, lr=lr, record_weights=True)
    ref = clocked_reference(circ, xs, free, dt, n, lr, record_weights=True)
    assert _max_diff(run.xs, ref.xs) < TOL
    assert _max_diff(run.weight_traces, ref.weight_traces) < TOL
    # quantisation and rails matter here, so a model that ignored them would not match
    plain = clocked_reference(
        _chip_like(Circuit(net.copy()), np.random.default_rng(2)), xs, free, dt, n, lr
    )
    assert _max_diff(plain.xs, ref.xs) > 1e-3
    assert max(float(np.max(np.abs(v))) for v in run.xs[1:4]) == pytest.approx(0.45)


def test_chip_with_quantised_crossbars_frozen_run_matches_and_learning_is_refused():
    from hardware_models import load_preset

    chip = load_preset("sram-cim").with_overrides(
        {"value_units": {"thermal_noise": False}, "error_units": {"noise_std": 0.0}}
    )
    net = network.build((8, 12, 6), "tanh", rng=10)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(0))
    assert circ.crossbars[0].levels() is not None and not circ.ideal
    W = circ.read_weights()[0]
    assert np.allclose(W / circ.crossbars[0].lsb, np.rint(W / circ.crossbars[0].lsb))
    xs = _supervised_start(net, np.random.default_rng(8))
    free = [False, True, True]
    run = BrianEngine(dt=0.1).simulate(circ, xs, free, 3.0)
    ref = clocked_reference(circ, xs, free, 0.1, 30)
    assert _max_diff(run.xs, ref.xs) < TOL
    with pytest.raises(BrianUnsupported, match="update model"):
        BrianEngine(dt=0.1).simulate(circ, xs, free, 3.0, lr=0.01)


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "sigmoid", "linear"])
def test_frozen_batch_all_layers_free_every_activation(activation):
    rng = np.random.default_rng(3)
    net = network.build((5, 7, 6, 3), activation, bias=True, rng=6)
    xs = [rng.standard_normal((3, n)) for n in net.sizes]
    free = [True, True, True, True]  # the bottom layer integrates too (phi_0 = identity)
    dt, n = 0.1, 30
    run = BrianEngine(dt=dt).simulate(net, xs, free, n * dt)
    ref = clocked_reference(Circuit(net), xs, free, dt, n)
    assert [v.shape for v in run.xs] == [(n, 3, s) for s in net.sizes]
    assert _max_diff(run.xs, ref.xs) < TOL
    assert _max_diff(run.weights, net.weights) == 0.0


def test_stationary_variances_with_noise_agree_within_5_percent():
    # B independent copies of a frozen tanh circuit (the batch is replicated in Brian2), run
    # past the relaxation; the per-unit variances across copies are the stationary ones.
    rng = np.random.default_rng(4)
    net = network.build((3, 5, 4, 2), "tanh", rng=7)
    B, dt, T, sigma = 20000, 0.1, 15.0, 0.5
    x0 = np.tile(rng.standard_normal((1, 3)), (B, 1))
    xs = field.feedforward(net, x0)
    xs[-1] = np.tile(0.5 * rng.standard_normal((1, 2)), (B, 1))
    xs = [np.ascontiguousarray(v) for v in xs]
    free = [False, True, True, False]
    run = BrianEngine(dt=dt, sigma=sigma, seed=3).simulate(net, xs, free, T, record=False)
    px = [v.copy() for v in xs]
    ClockedEngine("euler_maruyama", dt=dt, sigma=sigma).run(
        Circuit(net, rng=np.random.default_rng(5)), px, free, T
    )
    for l in (1, 2):
        vb, vp = run.final_xs[l].var(axis=0), px[l].var(axis=0)
        assert np.all(vp > 0.05)  # noise actually drives every free unit
        np.testing.assert_allclose(vb, vp, rtol=0.05)
    assert np.all(run.final_xs[0] == xs[0]) and np.all(run.final_xs[3] == xs[3])
    assert run.xs[1].shape == (0, B, 5)


@pytest.mark.slow  # compiles a C++ project (about 10-25 s on 2 cores)
def test_cpp_standalone_matches(tmp_path):
    import brian2

    old = list(brian2.prefs["codegen.cpp.extra_compile_args_gcc"])
    brian2.prefs["codegen.cpp.extra_compile_args_gcc"] = ["-w", "-O0"]  # compile fast
    try:
        rng = np.random.default_rng(5)
        net = network.build((5, 6, 3), "tanh", bias=True, rng=8)
        xs = _supervised_start(net, rng)
        free = [False, True, False]
        dt, lr, n = 0.1, 0.05, 40
        eng = BrianEngine(dt=dt, target="cpp_standalone", directory=str(tmp_path / "cpp"))
        run = eng.simulate(net, xs, free, n * dt, lr=lr, record_weights=True)
    finally:
        brian2.prefs["codegen.cpp.extra_compile_args_gcc"] = old
    ref = clocked_reference(Circuit(net), xs, free, dt, n, lr, record_weights=True)
    assert _max_diff(run.xs, ref.xs) < TOL
    assert _max_diff(run.weight_traces, ref.weight_traces) < TOL
    assert run.build_seconds > 0 and (tmp_path / "cpp" / "main").exists()
    # the runtime device is back: a numpy run works after a standalone one
    again = BrianEngine(dt=dt).simulate(net, xs, free, n * dt, lr=lr)
    assert _max_diff(again.weights, ref.weights) < TOL


def test_read_noise_lines_are_ou_processes_with_the_clocked_closed_form():
    """Read noise in Brian2: one OU per read line, stepped exactly by a run_regularly
    operation (pcsim.read_noise). A free top layer on a clamped input has the stationary
    variance of the Euler step driven by the lines' exact step means (the closed form of
    tests/test_physical_time.py), and the lines hand their state back to the circuit."""
    import math

    from hardware_models import Chip
    from hardware_models.synapses import SynapseConfig
    from hardware_models.units import ValueUnitConfig

    w, dt = 0.5, 0.1  # read time and step, tau_x units
    chip = Chip(
        name="read-noise-only",
        synapses=SynapseConfig(read_noise_std=0.2, read_time_s=w * 100e-9),
        value_units=ValueUnitConfig(capacitance_f=1e-12, conductance_s=1e-5),
    )
    net = network.build((3, 2), "linear", dtype=np.float64, rng=0)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(1))
    B = 2000
    x0 = np.tile(np.array([[0.6, -0.3, 0.9]]), (B, 1))
    xs = initial_activities(circ, x0, None)
    eng = BrianEngine(dt=dt)
    free = [False, True]
    eng.run(circ, xs, free, 10.0)
    u_before = circ.read_ou_fwd[0].copy()
    samples = []
    for _ in range(12):
        eng.run(circ, xs, free, 2.0)
        samples.append(xs[1].copy())
    assert not np.array_equal(circ.read_ou_fwd[0], u_before)  # the lines moved on
    assert np.var(circ.read_ou_fwd[0]) == pytest.approx(1.0, abs=0.08)  # stationary
    var = np.var(np.concatenate(samples), axis=0)
    c = circ.read_sigma[0] * math.sqrt(math.e / 2.0) * math.sqrt(float(x0[0] @ x0[0]))
    x, rho = dt / w, 1.0 - dt
    a = math.exp(-x)
    v0 = 2.0 * (x - 1.0 + a) / x**2
    c1 = (1.0 - a) ** 2 / x**2
    want = dt**2 * c**2 / (1.0 - rho**2) * (v0 + 2.0 * c1 * rho / (1.0 - rho * a))
    np.testing.assert_allclose(var, want, rtol=0.08)


# --- refusals -------------------------------------------------------------------------------
def test_batch_learning_is_refused_with_the_reason_and_the_alternative():
    net = network.build((4, 5, 3), "tanh", rng=0)
    xs = _supervised_start(net, np.random.default_rng(0), batch=2)
    with pytest.raises(BrianUnsupported, match="summed variables") as err:
        BrianEngine().simulate(net, xs, [False, True, False], 1.0, lr=0.01)
    assert "kind = 'clocked'" in str(err.value) and isinstance(err.value, ValueError)


def test_unknown_substrate_models_and_configs_are_refused():
    class NoisyReads(Circuit):
        def read_weights(self):
            return tuple(W + 0.01 for W in self.net.weights)

    net = network.build((4, 5, 3), "tanh", rng=0)
    xs = _supervised_start(net, np.random.default_rng(0))
    with pytest.raises(BrianUnsupported, match="NoisyReads"):
        BrianEngine().simulate(NoisyReads(net), xs, [False, True, False], 1.0)
    ideal = {"preset": "ideal"}
    base = {"learning": {"optimizer": "sgd", "lr": 0.01, "batch_size": 1}, "chip": ideal}
    check_config(config.from_dict(base))
    bad = [
        ({**base, "learning": {"optimizer": "sgd", "batch_size": 8}}, "summed variables"),
        ({**base, "learning": {"optimizer": "adam", "batch_size": 1}}, "sgd"),
        ({**base, "engine": {"method": "heun"}}, "Heun"),
        ({**base, "chip": {"preset": "pcm"}}, "drift"),
        ({**base, "chip": {"preset": "sram-cim"}}, "update model"),
    ]
    for d, words in bad:
        with pytest.raises(BrianUnsupported, match=words):
            check_config(config.from_dict(d))
    with pytest.raises(BrianUnsupported, match="sgd"):
        export_from_config(
            config.from_dict({"learning": {"optimizer": "adam"}, "chip": ideal}), "m.py"
        )


def test_uniform_quantiser_levels():
    q = UniformQuantiser(bits=3, w_max=0.9)
    w = np.linspace(-2, 2, 1001)
    r = q.read(w)
    levels = np.unique(r)
    assert len(levels) == 2**3 - 1 and levels.max() == pytest.approx(0.9)
    assert np.max(np.abs(r - w)[np.abs(w) <= 0.9]) <= q.delta / 2 + 1e-15
    with pytest.raises(ValueError):
        UniformQuantiser(bits=1, w_max=1.0)


# --- export -----------------------------------------------------------------------------------
def _run_without_pcsim(script, cwd):
    """Run a script with only site-packages on the path and no .pth processing (``-I -S``), so
    pcsim (an editable install, found through a .pth file) is not importable; prove that first."""
    site = sysconfig.get_paths()["purelib"]
    launcher = (
        "import sys, runpy\n"
        f"sys.path.append({site!r})\n"
        "try:\n    import pcsim\nexcept ImportError:\n    pass\n"
        "else:\n    sys.exit('pcsim is importable: the check would prove nothing')\n"
        f"sys.argv = [{str(script)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", launcher],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exported_script_runs_without_pcsim_and_reproduces_the_run(tmp_path):
    rng = np.random.default_rng(6)
    net = network.build((20, 32, 16, 10), "tanh", bias=True, rng=9)
    q = UniformQuantiser(bits=6, w_max=0.5)
    circ = QuantisedCircuit(net, quantiser=q)
    x0, y = rng.standard_normal((1, 20)), np.eye(10)[[2]]
    dt, lr, n = 0.1, 0.05, 50
    script, npz = export_brian2(
        circ, x0, y, n * dt, dt, lr, tmp_path / "model.py", record_weights=True
    )
    assert npz == tmp_path / "model.npz" and npz.exists()
    text = script.read_text()
    imports = {ln.split()[1] for ln in text.splitlines() if ln.startswith(("import ", "from "))}
    assert imports == {"argparse", "os", "sys", "brian2", "numpy"}
    proc = _run_without_pcsim(script, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "largest difference from the pcsim trajectory" in proc.stdout
    # against an independent pcsim run (not only the reference stored in the npz)
    xs = initial_activities(circ, x0, y)
    ref = clocked_reference(circ, xs, [False, True, True, False], dt, n, lr, record_weights=True)
    want = {f"x{l}": v for l, v in enumerate(ref.xs)}
    want.update({f"W{i + 1}": W for i, W in enumerate(ref.weights)})
    want.update({f"W{i + 1}_trace": W for i, W in enumerate(ref.weight_traces)})
    diffs = trajectory_difference(tmp_path / "model_trajectory.npz", want)
    assert set(diffs) == set(want) and max(diffs.values()) < TOL
    assert max(trajectory_difference(tmp_path / "model_trajectory.npz").values()) < TOL


def test_export_from_config_uses_the_run_network_and_first_sample(tmp_path):
    from pcsim.run import build_network, prepare_data

    cfg = config.from_dict(
        {
            "seed": 3,
            "network": {"sizes": [64, 12, 10], "activation": "tanh"},
            "learning": {"optimizer": "sgd", "lr": 0.01, "batch_size": 1},
            "engine": {"dt": 0.2},
            "chip": {"preset": "ideal"},
        }
    )
    script, npz = export_from_config(cfg, tmp_path / "cfg_model.py", n_steps=20)
    data = prepare_data(cfg)
    net = build_network(cfg, data, np.random.default_rng(np.random.SeedSequence(3).spawn(4)[0]))
    with np.load(npz) as f:
        w1 = f["W1_w"][: 64 * 12].reshape(64, 12).T
        assert np.array_equal(w1, net.weights[0].astype(np.float64))
        assert np.array_equal(f["layer0_x"], data.x_train[0].astype(np.float64))
        assert np.array_equal(f["layer2_x"], data.one_hot(data.y_train[:1])[0].astype(float))
        assert f["ref_x1"].shape == (20, 1, 12)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert max(trajectory_difference(tmp_path / "cfg_model_trajectory.npz").values()) < TOL
