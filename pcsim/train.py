"""Stream data through an algorithm on an engine: epochs, metrics, progress.

``Trainer`` is the one loop every run uses (CLI, notebooks, sweeps): mini-batches are presented
in a seeded order, each for the algorithm's presentation time; after every epoch the train and
test accuracy are measured with the network's own inference (feedforward in supervised mode,
settling the free bottom layer in generative mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from hardware_models.costs import EnergyLedger
from pcsim.circuit import Circuit
from pcsim.data import Dataset
from pcsim.engines.adaptive import AdaptiveEngine
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.protocol import Batch, Engine
from pcsim.inference import inference_engine


@dataclass
class History:
    """Per-epoch metrics (lists of floats, one entry per epoch)."""

    epoch: list[int] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    train_energy: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    sim_time_tau: list[float] = field(default_factory=list)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.__dict__.items()}


def predict(
    circ: Circuit,
    x: np.ndarray,
    engine: ClockedEngine | None = None,
    settle_time: float = 5.0,
    batch_size: int = 512,
) -> np.ndarray:
    """Class scores for inputs ``x`` (n, d): the free end of the network after inference.

    Supervised: a feedforward pass through the weights as the chip reads them (the exact
    equilibrium on an ideal chip); on a non-ideal chip the circuit then settles for
    ``settle_time`` with its leaks, offsets, rails and noise, and the output goes through the
    ADC. Generative: data clamped on top, the bottom and hidden layers settle.
    Evaluation is not billed: the circuit's ledger and clock are restored afterwards.
    """
    net = circ.net
    saved = circ.t, circ.ledger
    circ.ledger = EnergyLedger()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].astype(net.dtype, copy=False)
            if net.mode == "supervised":
                xs = circ.initial_activities(xb, None)
                if not circ.ideal:
                    free = [l > 0 for l in range(net.n_layers + 1)]
                    inference_engine(engine or ClockedEngine()).present(
                        circ, Batch(free, xs=xs), settle_time
                    )
                out.append(circ.adc(xs[-1]).copy())
                continue
            xs = circ.initial_activities(np.zeros((len(xb), net.sizes[0]), net.dtype), None)
            xs[-1][...] = circ.dac(xb)
            free = [l != net.n_layers for l in range(net.n_layers + 1)]
            # the free, prior-less bottom layer is stiff: adaptive steps
            AdaptiveEngine("RK45", rtol=1e-4, atol=1e-6).present(
                circ, Batch(free, xs=xs), 4 * settle_time
            )
            out.append(circ.adc(xs[0]).copy())
    finally:
        circ.t, circ.ledger = saved
    return np.concatenate(out)


def accuracy(circ: Circuit, x: np.ndarray, labels: np.ndarray, **kw) -> float:
    """Fraction of inputs whose largest score is the true class."""
    return float(np.mean(np.argmax(predict(circ, x, **kw), axis=1) == labels))


class Interrupted(Exception):
    """Training stopped at a safe point because ``Trainer.should_stop()`` said so (Ctrl-C).

    ``checkpoint`` is the file the run's state was written to (None if it could not be
    written; ``error`` then says why)."""

    def __init__(self, checkpoint=None, error: str | None = None) -> None:
        super().__init__("interrupted")
        self.checkpoint = checkpoint
        self.error = error


@dataclass
class EpochPosition:
    """Where an epoch stands: its sample order, batches done, their energies, wall time."""

    order: np.ndarray
    batch: int = 0
    energies: list[float] = field(default_factory=list)
    wall: float = 0.0

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self.order) // batch_size)


@dataclass
class Trainer:
    """Train ``circ.net`` on ``data`` with ``algorithm``, ``engine`` and ``optimizer``.

    The loop is resumable at any batch boundary: ``position`` (None between epochs) holds the
    current epoch's order and progress, ``step`` counts batches over the whole run. Hooks:
    ``should_stop()`` is asked before every batch and before every evaluation (True raises
    :class:`Interrupted` with the state consistent); ``after_batch(self)`` and
    ``after_epoch(self)`` run at each boundary (checkpointing).
    """

    circ: Circuit
    algorithm: object
    engine: Engine
    optimizer: object
    data: Dataset
    batch_size: int = 32
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    progress: bool = True
    settle_time: float = 5.0
    eval_engine: ClockedEngine | None = None  # default: the training engine
    history: History = field(default_factory=History)
    position: EpochPosition | None = None
    step: int = 0
    should_stop: Callable[[], bool] | None = None
    after_batch: Callable[[Trainer], None] | None = None
    after_epoch: Callable[[Trainer], None] | None = None
    health: Callable[[Trainer], None] | None = None  # after each epoch's batches (stability)

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Interrupted()

    def train_epoch(self) -> float:
        """Train the current epoch to its end (starting it if none is under way); returns the
        mean batch energy. ``position`` is left at the end of the epoch."""
        d = self.data
        targets = d.one_hot(d.y_train).astype(self.circ.net.dtype)
        xtr = d.x_train.astype(self.circ.net.dtype)
        if self.position is None:
            # the same draw as pcsim.data.batches: one permutation per epoch
            self.position = EpochPosition(order=self.rng.permutation(len(xtr)))
        pos = self.position
        n_batches = pos.n_batches(self.batch_size)
        bar = tqdm(
            total=n_batches,
            initial=pos.batch,
            desc=f"epoch {len(self.history.epoch) + 1}",
            leave=False,
            disable=not self.progress,
            unit="batch",
        )
        try:
            while pos.batch < n_batches:
                self._check_stop()
                t0 = time.perf_counter()
                start = pos.batch * self.batch_size
                idx = pos.order[start : start + self.batch_size]
                e = self.algorithm.train_batch(
                    self.circ, self.engine, self.optimizer, xtr[idx], targets[idx]
                )
                pos.energies.append(float(e))
                pos.batch += 1
                self.step += 1
                pos.wall += time.perf_counter() - t0
                bar.update()
                if self.after_batch is not None:
                    self.after_batch(self)
        finally:
            bar.close()
        return float(np.mean(pos.energies))

    def evaluate(self) -> tuple[float, float]:
        d = self.data
        kw = {"engine": self.eval_engine or self.engine, "settle_time": self.settle_time}
        return (
            accuracy(self.circ, d.x_train, d.y_train, **kw),
            accuracy(self.circ, d.x_test, d.y_test, **kw),
        )

    def fit(self, epochs: int, on_epoch: Callable[[History], None] | None = None) -> History:
        """Run ``epochs`` more epochs (finishing an epoch under way counts as one), recording
        metrics after each; returns the history."""
        for _ in range(epochs):
            e = self.train_epoch()
            if self.health is not None:
                self.health(self)
            self._check_stop()
            tr, te = self.evaluate()
            h = self.history
            h.epoch.append(len(h.epoch) + 1)
            h.train_energy.append(e)
            h.train_accuracy.append(tr)
            h.test_accuracy.append(te)
            h.wall_seconds.append(self.position.wall)
            h.sim_time_tau.append(self.circ.t)
            self.position = None
            if self.progress:
                tqdm.write(f"epoch {h.epoch[-1]:3d}  energy {e:.4f}  train {tr:.2%}  test {te:.2%}")
            if self.after_epoch is not None:
                self.after_epoch(self)
            if on_epoch is not None:
                on_epoch(h)
        return self.history
