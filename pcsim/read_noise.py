"""Crossbar read noise with a bandwidth: one Ornstein-Uhlenbeck process per read line.

A read line is one output of a forward product ``W_l phi(x_{l-1})`` (an error unit's
prediction) or one input of a backward product ``W_l^T e_l`` (a value unit's top-down sum),
per sample. Its noise is ``sigma_s ||v|| u(t)`` in weight units (``v`` the read's input
vector, docs/math.md section 5), where ``u`` is a unit Ornstein-Uhlenbeck process::

    du = -u / tau_r dt + sqrt(2 / tau_r) dW,     stationary std 1, correlation e^{-|t|/tau_r}

with ``tau_r = Circuit.read_window_tau`` (the preset's ``read_time_s`` in ``tau_x`` units).
``read_noise_std`` keeps its cited meaning, the std of one read lasting ``read_time_s``: the
mean of a stationary OU of std ``s`` over a window ``T`` has variance
``2 s^2 (tau/T) (1 - (tau/T)(1 - e^{-T/tau}))`` (:func:`window_variance`), ``2 s^2 / e`` at
``T = tau``, so ``sigma_s = read_noise_std * sqrt(e / 2)`` (:func:`stationary_std`).

An engine step of length ``h`` sees the step mean ``m = (1/h) int_t^{t+h} u``. The pair
``(u(t+h), m)`` given ``u(t)`` is jointly Gaussian, and :func:`ou_coefficients` gives the
exact update (no discretisation error at any ``h``)::

    u' = a u + sx z1,     m = cm u + bm z1 + sm z2,     z1, z2 ~ N(0, 1)

with ``x = h / tau_r``, ``a = e^{-x}``, ``sx^2 = 1 - a^2``, ``cm = (1 - a) / x``,
and, given ``u``, ``Cov(u', m) = (1 - a)^2 / x``, ``Var(m) = 2 (x - 2(1 - a) + (1 - a^2)/2) / x^2``
(unconditionally ``Var(m) = 2 (x - 1 + a) / x^2``, :func:`window_variance`). For
``h >> tau_r`` the step mean is white noise of variance ``2 tau_r / h`` (``e`` times the
variance per ``h`` of a white noise whose one-read mean has std ``read_noise_std``: the OU's
spectrum is flat up to ``1 / (2 pi tau_r)`` and the calibration is on a window of one
``tau_r``); for ``h << tau_r`` it is the smooth current ``u(t)`` itself.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pcsim.vecmath import standard_normal

# Var of the mean over one window T = tau of a unit stationary OU: 2 (1 - (1 - e^-1)) = 2/e
WINDOW_FACTOR = 2.0 / math.e


def window_variance(window: float, tau: float) -> float:
    """Variance of the mean over ``window`` of a stationary unit-variance OU process of
    correlation time ``tau`` (same time units): ``2 (tau/T)(1 - (tau/T)(1 - e^{-T/tau}))``."""
    if window <= 0:
        return 1.0
    r = window / tau
    if r < 1e-4:  # 1 - r/3 + r^2/12: the series avoids the cancellation
        return 1.0 - r / 3.0 + r * r / 12.0
    return 2.0 / r * (1.0 - (-math.expm1(-r)) / r)


def stationary_std(read_sigma: np.ndarray) -> np.ndarray:
    """Stationary std of the read-line OU process whose mean over one read window (the
    correlation time ``tau_r`` itself) has std ``read_sigma``: ``read_sigma * sqrt(e / 2)``."""
    return np.asarray(read_sigma, dtype=np.float64) / math.sqrt(WINDOW_FACTOR)


@njit(cache=True, error_model="numpy")
def ou_coefficients(x: float) -> tuple[float, float, float, float, float]:
    """Exact step of a unit OU process over ``x = h / tau_r`` (module docstring):
    ``(a, sx, cm, bm, sm)`` with ``u' = a u + sx z1`` and ``m = cm u + bm z1 + sm z2``."""
    if x <= 0.0:
        return 1.0, 0.0, 1.0, 0.0, 0.0
    a = math.exp(-x)
    om = -math.expm1(-x)  # 1 - a
    sx = math.sqrt(-math.expm1(-2.0 * x))
    cm = om / x
    bm = om * om / x / sx
    if x < 1e-2:  # f = x - 2(1-a) + (1-a^2)/2 by its series (the closed form cancels)
        f = x * x * x * (1.0 / 3.0 - x / 4.0 + 7.0 * x * x / 60.0 - x * x * x / 24.0)
    else:
        f = x - 2.0 * om + 0.5 * om * (1.0 + a)
    var_m = 2.0 * f / (x * x)
    rest = var_m - bm * bm
    sm = math.sqrt(rest) if rest > 0.0 else 0.0
    return a, sx, cm, bm, sm


@njit(cache=True, error_model="numpy")
def advance_with(u, mean_out, z, a, sx, cm, bm, sm) -> None:
    """The exact step with given normals: ``u``, ``mean_out`` flat (n,), ``z`` flat (2n,):
    ``z1 = z[:n]``, ``z2 = z[n:]``; coefficients from :func:`ou_coefficients`."""
    n = u.shape[0]
    for k in range(n):
        z1 = z[k]
        mean_out[k] = cm * u[k] + bm * z1 + sm * z[n + k]
        u[k] = a * u[k] + sx * z1


_COEFFS: dict[float, tuple[float, float, float, float, float]] = {}


def coefficients(x: float) -> tuple[float, float, float, float, float]:
    """:func:`ou_coefficients`, cached per ``x`` (an engine uses one or two values)."""
    c = _COEFFS.get(x)
    if c is None:
        if len(_COEFFS) > 64:
            _COEFFS.clear()
        c = _COEFFS[x] = tuple(float(v) for v in ou_coefficients(float(x)))  # type: ignore[assignment]
    return c  # type: ignore[return-value]


def advance(
    u: np.ndarray,
    x: float,
    rng: np.random.Generator,
    mean_out: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Advance the unit OU states ``u`` (C-contiguous, in place) by ``x = h / tau_r`` and write
    each line's mean over the step into ``mean_out`` (same shape, C-contiguous). ``scratch``:
    a float64 buffer of ``2 u.size`` entries (allocated here if smaller). Draws ``2 u.size``
    normals from ``rng`` (:func:`pcsim.vecmath.standard_normal`): ``z1`` for every line, then
    ``z2``."""
    n = u.size
    if scratch.size < 2 * n or scratch.dtype != np.float64:
        scratch = np.empty(2 * n)
    z = standard_normal(rng, scratch.reshape(-1)[: 2 * n])
    advance_with(u.reshape(-1), mean_out.reshape(-1), z, *coefficients(x))


def relax(u: np.ndarray, x: float, rng: np.random.Generator, scratch: np.ndarray) -> None:
    """Advance ``u`` (in place) over a gap of ``x = h / tau_r`` nobody read: the exact
    transition ``u' = e^{-x} u + sqrt(1 - e^{-2x}) z``. ``scratch``: float64, ``u.size``
    entries or more."""
    if x <= 0.0:
        return
    if scratch.size < u.size or scratch.dtype != np.float64:
        scratch = np.empty(u.size)
    z = standard_normal(rng, scratch.reshape(-1)[: u.size]).reshape(u.shape)
    u *= math.exp(-x)
    u += math.sqrt(-math.expm1(-2.0 * x)) * z


# Read noise "drives the writes" when one read's noise std is at least this many write pulses.
# benchmarks/RESULTS.md (issue 17): rram's own 0.01 per read is 5 pulses of 0.002 and its
# default run's pulses converge in dt (noise fires few of them); 0.4 is 200 pulses and noise
# fires 325x the default run's pulses.
NOISE_DRIVEN_PULSES = 10.0


# Engine steps per read time from which the pulses read noise fires are converged in dt:
# benchmarks/RESULTS.md ("Read noise with a bandwidth", "Why the pulses converge slowly"), the
# default run on rram with read_noise_std = 0.4 (1 epoch): pulses per sample move by 11.8 %,
# 7.5 % and 5.4 % from 1 to 2, 2 to 4 and 4 to 8 steps per read time, and by +0.3 % from 8 to
# 16 (means of 3 seeds; pulses and energy alike).
STEPS_PER_READ = 8


def steps_to_resolve(dt: float, tau_r: float, pulses_per_read: float) -> int:
    """How many steps a step of ``dt`` must be cut into to resolve the read time ``tau_r``
    (both tau_x units) when one read's noise is ``pulses_per_read`` write pulses:
    ``ceil(dt STEPS_PER_READ / tau_r)`` when that is more than 1 and the noise is at least
    :data:`NOISE_DRIVEN_PULSES` pulses, else 1 (:func:`unresolved_warning`'s condition).

    Why the whole step and not the writes alone: the read noise is coloured (correlation time
    ``tau_r``) and multiplicative (its amplitude is ``||phi(x)||`` or ``||e||`` times the
    device's, and it enters the activities through ``phi'(x)``), so its dt -> 0 limit carries
    the drift a noise-driven activity gains within one correlation time (the Wong-Zakai
    limit), which a step longer than ``tau_r`` misses. Writes sampled at sub-steps of a coarse
    step recovered half of the pulses' error and no more (benchmarks/RESULTS.md, "Resolving
    the read time")."""
    if pulses_per_read < NOISE_DRIVEN_PULSES or dt * STEPS_PER_READ <= tau_r * (1 + 1e-9):
        return 1
    return math.ceil(dt * STEPS_PER_READ / tau_r - 1e-9)


def unresolved_warning(
    dt: float, tau_r: float, pulses_per_read: float, asymmetry: float = 0.0
) -> str | None:
    """One line warning that a clocked step ``dt`` longer than ``1 / STEPS_PER_READ`` of the
    read noise's correlation time ``tau_r`` (both tau_x units) leaves the write
    pulses that read noise fires unconverged (benchmarks/RESULTS.md, "Read noise with a
    bandwidth" and "Why the pulses converge slowly"); ``pulses_per_read``: one read's noise std
    in write pulses (``read_noise_std / dw_min``, 0 without noise or pulses); ``asymmetry``:
    the devices' largest ``|up_down_asymmetry|``, named as the amplifier when not 0. None when
    it does not apply (a finer step, or noise below :data:`NOISE_DRIVEN_PULSES`)."""
    if steps_to_resolve(dt, tau_r, pulses_per_read) == 1:
        return None
    why = ""
    if asymmetry:
        why = (
            f"; the noise fires up and down pulses in pairs, which on these asymmetric "
            f"devices (chip.synapses.up_down_asymmetry = {asymmetry:.3g}) drift the weights, "
            f"and the learning flow's pulses against that drift multiply the pairs a coarse "
            f"step nets away"
        )
    return (
        f"engine.dt is {dt:.3g} tau_x while one read's noise is {pulses_per_read:.3g} write "
        f"pulses: the pulses read noise fires converge in dt only from {STEPS_PER_READ} steps "
        f"per read time (chip.synapses.read_time_s = {tau_r:.3g} tau_x){why}, so pulse counts "
        f"and write energy are low by up to tens of percent; use engine.dt <= "
        f"{tau_r / STEPS_PER_READ:.3g} for numbers you can trust"
    )
