"""When inference and learning happen: PC, iPC and BP on the same network.

- **PC**: weights frozen while activities settle for a time ``T`` (tau_x units), then one
  weight step from the settled errors. Needs a global control signal between the phases.
- **iPC** (Salvatori et al., ICLR 2024): activities and weights move together at every step;
  each mini-batch is held for a presentation time ``T``. No phases.
- **BP**: exact backprop of ``1/2 ||y - f(x)||^2`` on the same network, the baseline.

Each algorithm's ``train_batch`` takes a circuit, an engine and an optimiser and returns the
batch's energy (PC/iPC, at the end of the presentation) or loss (BP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcsim import field, kernels, learning_rule
from pcsim.activations import ACTIVATION_CODES
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine, StepRecord, check_finite
from pcsim.optim import SGD, Adam

ALGORITHMS = ("pc", "ipc", "bp")
INITS = ("feedforward", "carry")


def initial_activities(circ: Circuit, x: np.ndarray, y: np.ndarray | None) -> list[np.ndarray]:
    """Activities for a new batch: the chip's feedforward pass from the bottom layer (weights as
    read now, units at their bottom-up equilibrium), with the top clamped to ``y`` if given.

    The pass (:func:`pcsim.kernels.feedforward`, equal to :func:`pcsim.field.feedforward`)
    leaves its products and ``phi``s in the circuit's workspace, where a following run with
    frozen weights starts from them (``ClockedEngine.settle``)."""
    net = circ.net
    x0 = np.array(circ.dac(x.astype(net.dtype, copy=False)), dtype=net.dtype, order="C")
    xs = [x0] + [np.empty((x0.shape[0], n), net.dtype) for n in net.sizes[1:]]
    ws = circ.workspace(x0.shape[0])
    units = circ.units
    if circ.partial_sums is not None:  # products through per-tile ADCs: the numpy pass
        ff = field.feedforward(
            net, x0, circ.read_weights(), None if circ.ideal else units, circ.partial_sums
        )
        for x, v in zip(xs[1:], ff[1:], strict=True):
            x[...] = v
        if y is not None:
            xs[-1][...] = circ.dac(y)
        return xs
    kernels.feedforward(
        kernels.seq(xs),
        kernels.seq(circ.read_weights()),
        kernels.seq(circ.biases()),
        np.asarray(net.scales),
        np.asarray(net.residual),
        ACTIVATION_CODES[net.activation],
        kernels.seq(units.error_gain),
        kernels.seq(units.error_offset),
        kernels.seq(units.leak),
        not circ.ideal,
        ws.kernel("phis"),
        ws.kernel("prods"),
    )
    if y is not None:
        xs[-1][...] = circ.dac(y)
    return xs


def _learn(circ: Circuit, optimizer: SGD | Adam, dW, db, batch: int = 1) -> None:
    """One weight update from the descent directions ``dW``, ``db`` of a batch of ``batch``:
    the optimiser's step written through the substrate, with whatever the rule needs beyond
    the analog array charged to the digital co-processor (:mod:`pcsim.learning_rule`)."""
    if circ.chip is not None:
        net = circ.net
        circ.charge_digital(
            learning_rule.update_ops(optimizer, tuple(net.sizes), batch, db is not None)
        )
    if isinstance(optimizer, SGD) and optimizer.momentum == 0.0 and circ.crossbars is None:
        # exact weights, plain SGD: W += lr * d in place (the same numbers, no temporaries)
        net = circ.net
        kernels.add_scaled(kernels.seq(net.weights), kernels.seq(dW), optimizer.lr)
        if db is not None and net.biases is not None:
            as_rows = [b.reshape(1, -1) for b in net.biases], [d.reshape(1, -1) for d in db]
            kernels.add_scaled(kernels.seq(as_rows[0]), kernels.seq(as_rows[1]), optimizer.lr)
        return
    directions = list(dW) + (list(db) if db is not None else [])
    deltas = optimizer.deltas(directions)
    L = circ.net.n_layers
    circ.apply_weight_update(deltas[:L], deltas[L:] if db is not None else None, batch)


def _bottom_to_top(net, x, y):
    """Supervised: input at the bottom (x_0), target on top. Generative: label at the bottom."""
    return (x, y) if net.mode == "supervised" else (y, x)


@dataclass
class PC:
    """Two-phase predictive coding: settle for ``T`` then one weight step."""

    T: float = 2.0
    name: str = "pc"

    def train_batch(self, circ, engine: ClockedEngine, optimizer, x, y) -> float:
        net = circ.net
        bottom, top = _bottom_to_top(net, x, y)
        free = _free_mask(net, training=True)
        if isinstance(engine, ClockedEngine) and top is not None:
            plain_sgd = isinstance(optimizer, SGD) and optimizer.momentum == 0.0
            rec = engine.pc_step(
                circ, bottom, top, free, self.T, optimizer.lr if plain_sgd else 0.0
            )
            if rec is not None:  # the whole step in one kernel call
                if not plain_sgd:  # the gradients are in the workspace
                    ws = circ.workspace(x.shape[0])
                    db = ws.grads_b if net.has_bias else None
                    _learn(circ, optimizer, ws.grads_w, db, x.shape[0])
                return field.energy_of(rec.eps, x.shape[0])
        xs = initial_activities(circ, bottom, top)
        rec = engine.settle(circ, xs, free, self.T, from_feedforward=True)
        dW, db = engine.weight_drift(circ, rec)
        energy = field.energy_of(rec.eps, x.shape[0])
        _learn(circ, optimizer, dW, db, x.shape[0])
        return energy


@dataclass
class IPC:
    """Incremental PC: every engine step also takes one weight step from the same errors.

    A stream of single samples on the pure algorithm (numba Euler, plain SGD, no chip, no
    biases or skips) runs each presentation in one fused kernel call
    (``kernels.ipc_presentation_batch1``, tested equal to the general path); ``fused=False``
    forces the general path.
    """

    T: float = 2.0
    init: str = "feedforward"
    name: str = "ipc"
    fused: bool = True
    _carry: list[np.ndarray] | None = None
    _bufs: tuple | None = None

    def _can_fuse(self, circ: Circuit, engine, optimizer, batch: int) -> bool:
        net = circ.net
        return (
            self.fused
            and batch == 1
            and isinstance(engine, ClockedEngine)
            and engine.backend == "numba"
            and engine.method == "euler"
            and circ.chip is None
            and not circ.noisy
            and isinstance(optimizer, SGD)
            and optimizer.momentum == 0.0
            and net.biases is None
            and not any(net.residual)
            and circ.rails == (-np.inf, np.inf)
            and circ.units.is_ideal()
            and all(np.all(s == 1) for s in circ.tau_scale)
        )

    def _fused_presentation(self, circ: Circuit, engine, optimizer, xs, free) -> float:
        net = circ.net
        sizes, dt = net.sizes, net.dtype
        if self._bufs is None or self._bufs[0][0].shape[0] != sizes[0]:
            self._bufs = (
                kernels.seq([np.zeros(n, dt) for n in sizes]),
                kernels.seq([np.zeros(n, dt) for n in sizes[1:]]),
                kernels.seq([np.zeros(n, dt) for n in sizes]),
                kernels.seq([np.zeros(n, dt) for n in sizes[1:]]),
                kernels.seq([np.zeros(n, dt) for n in sizes[:-1]]),
                np.zeros(sizes[1], dt),
                np.zeros(sizes[1], dt),
            )
        n_steps = max(1, int(round(self.T / engine.dt)))
        kernels.ipc_presentation_batch1(
            kernels.seq([v[0] for v in xs]),
            kernels.seq(net.weights),
            np.asarray(net.scales),
            np.asarray(free, dtype=np.bool_),
            ACTIVATION_CODES[net.activation],
            engine.dt,
            optimizer.lr,
            n_steps,
            not free[0],
            self._bufs,
        )
        circ.t += n_steps * engine.dt
        check_finite(xs, free, circ.t)
        return field.energy_of(self._bufs[1], 1)

    def train_batch(self, circ, engine: ClockedEngine, optimizer, x, y) -> float:
        net = circ.net
        bottom, top = _bottom_to_top(net, x, y)
        if self.init == "carry" and self._carry is not None and self._carry[0].shape[0] == len(x):
            xs = self._carry
            xs[0][...] = bottom
            xs[-1][...] = top
        else:
            xs = initial_activities(circ, bottom, top)
        free = _free_mask(net, training=True)
        if self._can_fuse(circ, engine, optimizer, len(x)):
            self._carry = xs
            return self._fused_presentation(circ, engine, optimizer, xs, free)
        if hasattr(engine, "run_learning"):  # Brian2 runs a whole presentation in its code
            engine.run_learning(circ, xs, free, self.T, optimizer)
            self._carry = xs
            eps = field.errors(net, xs, circ.read_weights(), circ.units)
            return field.energy_of(eps, x.shape[0])
        if (
            self.fused
            and isinstance(engine, ClockedEngine)
            and isinstance(optimizer, SGD)
            and optimizer.momentum == 0.0
        ):
            rec = engine.run_ipc_sgd(circ, xs, free, self.T, optimizer.lr)
            if rec is not None:
                if circ.chip is not None and net.has_bias:  # the digital biases' updates
                    ops = learning_rule.update_ops(optimizer, tuple(net.sizes), len(x), True)
                    circ.charge_digital(ops.times(max(1, int(round(self.T / engine.dt)))))
                self._carry = xs
                return field.energy_of(rec.eps, x.shape[0])
        last: list[float] = [0.0]

        def learn(rec: StepRecord) -> None:
            dW, db = engine.weight_drift(circ, rec)
            _learn(circ, optimizer, dW, db, x.shape[0])
            last[0] = field.energy_of(rec.eps, x.shape[0])

        engine.run(circ, xs, free, self.T, on_step=learn)
        self._carry = xs
        return last[0]


@dataclass
class BP:
    """Backprop baseline on the same network (the substrate is not consulted)."""

    name: str = "bp"

    def train_batch(self, circ, engine, optimizer, x, y) -> float:
        net = circ.net
        if net.mode != "supervised":
            raise ValueError("bp trains supervised networks only")
        loss, dW, db = field.backprop_gradients(net, x.astype(net.dtype, copy=False), y)
        _learn(circ, optimizer, dW, db, x.shape[0])
        return loss


def _free_mask(net, training: bool) -> list[bool]:
    clamped = net.clamped_layers(training)
    return [l not in clamped for l in range(net.n_layers + 1)]


def make_algorithm(name: str, T: float = 2.0, init: str = "feedforward"):
    if name == "pc":
        return PC(T=T)
    if name == "ipc":
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}")
        return IPC(T=T, init=init)
    if name == "bp":
        return BP()
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {name!r}")
