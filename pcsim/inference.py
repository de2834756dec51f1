"""Inference on the modelled chip, timed and costed, by two protocols:

- **feedforward** (deployed, :func:`measure_feedforward`): what a deployed chip does. Top-down
  feedback is off; each layer's value unit is driven only by its own error unit,
  ``tau_l dx_l/dt = -eps_l - leak_l x_l`` with ``eps_l = g (x_l - mu_l(x_{l-1})) + o``, a
  cascade of first-order stages from the clamped input up that settles in about ``L`` tau_x
  at the chip's feedforward pass ``x_l = (g mu_l - o) / (g + leak)`` (exactly ``mu_l`` on
  ideal units). Only the forward crossbars conduct.
- **free** relaxation from rest (:func:`measure_inference`): hidden and output units start at
  0 and the full PC circuit (top-down feedback on, output free) relaxes to its equilibrium.
  With the output free, PC inference has slow modes (moving x_{L-1} and x_L together costs
  little energy; the slowest rate is about 1 / (1 + sigma_max(W_L)^2) per tau), so trained
  networks settle in tens to hundreds of tau.

Settling criterion (both protocols): the first time after which every output stays within
``tol`` (activity units; half an ADC step when the chip has an ADC, else 1e-3) of its final
value, measured on a batch of samples (each its own circuit) and reported for the slowest one.
The final value is the feedforward pass (feedforward protocol) or the last state of the
``max_time`` window (free relaxation). An inference that is still outside ``tol`` at the end of
its ``max_time`` window is **not settled**: its latency, settle time and energy are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hardware_models.costs import EnergyLedger
from pcsim import field
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.protocol import Batch
from pcsim.vecmath import standard_normal

NAN = float("nan")


@dataclass
class InferenceCost:
    """Per-sample inference latency (tau_x and seconds) and energy (joules, by component).
    Not settled within ``max_tau``: ``settle_tau``, ``latency_s`` and ``energy_j`` are NaN."""

    settle_tau: float
    latency_s: float
    energy_j: float
    breakdown_j: dict[str, float]
    settled: bool
    protocol: str = "free"
    tol: float = NAN  # activity units
    max_tau: float = NAN  # the cap, tau_x
    adc_retries: int = 0  # bound-management repeats of the output read (converters)

    @property
    def criterion(self) -> str:
        """The settling criterion, in words (for the run summary)."""
        return (
            f"every output within {self.tol:.3g} (activity units) of its final value from then "
            f"on, within {self.max_tau:g} tau_x"
        )


def default_tol(circ: Circuit) -> float:
    """Half an ADC step when the chip has an ADC (noise below it is invisible at the output),
    else 1e-3 (activity units)."""
    conv = circ.chip.converters if circ.chip is not None else None
    if conv is not None and conv.adc_bits is not None:
        return 0.5 * (conv.adc_high - conv.adc_low) / (2**conv.adc_bits - 1)
    return 1e-3


def settle_index(traj: np.ndarray, final: np.ndarray, tol: float) -> int | None:
    """Index of the first sample of ``traj`` (time, ...) after which every entry stays within
    ``tol`` of ``final``; None if the last sample is still outside."""
    dev = np.abs(traj - final).reshape(len(traj), -1).max(axis=1)
    if not dev[-1] <= tol:
        return None
    outside = np.nonzero(~(dev <= tol))[0]
    return 0 if outside.size == 0 else int(outside[-1]) + 1


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
    xs = circ.initial_activities(x, None)
    for v in xs[1:]:
        v[...] = 0.0
    return xs


def _settled_cost(
    circ: Circuit,
    settle_tau: float,
    breakdown: dict[str, float],
    protocol: str,
    tol: float,
    max_tau: float,
) -> InferenceCost:
    """A settled inference: its latency and its energy per sample, the sum of ``breakdown``.

    Latency: ``settle_tau`` crossbar reads, each ``tau_x`` or the tiles' conversion time if
    longer (forward reads only for the feedforward protocol, both directions for free
    relaxation: :meth:`Circuit.read_period_s`), then the output read at the edge ADCs with
    shared columns and the bound-management repeats of that read
    (:meth:`Circuit.output_conversion_s`)."""
    if circ.chip is None:
        latency = 0.0
    else:
        period = circ.read_period_s(backward=protocol == "free")
        latency = settle_tau * period + circ.output_conversion_s(circ.adc_retries)
    return InferenceCost(
        settle_tau=settle_tau,
        latency_s=latency,
        energy_j=float(sum(breakdown.values())),
        breakdown_j=breakdown,
        settled=True,
        protocol=protocol,
        tol=tol,
        max_tau=max_tau,
        adc_retries=circ.adc_retries if circ.chip is not None else 0,
    )


def measure_inference(
    circ: Circuit,
    x: np.ndarray,
    engine: ClockedEngine,
    tol: float | None = None,
    max_time: float = MAX_SETTLE_TIME,
    chunk: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> InferenceCost:
    """Free relaxation: settle the supervised network from rest (hidden and output at 0, input
    clamped) and price one inference per sample. ``tol``: :func:`default_tol`. The circuit's
    clock and ledger are restored afterwards. ``should_stop()`` is polled after every
    ``chunk`` of simulated time (tau_x); True raises :class:`StopRequested`."""
    net = circ.net
    if net.mode != "supervised":
        raise ValueError("inference latency is measured for supervised networks")
    saved = circ.t, circ.ledger
    free = [l > 0 for l in range(net.n_layers + 1)]
    engine = inference_engine(engine)
    tol = default_tol(circ) if tol is None else tol
    chunk = max(chunk, engine.dt)
    try:
        circ.ledger = EnergyLedger()
        xs = _rest_state(circ, x)
        outputs = [xs[-1].copy()]
        n_chunks = int(np.ceil(max_time / chunk))
        for _ in range(n_chunks):
            engine.present(circ, Batch(free, xs=xs), chunk)
            outputs.append(xs[-1].copy())
            if should_stop is not None and should_stop():
                raise StopRequested()
        traj = np.stack(outputs)  # (n_chunks + 1, B, n_out)
        dev = np.abs(traj - traj[-1]).max(axis=(1, 2))
        outside = np.nonzero(~(dev <= tol))[0]
        k = 0 if outside.size == 0 else int(outside[-1]) + 1
        settled = k < len(dev) - 1
        if not settled:
            return InferenceCost(NAN, NAN, NAN, {}, False, "free", tol, n_chunks * chunk)
        settle_tau = k * chunk
        # price exactly the settling transient, from rest again, on a fresh ledger
        circ.ledger = EnergyLedger()
        xs = _rest_state(circ, x)
        if settle_tau > 0:
            engine.present(circ, Batch(free, xs=xs), settle_tau)
        circ.adc(xs[-1])
        B = x.shape[0]
        breakdown = {k: v / B for k, v in circ.ledger.by_component().items()}
    finally:
        circ.t, circ.ledger = saved
    return _settled_cost(circ, settle_tau, breakdown, "free", tol, n_chunks * chunk)


def settle_feedforward(
    circ: Circuit,
    x0: np.ndarray,
    weights: tuple[np.ndarray, ...],
    dt: float,
    n_steps: int,
    sigma: float = 0.0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Euler steps (``dt`` in tau_x) of the chip's bottom-up cascade from rest with input
    ``x0`` (B, n_0) clamped: ``x_l += (dt / tau_l) (-eps_l - leak_l x_l)`` (+ thermal and
    ``sigma`` noise from ``circ.rng``), clipped to the rails. Its fixed point is the chip's
    feedforward pass exactly. Returns the final activities, the output at every step
    (n_steps + 1, B, n_L) and the cumulative unit swing ``sum |dx|`` at every step."""
    net = circ.net
    B = x0.shape[0]
    xs = [x0] + [np.zeros((B, n), net.dtype) for n in net.sizes[1:]]
    gam = circ.gammas(dt)
    amp = [
        np.sqrt(sigma**2 + s**2) * np.sqrt(g) for s, g in zip(circ.thermal_sigma, gam, strict=True)
    ]
    noisy = any(bool(a.any()) for a in amp)
    units = circ.units
    lo, hi = circ.rails
    outputs = np.empty((n_steps + 1, B, net.sizes[-1]), net.dtype)
    outputs[0] = xs[-1]
    swing = np.zeros(n_steps + 1)
    z = [np.empty_like(v) for v in xs]
    for step in range(1, n_steps + 1):
        eps = field.errors(net, xs, weights, units, circ.partial_sums)
        total = 0.0
        for l in range(1, net.n_layers + 1):
            dx = gam[l] * (-eps[l - 1] - units.leak[l] * xs[l])
            if noisy:
                standard_normal(circ.rng, z[l])
                dx = dx + amp[l] * z[l]
            new = np.clip(xs[l] + dx, lo, hi).astype(net.dtype, copy=False)
            total += float(np.abs(new - xs[l]).sum())
            xs[l] = new
        outputs[step] = xs[-1]
        swing[step] = swing[step - 1] + total
    return xs, outputs, swing


def measure_feedforward(
    circ: Circuit,
    x: np.ndarray,
    engine: ClockedEngine,
    tol: float | None = None,
    max_time: float = 500.0,
) -> InferenceCost:
    """Deployed inference: the chip's own bottom-up settle from rest (module docstring), timed
    against the chip's feedforward pass and priced per sample: the input DAC, static power of
    every unit and the forward crossbars' reads (``net.n_macs`` MACs per tau_x) for the settle
    time, the units' swing, one output ADC conversion. Thermal noise as in ``engine``; read
    noise and drift are left out. ``tol``: :func:`default_tol`. The circuit's clock, ledger and
    random stream are restored afterwards."""
    net = circ.net
    if net.mode != "supervised":
        raise ValueError("inference latency is measured for supervised networks")
    engine = inference_engine(engine)
    dt = engine.dt
    tol = default_tol(circ) if tol is None else tol
    saved = circ.t, circ.ledger, circ.rng.bit_generator.state
    B = x.shape[0]
    try:
        circ.ledger = EnergyLedger()
        x0 = np.asarray(circ.dac(x.astype(net.dtype, copy=False)), dtype=net.dtype)
        Ws = circ.read_weights()
        target = field.feedforward(net, x0, Ws, circ.units, circ.partial_sums)[-1]
        n_steps = int(math.ceil(max_time / dt))
        xs, outputs, swing = settle_feedforward(circ, x0, Ws, dt, n_steps, engine.sigma)
        k = settle_index(outputs, target, tol)
        if k is None:
            return InferenceCost(NAN, NAN, NAN, {}, False, "feedforward", tol, n_steps * dt)
        settle_tau = k * dt
        if circ.chip is not None:
            c = circ.chip.costs
            seconds = settle_tau * circ.read_period_s(backward=False) * B
            circ.ledger.charge("static", c.static_energy_j(circ.n_units, seconds))
            macs = float(net.n_macs * circ.device_pairs * circ.weight_slices) * settle_tau * B
            circ.ledger.charge("crossbar_read", c.read_energy_j(macs), macs)
        circ.charge_transitions(swing[k])
        circ.adc(xs[-1])
        breakdown = {key: v / B for key, v in circ.ledger.by_component().items()}
    finally:
        circ.t, circ.ledger = saved[0], saved[1]
        circ.rng.bit_generator.state = saved[2]
    return _settled_cost(circ, settle_tau, breakdown, "feedforward", tol, n_steps * dt)
