"""Write pulses that read noise fires through a bare accumulate-and-fire crossbar.

The measurement behind ``benchmarks/noise_pulses.py`` and its test in small
(tests/test_read_noise.py): a noise request, in pulses per device per step, is either white
(a Brownian request) or the step mean of the Ornstein-Uhlenbeck read noise of
:mod:`pcsim.read_noise`, and a bare rram ``Crossbar`` (no stuck devices, no cycle-to-cycle,
device-to-device or programming spread) writes it. Summing a fine request over blocks of steps
gives a coarser step on the same noise path (common random numbers).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hardware_models.chip import load_preset
from hardware_models.synapses import Crossbar, SynapseConfig
from pcsim import read_noise


def white_requests(s: float, dt: float, n: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """White request of ``s`` pulses per sqrt(tau_x): increments of std ``s sqrt(dt)`` per
    step of ``dt`` (tau_x units), shape (steps, n, n)."""
    return s * math.sqrt(dt) * rng.standard_normal((steps, n, n))


def ou_requests(
    s: float, dt: float, n: int, steps: int, tau_r: float, rng: np.random.Generator
) -> np.ndarray:
    """OU request with the low-frequency spectrum of :func:`white_requests`: ``c m dt`` per
    step, ``m`` the exact step mean of a unit OU process of correlation time ``tau_r`` (tau_x
    units) started from its stationary law, ``c = s / sqrt(2 tau_r)``; shape (steps, n, n)."""
    u = rng.standard_normal((n, n))  # the stationary law
    scratch = np.empty(2 * n * n)
    out = np.empty((steps, n, n))
    for k in range(steps):
        read_noise.advance(u, dt / tau_r, rng, out[k], scratch)
    out *= s / math.sqrt(2.0 * tau_r) * dt
    return out


def bare_rram(**changes) -> SynapseConfig:
    """rram's synapses without stuck devices, cycle-to-cycle or device-to-device spread or
    programming noise (a bare crossbar whose pulse counts follow the requests alone), with
    ``changes`` applied on top."""
    return dataclasses.replace(
        load_preset("rram").synapses,
        stuck_fraction=0.0,
        dw_min_std=0.0,
        d2d_std=0.0,
        prog_noise_std=0.0,
        **changes,
    )


def pulses_per_device(requests: np.ndarray, block: int = 1) -> float:
    """Mean pulses fired per device when ``requests`` (steps, n, n; in pulses) are summed over
    blocks of ``block`` steps (a step ``block`` times longer; a last partial block is dropped)
    and written by a bare rram crossbar programmed to w = 0.5 (seed 0)."""
    steps, n, _ = requests.shape
    syn = bare_rram()
    rng = np.random.default_rng(0)
    cb = Crossbar(syn, (n, n))
    cb.program(np.full((n, n), 0.5), rng)
    pulse = syn.relative_dw_min() * cb.w_max
    coarse = requests[: steps // block * block].reshape(steps // block, block, n, n).sum(axis=1)
    fired = 0
    for r in coarse:
        fired += cb.update(pulse * r, rng)
    return fired / n**2
