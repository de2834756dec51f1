"""Fully connected predictive coding networks: topology, parameterisation, initialisation.

Convention (docs/math.md). Layers ``l = 0..L``; ``x_0`` is the bottom of the
prediction chain (input in supervised mode, latent/label in generative mode), ``x_L`` the top
(target in supervised mode, data in generative mode). For ``l = 1..L``::

    mu_l = a_l * phi_{l-1}(x_{l-1}) @ W_l.T  (+ b_l)  (+ x_{l-1} if layer l is residual)

with row-major batches: ``x_l`` has shape ``(B, n_l)`` and ``W_l`` shape ``(n_l, n_{l-1})``.
``phi_0`` is the identity (the clamped input is not squashed), as in JPC's ``make_mlp``; every
other layer uses the network's activation. Python lists are indexed ``i = l - 1``:
``weights[i]`` is ``W_l``, ``scales[i]`` is ``a_l``.

Parameterisations (the same scalings as JPC's ``_get_param_scalings``):

- ``sp``: ``a_l = 1``; weights and biases uniform in ``+-1/sqrt(fan_in)``.
- ``mupc`` (Innocenti, Achour, Buckley 2025): weights ``N(0, 1)``; ``a_1 = 1/sqrt(D_in)``,
  hidden ``a_l = 1/sqrt(N L)`` with identity skips (``1/sqrt(N)`` without), ``a_L = 1/N``,
  where ``N`` is the width of the first hidden layer and ``L`` the number of weight layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pcsim import activations

PARAMETERISATIONS = ("sp", "mupc")
MODES = ("supervised", "generative")


@dataclass
class Network:
    """A PCN's parameters and structure. Mutable: training updates ``weights`` in place."""

    sizes: tuple[int, ...]
    activation: str
    weights: list[np.ndarray]
    biases: list[np.ndarray] | None
    scales: tuple[float, ...]
    residual: tuple[bool, ...]
    parameterisation: str = "sp"
    mode: str = "supervised"
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float64))

    def __post_init__(self) -> None:
        self.sizes = tuple(int(n) for n in self.sizes)
        L = len(self.sizes) - 1
        if L < 1:
            raise ValueError("a network needs at least two layer sizes")
        if any(n < 1 for n in self.sizes):
            raise ValueError(f"layer sizes must be positive, got {list(self.sizes)}")
        activations.get(self.activation)
        if self.parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.dtype = np.dtype(self.dtype)
        if len(self.weights) != L or len(self.scales) != L or len(self.residual) != L:
            raise ValueError("weights, scales and residual need one entry per weight layer")
        for i, W in enumerate(self.weights):
            want = (self.sizes[i + 1], self.sizes[i])
            if W.shape != want:
                raise ValueError(f"weights[{i}] has shape {W.shape}, expected {want}")
            if self.residual[i] and self.sizes[i + 1] != self.sizes[i]:
                raise ValueError(f"layer {i + 1} is residual but changes width")
        self.weights = [np.ascontiguousarray(W, dtype=self.dtype) for W in self.weights]
        if self.biases is not None:
            if len(self.biases) != L:
                raise ValueError("biases need one entry per weight layer")
            self.biases = [np.ascontiguousarray(b, dtype=self.dtype) for b in self.biases]
        self.scales = tuple(float(a) for a in self.scales)
        self.residual = tuple(bool(r) for r in self.residual)

    @property
    def n_layers(self) -> int:
        """Number of weight layers L."""
        return len(self.sizes) - 1

    @property
    def has_bias(self) -> bool:
        return self.biases is not None

    def copy(self) -> Network:
        """A deep copy (parameters duplicated)."""
        return Network(
            sizes=self.sizes,
            activation=self.activation,
            weights=[W.copy() for W in self.weights],
            biases=None if self.biases is None else [b.copy() for b in self.biases],
            scales=self.scales,
            residual=self.residual,
            parameterisation=self.parameterisation,
            mode=self.mode,
            dtype=self.dtype,
        )

    def astype(self, dtype: np.dtype | type) -> Network:
        """A copy with parameters cast to ``dtype``."""
        net = self.copy()
        net.dtype = np.dtype(dtype)
        net.weights = [W.astype(dtype) for W in net.weights]
        if net.biases is not None:
            net.biases = [b.astype(dtype) for b in net.biases]
        return net

    def parameters(self) -> list[np.ndarray]:
        """Weights then biases, the arrays an optimiser updates (in place)."""
        return list(self.weights) + (list(self.biases) if self.biases is not None else [])

    def clamped_layers(self, training: bool) -> tuple[int, ...]:
        """Layers held fixed: both ends while learning; at test time the data end only."""
        L = self.n_layers
        if training:
            return (0, L)
        return (0,) if self.mode == "supervised" else (L,)

    def free_mask(self, training: bool) -> list[bool]:
        """One flag per layer ``0..L``: True where the layer moves (not in
        :meth:`clamped_layers`)."""
        clamped = self.clamped_layers(training)
        return [l not in clamped for l in range(self.n_layers + 1)]

    def bottom_to_top(self, x: np.ndarray, y: np.ndarray | None) -> tuple:
        """``(x_0, x_L)`` of a sample pair: supervised, the input ``x`` at the bottom and the
        target ``y`` on top; generative, the label ``y`` at the bottom and the data on top."""
        return (x, y) if self.mode == "supervised" else (y, x)


def parameter_scales(
    sizes: Sequence[int], parameterisation: str, residual: Sequence[bool]
) -> tuple[float, ...]:
    """The per-layer multipliers ``a_l`` of a parameterisation (JPC's convention)."""
    L = len(sizes) - 1
    if parameterisation == "sp":
        return (1.0,) * L
    if parameterisation != "mupc":
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}")
    D, N = sizes[0], sizes[1]
    if L == 1:
        return (1.0 / math.sqrt(D),)
    hidden = 1.0 / math.sqrt(N * L) if any(residual) else 1.0 / math.sqrt(N)
    return (1.0 / math.sqrt(D),) + (hidden,) * (L - 2) + (1.0 / N,)


def default_residual(sizes: Sequence[int], parameterisation: str) -> tuple[bool, ...]:
    """muPC uses identity skips on every layer but the first and last (where widths allow)."""
    L = len(sizes) - 1
    if parameterisation != "mupc":
        return (False,) * L
    return tuple(0 < i < L - 1 and sizes[i] == sizes[i + 1] for i in range(L))


def build(
    sizes: Sequence[int],
    activation: str = "tanh",
    *,
    parameterisation: str = "sp",
    bias: bool = False,
    residual: Sequence[bool] | bool | None = None,
    mode: str = "supervised",
    dtype: np.dtype | type = np.float64,
    rng: np.random.Generator | int | None = 0,
) -> Network:
    """Build a network from layer sizes with the parameterisation's initialisation.

    ``residual`` is one flag per weight layer, a single flag for all hidden-to-hidden layers,
    or None for the parameterisation's default (muPC: skips; sp: none).
    """
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(f"layer sizes must be at least two positive integers, got {list(sizes)}")
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}")
    L = len(sizes) - 1
    if residual is None:
        res = default_residual(sizes, parameterisation)
    elif isinstance(residual, bool):
        res = tuple(residual and 0 < i < L - 1 and sizes[i] == sizes[i + 1] for i in range(L))
    else:
        res = tuple(bool(r) for r in residual)
    rng = np.random.default_rng(rng)
    weights, biases = [], []
    for i in range(L):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        if parameterisation == "mupc":
            W = rng.standard_normal((fan_out, fan_in))
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            W = rng.uniform(-bound, bound, (fan_out, fan_in))
            b = rng.uniform(-bound, bound, fan_out)
        weights.append(W)
        biases.append(b)
    return Network(
        sizes=sizes,
        activation=activation,
        weights=weights,
        biases=biases if bias else None,
        scales=parameter_scales(sizes, parameterisation, res),
        residual=res,
        parameterisation=parameterisation,
        mode=mode,
        dtype=dtype,
    )


def from_weights(
    weights: Sequence[np.ndarray],
    activation: str = "tanh",
    *,
    biases: Sequence[np.ndarray] | None = None,
    scales: Sequence[float] | None = None,
    residual: Sequence[bool] | None = None,
    parameterisation: str = "sp",
    mode: str = "supervised",
    dtype: np.dtype | type = np.float64,
) -> Network:
    """Build a network from given weight arrays ``W_l`` of shape ``(n_l, n_{l-1})``."""
    weights = [np.asarray(W) for W in weights]
    sizes = (weights[0].shape[1],) + tuple(W.shape[0] for W in weights)
    L = len(weights)
    res = tuple(residual) if residual is not None else (False,) * L
    if scales is None:
        scales = parameter_scales(sizes, parameterisation, res)
    return Network(
        sizes=sizes,
        activation=activation,
        weights=list(weights),
        biases=None if biases is None else [np.asarray(b) for b in biases],
        scales=tuple(scales),
        residual=res,
        parameterisation=parameterisation,
        mode=mode,
        dtype=dtype,
    )
