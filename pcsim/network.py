"""Predictive coding networks: topology, parameterisation, initialisation.

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

Convolutional layers (``convs``, :mod:`pcsim.conv`): ``phi @ W_l.T`` becomes the convolution
``conv_l(phi)`` whose crossbar matrix ``W_l`` is the unrolled kernel ``(out_channels, rows)``
(:class:`hardware_models.conv_geometry.ConvGeometry`); ``n_l`` is then ``out_channels *
positions``, and every fan-in above is the kernel's ``rows``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hardware_models.conv_geometry import ConvGeometry
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
    # one entry per weight layer: a ConvGeometry (a convolution, W_l its unrolled kernel
    # (out_channels, rows)) or None (dense); None for the whole tuple: every layer dense
    convs: tuple[ConvGeometry | None, ...] | None = None

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
        if self.convs is not None:
            self.convs = tuple(self.convs)
            if len(self.convs) != L:
                raise ValueError("convs needs one entry (ConvGeometry or None) per weight layer")
            if all(g is None for g in self.convs):
                self.convs = None
        for i, W in enumerate(self.weights):
            g = self.conv(i)
            if g is not None:
                if (g.n_in, g.n_out) != (self.sizes[i], self.sizes[i + 1]):
                    raise ValueError(
                        f"conv layer {i + 1} maps {g.n_in} to {g.n_out} units but the layer "
                        f"sizes are {self.sizes[i]} and {self.sizes[i + 1]}"
                    )
                if self.residual[i]:
                    raise ValueError(f"layer {i + 1} is a convolution: no identity skip")
            want = (self.sizes[i + 1], self.sizes[i]) if g is None else g.weight_shape
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

    @property
    def has_conv(self) -> bool:
        """True when any weight layer is a convolution (the numpy products then)."""
        return self.convs is not None

    def conv(self, i: int) -> ConvGeometry | None:
        """The convolution of weight layer ``i`` (``W_{i+1}``), None where it is dense."""
        return None if self.convs is None else self.convs[i]

    def fan_in(self, i: int) -> int:
        """Inputs summed by one unit of weight layer ``i``: ``sizes[i]`` (dense) or the
        kernel's ``rows`` (conv)."""
        g = self.conv(i)
        return self.sizes[i] if g is None else g.rows

    @property
    def n_macs(self) -> int:
        """Multiply-accumulates of one read of every layer in one direction, per sample:
        ``n_l * n_{l-1}`` (dense) or ``positions * rows * out_channels`` (conv)."""
        return sum(
            W.size if self.conv(i) is None else self.conv(i).macs_per_sample
            for i, W in enumerate(self.weights)
        )

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
            convs=self.convs,
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
    sizes: Sequence[int],
    parameterisation: str,
    residual: Sequence[bool],
    fan_ins: Sequence[int] | None = None,
) -> tuple[float, ...]:
    """The per-layer multipliers ``a_l`` of a parameterisation (JPC's convention).

    ``fan_ins`` (one per weight layer; given for networks with convolutions, where a unit sums
    ``rows = kernel^2 * in_channels`` inputs, not the whole layer below): muPC then scales each
    layer by its own fan-in ``K_l``: ``a_1 = 1/sqrt(K_1)``, hidden ``1/sqrt(K_l)`` (``1/sqrt(K_l
    L)`` with skips), ``a_L = 1/K_L``; for a dense network of equal widths this is the rule
    above (``K_1 = D``, ``K_l = N``)."""
    L = len(sizes) - 1
    if parameterisation == "sp":
        return (1.0,) * L
    if parameterisation != "mupc":
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}")
    if fan_ins is not None:
        k = [int(f) for f in fan_ins]
        if L == 1:
            return (1.0 / math.sqrt(k[0]),)
        skip = L if any(residual) else 1
        hidden = tuple(1.0 / math.sqrt(k[i] * skip) for i in range(1, L - 1))
        return (1.0 / math.sqrt(k[0]),) + hidden + (1.0 / k[-1],)
    D, N = sizes[0], sizes[1]
    if L == 1:
        return (1.0 / math.sqrt(D),)
    hidden = 1.0 / math.sqrt(N * L) if any(residual) else 1.0 / math.sqrt(N)
    return (1.0 / math.sqrt(D),) + (hidden,) * (L - 2) + (1.0 / N,)


def conv_stack(in_shape: tuple[int, int, int], specs: Sequence[dict]) -> list[ConvGeometry]:
    """Chain convolutions from an input ``(channels, height, width)``: each spec a mapping with
    ``channels`` (output channels), ``kernel`` and optional ``stride`` (1) and ``padding``
    (0); each layer's input is the previous one's output. Raises ValueError naming the layer
    whose kernel does not fit its input."""
    c, h, w = in_shape
    out = []
    for j, sp in enumerate(specs):
        try:
            g = ConvGeometry(
                in_channels=c,
                height=h,
                width=w,
                out_channels=int(sp["channels"]),
                kernel=int(sp["kernel"]),
                stride=int(sp.get("stride", 1)),
                padding=int(sp.get("padding", 0)),
            )
        except ValueError as exc:
            raise ValueError(f"conv layer {j + 1} (input {c}x{h}x{w}): {exc}") from None
        out.append(g)
        c, h, w = g.out_channels, g.out_height, g.out_width
    return out


def default_residual(sizes: Sequence[int], parameterisation: str) -> tuple[bool, ...]:
    """muPC uses identity skips on every layer but the first and last (where widths allow)."""
    L = len(sizes) - 1
    if parameterisation != "mupc":
        return (False,) * L
    return tuple(0 < i < L - 1 and sizes[i] == sizes[i + 1] for i in range(L))


def _no_conv_skips(res: tuple[bool, ...], convs) -> tuple[bool, ...]:
    if convs is None:
        return res
    return tuple(r and g is None for r, g in zip(res, convs, strict=True))


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
    convs: Sequence[ConvGeometry | None] | None = None,
) -> Network:
    """Build a network from layer sizes with the parameterisation's initialisation.

    ``residual`` is one flag per weight layer, a single flag for all hidden-to-hidden layers,
    or None for the parameterisation's default (muPC: skips; sp: none; never on a conv layer).
    ``convs``: one ConvGeometry or None (dense) per weight layer; a conv layer's weight is its
    unrolled kernel ``(out_channels, rows)``, initialised with fan-in ``rows``.
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
    convs = None if convs is None else tuple(convs)
    if convs is not None and len(convs) != L:
        raise ValueError("convs needs one entry (ConvGeometry or None) per weight layer")
    if convs is not None and all(g is None for g in convs):
        convs = None
    res = _no_conv_skips(res, convs)
    rng = np.random.default_rng(rng)
    weights, biases = [], []
    for i in range(L):
        g = None if convs is None else convs[i]
        fan_in, fan_out = sizes[i], sizes[i + 1]
        shape = (fan_out, fan_in) if g is None else g.weight_shape
        if g is not None:
            fan_in = g.rows
        if parameterisation == "mupc":
            W = rng.standard_normal(shape)
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            W = rng.uniform(-bound, bound, shape)
            b = rng.uniform(-bound, bound, fan_out)
        weights.append(W)
        biases.append(b)
    return Network(
        sizes=sizes,
        activation=activation,
        weights=weights,
        biases=biases if bias else None,
        scales=parameter_scales(sizes, parameterisation, res, _fan_ins(sizes, convs)),
        residual=res,
        parameterisation=parameterisation,
        mode=mode,
        dtype=dtype,
        convs=convs,
    )


def _fan_ins(sizes: Sequence[int], convs) -> list[int] | None:
    """Per-layer fan-ins of a network with convolutions (None: all dense, the old rule)."""
    if convs is None:
        return None
    return [sizes[i] if g is None else g.rows for i, g in enumerate(convs)]


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
    convs: Sequence[ConvGeometry | None] | None = None,
) -> Network:
    """Build a network from given weight arrays ``W_l`` of shape ``(n_l, n_{l-1})`` (a conv
    layer's: ``(out_channels, rows)`` with its ``ConvGeometry`` in ``convs``)."""
    weights = [np.asarray(W) for W in weights]
    L = len(weights)
    gs = [None] * L if convs is None else list(convs)
    if len(gs) != L:
        raise ValueError("convs needs one entry (ConvGeometry or None) per weight layer")
    sizes = (weights[0].shape[1] if gs[0] is None else gs[0].n_in,) + tuple(
        W.shape[0] if g is None else g.n_out for W, g in zip(weights, gs, strict=True)
    )
    res = tuple(residual) if residual is not None else (False,) * L
    convs = None if all(g is None for g in gs) else tuple(gs)
    if scales is None:
        scales = parameter_scales(sizes, parameterisation, res, _fan_ins(sizes, convs))
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
        convs=convs,
    )
