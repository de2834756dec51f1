"""Weight optimisers. Each turns descent directions (``-dF/dW``) into the weight changes that
the circuit then writes through its substrate's update model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

OPTIMIZERS = ("sgd", "adam")


@dataclass
class SGD:
    """``delta = lr * (-dF/dW)`` (+ heavy-ball momentum). With ``lr = dt / tau_w`` this is the
    Euler step of the weight flow ``tau_w dW/dt = -dF/dW``."""

    lr: float
    momentum: float = 0.0
    velocity: list[np.ndarray] | None = field(default=None, repr=False)

    def deltas(self, directions: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.momentum == 0.0:
            return [self.lr * d for d in directions]
        if self.velocity is None:
            self.velocity = [np.zeros_like(d) for d in directions]
        for v, d in zip(self.velocity, directions, strict=True):
            v *= self.momentum
            v += d
        return [self.lr * v for v in self.velocity]

    def state(self) -> dict[str, object]:
        return {"velocity": self.velocity}


@dataclass
class Adam:
    """Adam (Kingma & Ba 2015) on the gradient ``dF/dW = -direction``."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    step_count: int = 0
    m: list[np.ndarray] | None = field(default=None, repr=False)
    v: list[np.ndarray] | None = field(default=None, repr=False)

    def deltas(self, directions: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.m is None:
            self.m = [np.zeros_like(d) for d in directions]
            self.v = [np.zeros_like(d) for d in directions]
        self.step_count += 1
        c1 = 1.0 - self.beta1**self.step_count
        c2 = 1.0 - self.beta2**self.step_count
        step = self.lr * math.sqrt(c2) / c1
        out = []
        for m, v, d in zip(self.m, self.v, directions, strict=True):
            m *= self.beta1
            m += (1.0 - self.beta1) * d  # d = -gradient, so m tracks -gradient
            v *= self.beta2
            v += (1.0 - self.beta2) * (d * d)
            out.append(step * m / (np.sqrt(v) + self.eps * math.sqrt(c2)))
        return out

    def state(self) -> dict[str, object]:
        return {"m": self.m, "v": self.v, "step_count": self.step_count}


def make_optimizer(name: str, lr: float, **kwargs: float) -> SGD | Adam:
    if name == "sgd":
        return SGD(lr, **kwargs)
    if name == "adam":
        return Adam(lr, **kwargs)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
