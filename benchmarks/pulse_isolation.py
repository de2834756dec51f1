"""Which ingredient makes read-noise-driven write pulses converge slowly in dt? (issue 17)

    python benchmarks/pulse_isolation.py [--off asym] [--dt 0.1 0.05 0.025] [--seeds 3]
                                         [--samples 150] [--sizes 64 128 128 10]

The default run's settings (iPC, rram, batch 1, the weight flow, T = 2 tau_x) with
``chip.synapses.read_noise_std = 0.4``, trained on the first ``--samples`` digits of a
seeded order (no evaluation), with one ingredient switched off (``--off``, repeatable):

- device: ``c2c`` (cycle-to-cycle pulse noise ``dw_min_std``), ``asym`` (up/down asymmetry),
  ``soft`` (hard bounds instead of soft), ``d2d``, ``stuck``, ``prog`` (programming noise),
  ``bits`` (analog weights instead of 8-bit levels);
- circuit: ``unitnoise`` (kT/C and error-unit noise), ``mismatch``, ``leak``, ``rails``,
  ``converters`` (DAC and ADC);
- read noise: ``fwd`` / ``bwd`` (the OU noise of the forward or the backward reads);
- learning: ``frozen`` (weights never written; the accumulators count the pulses the flow
  asks for, so the count has no feedback through the weights).

Prints, per dt, the write pulses per sample of each seed and their mean, the change from the
previous dt, and per weight layer the up and down pulses and the mean weight (``w_max`` units).
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

from pcsim import config
from pcsim.run import prepare

OFF = (
    "c2c asym soft d2d stuck prog bits unitnoise mismatch leak rails converters fwd bwd frozen"
).split()


def chip_table(off: set[str], read_noise_std: float) -> dict:
    """The rram chip section with read noise ``read_noise_std`` and the ``off`` ingredients
    switched off (module docstring)."""
    syn: dict = {"read_noise_std": read_noise_std}
    vu: dict = {}
    eu: dict = {}
    conv: dict = {}
    flags = {
        "c2c": (syn, "dw_min_std", 0.0),
        "asym": (syn, "up_down_asymmetry", 0.0),
        "soft": (syn, "update_bound", "hard"),
        "d2d": (syn, "d2d_std", 0.0),
        "stuck": (syn, "stuck_fraction", 0.0),
        "prog": (syn, "prog_noise_std", 0.0),
        "bits": (syn, "bits", None),
        "leak": (vu, "leak", 0.0),
    }
    for name, (table, key, value) in flags.items():
        if name in off:
            table[key] = value
    if "unitnoise" in off:
        vu["thermal_noise"] = False
        eu["noise_std"] = 0.0
    if "mismatch" in off:
        vu["tau_mismatch_std"] = 0.0
        eu["offset_std"] = 0.0
        eu["gain_error_std"] = 0.0
    if "rails" in off:
        vu["rail_low"], vu["rail_high"] = -100.0, 100.0
    if "converters" in off:
        conv["dac_bits"], conv["adc_bits"] = None, None
    chip: dict = {"preset": "rram", "synapses": syn}
    for name, table in (("value_units", vu), ("error_units", eu), ("converters", conv)):
        if table:
            chip[name] = table
    return chip


def _silence_reads(circ, off: set[str]) -> None:
    """Zero the forward (``fwd``) or backward (``bwd``) read lines' noise after each draw."""
    draw = circ.read_noise_step

    def step(dt, free, fwd, bwd):
        sig = draw(dt, free, fwd, bwd)
        for name, arrays in (("fwd", fwd), ("bwd", bwd)):
            if name in off:
                for a in arrays:
                    a[...] = 0.0
        return sig

    circ.read_noise_step = step


def _count_only(cb, stats: dict, layer: int) -> None:
    """Replace ``cb.update`` by accumulate-and-count: the weights stay as programmed."""
    pulse = cb.config.relative_dw_min() * cb.w_max
    acc: list[np.ndarray] = []

    def update(dW, rng=None, t_s=None):
        d = np.asarray(dW, dtype=np.float64).reshape(-1)
        if not acc:
            acc.append(np.zeros(d.size))
        a = acc[0] + d / pulse
        k = np.trunc(a)
        acc[0] = a - k
        stats["up"][layer] += float(k[k > 0].sum())
        stats["down"][layer] -= float(k[k < 0].sum())
        return int(np.abs(k).sum())

    cb.update = update


def _count_signs(cb, stats: dict, layer: int) -> None:
    """Wrap ``cb.update`` to count up and down pulses (the same trunc rule as the kernel)."""
    write = cb.update
    pulse = cb.config.relative_dw_min() * cb.w_max

    def update(dW, rng=None, t_s=None):
        acc = np.asarray(cb.pulse_accumulator, dtype=np.float64).reshape(-1)
        a = acc + np.asarray(dW, dtype=np.float64).reshape(-1) / pulse
        k = np.trunc(a)
        stats["up"][layer] += float(k[k > 0].sum())
        stats["down"][layer] -= float(k[k < 0].sum())
        return write(dW, rng, t_s)

    cb.update = update


def measure(
    dt: float,
    off: set[str],
    samples: int,
    seed: int = 0,
    sizes: tuple[int, ...] = (64, 128, 128, 10),
    read_noise_std: float = 0.4,
) -> dict:
    """Train ``samples`` presentations at step ``dt``; pulses per sample, per-layer up/down
    pulses per sample and mean weights (``w_max`` units)."""
    d = {
        "seed": seed,
        "engine": {"dt": dt},
        "baseline": {"bp": False},
        "network": {"sizes": list(sizes)},
        "chip": chip_table(off, read_noise_std),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the read-time warning: expected here
        run = prepare(config.from_dict(d), progress=False)
    circ, tr = run.circ, run.trainer
    if off & {"fwd", "bwd"}:
        _silence_reads(circ, off)
    L = len(circ.crossbars)
    stats = {"up": [0.0] * L, "down": [0.0] * L}
    for layer, cb in enumerate(circ.crossbars):
        (_count_only if "frozen" in off else _count_signs)(cb, stats, layer)
    data = tr.data
    x = data.x_train.astype(circ.net.dtype)
    y = data.one_hot(data.y_train).astype(circ.net.dtype)
    for k in np.random.default_rng(seed).permutation(len(x))[:samples]:
        tr.algorithm.train_batch(circ, tr.engine, tr.optimizer, x[k : k + 1], y[k : k + 1])
    return {
        "pulses": circ.ledger.counts().get("synapse_write", 0.0) / samples,
        "up": [u / samples for u in stats["up"]],
        "down": [u / samples for u in stats["down"]],
        "w_mean": [float(cb.weights.mean() / cb.w_max) for cb in circ.crossbars],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--off", nargs="*", default=[], choices=OFF)
    ap.add_argument("--dt", type=float, nargs="+", default=[0.1, 0.05, 0.025])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 128, 10])
    ap.add_argument("--read-noise", type=float, default=0.4)
    args = ap.parse_args()
    off = set(args.off)
    prev = None
    for dt in args.dt:
        rows = []
        for seed in range(args.seeds):
            r = measure(dt, off, args.samples, seed, tuple(args.sizes), args.read_noise)
            rows.append(r)
            print(json.dumps({"off": sorted(off), "dt": dt, "seed": seed, **r}), flush=True)
        p = [r["pulses"] for r in rows]
        mean = float(np.mean(p))
        sem = float(np.std(p, ddof=1) / np.sqrt(len(p))) if len(p) > 1 else 0.0
        change = "" if prev is None else f", change {100 * (mean / prev - 1):+.1f} %"
        print(f"off {sorted(off) or 'nothing'}: dt {dt:g}: {mean:.4g} +- {sem:.2g} pulses{change}")
        prev = mean


if __name__ == "__main__":
    main()
