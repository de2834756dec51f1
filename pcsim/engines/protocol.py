"""The engine contract: one method that presents a batch for a duration, with or without learning.

Every engine (clocked, adaptive, events, brian, or a new one) implements :class:`Engine`::

    rec = engine.present(circ, batch, duration, learning=None)

- ``circ`` (:class:`pcsim.circuit.Circuit`): the network on its chip; its time ``circ.t``
  advances by the presentation, its ledger is charged with what it cost.
- ``batch`` (:class:`Batch`): which layers are free, and either the activities to continue
  from (``xs``, updated in place) or the clamped ends (``bottom``, ``top``) from which the
  engine starts at the chip's feedforward state (:meth:`pcsim.circuit.Circuit.initial_activities`).
- ``duration``: simulated time in tau_x units.
- ``learning`` (:class:`Learning` or None): None freezes the weights; otherwise the weights
  learn ``during`` the presentation (iPC: a weight step from every step's errors, or the weight
  flow integrated beside the activities) or once ``after`` it (PC: one optimiser step from the
  errors of the settled state).

It returns one record, :class:`Presentation`. Algorithms (:mod:`pcsim.algorithms`) decide *when*
learning happens and call only this method; *how* (which fused kernel, which path) is each
engine's own business, decided in its ``present``. The helpers below give a new engine the
parts every engine shares: :func:`start`, :func:`write_update` (an optimiser step written
through the substrate) and :func:`learn_after` (PC's weight step after any frozen settling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pcsim import field, kernels, learning_rule
from pcsim.circuit import Circuit
from pcsim.optim import SGD, Adam

WHEN = ("during", "after")


@dataclass
class Batch:
    """What is presented: ``free[l]`` for layers ``l = 0..L`` (True: the layer moves), and
    either ``xs`` (L+1 arrays (B, n_l), the activities to continue from, updated in place) or
    ``bottom`` (B, n_0) and ``top`` (B, n_L) or None, the clamped ends of a fresh start."""

    free: Sequence[bool]
    xs: list[np.ndarray] | None = None
    bottom: np.ndarray | None = None
    top: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.xs is None and self.bottom is None:
            raise ValueError("a batch needs its activities xs or its bottom layer")

    @property
    def size(self) -> int:
        """B, the number of samples (circuit replicas) presented together."""
        return (self.xs[0] if self.xs is not None else self.bottom).shape[0]


@dataclass(frozen=True)
class Learning:
    """How the weights learn during a presentation.

    ``optimizer``: the step taken from ``-dF/dW`` (per engine step for the stepping engines;
    PC's one step after settling). ``when``: ``"during"`` (iPC) or ``"after"`` (PC).
    ``tau_w``: the weight flow's time constant in tau_x units for engines that integrate the
    flow in continuous time (events, adaptive); None takes it from a plain SGD as ``1 / lr``
    (``lr`` read per tau_x). ``fused``: let the engine use its fused kernels (False forces its
    reference path: tests compare the two).
    """

    optimizer: SGD | Adam
    when: str = "during"
    tau_w: float | None = None
    fused: bool = True

    def __post_init__(self) -> None:
        if self.when not in WHEN:
            raise ValueError(f"learning.when must be one of {WHEN}, got {self.when!r}")

    @property
    def plain_sgd(self) -> bool:
        """SGD without momentum: the step is ``lr * (-dF/dW)``, the Euler step of the flow."""
        return isinstance(self.optimizer, SGD) and self.optimizer.momentum == 0.0

    def flow_tau_w(self) -> float:
        """The weight flow's time constant (tau_x units) for a continuous-time engine."""
        if self.tau_w is not None:
            return float(self.tau_w)
        if not self.plain_sgd:
            raise ValueError(
                "the events engine integrates the plain weight flow: give tau_w, or a plain "
                "SGD optimiser (momentum 0) whose lr is read as 1 / tau_w per tau_x"
            )
        return 1.0 / float(self.optimizer.lr)


@dataclass
class Presentation:
    """What one presentation did.

    ``xs``: the final activities (L+1 arrays (B, n_l); the batch's own ``xs`` when given).
    ``energy``: the batch's mean energy ``F`` at the end (the engine's measure of it: the errors
    its last step saw, or those of the final state); None for frozen presentations, which
    need not compute it. ``steps``: fixed steps taken (0 for clock-free engines).
    ``events``: the events engine's ledger of unit events, synapse reads and writes
    (:class:`pcsim.engines.events.EventStats`), else None. ``weight_change``: the total
    absolute weight change written per weight layer, where the path counts it (fused clocked
    iPC), else None. ``energy_j``: what the circuit's ledger was charged (J; 0 without a chip).
    """

    xs: list[np.ndarray]
    energy: float | None = None
    steps: int = 0
    events: Any = None
    weight_change: np.ndarray | None = None
    energy_j: float = 0.0


@runtime_checkable
class Engine(Protocol):
    """An integrator of the field of :mod:`pcsim.field` on a circuit (module docstring)."""

    def present(
        self,
        circ: Circuit,
        batch: Batch,
        duration: float,
        learning: Learning | None = None,
    ) -> Presentation: ...


def start(circ: Circuit, batch: Batch) -> tuple[list[np.ndarray], bool]:
    """The activities a presentation starts from, and whether they are the chip's fresh
    feedforward state (whose products a fused run may start from)."""
    if batch.xs is not None:
        return batch.xs, False
    return circ.initial_activities(batch.bottom, batch.top), True


def write_update(circ: Circuit, optimizer: SGD | Adam, dW, db, batch: int = 1) -> None:
    """One weight update from the descent directions ``dW``, ``db`` of a batch of ``batch``:
    the optimiser's step written through the substrate, with whatever the rule needs beyond
    the analog array charged to the digital co-processor (:mod:`pcsim.learning_rule`)."""
    if circ.chip is not None:
        net = circ.net
        circ.charge_digital(learning_rule.update_ops(optimizer, *_update_shape(net, batch, db)))
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


def _update_shape(net, batch: int, db) -> tuple:
    """``update_ops``' shape arguments: dense sizes, or a conv network's weights and MACs."""
    if not net.has_conv:
        return tuple(net.sizes), batch, db is not None
    n_w = sum(W.size for W in net.weights)
    return tuple(net.sizes), batch, db is not None, n_w, net.n_macs


def learn_after(
    circ: Circuit,
    xs: list[np.ndarray],
    optimizer: SGD | Adam,
    settle: Callable[[], object],
) -> float:
    """PC's weight step for an engine without a path of its own: ``settle()`` (the engine's
    frozen presentation, in place on ``xs``), then one optimiser step from the errors of the
    settled state (weights as read now, :func:`pcsim.field.weight_drift`). Returns the
    batch's energy at the settled state."""
    settle()
    net = circ.net
    eps = field.errors(net, xs, circ.read_weights(), circ.units)
    dW, db = field.weight_drift(net, xs, eps)
    write_update(circ, optimizer, dW, db if net.has_bias else None, xs[0].shape[0])
    return field.energy_of(eps, xs[0].shape[0])
