"""PCM read noise that grows with time since programming and depends on conductance.

Nandakumar et al. 2019 (ICECS), as in aihwkit's ``PCMLikeNoiseModel``
(docs/sources.md): the 1/f noise accumulated by a device programmed at ``g`` and read ``t``
seconds later, at its drifted conductance ``g_d``, has standard deviation::

    sigma(t) = |g_d| * Q(g) * sqrt(ln((t + t_read) / (2 t_read)))
    Q(g)     = min(0.0088 / max((g / g_max)^0.65, 1e-3), 0.2)

(0 for ``t <= t_read``). aihwkit draws it once per inference time. pcsim
(``synapses.read_noise_model = "pcm"``) gives each device one standard normal ``z`` per write
and reads ``g_d + sigma(age) z``: at every age the deviation has aihwkit's distribution, it
grows smoothly with the age of the write (``age`` runs on the device's drift clock), and a
write starts it again from zero. It is a slow (1/f) deviation, so pcsim puts it in the
noise-free part of a read (:meth:`hardware_models.synapses.Crossbar.read_mean`), beside the
white per-read noise ``read_noise_std``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "pcm_read_noise_q",
    "pcm_read_noise_growth",
    "add_read_noise_1f",
    "PCM_READ_Q_COEFF",
    "PCM_READ_Q_MAX",
]

# Nandakumar 2019 via aihwkit PCMLikeNoiseModel: Q = min(0.0088 / (g/g_max)^0.65, 0.2)
PCM_READ_Q_COEFF: tuple[float, float] = (0.0088, 0.65)
PCM_READ_Q_MAX = 0.2
# aihwkit clamps (g/g_max)^0.65 at 1e-3 before dividing
_Q_DENOM_MIN = 1e-3


def pcm_read_noise_q(g_hat: np.ndarray | float) -> np.ndarray:
    """Relative 1/f noise amplitude ``Q`` at ``g_hat = g / g_max`` (dimensionless)."""
    c, e = PCM_READ_Q_COEFF
    base = np.maximum(np.abs(np.asarray(g_hat, dtype=np.float64)) ** e, _Q_DENOM_MIN)
    return np.minimum(c / base, PCM_READ_Q_MAX)


def pcm_read_noise_growth(age_s: np.ndarray | float, t_read_s: float) -> np.ndarray:
    """``sqrt(ln((age + t_read) / (2 t_read)))``, 0 where ``age <= t_read`` (no negative
    variance)."""
    age = np.asarray(age_s, dtype=np.float64)
    arg = np.log(np.maximum((age + t_read_s) / (2.0 * t_read_s), 1.0))
    return np.sqrt(arg)


@numba.njit(cache=True, nogil=True)
def _q(g_hat):
    base = abs(g_hat) ** PCM_READ_Q_COEFF[1]
    if base < _Q_DENOM_MIN:
        base = _Q_DENOM_MIN
    q = PCM_READ_Q_COEFF[0] / base
    return q if q < PCM_READ_Q_MAX else PCM_READ_Q_MAX


@numba.njit(cache=True, nogil=True)
def add_read_noise_1f(
    out, w, gp, gm, pair, z, t_write, t_now, t_read, g_min_hat, c, nu, nu0, per_device_nu, t0
):
    """``out += sigma(age) * z`` per weight (flat arrays), in place.

    A weight's two devices sit at ``g_hat = g_min_hat + g / c`` (``g`` in weight units:
    ``|w|`` and 0 for a signed cell, ``g_plus`` and ``g_minus`` for a one-sided pair; ``c =
    w_max g_max / (g_max - g_min)`` weights per unit ``g_hat``), drifted by the factor
    ``((t - t_write) / t0)^-nu`` (1 before ``t0``); their independent 1/f deviations add in
    variance: ``sigma = c f growth(age) sqrt(sum (g_hat Q(g_hat))^2)``.
    """
    for i in range(out.size):
        age = t_now - t_write[i]
        if age <= t_read:
            continue
        growth = math.sqrt(math.log((age + t_read) / (2.0 * t_read)))
        v = nu[i] if per_device_nu else nu0
        f = 1.0 if age <= t0 else math.exp(-v * math.log(age / t0))
        if pair:
            g1 = g_min_hat + gp[i] / c
            g0 = g_min_hat + gm[i] / c
        else:
            g1 = g_min_hat + abs(w[i]) / c
            g0 = g_min_hat
        s1 = g1 * _q(g1)
        s0 = g0 * _q(g0)
        out[i] += c * f * growth * math.sqrt(s1 * s1 + s0 * s0) * z[i]
