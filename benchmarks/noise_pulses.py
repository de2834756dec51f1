"""How many write pulses does white noise fire through an accumulate-and-fire counter, and
does the count converge as the step shrinks?

    python benchmarks/noise_pulses.py

A bare rram ``Crossbar`` (no stuck devices, no cycle-to-cycle or device-to-device spread)
receives white increments of std ``s sqrt(dt)`` pulses per step for ``T = 20`` tau_x. A
Brownian request fires about ``T s^2`` pulses per device in the limit dt -> 0; a finite step
undercounts by the overshoot of each crossing, an error that shrinks only as ``sqrt(dt)``
(benchmarks/RESULTS.md, "Read noise 0.4").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hardware_models.chip import load_preset
from hardware_models.synapses import Crossbar


def pulses_per_device(s: float, dt: float, T: float = 20.0, n: int = 20) -> float:
    syn = dataclasses.replace(
        load_preset("rram").synapses,
        stuck_fraction=0.0,
        dw_min_std=0.0,
        d2d_std=0.0,
        prog_noise_std=0.0,
    )
    rng = np.random.default_rng(0)
    cb = Crossbar(syn, (n, n))
    cb.program(np.full((n, n), 0.5), rng)
    pulse = syn.relative_dw_min() * cb.w_max
    fired = 0
    for _ in range(round(T / dt)):
        fired += cb.update(s * pulse * np.sqrt(dt) * rng.standard_normal((n, n)), rng)
    return fired / n**2


def main() -> None:
    for s in (0.3, 3.0):
        for dt in (0.2, 0.05, 0.0125, 0.003125):
            print(
                f"s = {s:g} pulses/sqrt(tau)  dt = {dt:<9g} pulses per device "
                f"{pulses_per_device(s, dt):8.2f}   (Brownian limit {20.0 * s**2:g})"
            )


if __name__ == "__main__":
    main()
