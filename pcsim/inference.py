"""Inference on the modelled chip, timed and costed: how long the circuit takes to settle from
rest, and how many joules one inference costs.

Settling time is the classic definition: the first time after which the output stays within
``tol`` (activity units) of its final value. It is measured on a batch of samples, each its own
circuit, and reported for the slowest one. With the output free, PC inference has slow modes
(moving x_{L-1} and x_L together costs little energy; the slowest rate is about
1 / (1 + sigma_max(W_L)^2) per tau), so trained networks settle in tens to hundreds of tau.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hardware_models.costs import EnergyLedger
from pcsim.algorithms import initial_activities
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine


@dataclass
class InferenceCost:
    """Per-sample inference latency (tau_x and seconds) and energy (joules, by component)."""

    settle_tau: float
    latency_s: float
    energy_j: float
    breakdown_j: dict[str, float]
    settled: bool


INFERENCE_DT = 0.1  # tau_x: Euler is stable for free-output inference of trained nets here
MAX_SETTLE_TIME = 500.0  # tau_x: how long measure_inference waits for the output to settle


class StopRequested(Exception):
    """``should_stop()`` said True during a measurement (Ctrl-C or SIGTERM)."""


def settle_steps(gamma: float, max_time: float = MAX_SETTLE_TIME) -> float:
    """Engine steps :func:`measure_inference` may take: ``max_time`` tau_x at the step
    :func:`inference_engine` uses (``min(gamma, INFERENCE_DT)`` tau_x), twice (the settling
    run, then the priced transient)."""
    return 2 * max_time / min(gamma, INFERENCE_DT)


def inference_engine(engine: ClockedEngine) -> ClockedEngine:
    """The engine for test-time settling: the training engine's method and noise with a step
    of at most ``INFERENCE_DT``. Training clamps the output; freeing it exposes stiff modes
    (rate about 1 + sigma_max(W_L)^2) on which Euler at the usual training step (0.5) is
    unstable, while the circuit it models is not."""
    if engine.dt <= INFERENCE_DT:
        return engine
    return ClockedEngine(engine.method, INFERENCE_DT, engine.sigma, engine.backend)


def _rest_state(circ: Circuit, x: np.ndarray) -> list[np.ndarray]:
    xs = initial_activities(circ, x, None)
    for v in xs[1:]:
        v[...] = 0.0
    return xs


def measure_inference(
    circ: Circuit,
    x: np.ndarray,
    engine: ClockedEngine,
    tol: float | None = None,
    max_time: float = MAX_SETTLE_TIME,
    chunk: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> InferenceCost:
    """Settle the supervised network from rest (hidden and output at 0, input clamped) and
    price one inference per sample. ``tol`` defaults to half an ADC step when the chip has an
    ADC (noise below it is invisible at the output), else 1e-3. The circuit's clock and ledger
    are restored afterwards. ``should_stop()`` is polled after every ``chunk`` of simulated
    time (tau_x); True raises :class:`StopRequested`."""
    net = circ.net
    if net.mode != "supervised":
        raise ValueError("inference latency is measured for supervised networks")
    saved = circ.t, circ.ledger
    free = [l > 0 for l in range(net.n_layers + 1)]
    engine = inference_engine(engine)
    if tol is None:
        conv = circ.chip.converters if circ.chip is not None else None
        if conv is not None and conv.adc_bits is not None:
            tol = 0.5 * (conv.adc_high - conv.adc_low) / (2**conv.adc_bits - 1)
        else:
            tol = 1e-3
    chunk = max(chunk, engine.dt)
    try:
        circ.ledger = EnergyLedger()
        xs = _rest_state(circ, x)
        outputs = [xs[-1].copy()]
        n_chunks = int(np.ceil(max_time / chunk))
        for _ in range(n_chunks):
            engine.run(circ, xs, free, chunk)
            outputs.append(xs[-1].copy())
            if should_stop is not None and should_stop():
                raise StopRequested()
        traj = np.stack(outputs)  # (n_chunks + 1, B, n_out)
        dev = np.abs(traj - traj[-1]).max(axis=(1, 2))
        outside = np.nonzero(dev > tol)[0]
        k = 0 if outside.size == 0 else int(outside[-1]) + 1
        settled = k < len(dev) - 1
        settle_tau = k * chunk
        # price exactly the settling transient, from rest again, on a fresh ledger
        circ.ledger = EnergyLedger()
        xs = _rest_state(circ, x)
        if settle_tau > 0:
            engine.run(circ, xs, free, settle_tau)
        circ.adc(xs[-1])
        B = x.shape[0]
        breakdown = {k: v / B for k, v in circ.ledger.by_component().items()}
    finally:
        circ.t, circ.ledger = saved
    adc_latency = circ.chip.converters.adc_latency_s if circ.chip is not None else 0.0
    return InferenceCost(
        settle_tau=settle_tau,
        latency_s=circ.seconds(settle_tau) + adc_latency,
        energy_j=float(sum(breakdown.values())),
        breakdown_j=breakdown,
        settled=settled,
    )
