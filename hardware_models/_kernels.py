"""numba kernels for the crossbar hot paths: one fused pass over the matrix per call.

Random numbers come from the caller's ``numpy.random.Generator`` (numba draws from the same bit
generator and advances its state, so results match a numpy implementation drawing in the same
order). Arrays are flat, C-contiguous views; arithmetic is done in float64 and stored in the
array's dtype.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "read_affine_noise",
    "read_drift",
    "read_drift_noise",
    "read_drift_clocks",
    "pulsed_update",
]


@numba.njit(cache=True, nogil=True)
def read_affine_noise(w, factor, sigma, rng, out):
    """``out = factor * w + sigma * N(0, 1)`` elementwise (read noise, uniform drift)."""
    for i in range(w.size):
        out[i] = factor * w[i] + sigma * rng.standard_normal()


@numba.njit(cache=True, nogil=True)
def read_drift(w, nu, log_ratio, out):
    """``out = w * (t/t0)^-nu`` with a per-device exponent, ``log_ratio = ln(t/t0)``."""
    for i in range(w.size):
        out[i] = w[i] * math.exp(-nu[i] * log_ratio)


@numba.njit(cache=True, nogil=True)
def read_drift_noise(w, nu, log_ratio, sigma, rng, out):
    """``out = w * (t/t0)^-nu + sigma * N(0, 1)`` with a per-device exponent."""
    for i in range(w.size):
        out[i] = w[i] * math.exp(-nu[i] * log_ratio) + sigma * rng.standard_normal()


@numba.njit(cache=True, nogil=True)
def drift_factor_at(nu, age, t0):
    """``(age / t0)^-nu`` after ``t0``, 1 before (aihwkit / Nandakumar 2019 power law)."""
    if age <= t0:
        return 1.0
    return math.exp(-nu * math.log(age / t0))


@numba.njit(cache=True, nogil=True)
def read_drift_clocks(w, nu, nu0, per_device_nu, t_write, t_now, t0, out):
    """``out = w * ((t_now - t_write) / t0)^-nu`` with a drift clock per device (reset by
    writes); ``nu`` per device when ``per_device_nu`` else the scalar ``nu0``."""
    for i in range(w.size):
        v = nu[i] if per_device_nu else nu0
        out[i] = w[i] * drift_factor_at(v, t_now - t_write[i], t0)


# Above this many pulses in one call the per-pulse loop is replaced by its closed form (the
# same mean; the noise of the sum drawn once). pcsim choice: with accumulate-and-fire a call
# fires 0 or 1 pulses per device at small dt, so the loop is the common path.
PULSE_LOOP_MAX = 64


@numba.njit(cache=True, nogil=True)
def pulsed_update(
    w,
    dw,
    acc,
    gain,
    has_gain,
    w_max,
    dw_abs,
    r_up,
    r_down,
    sigma,
    soft,
    snap,
    lsb,
    rng,
    clocks,
    t_write,
    t_now,
    nu,
    nu0,
    per_device_nu,
    t0,
):
    """Accumulate the requested change ``dw`` and fire whole pulses; returns the write count.

    Accumulate-and-fire (one counter per device, in units of the nominal pulse ``dw_abs``):
    ``acc += dw / dw_abs``; the device fires ``n = trunc(acc)`` pulses in the sign of ``acc``
    and keeps the residual ``acc - n`` (in ``(-1, 1)``) for the next call. The same total request
    split into any number of calls therefore fires the same pulses (within one per device), so
    pulse counts and write energy do not depend on the simulator's step.

    Each pulse has nominal relative size ``r`` (``r_up`` or ``r_down``, in units of ``w_max``),
    scaled by the device gain ``g`` (device-to-device spread) and, with cycle-to-cycle noise, by
    ``1 + sigma * z`` with a fresh ``z ~ N(0, 1)`` per pulse and no clipping (aihwkit's
    ``dw_min_std``): the mean step is exactly ``r`` whatever ``sigma`` and however the pulses
    are grouped into calls.

    - soft bounds (aihwkit SoftBoundsDevice): an up pulse moves ``w`` by ``r (b - w)`` with
      ``b = g w_max`` (down: ``-r (w + b)``), clipped to ``[-b, b]``;
    - hard bounds (aihwkit ConstantStepDevice): ``w += r b`` per pulse, clipped to ``[-b, b]``;
      a multi-level cell (``snap = 1``) is then snapped to its level grid ``g * lsb * k``, a
      binary cell (``snap = 2``) to ``+-b``, and one write is counted per changed device.

    Drift clocks (``clocks``): a device that fires first takes its drifted value
    ``w ((t_now - t_write) / t0)^-nu`` as the starting point and restarts its clock,
    ``t_write = t_now``.

    More than ``PULSE_LOOP_MAX`` pulses in one call use the closed form with the same mean:
    soft ``b - (b - w) P`` with ``ln P ~ N(n ln(1 - r) - s^2/2, s^2)``,
    ``s^2 = n (r sigma / (1 - r))^2`` (so ``E[P] = (1 - r)^n``); hard ``w + n r b + r b sigma
    sqrt(n) z``.
    """
    total = 0
    inv = 1.0 / dw_abs
    for i in range(w.size):
        d = dw[i]
        if d == 0.0:
            continue
        a = acc[i] + d * inv
        n = int(a)  # towards zero
        acc[i] = a - n
        if n == 0:
            continue
        up = n > 0
        if not up:
            n = -n
        g = gain[i] if has_gain else 1.0
        b = g * w_max
        if b <= 0.0:  # a dead device (gain 0) holds 0 whatever it is sent
            w[i] = 0.0
            continue
        r = r_up if up else r_down
        wi = w[i]
        if clocks:
            v = nu[i] if per_device_nu else nu0
            wi = wi * drift_factor_at(v, t_now - t_write[i], t0)
            t_write[i] = t_now
        x = wi
        if n <= PULSE_LOOP_MAX:
            for _ in range(n):
                rk = r * (1.0 + sigma * rng.standard_normal()) if sigma > 0.0 else r
                if soft:
                    x = x + rk * (b - x) if up else x - rk * (x + b)
                else:
                    x = x + rk * b if up else x - rk * b
                if x > b:
                    x = b
                elif x < -b:
                    x = -b
        elif soft:
            p = 0.0  # a pulse of r >= 1 (a binary cell's 2 w_max level step) reaches the bound
            if r < 1.0:
                lp = n * math.log(1.0 - r)
                if sigma > 0.0:
                    s2 = n * (r * sigma / (1.0 - r)) ** 2
                    lp += -0.5 * s2 + math.sqrt(s2) * rng.standard_normal()
                p = math.exp(lp)
            x = b - (b - x) * p if up else -b + (x + b) * p
        else:
            step = n * r * b
            if sigma > 0.0:
                step += r * b * sigma * math.sqrt(n) * rng.standard_normal()
            x = x + step if up else x - step
        if x > b:
            x = b
        elif x < -b:
            x = -b
        if snap == 1:
            q = g * lsb
            kmax = math.floor(b / q + 1e-9)
            k = round(x / q)
            if k > kmax:
                k = kmax
            elif k < -kmax:
                k = -kmax
            x = k * q
        elif snap == 2:
            x = b if x >= 0.0 else -b
        if snap != 0:
            if x != wi:
                total += 1
        else:
            total += n
        w[i] = x
    return total


def as_flat(a: np.ndarray) -> np.ndarray:
    """A flat view of a C-contiguous array (raises if a copy would be needed)."""
    flat = a.reshape(-1)
    if not np.shares_memory(flat, a):  # pragma: no cover - guarded by callers
        raise ValueError("array must be C-contiguous")
    return flat
