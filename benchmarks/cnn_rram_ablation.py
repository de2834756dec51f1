"""Which of rram's non-idealities costs the CNN its accuracy? One seed, PC (or iPC), the CNN of
``benchmarks/cnn_mnist5k.py`` trained on a subset of MNIST-5k with every rram non-ideality
on, then with one switched off at a time, beside the ideal chip (same step, rule and data).

    python benchmarks/cnn_rram_ablation.py [--n-train 1000] [--n-test 500] [--epochs 1]
        [--seed 0] [--algorithm pc] [--net cnn] [--only NAME,...] [--json FILE]
        [--table FILE.jsonl]  (print the table of runs already written with --json)

Each row: test accuracy (%, on ``--n-test`` test images: one image = 100 / n-test points)
and the fastest Euler rate after training (1/tau_x). Chance is 10 %.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from pcsim.blas import limit_threads
from pcsim.data import load_dataset

# (name, chip, preset overrides): each switches one rram non-ideality off (aihwkit-style
# update model: pulse size spread per pulse, up/down asymmetry, device-to-device spread,
# soft bounds, the pulse size itself; programming and read noise; stuck devices; the
# value and error units' mismatch, leak, offsets and noise)
UNITS_IDEAL = {
    "value_units": {"tau_mismatch_std": 0.0, "leak": 0.0, "thermal_noise": False},
    "error_units": {"offset_std": 0.0, "gain_error_std": 0.0, "noise_std": 0.0},
}
IDEAL_DEVICES = {  # every synapse non-ideality of the list below off (8-bit weights kept)
    "dw_min_std": 0.0,
    "up_down_asymmetry": 0.0,
    "d2d_std": 0.0,
    "update_bound": "hard",
    "dw_min": 2e-5,
    "prog_noise_std": 0.0,
    "read_noise_std": 0.0,
    "stuck_fraction": 0.0,
}
VARIANTS: list[tuple[str, str, dict | None]] = [
    ("ideal chip", "ideal", None),
    ("rram", "rram", None),
    ("no pulse-size spread (dw_min_std 0)", "rram", {"synapses": {"dw_min_std": 0.0}}),
    ("no up/down asymmetry", "rram", {"synapses": {"up_down_asymmetry": 0.0}}),
    ("no device-to-device spread (d2d_std 0)", "rram", {"synapses": {"d2d_std": 0.0}}),
    ("hard bounds (no soft bounds)", "rram", {"synapses": {"update_bound": "hard"}}),
    ("pulses 100x finer (dw_min 2e-5)", "rram", {"synapses": {"dw_min": 2e-5}}),
    ("no programming noise", "rram", {"synapses": {"prog_noise_std": 0.0}}),
    ("no read noise", "rram", {"synapses": {"read_noise_std": 0.0}}),
    ("no stuck devices", "rram", {"synapses": {"stuck_fraction": 0.0}}),
    ("ideal units (no mismatch, leak, offsets, noise)", "rram", UNITS_IDEAL),
    (
        "no programming noise, no d2d spread",
        "rram",
        {"synapses": {"prog_noise_std": 0.0, "d2d_std": 0.0}},
    ),
    ("ideal devices (all of 2-9 off at once)", "rram", {"synapses": IDEAL_DEVICES}),
    ("no error-unit offsets (offset_std 0)", "rram", {"error_units": {"offset_std": 0.0}}),
    ("no value-unit leak (leak 0)", "rram", {"value_units": {"leak": 0.0}}),
    (
        "no error-unit gain error or noise",
        "rram",
        {"error_units": {"gain_error_std": 0.0, "noise_std": 0.0}},
    ),
    (
        "no value-unit mismatch or thermal noise",
        "rram",
        {"value_units": {"tau_mismatch_std": 0.0, "thermal_noise": False}},
    ),
]


def load_benchmark():
    """benchmarks/cnn_mnist5k.py as a module (the benchmarks are not a package)."""
    path = Path(__file__).with_name("cnn_mnist5k.py")
    spec = importlib.util.spec_from_file_location("cnn_mnist5k", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cnn_mnist5k"] = mod
    spec.loader.exec_module(mod)
    return mod


def leak_effect(bench, kind: str, seed: int = 0, n: int = 16) -> list[tuple[float, float]]:
    """How much the value units' leak (rram's 0.01 per tau_x) changes PC's weight update at
    initialisation: per weight layer, ``|dW(leak) - dW(no leak)| / |dW(no leak)|`` and the
    cosine between the two, after settling ``n`` training samples for T with the step of
    ``bench`` (rram with ideal devices and otherwise ideal units, so only the leak differs)."""
    from hardware_models import load_preset
    from pcsim.circuit import Circuit
    from pcsim.engines.clocked import ClockedEngine, start
    from pcsim.engines.protocol import Batch

    d = load_dataset("mnist5k", seed=seed)
    x, y = d.x_train[:n].astype("float32"), d.one_hot(d.y_train[:n]).astype("float32")
    drifts = []
    for leak in (0.01, 0.0):
        ov = {
            "synapses": IDEAL_DEVICES,
            "value_units": dict(UNITS_IDEAL["value_units"], leak=leak),
            "error_units": UNITS_IDEAL["error_units"],
        }
        net = bench.build(kind, seed)
        circ = Circuit(net, chip=load_preset("rram", overrides=ov), rng=seed + 1)
        engine = ClockedEngine(dt=bench.DT)
        batch = Batch(net.free_mask(True), bottom=x, top=y)
        xs, fresh = start(circ, batch)
        rec = engine.settle(circ, xs, batch.free, bench.T, from_feedforward=fresh)
        drifts.append([w.astype("float64") for w in engine.weight_drift(circ, rec)[0]])
    out = []
    for a, b in zip(*drifts, strict=True):
        nb = float((b * b).sum()) ** 0.5
        na = float((a * a).sum()) ** 0.5
        out.append((float(((a - b) ** 2).sum()) ** 0.5 / nb, float((a * b).sum()) / (na * nb)))
    return out


def table(rows: list[dict]) -> str:
    out = [f"{'variant':50s} {'test acc %':>10s} {'rate after':>10s} {'dt x rate':>9s}"]
    seen: set[str] = set()
    for r in rows:
        if r["variant"] in seen:  # a variant run twice: its first row
            continue
        seen.add(r["variant"])
        rate = r["fastest_rate_final"]
        out.append(
            f"{r['variant']:50s} {100 * r['test_accuracy']:10.1f} {rate:10.2f} "
            f"{r['dt'] * rate:9.2f}"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n-eval-train", type=int, default=100, help="train accuracy on these")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--algorithm", default="pc", choices=["pc", "ipc"])
    ap.add_argument("--net", default="cnn", choices=["cnn", "mlp"])
    ap.add_argument("--only", default=None, help="comma-separated variant numbers (0-based)")
    ap.add_argument("--json", default=None, help="append one JSON line per run to this file")
    ap.add_argument("--table", nargs="+", default=None, help="only print the table of these")
    args = ap.parse_args()
    if args.table:
        rows = [json.loads(line) for f in args.table for line in open(f) if line.strip()]
        print(table(rows))
        return
    bench = load_benchmark()
    bench.EVAL_TRAIN = min(bench.EVAL_TRAIN, args.n_eval_train)  # settling images is slow
    data = load_dataset("mnist5k", seed=args.seed)
    data.x_train, data.y_train = data.x_train[: args.n_train], data.y_train[: args.n_train]
    data.x_test, data.y_test = data.x_test[: args.n_test], data.y_test[: args.n_test]
    pick = range(len(VARIANTS)) if args.only is None else [int(i) for i in args.only.split(",")]
    rows = []
    with limit_threads(1):
        for i in pick:
            name, chip, ov = VARIANTS[i]
            r = bench.one_run(
                args.net, chip, args.algorithm, args.seed, args.epochs, data, overrides=ov
            )
            r["variant"] = name
            rows.append(r)
            print(f"# {name}: test {r['test_accuracy']:.3f} ({r['wall_s']:.0f} s)", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
