"""When inference and learning happen: PC, iPC and BP on the same network.

- **PC**: weights frozen while activities settle for a time ``T`` (tau_x units), then one
  weight step from the settled errors. Needs a global control signal between the phases.
- **iPC** (Salvatori et al., ICLR 2024): activities and weights move together at every step;
  each mini-batch is held for a presentation time ``T``. No phases.
- **BP**: exact backprop of ``1/2 ||y - f(x)||^2`` on the same network, the baseline.

Each algorithm's ``train_batch`` takes a circuit, an engine and an optimiser and returns the
batch's energy (PC/iPC, at the end of the presentation) or loss (BP). PC and iPC talk to the
engine through its one method, ``engine.present`` (:mod:`pcsim.engines.protocol`): they say
when the weights learn, the engine decides how to integrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pcsim import field as pcfield
from pcsim.circuit import Circuit
from pcsim.engines.protocol import Batch, Engine, Learning, write_update

ALGORITHMS = ("pc", "ipc", "bp")
INITS = ("feedforward", "carry")


def initial_activities(circ: Circuit, x: np.ndarray, y: np.ndarray | None) -> list[np.ndarray]:
    """:meth:`pcsim.circuit.Circuit.initial_activities` (kept for scripts that import it here)."""
    return circ.initial_activities(x, y)


def _bottom_to_top(net, x, y):
    """:meth:`pcsim.network.Network.bottom_to_top` (kept for scripts that import it here)."""
    return net.bottom_to_top(x, y)


def _free_mask(net, training: bool) -> list[bool]:
    """:meth:`pcsim.network.Network.free_mask` (kept for scripts that import it here)."""
    return net.free_mask(training)


@dataclass
class PC:
    """Two-phase predictive coding: settle for ``T`` then one weight step."""

    T: float = 2.0
    name: str = "pc"

    def train_batch(self, circ: Circuit, engine: Engine, optimizer, x, y) -> float:
        net = circ.net
        bottom, top = net.bottom_to_top(x, y)
        batch = Batch(net.free_mask(training=True), bottom=bottom, top=top)
        return engine.present(circ, batch, self.T, Learning(optimizer, when="after")).energy


@dataclass
class IPC:
    """Incremental PC: every engine step also takes one weight step from the same errors.

    ``init``: each presentation starts from the chip's feedforward pass (``"feedforward"``)
    or from the activities the previous one left (``"carry"``, same batch size). ``fused=False``
    makes the engine take its reference path (``Learning.fused``), which the fused kernels
    are tested equal to.
    """

    T: float = 2.0
    init: str = "feedforward"
    name: str = "ipc"
    fused: bool = True
    _carry: list[np.ndarray] | None = None

    def _start(self, net, bottom, top) -> Batch:
        free = net.free_mask(training=True)
        xs = self._carry
        if self.init == "carry" and xs is not None and xs[0].shape[0] == len(bottom):
            xs[0][...] = bottom
            xs[-1][...] = top
            return Batch(free, xs=xs)
        return Batch(free, bottom=bottom, top=top)

    def train_batch(self, circ: Circuit, engine: Engine, optimizer, x, y) -> float:
        net = circ.net
        bottom, top = net.bottom_to_top(x, y)
        learning = Learning(optimizer, when="during", fused=self.fused)
        rec = engine.present(circ, self._start(net, bottom, top), self.T, learning)
        self._carry = rec.xs
        return rec.energy

    def get_state(self) -> dict:
        """What a checkpoint keeps: the carried activities (None before the first batch)."""
        return {"carry": self._carry}

    def set_state(self, state: dict, dtype=None) -> None:
        """Restore :meth:`get_state` (arrays cast to ``dtype`` when given)."""
        carry = state.get("carry")
        self._carry = None if carry is None else [np.array(a, dtype=dtype) for a in carry]


@dataclass
class IPCEvents(IPC):
    """Incremental PC on a clock-free engine (:class:`pcsim.engines.events.EventsEngine`): a
    stream of single samples, each held for ``T`` (tau_x units) while every error unit learns
    its own row at its own events.

    ``train_batch`` presents the rows of a mini-batch one after another (the events engine is
    a stream). The weight flow is ``tau_w dW/dt = -dF/dW`` with ``tau_w`` in tau_x units; when
    ``tau_w`` is None it is taken from a plain SGD optimiser as ``tau_w = 1 / lr`` (``lr``
    read as a learning rate per tau_x); other optimisers need an explicit ``tau_w``. Matched
    with the clocked iPC at batch 1: ``SGD(lr = dt / tau_w)``. ``last_stats`` and
    ``total_stats`` hold the event ledgers of the last batch and of the whole run.
    """

    tau_w: float | None = None
    name: str = "ipc_events"
    last_stats: object = field(default=None, repr=False)
    total_stats: object = field(default=None, repr=False)

    def train_batch(self, circ: Circuit, engine: Engine, optimizer, x, y) -> float:
        if self.init not in INITS:
            raise ValueError("init must be 'feedforward' or 'carry'")
        net = circ.net
        learning = Learning(optimizer, when="during", tau_w=self.tau_w)
        learning.flow_tau_w()  # refuses an optimiser without a flow before anything runs
        bottom, top = net.bottom_to_top(x, y)
        energies = []
        stats = None
        for r in range(bottom.shape[0]):
            rec = engine.present(
                circ, self._start(net, bottom[r : r + 1], top[r : r + 1]), self.T, learning
            )
            self._carry = rec.xs
            s = rec.events
            stats = s if stats is None else stats.merge(s)
            energies.append(rec.energy)
        self.last_stats = stats
        self.total_stats = stats if self.total_stats is None else self.total_stats.merge(stats)
        return float(np.mean(energies))

    def get_state(self) -> dict:
        """:meth:`IPC.get_state` and the event ledgers so far (None before the first batch)."""
        return {
            **super().get_state(),
            "last_stats": self.last_stats,
            "total_stats": self.total_stats,
        }

    def set_state(self, state: dict, dtype=None) -> None:
        """Restore :meth:`get_state` (the ledgers only where given)."""
        super().set_state(state, dtype)
        for k in ("last_stats", "total_stats"):
            if k in state:
                setattr(self, k, state[k])


@dataclass
class BP:
    """Backprop baseline on the same network (the substrate is not consulted)."""

    name: str = "bp"

    def train_batch(self, circ, engine, optimizer, x, y) -> float:
        net = circ.net
        if net.mode != "supervised":
            raise ValueError("bp trains supervised networks only")
        loss, dW, db = pcfield.backprop_gradients(net, x.astype(net.dtype, copy=False), y)
        write_update(circ, optimizer, dW, db, x.shape[0])
        return loss


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
