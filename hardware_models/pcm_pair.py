"""One-sided PCM pairs: SET-only, exponential-step devices with refresh.

A phase-change device is potentiated gradually by SET pulses but depressed only by an abrupt
RESET, so a signed weight is held by a pair ``w = g_plus - g_minus`` of which only SET pulses are
used for learning (aihwkit's ``OneSidedUnitCell`` with ``PCMPresetDevice``, fitted by
Nandakumar et al., Front. Neurosci. 2020, docs/sources.md): a requested increase fires SET
pulses on ``g_plus``, a requested decrease on ``g_minus``. Conductances are in weight units: a
device of gain ``gamma`` spans ``[0, b]``, ``b = gamma * w_max``, and ``h = g / b``.

SET step (aihwkit ``ExpStepDevice`` with ``A_up < 0``, ``a = -1``; docs/sources.md)::

    dg = r * b * (1 + A * exp(-k * h))                     # shrinks as the device fills
    g <- clip(g + dg + s * z, 0, b),   z ~ N(0, 1) per pulse
    s = sigma * (dg + add * b + slope * g)  (aihwkit "complex" noise; ``add = slope = 0``:
                                             s = sigma * dg, as the bidirectional devices)

Refresh (aihwkit ``OneSidedRPUDevice::refreshWeights``): when the larger device of a pair is
above ``upper`` of its range and the smaller above ``lower``, the pair is read, both devices
are RESET to ``reset * b`` and the difference is written back onto the side that was larger.
pcsim choices (aihwkit checks once per mini-batch and rewrites with one open-loop stochastic
pulse train): the pair is checked right after each write it receives (the read-after-write of
that pair, so nothing depends on the simulator's step), and the rewrite is closed-loop, SET
pulses until one more nominal step would not bring the device closer to its target (at most
``REFRESH_MAX_PULSES``). A refresh counts its 2 RESET pulses and its SET pulses.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["set_step", "pair_update", "REFRESH_MAX_PULSES"]

# Most SET pulses of one closed-loop rewrite after a refresh (pcsim choice: with the
# PCMPresetDevice step of 0.141 w_max at g = 0, a full-range rewrite takes about 10)
REFRESH_MAX_PULSES = 64


def set_step(h: np.ndarray | float, r: float, a: float, k: float) -> np.ndarray | float:
    """Nominal SET step ``r (1 + a exp(-k h))`` in units of the device range ``b``, at
    ``h = g / b``."""
    return r * (1.0 + a * np.exp(-k * np.asarray(h, dtype=np.float64)))


@numba.njit(cache=True, nogil=True)
def _set_pulse(g, b, r, a, k, sigma, add, slope, complex_noise, rng):
    """One SET pulse on a device at ``g`` in ``[0, b]``; returns the new conductance."""
    dg = r * b * (1.0 + a * math.exp(-k * g / b))
    if sigma > 0.0:
        if complex_noise:
            dg += sigma * (dg + add * b + slope * g) * rng.standard_normal()
        else:
            dg += sigma * dg * rng.standard_normal()
    g = g + dg
    if g > b:
        g = b
    elif g < 0.0:
        g = 0.0
    return g


@numba.njit(cache=True, nogil=True)
def _refresh(gp, gm, b, r, a, k, sigma, add, slope, complex_noise, reset, upper, lower, rng):
    """Refresh one pair if it is due; returns ``(gp, gm, pulses)`` (pulses 0: not due)."""
    hi = gp if gp > gm else gm
    lo = gm if gp > gm else gp
    if not (hi > upper * b and lo > lower * b):
        return gp, gm, 0
    diff = gp - gm
    g0 = reset * b
    target = g0 + abs(diff)
    g = g0
    pulses = 2  # the two RESETs
    for _ in range(REFRESH_MAX_PULSES):
        step = r * b * (1.0 + a * math.exp(-k * g / b))
        if g + 0.5 * step >= target:
            break
        g = _set_pulse(g, b, r, a, k, sigma, add, slope, complex_noise, rng)
        pulses += 1
    if diff >= 0.0:
        return g, g0, pulses
    return g0, g, pulses


@numba.njit(cache=True, nogil=True)
def pair_update(
    w,
    gp,
    gm,
    dw,
    acc,
    gain,
    has_gain,
    w_max,
    dw_abs,
    r,
    a,
    k,
    sigma,
    add,
    slope,
    reset,
    upper,
    lower,
    rng,
    clocks,
    t_write,
    t_now,
    nu,
    nu0,
    per_device_nu,
    t0,
    counts,
):
    """Accumulate-and-fire onto one-sided pairs; returns the pulses fired (refreshes included).

    ``w``, ``gp``, ``gm``, ``dw``, ``acc`` are flat per-weight arrays (``w = gp - gm`` is kept
    in the crossbar's dtype, ``gp``/``gm`` in float64). Each weight adds ``dw / dw_abs`` to its
    counter and fires the whole pulses it holds (as
    :func:`hardware_models._kernels.pulsed_update`): ``n > 0`` SET pulses on ``g_plus``,
    ``n < 0`` on ``g_minus``, then the refresh check (module docstring). ``counts[0]`` and
    ``counts[1]`` are incremented by the refreshes and their pulses. Drift clocks
    (``clocks``): a written pair first takes its drifted conductances and restarts its clock.
    """
    total = 0
    inv = 1.0 / dw_abs
    complex_noise = add != 0.0 or slope != 0.0
    for i in range(w.size):
        d = dw[i]
        if d == 0.0:
            continue
        s = acc[i] + d * inv
        n = int(s)
        acc[i] = s - n
        if n == 0:
            continue
        b = (gain[i] if has_gain else 1.0) * w_max
        if b <= 0.0:
            continue
        p, m = gp[i], gm[i]
        if clocks:
            v = nu[i] if per_device_nu else nu0
            age = t_now - t_write[i]
            if age > t0:
                f = math.exp(-v * math.log(age / t0))
                p *= f
                m *= f
            t_write[i] = t_now
        up = n > 0
        if not up:
            n = -n
        for _ in range(n):
            if up:
                p = _set_pulse(p, b, r, a, k, sigma, add, slope, complex_noise, rng)
            else:
                m = _set_pulse(m, b, r, a, k, sigma, add, slope, complex_noise, rng)
        total += n
        p, m, extra = _refresh(
            p, m, b, r, a, k, sigma, add, slope, complex_noise, reset, upper, lower, rng
        )
        if extra:
            counts[0] += 1
            counts[1] += extra
            total += extra
        gp[i] = p
        gm[i] = m
        w[i] = p - m
    return total
