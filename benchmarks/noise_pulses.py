"""How many write pulses does read noise fire through an accumulate-and-fire counter, and does
the count converge as the step shrinks? White noise against the Ornstein-Uhlenbeck read noise
of :mod:`pcsim.read_noise`.

    python benchmarks/noise_pulses.py [--tau-r 0.1] [--s 3.0 0.3]

A bare rram ``Crossbar`` (no stuck devices, no cycle-to-cycle or device-to-device spread)
receives for ``T = 20`` tau_x a noise request, in pulses:

The requests and the crossbar are :mod:`pcsim.noise_pulses`'s (shared with its test).

- white: increments of std ``s sqrt(dt)`` per step (a Brownian request, ``T s^2`` pulses per
  device in the limit dt -> 0). A finite step undercounts by the overshoot of each crossing,
  an error that shrinks only as ``sqrt(dt)`` (benchmarks/RESULTS.md, "Read noise 0.4");
- OU: increments ``c m dt``, ``m`` the exact step mean of a unit OU process of correlation time
  ``tau_r`` and ``c = s / sqrt(2 tau_r)`` (the same low-frequency spectrum as the white
  request). The request is a smooth (C^1) path; the count converges once dt is well below
  ``tau_r``.

Every dt sees the same noise path (common random numbers): the path is drawn once at the finest
step and block-averaged (the mean over a coarse step is the mean of its fine step means, the
Brownian increment over it the sum of the fine ones), so the differences between steps are the
discretisation error alone.
"""

from __future__ import annotations

import argparse

import numpy as np

from pcsim.noise_pulses import ou_requests, pulses_per_device, white_requests

T = 20.0
DTS = (0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125)


def fine_requests(
    kind: str, s: float, dt: float, n: int, tau_r: float, seed: int = 0, t_end: float = T
) -> np.ndarray:
    """Noise requests (in pulses) over each step of ``dt`` for ``t_end`` tau_x, one per device
    of an ``n x n`` array: shape (steps, n, n). ``kind``: "white" or "ou" (module docstring)."""
    rng = np.random.default_rng(seed)
    steps = round(t_end / dt)
    if kind == "white":
        return white_requests(s, dt, n, steps, rng)
    if kind != "ou":
        raise ValueError(f"kind must be 'white' or 'ou', got {kind!r}")
    return ou_requests(s, dt, n, steps, tau_r, rng)


def table(s: float, tau_r: float, n: int = 20, dts: tuple[float, ...] = DTS) -> list[dict]:
    """Pulses per device against dt for white and OU requests (common random numbers)."""
    fine = min(dts)
    rows = []
    paths = {k: fine_requests(k, s, fine, n, tau_r) for k in ("white", "ou")}
    for dt in dts:
        block = round(dt / fine)
        row = {"dt": dt}
        for k, p in paths.items():
            row[k] = pulses_per_device(p, block)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tau-r", type=float, default=0.1, help="OU correlation time, tau_x")
    ap.add_argument("--s", type=float, nargs="+", default=[3.0, 0.3], help="pulses/sqrt(tau)")
    args = ap.parse_args()
    for s in args.s:
        print(f"\ns = {s:g} pulses/sqrt(tau_x), tau_r = {args.tau_r:g} tau_x, T = {T:g} tau_x")
        print(f"(white Brownian limit {T * s * s:g} pulses per device)")
        print("| dt | white pulses/device | OU pulses/device | OU change from previous dt |")
        print("|---|---|---|---|")
        prev = None
        for r in table(s, args.tau_r):
            d = "" if prev is None else f"{r['ou'] - prev:+.3f}"
            print(f"| {r['dt']:g} | {r['white']:.2f} | {r['ou']:.3f} | {d} |")
            prev = r["ou"]


if __name__ == "__main__":
    main()
