"""A small CNN on MNIST-5k beside the same-size MLP: BP, PC and iPC on the ideal chip and on
rram, several seeds; accuracy mean +- std and the chip's training energy and latency per sample
as pcsim's ledger gives them (mean +- sample std over seeds).

Networks (supervised, leaky ReLU, no biases, float32, sp parameterisation):

- CNN: conv 8@5x5 stride 2 pad 2 (1x28x28 -> 8x14x14) -> conv 16@5x5 s2 p2 (-> 16x7x7)
  -> dense 10. Layer sizes 784, 1568, 784, 10; crossbar matrices 8x25, 16x200, 10x784.
- MLP: the same layer sizes, dense (784, 1568, 784, 10): the same units, every weight its own.

Training: BP with Adam 3e-3 (digital, batch 32, the substrate is not consulted: its energy is
reported as nan here; ``pcsim run`` prices digital BP of a conv net with
``hardware_models.baselines.price_layers``); PC (settle T then one step) and iPC (weights
learn at every step) with plain SGD on B = 16 circuit replicas (``learning.batch_size``
semantics: the batch runs on 16 copies of the chip), Euler dt = 0.25 tau_x (``DT``: dt times
the fastest rate of the settled inference stays near 1, at most 1.02; every run records
that rate before and after training, ``fastest_rate_init`` / ``fastest_rate_final``),
presentation T = 4 tau_x.
Accuracy is measured once, after training: on the test set and on the first ``EVAL_TRAIN``
training images. Energy per sample: the circuit's ledger over training divided by the samples
presented (every component of ``pcsim.circuit``: static, reads counted per MAC --
``positions * rows * out_channels`` for a conv layer --, unit swings, writes); latency per
sample: ``T * read_period_s`` (a conv layer's patches streamed through its one crossbar:
``positions`` reads per read of the layer). Chance is 10 %: a test accuracy below 20 % is
marked "dead".

    python benchmarks/cnn_mnist5k.py [--epochs 2] [--bp-epochs 10] [--seeds 3]
        [--chips ideal,rram] [--algorithms bp,pc,ipc] [--nets cnn,mlp] [--seed0 0]
        [--limit-train N] [--dt DT] [--pc-lr LR] [--ipc-lr LR] [--stuck-fraction F]
        [--set SECTION.KEY=VALUE ...] [--json FILE]
        [--table FILE.jsonl ...]  (print the table of runs already written with --json)
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib

import numpy as np

from hardware_models import load_preset
from pcsim import euler_modes, network
from pcsim.algorithms import make_algorithm
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.data import IMAGE_SHAPES, load_dataset
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.optim import SGD, Adam
from pcsim.train import Trainer, accuracy

CONV = [
    {"channels": 8, "kernel": 5, "stride": 2, "padding": 2},
    {"channels": 16, "kernel": 5, "stride": 2, "padding": 2},
]
# Euler step (tau_x): the fastest mode of these nets' settled inference (pcsim.euler_modes) is
# 2.2-2.7 / tau_x on the ideal chip and 3.5-4.1 / tau_x on rram (its stuck devices; CNN and MLP
# alike, before and after training under this file's rule): dt = 0.25 keeps dt x rate at or
# below 1.02 (Euler's limit is 2). The runs record the rates (fastest_rate_init / _final).
DT, T = 0.25, 4.0  # tau_x units
BATCH_PC = 16  # circuit replicas for PC and iPC
# SGD: PC per weight step (one per presentation T, whatever dt); iPC per engine step, so its
# rate per unit time is LR_IPC_PER_TAU and its step LR_IPC_PER_TAU * dt (0.003 at dt = 0.5,
# the rate of the first runs; 0.005 at dt = 0.5 diverged on seed 0, CNN, ideal)
LR_IPC_PER_TAU = 0.006
LR = {"pc": 0.05, "ipc": LR_IPC_PER_TAU * DT}
BP_LR, BP_BATCH = 3e-3, 32  # Adam (baseline.lr default; 97.5 % at 10 epochs, seed 0)
CHANCE_DEAD = 0.2
EVAL_TRAIN = 500  # training images the train accuracy is measured on (after training)


def build(kind: str, seed: int) -> network.Network:
    geoms = network.conv_stack(IMAGE_SHAPES["mnist5k"], CONV)
    sizes = (geoms[0].n_in,) + tuple(g.n_out for g in geoms) + (10,)
    convs = (*geoms, None) if kind == "cnn" else None
    return network.build(sizes, "leaky_relu", dtype=np.float32, rng=seed, convs=convs)


def fastest_rate(circ: Circuit, data, n: int = 16) -> float:
    """The largest rate (1/tau_x) of the settled inference's linearised flow over ``n``
    training samples (:func:`pcsim.euler_modes.fastest_modes`): Euler at step dt is stable
    for dt x rate < 2."""
    net = circ.net
    x = data.x_train[:n].astype(net.dtype)
    y = data.one_hot(data.y_train[:n]).astype(net.dtype)
    modes = euler_modes.fastest_modes(circ, x, y, net.free_mask(True), T)
    return float(np.max(modes.rate))


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
    dt: float = DT,
) -> dict:
    net = build(kind, seed)
    chip_model = load_preset(chip, overrides=overrides if chip != "ideal" else None)
    circ = Circuit(net, chip=chip_model, rng=np.random.default_rng(seed + 1))
    rate0 = fastest_rate(circ, data) if alg != "bp" else float("nan")
    if alg == "bp":
        lr = bp_lr
        opt, batch = Adam(bp_lr), BP_BATCH
    else:
        lr = (lrs or LR)[alg]
        opt, batch = SGD(lr), BATCH_PC
    trainer = Trainer(
        circ,
        make_algorithm(alg, T=T),
        ClockedEngine(dt=dt),
        opt,
        data,
        batch_size=batch,
        rng=np.random.default_rng(seed + 2),
        progress=False,
    )
    t0 = time.perf_counter()
    try:
        for _ in range(epochs):
            trainer.train_epoch()
            trainer.position = None  # the next epoch draws a new order
        diverged = False
    except DivergenceError:  # marked in the table, never averaged in
        diverged = True
    t_train = time.perf_counter() - t0
    nan = float("nan")
    test_acc = train_acc = nan
    if not diverged:  # after the last epoch only (settling every image on a chip is slow)
        kw = {"engine": trainer.engine, "settle_time": trainer.settle_time}
        test_acc = accuracy(circ, data.x_test, data.y_test, **kw)
        n_ev = min(EVAL_TRAIN, len(data.x_train))
        train_acc = accuracy(circ, data.x_train[:n_ev], data.y_train[:n_ev], **kw)
    wall = time.perf_counter() - t0
    rate1 = fastest_rate(circ, data) if alg != "bp" and not diverged else float("nan")
    n = len(data.x_train) * epochs
    on_chip = alg != "bp"
    return {
        "net": kind,
        "chip": chip,
        "algorithm": alg,
        "seed": seed,
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,  # on the first EVAL_TRAIN training images
        "diverged": diverged,
        "energy_per_sample_j": circ.ledger.total() / n if on_chip else float("nan"),
        "latency_per_sample_s": T * circ.read_period_s() if on_chip else float("nan"),
        "macs_per_read": net.n_macs,
        "weights": int(sum(W.size for W in net.weights)),
        "epochs": epochs,
        "n_train": len(data.x_train),
        "lr": lr,
        "dt": dt,
        "fastest_rate_init": rate0,
        "fastest_rate_final": rate1,
        "overrides": overrides or {},
        "wall_s": wall,
        "train_s": t_train,
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


def overrides(sets: list[str], stuck_fraction: float | None) -> dict | None:
    """``["synapses.read_noise_std=0", ...]`` (values as TOML) as a nested preset override."""
    ov: dict = {}
    for item in sets:
        key, sep, value = item.partition("=")
        section, dot, field = key.strip().partition(".")
        if not (sep and dot and section and field):
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        try:
            v = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise SystemExit(f"--set {item!r}: {value!r} is not a TOML value") from None
        ov.setdefault(section, {})[field] = v
    if stuck_fraction is not None:
        ov.setdefault("synapses", {})["stuck_fraction"] = stuck_fraction
    return ov or None


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
    ap.add_argument(
        "--ipc-lr",
        type=float,
        default=None,
        help=f"iPC's SGD step per engine step (default {LR_IPC_PER_TAU} x dt)",
    )
    ap.add_argument("--dt", type=float, default=DT, help="Euler step (tau_x)")
    ap.add_argument(
        "--stuck-fraction", type=float, default=None, help="override synapses.stuck_fraction"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a chip preset field (not on ideal), e.g. synapses.read_noise_std=0",
    )
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--json", default=None, help="append one JSON line per run to this file")
    ap.add_argument("--table", nargs="+", default=None, help="only print the table of these")
    args = ap.parse_args()
    if args.table:
        rows = [json.loads(line) for f in args.table for line in open(f) if line.strip()]
        print(table(rows))
        return
    ov = overrides(args.set, args.stuck_fraction)
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
                        ipc_lr = LR_IPC_PER_TAU * args.dt if args.ipc_lr is None else args.ipc_lr
                        lrs = {"pc": args.pc_lr, "ipc": ipc_lr}
                        r = one_run(
                            kind, chip, alg, seed, epochs, data, args.bp_lr, lrs, ov, args.dt
                        )
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
