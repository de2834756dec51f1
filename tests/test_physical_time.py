"""Physical time: what the chip does must not depend on the simulator's step.

- read noise is an Ornstein-Uhlenbeck process per read line with the stated read time as its
  correlation time, so the stationary spread it gives an activity follows the closed form of
  the Euler step driven by the OU's exact step means and converges as dt -> 0;
- the weight flow ``tau_w dW/dt = -dF/dW`` integrated over one presentation converges as
  dt -> 0 on the clocked engine, and the events engine (its event rate) and Brian2 agree;
- exact writes are priced by how far the weights travel, not by how many steps were taken;
- a rule the analog array cannot run (Adam, momentum, biases) is charged to the digital
  co-processor, counted as :mod:`pcsim.learning_rule` states; the plain flow costs nothing there;
- a batch of B on a chip is B circuit replicas: every pulse is written B times.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_models import Chip, load_preset
from hardware_models.synapses import SynapseConfig
from hardware_models.units import ValueUnitConfig
from pcsim import config, learning_rule, network
from pcsim.algorithms import IPC, PC, initial_activities
from pcsim.circuit import EXACT_WRITE_BITS, Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.events import EventsEngine
from pcsim.optim import SGD, Adam


def _read_noise_chip(read_time_s: float) -> Chip:
    vu = ValueUnitConfig(capacitance_f=1e-12, conductance_s=1e-5)  # tau_x = 100 ns
    return Chip(
        name="read-noise-only",
        synapses=SynapseConfig(read_noise_std=0.2, read_time_s=read_time_s),
        value_units=vu,
    )


def _euler_ou_variance(dt: float, w: float, c: float) -> float:
    """Stationary variance of ``y_{k+1} = (1 - dt) y_k + dt c m_k``, ``m_k`` the exact step
    means of a unit OU of correlation time ``w``: ``Var m = 2 (x - 1 + e^{-x}) / x^2`` and
    ``Cov(m_0, m_n) = e^{-(n-1)x} (1 - e^{-x})^2 / x^2`` (``x = dt / w``, n >= 1)."""
    x, rho = dt / w, 1.0 - dt
    a = math.exp(-x)
    v0 = 2.0 * (x - 1.0 + a) / x**2
    c1 = (1.0 - a) ** 2 / x**2
    return dt**2 * c**2 / (1.0 - rho**2) * (v0 + 2.0 * c1 * rho / (1.0 - rho * a))


@pytest.mark.parametrize(("dt", "backend"), [(0.2, "numba"), (0.05, "numba"), (0.1, "numpy")])
def test_read_noise_spread_matches_the_euler_ou_closed_form(dt, backend):
    """One free top layer on a clamped input: ``x = mu + y``, ``dy/dt = -y + c u(t)`` with
    ``u`` the read line's unit OU (correlation time ``w`` = the read time) and
    ``c = sigma_s ||x_0||``, ``sigma_s = s sqrt(e/2)``. The Euler step driven by the OU's
    exact step means has the stationary variance :func:`_euler_ou_variance`, which tends to
    the continuous ``c^2 w / (1 + w)`` as dt -> 0 (a fixed std per step would vanish like dt)."""
    w = 0.5  # read time in tau_x units
    chip = _read_noise_chip(w * 100e-9)
    net = network.build((3, 2), "linear", dtype=np.float64, rng=0)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(1))
    assert circ.read_window_tau == pytest.approx(w)
    B = 4000
    x0 = np.tile(np.array([[0.6, -0.3, 0.9]]), (B, 1))
    xs = initial_activities(circ, x0, None)
    eng = ClockedEngine("euler", dt=dt, backend=backend)
    free = [False, True]
    eng.run(circ, xs, free, 12.0)  # forget the start (correlation time 1 tau_x)
    samples = []
    for _ in range(10):
        eng.run(circ, xs, free, 3.0)
        samples.append(xs[1].copy())
    var = np.var(np.concatenate(samples), axis=0)
    c = circ.read_sigma[0] * math.sqrt(math.e / 2.0) * math.sqrt(float(x0[0] @ x0[0]))
    np.testing.assert_allclose(var, _euler_ou_variance(dt, w, c), rtol=0.06)
    # the continuous limit, approached at first order in dt
    assert _euler_ou_variance(1e-4, w, c) == pytest.approx(c * c * w / (1 + w), rel=1e-3)


def _presentation(dt: float, engine: str = "clocked", tau_w: float = 20.0) -> list[np.ndarray]:
    """The weight change of one iPC presentation (T = 2 tau_x) under the flow ``tau_w``."""
    net = network.build((4, 6, 3), "tanh", dtype=np.float64, rng=3)
    W0 = [W.copy() for W in net.weights]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4))
    y = np.eye(3)[[1]]
    circ = Circuit(net)
    if engine == "events":
        from pcsim.algorithms import IPCEvents

        IPCEvents(T=2.0, tau_w=tau_w).train_batch(
            circ,
            EventsEngine(events_per_tau=dt, clock="periodic", error_tau=0.02),
            SGD(0.0),
            x,
            y,
        )
    else:
        IPC(T=2.0, fused=False).train_batch(circ, ClockedEngine(dt=dt), SGD(dt / tau_w), x, y)
    return [W - W_0 for W, W_0 in zip(net.weights, W0, strict=True)]


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum((u - v) ** 2)) for u, v in zip(a, b, strict=True)))


def test_weight_flow_of_a_presentation_converges_as_dt_shrinks():
    """Euler is first order: successive halvings of dt change the integrated weight change by
    about half as much each time, and the change itself stays the same size (a per-step lr
    would halve it with every halving)."""
    dws = [_presentation(dt) for dt in (0.2, 0.1, 0.05, 0.025)]
    gaps = [_distance(a, b) for a, b in zip(dws, dws[1:], strict=False)]
    for coarse, fine in zip(gaps, gaps[1:], strict=False):
        assert 0.35 < fine / coarse < 0.65
    size = _distance(dws[-1], [0 * d for d in dws[-1]])
    assert gaps[-1] < 0.05 * size
    # the limit, by Richardson extrapolation of the two finest steps
    limit = [2 * f - c for f, c in zip(dws[-1], dws[-2], strict=True)]
    assert _distance(dws[-1], limit) < 0.03 * size
    # the events engine converges in its event rate (periodic clocks, 20/40/80 per tau); with
    # error units much faster than the value units (error_tau = 0.02 tau_x; the clocked engine
    # takes them as instantaneous) it tends to the clocked limit
    ev = [_presentation(rate, "events") for rate in (20.0, 40.0, 80.0)]
    ev_gaps = [_distance(a, b) for a, b in zip(ev, ev[1:], strict=False)]
    assert 0.35 < ev_gaps[1] / ev_gaps[0] < 0.75
    to_limit = [_distance(e, limit) for e in ev]
    assert to_limit[2] < to_limit[1] < to_limit[0]
    assert to_limit[2] < 0.01 * size


def test_config_flow_gives_one_learning_speed_per_unit_time():
    """With ``tau_w`` the step per engine update is ``dt / tau_w`` (iPC) and ``T / tau_w`` for
    PC's one step per presentation; only a per-step lr ignores dt."""
    for dt in (0.5, 0.1):
        cfg = config.from_dict({"engine": {"dt": dt}, "learning": {"tau_w": 50.0}})
        assert cfg.weight_lr == pytest.approx(dt / 50.0)
        assert not cfg.per_step_lr
        pc = config.from_dict(
            {"engine": {"dt": dt}, "algorithm": {"name": "pc"}, "learning": {"tau_w": 50.0}}
        )
        assert pc.weight_lr == pytest.approx(2.0 / 50.0)
    assert config.from_dict({}).tau_w == config.DEFAULT_TAU_W
    assert config.from_dict({"learning": {"lr": 0.01}}).per_step_lr
    with pytest.raises(config.ConfigError, match="learning.tau_w"):
        config.from_dict({"learning": {"optimizer": "adam", "tau_w": 10.0}})


def test_exact_writes_are_priced_by_distance_travelled():
    """The ideal chip prices a weight change by ``sum |dW| / lsb`` (an 8-bit device over the
    programmed range): one presentation costs the same write energy at dt and dt/2 (to first
    order in dt), where counting one write per weight per step would double it."""
    energies = []
    for dt in (0.1, 0.05):
        net = network.build((4, 6, 3), "tanh", dtype=np.float64, rng=3)
        peak = [float(np.max(np.abs(W))) for W in net.weights]
        circ = Circuit(net, chip=load_preset("ideal"))
        W0 = [W.copy() for W in net.weights]
        rng = np.random.default_rng(4)
        x, y = rng.standard_normal((1, 4)), np.eye(3)[[1]]
        IPC(T=2.0).train_batch(circ, ClockedEngine(dt=dt), SGD(dt / 20.0), x, y)
        pulses = circ.ledger.counts()["synapse_write"]
        lsb = [p / (2 ** (EXACT_WRITE_BITS - 1) - 1) for p in peak]
        # a short presentation moves each weight one way: the path length is the net change
        net_change = sum(
            float(np.abs(W - W_0).sum()) / q for W, W_0, q in zip(net.weights, W0, lsb, strict=True)
        )
        assert pulses == pytest.approx(net_change, rel=0.02)
        energies.append(circ.ledger.by_component()["synapse_write"])
    assert energies[1] == pytest.approx(energies[0], rel=0.05)


def test_update_ops_closed_form():
    """Digital work per update of a 3-4-2 network at batch 5 (P = 20 weights, 6 biases)."""
    sizes, B = (3, 4, 2), 5
    assert learning_rule.update_ops(SGD(0.1), sizes, B, bias=False).is_zero
    adam = learning_rule.update_ops(Adam(0.1), sizes, B, bias=False)
    assert adam.words == 4 * 20
    assert adam.conversions == B * (4 + 2) + B * (3 + 4)
    assert adam.multiplies == 8 * 20 + B * 20 + 20
    assert adam.adds == 3 * 20 + B * 20
    mom = learning_rule.update_ops(SGD(0.1, momentum=0.9), sizes, B, bias=True)
    assert mom.words == 2 * 26
    assert mom.multiplies == 2 * 26 + B * 20 + 20 + 6
    bias_only = learning_rule.update_ops(SGD(0.1), sizes, B, bias=True)
    assert bias_only.conversions == B * 6 and bias_only.words == 12
    assert bias_only.adds == B * 6 + 6 and bias_only.multiplies == 6


def _chip_run(optimizer, batch: int = 4):
    net = network.build((5, 7, 3), "tanh", rng=2)
    circ = Circuit(net, chip=load_preset("rram"), rng=np.random.default_rng(1))
    rng = np.random.default_rng(3)
    x = rng.random((batch, 5)).astype(net.dtype)
    y = np.eye(3, dtype=net.dtype)[rng.integers(0, 3, batch)]
    IPC(T=1.0).train_batch(circ, ClockedEngine(dt=0.25), optimizer, x, y)
    return circ


def _coprocessor_joules(circ, ops) -> float:
    """The co-processor's energy for ``ops``, written out from the preset's digital costs."""
    d = circ.chip.costs.baseline
    return (
        ops.multiplies * d.mult_energy_j
        + ops.adds * d.add_energy_j
        + ops.words * d.memory_energy_per_access_j * d.word_bytes / d.access_bytes
        + ops.conversions * circ.chip.converters.adc_energy_j
    )


def test_adam_on_a_chip_pays_the_digital_coprocessor():
    steps, B = 4, 4  # T / dt updates
    circ = _chip_run(Adam(1e-3), B)
    ops = learning_rule.update_ops(Adam(1e-3), (5, 7, 3), B, bias=False)
    per_update = _coprocessor_joules(circ, ops)
    got = circ.ledger.by_component()["digital_coprocessor"]
    assert got == pytest.approx(steps * per_update, rel=1e-9)
    assert "digital_coprocessor" not in _chip_run(SGD(1e-3), B).ledger.by_component()
    rule = learning_rule.describe(Adam(1e-3), bias=False, batch=B, on_chip=True)
    assert rule["local"] is False and "co-processor" in rule["optimizer_state"]
    assert learning_rule.describe(SGD(1e-3), bias=False, batch=1, on_chip=True)["local"]


def test_a_batch_is_replicas_every_pulse_written_on_each():
    """The same requested change written with replicas = 1 and 3: three times the pulses."""
    counts = []
    for replicas in (1, 3):
        net = network.build((5, 7, 3), "tanh", rng=2)
        circ = Circuit(net, chip=load_preset("rram"), rng=np.random.default_rng(1))
        d = [0.05 * np.ones_like(W) for W in net.weights]
        circ.apply_weight_update(d, None, replicas)
        counts.append(circ.ledger.counts()["synapse_write"])
    assert counts[0] > 0 and counts[1] == 3 * counts[0]
    assert "replicas: 8 copies" in learning_rule.batch_execution(8)
    assert learning_rule.batch_execution(1).startswith("stream")


def test_pc_flow_step_does_not_depend_on_dt():
    """PC under the flow: one step of ``T / tau_w`` from the settled errors, so the weights
    after a presentation agree across dt to the settling's discretisation error."""
    finals = []
    for dt in (0.1, 0.05):
        cfg = config.from_dict(
            {"engine": {"dt": dt}, "algorithm": {"name": "pc"}, "learning": {"tau_w": 10.0}}
        )
        net = network.build((4, 6, 3), "tanh", dtype=np.float64, rng=3)
        circ = Circuit(net)
        rng = np.random.default_rng(4)
        x, y = rng.standard_normal((2, 4)), np.eye(3)[[1, 2]]
        PC(T=2.0).train_batch(circ, ClockedEngine(dt=dt), SGD(cfg.weight_lr), x, y)
        finals.append([W.copy() for W in net.weights])
    assert _distance(finals[0], finals[1]) < 1e-2 * math.sqrt(
        sum(float(np.sum(W * W)) for W in finals[0])
    )


def test_write_pulses_on_rram_converge_as_dt_shrinks():
    """Forty presentations of real digits on the rram chip (every non-ideality on): the pulses
    fired at dt = 0.1 and 0.05 agree within 5 % (mean of 3 seeds; the seeds themselves spread
    by about 3 %), as each device fires from its own accumulator; a pulse per step and device
    would double them."""
    from pcsim.data import load_digits

    digits = load_digits()
    x = digits.x_train[:40].astype(np.float32)
    y = digits.one_hot(digits.y_train[:40]).astype(np.float32)
    means = []
    for dt in (0.1, 0.05):
        counts = []
        for seed in range(3):
            net = network.build((64, 32, 10), "tanh", rng=3)
            circ = Circuit(net, chip=load_preset("rram"), rng=np.random.default_rng(seed))
            ipc, eng = IPC(T=2.0), ClockedEngine(dt=dt)
            for i in range(len(x)):
                ipc.train_batch(circ, eng, SGD(dt / 20.0), x[i : i + 1], y[i : i + 1])
            counts.append(circ.ledger.counts()["synapse_write"])
        means.append(np.mean(counts))
    assert means[1] == pytest.approx(means[0], rel=0.05)


@pytest.mark.parametrize("fused", [True, False])
def test_digital_biases_are_charged_on_every_path(fused):
    """Biases are digital registers: their updates cost the co-processor on the fused kernel
    path and on the step-by-step path alike, T / dt updates per presentation."""
    net = network.build((5, 7, 3), "tanh", bias=True, rng=2)
    circ = Circuit(net, chip=load_preset("ideal"), rng=np.random.default_rng(1))
    rng = np.random.default_rng(3)
    x = rng.random((4, 5)).astype(net.dtype)
    y = np.eye(3, dtype=net.dtype)[rng.integers(0, 3, 4)]
    IPC(T=1.0, fused=fused).train_batch(circ, ClockedEngine(dt=0.25), SGD(1e-2), x, y)
    ops = learning_rule.update_ops(SGD(1e-2), (5, 7, 3), 4, bias=True).times(4)
    want = _coprocessor_joules(circ, ops)
    assert circ.ledger.by_component()["digital_coprocessor"] == pytest.approx(want, rel=1e-12)
