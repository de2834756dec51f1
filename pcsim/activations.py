"""Activation functions phi and their derivatives phi', by name.

Each entry maps a name to ``(phi, dphi)``, both elementwise numpy functions. The same names
are understood by the numba kernels (``pcsim.kernels``) through ``ACTIVATION_CODES``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEAKY_SLOPE = 0.01  # negative slope of leaky ReLU, as jax.nn.leaky_relu (JPC) uses

ArrayFn = Callable[[np.ndarray], np.ndarray]


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def _dtanh(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    return 1.0 - t * t


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _drelu(x: np.ndarray) -> np.ndarray:
    return (x > 0).astype(x.dtype)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, LEAKY_SLOPE * x)


def _dleaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, LEAKY_SLOPE).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _dsigmoid(x: np.ndarray) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-x))
    return s * (1.0 - s)


def _linear(x: np.ndarray) -> np.ndarray:
    return x


def _dlinear(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x)


ACTIVATIONS: dict[str, tuple[ArrayFn, ArrayFn]] = {
    "tanh": (_tanh, _dtanh),
    "relu": (_relu, _drelu),
    "leaky_relu": (_leaky_relu, _dleaky_relu),
    "sigmoid": (_sigmoid, _dsigmoid),
    "linear": (_linear, _dlinear),
}

# integer codes for the numba kernels (same order as above)
ACTIVATION_CODES: dict[str, int] = {name: i for i, name in enumerate(ACTIVATIONS)}


def get(name: str) -> tuple[ArrayFn, ArrayFn]:
    """Return ``(phi, dphi)`` for an activation name; ValueError naming the choices otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        ) from None
