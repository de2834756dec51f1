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

__all__ = ["read_affine_noise", "read_drift", "read_drift_noise", "pulsed_update"]


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
def pulsed_update(w, dw, gain, has_gain, w_max, dw_abs, r_up, r_down, sigma, soft, snap, lsb, rng):
    """Realise the requested change ``dw`` as integer pulse trains; returns the write count.

    Per device: ``n = stochastic_round(|dw| / dw_abs)`` pulses in the sign of ``dw``; each pulse
    has nominal relative size ``r`` (``r_up`` or ``r_down``, in units of ``w_max``), scaled by
    the device gain ``g`` (device-to-device spread) and, with cycle-to-cycle noise, by
    ``1 + sigma * z / sqrt(n)`` (the mean of ``n`` independent pulse sizes).

    - soft bounds (aihwkit SoftBoundsDevice): each up pulse moves ``w`` by ``r (b - w)`` with
      ``b = g w_max``, so ``n`` pulses give the closed form ``b - (b - w)(1 - r)^n``
      (down: ``-b + (w + b)(1 - r)^n``);
    - hard bounds (aihwkit ConstantStepDevice): ``w += n r g w_max``, clipped to ``[-b, b]``;
      a multi-level cell (``snap = 1``) is snapped to its level grid ``g * lsb * k``, a binary
      cell (``snap = 2``) to ``+-b``, and one write is counted per changed device, not per pulse.
    """
    total = 0
    inv = 1.0 / dw_abs
    for i in range(w.size):
        d = dw[i]
        if d == 0.0:
            continue
        x = abs(d) * inv
        n = int(x)
        if rng.random() < x - n:
            n += 1
        if n == 0:
            continue
        g = gain[i] if has_gain else 1.0
        b = g * w_max
        if b <= 0.0:  # a dead device (gain 0) holds 0 whatever it is sent
            w[i] = 0.0
            continue
        r = r_up if d > 0.0 else r_down
        if sigma > 0.0:
            r *= 1.0 + sigma * rng.standard_normal() / math.sqrt(n)
        # a pulse moves the device towards its bound or not at all, never past it
        r = min(max(r, 0.0), 1.0)
        wi = w[i]
        if soft:
            p = (1.0 - r) ** n
            if d > 0.0:
                w_new = b - (b - wi) * p
            else:
                w_new = -b + (wi + b) * p
            total += n
        else:
            step = n * r * b
            w_new = wi + step if d > 0.0 else wi - step
            if w_new > b:
                w_new = b
            elif w_new < -b:
                w_new = -b
            if snap == 1:
                q = g * lsb
                kmax = math.floor(b / q + 1e-9)
                k = round(w_new / q)
                if k > kmax:
                    k = kmax
                elif k < -kmax:
                    k = -kmax
                w_new = k * q
            elif snap == 2:
                w_new = b if w_new >= 0.0 else -b
            if snap != 0:
                if w_new != wi:
                    total += 1
            else:
                total += n
        w[i] = w_new
    return total


def as_flat(a: np.ndarray) -> np.ndarray:
    """A flat view of a C-contiguous array (raises if a copy would be needed)."""
    flat = a.reshape(-1)
    if not np.shares_memory(flat, a):  # pragma: no cover - guarded by callers
        raise ValueError("array must be C-contiguous")
    return flat
