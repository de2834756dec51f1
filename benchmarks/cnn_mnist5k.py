"""A small CNN on MNIST-5k beside the same-size MLP: BP, PC and iPC on the ideal chip and on
rram, several seeds; accuracy mean +- std and the chip's training energy and latency per sample
as pcsim's ledger gives them (mean +- sample std over seeds).

Networks (supervised, leaky ReLU, no biases, float32, sp parameterisation):

- CNN: conv 8@5x5 stride 2 pad 2 (1x28x28 -> 8x14x14) -> conv 16@5x5 s2 p2 (-> 16x7x7)
  -> dense 10. Layer sizes 784, 1568, 784, 10; crossbar matrices 8x25, 16x200, 10x784.
- MLP: the same layer sizes, dense (784, 1568, 784, 10): the same units, every weight its own.

Training: BP with Adam 3e-3 (digital, batch 32, the substrate is not consulted: its energy is
reported as nan, since hardware_models prices digital BP for dense layers only);
PC (settle T then one step) and iPC (weights learn at every step) with plain SGD on B = 16
circuit replicas (``learning.batch_size`` semantics: the batch runs on 16 copies of the chip),
Euler dt = 0.5 tau_x, presentation T = 4 tau_x. Energy per sample: the circuit's ledger over
training divided by the samples presented (every component of ``pcsim.circuit``: static, reads
counted per MAC -- ``positions * rows * out_channels`` for a conv layer --, unit swings,
writes); latency per sample: ``T * read_period_s`` (a conv layer's patches streamed through its
one crossbar: ``positions`` reads per read of the layer). Chance is 10 %: a test accuracy
below 20 % is marked "dead".

    python benchmarks/cnn_mnist5k.py [--epochs 2] [--bp-epochs 10] [--seeds 3]
        [--chips ideal,rram] [--algorithms bp,pc,ipc] [--nets cnn,mlp] [--seed0 0]
        [--limit-train N] [--stuck-fraction F] [--json FILE]
        [--table FILE.jsonl ...]  (print the table of runs already written with --json)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hardware_models import load_preset
from pcsim import network
from pcsim.algorithms import make_algorithm
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.data import IMAGE_SHAPES, load_dataset
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.optim import SGD, Adam
from pcsim.train import Trainer

CONV = [
    {"channels": 8, "kernel": 5, "stride": 2, "padding": 2},
    {"channels": 16, "kernel": 5, "stride": 2, "padding": 2},
]
DT, T = 0.5, 4.0  # tau_x units
BATCH_PC = 16  # circuit replicas for PC and iPC
# SGD, per weight step (iPC: per engine step); iPC at 0.005 diverged on seed 0 (CNN, ideal)
LR = {"pc": 0.05, "ipc": 0.003}
BP_LR, BP_BATCH = 3e-3, 32  # Adam (baseline.lr default; 97.5 % at 10 epochs, seed 0)
CHANCE_DEAD = 0.2


def build(kind: str, seed: int) -> network.Network:
    geoms = network.conv_stack(IMAGE_SHAPES["mnist5k"], CONV)
    sizes = (geoms[0].n_in,) + tuple(g.n_out for g in geoms) + (10,)
    convs = (*geoms, None) if kind == "cnn" else None
    return network.build(sizes, "leaky_relu", dtype=np.float32, rng=seed, convs=convs)


def one_run(
    kind: str,
    chip: str,
    alg: str,
    seed: int,
    epochs: int,
    data,
    bp_lr: float = BP_LR,
    lrs: dict | None = None,
    overrides: dict | None = None,
) -> dict:
    net = build(kind, seed)
    chip_model = load_preset(chip, overrides=overrides if chip != "ideal" else None)
    circ = Circuit(net, chip=chip_model, rng=np.random.default_rng(seed + 1))
    if alg == "bp":
        lr = bp_lr
        opt, batch = Adam(bp_lr), BP_BATCH
    else:
        lr = (lrs or LR)[alg]
        opt, batch = SGD(lr), BATCH_PC
    trainer = Trainer(
        circ,
        make_algorithm(alg, T=T),
        ClockedEngine(dt=DT),
        opt,
        data,
        batch_size=batch,
        rng=np.random.default_rng(seed + 2),
        progress=False,
    )
    t0 = time.perf_counter()
    try:
        hist = trainer.fit(epochs)
        diverged = False
    except DivergenceError:  # marked in the table, never averaged in
        hist, diverged = None, True
    wall = time.perf_counter() - t0
    n = len(data.x_train) * epochs
    on_chip = alg != "bp"
    nan = float("nan")
    return {
        "net": kind,
        "chip": chip,
        "algorithm": alg,
        "seed": seed,
        "test_accuracy": nan if diverged else hist.test_accuracy[-1],
        "train_accuracy": nan if diverged else hist.train_accuracy[-1],
        "diverged": diverged,
        "energy_per_sample_j": circ.ledger.total() / n if on_chip else float("nan"),
        "latency_per_sample_s": T * circ.read_period_s() if on_chip else float("nan"),
        "macs_per_read": net.n_macs,
        "weights": int(sum(W.size for W in net.weights)),
        "epochs": epochs,
        "lr": lr,
        "wall_s": wall,
    }


def table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["net"], r["chip"], r["algorithm"]), []).append(r)
    out = [
        f"{'net':4s} {'chip':6s} {'alg':4s} {'ep':>3s} {'seeds':>5s} {'test acc %':>14s} "
        f"{'energy/sample J':>16s} {'latency/sample s':>17s} {'weights':>8s} {'MACs/read':>9s}"
    ]
    for (net, chip, alg), rs in sorted(groups.items()):
        bad = sum(bool(r.get("diverged")) for r in rs)
        rs = [r for r in rs if not r.get("diverged")] or rs
        acc = np.array([r["test_accuracy"] for r in rs]) * 100
        e = np.mean([r["energy_per_sample_j"] for r in rs])
        lat = rs[0]["latency_per_sample_s"]
        sd = acc.std(ddof=1) if len(acc) > 1 else float("nan")  # sample std over seeds
        mark = "  dead (chance)" if acc.mean() < CHANCE_DEAD * 100 else ""
        mark += f"  ({bad} seed(s) diverged, left out)" if bad else ""
        out.append(
            f"{net:4s} {chip:6s} {alg:4s} {rs[0]['epochs']:3d} {len(rs):5d} "
            f"{acc.mean():7.2f} +- {sd:4.2f} "
            f"{e:16.3g} {lat:17.3g} {rs[0]['weights']:8d} {rs[0]['macs_per_read']:9d}{mark}"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs of PC and iPC")
    ap.add_argument("--bp-epochs", type=int, default=10, help="epochs of BP (cheap, digital)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed0", type=int, default=0, help="first seed (seeds seed0, seed0 + 1, ...)")
    ap.add_argument("--chips", default="ideal,rram")
    ap.add_argument("--algorithms", default="bp,pc,ipc")
    ap.add_argument("--nets", default="cnn,mlp")
    ap.add_argument("--bp-lr", type=float, default=BP_LR, help="BP's Adam step")
    ap.add_argument("--pc-lr", type=float, default=LR["pc"], help="PC's SGD step")
    ap.add_argument("--ipc-lr", type=float, default=LR["ipc"], help="iPC's SGD step per dt")
    ap.add_argument(
        "--stuck-fraction", type=float, default=None, help="override synapses.stuck_fraction"
    )
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--json", default=None, help="append one JSON line per run to this file")
    ap.add_argument("--table", nargs="+", default=None, help="only print the table of these")
    args = ap.parse_args()
    if args.table:
        rows = [json.loads(line) for f in args.table for line in open(f) if line.strip()]
        print(table(rows))
        return
    rows = []
    with limit_threads(1):
        for seed in range(args.seed0, args.seed0 + args.seeds):
            data = load_dataset("mnist5k", seed=seed)
            if args.limit_train:
                data.x_train = data.x_train[: args.limit_train]
                data.y_train = data.y_train[: args.limit_train]
            for kind in args.nets.split(","):
                for chip in args.chips.split(","):
                    for alg in args.algorithms.split(","):
                        if alg == "bp" and chip != args.chips.split(",")[0]:
                            continue  # BP trains digitally: the chip does not change it
                        epochs = args.bp_epochs if alg == "bp" else args.epochs
                        lrs = {"pc": args.pc_lr, "ipc": args.ipc_lr}
                        ov = None
                        if args.stuck_fraction is not None:
                            ov = {"synapses": {"stuck_fraction": args.stuck_fraction}}
                        r = one_run(kind, chip, alg, seed, epochs, data, args.bp_lr, lrs, ov)
                        rows.append(r)
                        print(
                            f"# {kind} {chip} {alg} seed {seed}: test {r['test_accuracy']:.4f} "
                            f"({r['wall_s']:.0f} s)",
                            flush=True,
                        )
                        if args.json:
                            with open(args.json, "a") as f:
                                f.write(json.dumps(r) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
