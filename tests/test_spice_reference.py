"""pcsim's side of the ngspice comparison (:func:`pcsim.spice.reference`) on the engine
protocol, checked without ngspice: against one continuous adaptive solve sampled at the same
times, against a fixed-step engine stepped by hand, and the Euler weight flow's first-order
convergence to the adaptive one. Budget: ~5 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import load_preset
from pcsim import network, spice
from pcsim.circuit import Circuit
from pcsim.engines.adaptive import AdaptiveEngine
from pcsim.engines.clocked import ClockedEngine

NOISE_OFF = {
    "value_units.thermal_noise": False,
    "synapses.read_noise_std": 0.0,
    "error_units.noise_std": 0.0,
    "synapses.w_max_headroom": 1.25,
}


def netlist(P: int, T: float, tau_w: float | None = None, top: bool = True):
    net = network.build((4, 6, 3), "tanh", rng=1)
    chip = load_preset("rram", NOISE_OFF)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(2))
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, (P, 4))
    y = 0.8 * np.eye(3)[rng.integers(0, 3, P)] if top else None
    return spice.export(circ, x, y, presentation_time=T, tau_w=tau_w)


def continuous(nl, t_s):
    """The transient by one ``AdaptiveEngine.solve`` per presentation (its dense output at
    the sample times): (xs per layer (n_t, n_l), weights per crossbar (n_t, ...) or None)."""
    rc = spice.reference_circuit(nl)
    T, L = nl.presentation_tau, nl.net.n_layers
    t_tau = np.asarray(t_s) / nl.tau_x_s
    xs = [x.reshape(1, -1).copy() for x in nl.x_init]
    out_x = [np.empty((len(t_tau), n)) for n in nl.net.sizes]
    out_w = [np.empty((len(t_tau), *W.shape)) for W in nl.net.weights] if nl.learning else None
    for p in range(nl.n_presentations):
        xs[0][0] = nl.bottom[p]
        if nl.top is not None:
            xs[L][0] = nl.top[p]
        last = p == nl.n_presentations - 1
        sel = np.flatnonzero((t_tau >= p * T) & ((t_tau < (p + 1) * T) | last))
        local = np.clip(t_tau[sel] - p * T, 0.0, T)
        traj = AdaptiveEngine().solve(rc, xs, nl.free, T, t_eval=local, tau_w=nl.tau_w)
        for l in range(L + 1):
            out_x[l][sel] = traj.xs[l][: len(sel), 0]
        for k in range(L if out_w is not None else 0):
            out_w[k][sel] = traj.weights[k][: len(sel)]
    return out_x, out_w


@pytest.mark.parametrize("tau_w", [None, 2.0])
def test_adaptive_reference_is_the_continuous_solution(tau_w):
    nl = netlist(P=2, T=3.0, tau_w=tau_w)
    t_s = np.linspace(0.0, nl.duration_s, 61)[1:]  # includes the switch at 3 tau_x
    ref = spice.reference(nl, t_s)
    xs, ws = continuous(nl, t_s)
    moved = max(float(np.ptp(ref.xs[l], axis=0).max()) for l in (1,))
    assert moved > 0.05  # a transient, not a resting state
    for l in range(nl.net.n_layers + 1):  # pieces restart DOP853 at rtol 1e-10
        np.testing.assert_allclose(ref.xs[l], xs[l], rtol=0, atol=1e-8)
    if tau_w is None:
        assert ref.weights is None
        np.testing.assert_array_equal(ref.final_weights[0], nl.net.weights[0])
        return
    for k in range(nl.net.n_layers):
        np.testing.assert_allclose(ref.weights[k], ws[k], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ref.final_weights[k], ws[k][-1], rtol=0, atol=1e-8)
        assert np.max(np.abs(ref.final_weights[k] - nl.net.weights[k])) > 1e-3  # it learned


def test_stepped_reference_is_the_engine_stepped_by_hand():
    nl = netlist(P=2, T=2.0, top=False)
    eng = ClockedEngine("heun", 0.05, backend="numpy")
    with pytest.raises(ValueError, match="step= its dt"):
        spice.reference(nl, engine=eng)  # sample intervals are not whole steps
    t_s = np.arange(1, 81) * 0.05 * nl.tau_x_s  # every step's end
    ref = spice.reference(nl, t_s, engine=eng, step=eng.dt)
    rc = spice.reference_circuit(nl)
    xs = [x.reshape(1, -1).copy() for x in nl.x_init]
    rows = []
    for p in range(2):
        xs[0][0] = nl.bottom[p]
        for _ in range(40):
            eng.step(rc, xs, nl.free)
            rows.append([x[0].copy() for x in xs])
    for l in range(1, nl.net.n_layers + 1):  # the free layers (sample times round off ~1e-16)
        np.testing.assert_allclose(ref.xs[l], np.array([r[l] for r in rows]), rtol=0, atol=1e-14)
    # the clamped input: a sample at the switch (2 tau_x) belongs to the next presentation
    np.testing.assert_array_equal(ref.xs[0][39], nl.bottom[1])
    # halfway between two steps: the mean of the two (linear interpolation)
    mid = spice.reference(nl, t_s[:2] - 0.025 * nl.tau_x_s, engine=eng, step=eng.dt)
    np.testing.assert_allclose(mid.xs[1][1], 0.5 * (rows[0][1] + rows[1][1]), rtol=1e-12)


def test_stepped_weight_flow_converges_to_the_adaptive_one_at_first_order():
    nl = netlist(P=2, T=2.0, tau_w=2.0)
    exact = spice.reference(nl).final_weights
    err = []
    for dt in (0.02, 0.01):
        eng = ClockedEngine("euler", dt, backend="numpy")
        got = spice.reference(nl, engine=eng, step=dt).final_weights
        err.append(max(float(np.max(np.abs(g - e))) for g, e in zip(got, exact, strict=True)))
    span = float(np.ptp(exact[0]))
    assert err[0] < 0.01 * span
    assert err[0] / err[1] == pytest.approx(2.0, rel=0.1)  # Euler: error proportional to dt


def test_the_comparison_calls_only_the_engine_protocol():
    """pcsim/spice/compare.py asks an engine for ``present`` and nothing else."""
    import ast
    from pathlib import Path

    src = Path(spice.compare.__file__).read_text(encoding="utf-8")
    calls = [
        node.func.attr
        for node in ast.walk(ast.parse(src))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("engine", "eng")
    ]
    assert calls and set(calls) == {"present"}, calls
