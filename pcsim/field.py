"""THE vector field of predictive coding, written once (numpy reference).

For layers ``l = 1..L`` (docs/math.md; shapes in ``pcsim.network``)::

    mu_l  = a_l * phi_{l-1}(x_{l-1}) @ W_l.T (+ b_l) (+ x_{l-1} if residual)
    eps_l = x_l - mu_l
    F     = (1/B) sum_batch sum_l 1/2 ||eps_l||^2
    -dF/dx_l = (1/B) [-eps_l + phi'(x_l) a_{l+1} eps_{l+1} @ W_{l+1} (+ eps_{l+1} if res.)]
    -dF/dW_l = (a_l / B) eps_l.T @ phi_{l-1}(x_{l-1})

The activity flow is written per sample (without the 1/B), because each sample's activities
are their own circuit: ``tau_x dx_l/dt = -B dF/dx_l``. Weights follow the batch-mean gradient.

The error units of a modelled chip may have a gain and an offset, and value units a leak; they
enter as optional per-layer arrays (``UnitParams``), identity by default, so that the fused
kernels and every engine evaluate one and the same field.

A chip whose tiles convert their own partial sums reads every product through its ADCs: the
optional ``reads`` (:class:`hardware_models.partial_sums.TileReads`, ``Circuit.partial_sums``)
then computes ``a_l phi @ W_l.T`` as ``reads.forward(phi, W_l, a_l)`` and ``a_l eps @ W_l`` as
``reads.backward(eps, W_l, a_l)``; omitted, the products are the plain ones.

A convolutional layer (``net.conv(i)`` not None, :mod:`pcsim.conv`) replaces the three dense
products by its convolution: ``phi @ W.T -> conv(phi)``, ``eps @ W -> conv^T(eps)`` and
``eps.T @ phi -> sum_positions eps_patch^T patch`` (:func:`forward_product`,
:func:`backward_product`, :func:`weight_product`), so PC, iPC and BP share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcsim import activations, conv
from pcsim.network import Network


@dataclass
class UnitParams:
    """Per-unit circuit parameters that change the field (one array per layer ``0..L``).

    ``error_gain``/``error_offset``: the error unit computes ``gain * (x - mu) + offset``.
    ``leak``: a value unit loses ``leak * x`` per unit time (in units of ``1/tau_x``).
    Entries for layer 0 of the error arrays are unused (there is no error unit there).
    """

    error_gain: list[np.ndarray]
    error_offset: list[np.ndarray]
    leak: list[np.ndarray]

    @classmethod
    def ideal(cls, sizes: Sequence[int], dtype: np.dtype | type = np.float64) -> UnitParams:
        return cls(
            error_gain=[np.ones(n, dtype) for n in sizes],
            error_offset=[np.zeros(n, dtype) for n in sizes],
            leak=[np.zeros(n, dtype) for n in sizes],
        )

    def is_ideal(self) -> bool:
        return (
            all(np.all(g == 1) for g in self.error_gain)
            and all(np.all(o == 0) for o in self.error_offset)
            and all(np.all(k == 0) for k in self.leak)
        )


def presynaptic(net: Network, xs: Sequence[np.ndarray], i: int) -> np.ndarray:
    """phi_{l-1}(x_{l-1}) for weight layer i = l-1 (identity on layer 0)."""
    if i == 0:
        return xs[0]
    return activations.get(net.activation)[0](xs[i])


def _forward(reads, pre: np.ndarray, W: np.ndarray, scale: float, g=None) -> np.ndarray:
    """``scale * pre @ W.T`` (or ``scale * conv(pre)``), through the tiles' ADCs when
    ``reads`` is given."""
    if g is not None:
        if reads is not None:
            raise ValueError("per-tile ADC reads (chip.architecture.tile_adc_reads) of conv layers")
        return scale * conv.forward(pre, W, g)
    return scale * (pre @ W.T) if reads is None else reads.forward(pre, W, scale)


def forward_product(net: Network, i: int, pre: np.ndarray, W: np.ndarray, reads=None):
    """``a_l phi_{l-1} @ W_l.T`` (dense) or ``a_l conv_l(phi_{l-1})`` for weight layer ``i``:
    (B, n_{l-1}) -> (B, n_l)."""
    return _forward(reads, pre, W, net.scales[i], net.conv(i))


def backward_product(net: Network, i: int, e: np.ndarray, W: np.ndarray, reads=None):
    """``a_l eps_l @ W_l`` (dense) or ``a_l conv_l^T(eps_l)``: (B, n_l) -> (B, n_{l-1})."""
    g = net.conv(i)
    if g is not None:
        if reads is not None:
            raise ValueError("per-tile ADC reads (chip.architecture.tile_adc_reads) of conv layers")
        return net.scales[i] * conv.backward(e, W, g)
    if reads is None:
        return net.scales[i] * (e @ W)
    return reads.backward(e, W, net.scales[i])


def weight_product(net: Network, i: int, e: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """``eps_l.T @ phi_{l-1}`` (dense) or the shared kernel's ``sum_{b,positions}
    eps_patch^T patch`` (conv): the batch sum, shape of ``W_l``, without ``a_l / B``."""
    g = net.conv(i)
    return e.T @ pre if g is None else conv.weight_grad(e, pre, g)


def prediction(
    net: Network, xs: Sequence[np.ndarray], i: int, W: np.ndarray, reads=None
) -> np.ndarray:
    """``mu_{i+1} = a W phi(x_i) (+ b_i) (+ x_i with a skip)``, shape ``(B, n_{i+1})``, from
    the activities ``xs[0..i]`` and the weights ``W`` of layer ``i``."""
    mu = forward_product(net, i, presynaptic(net, xs, i), W, reads)
    if net.biases is not None:
        mu = mu + net.biases[i]
    if net.residual[i]:
        mu = mu + xs[i]
    return mu


def predictions(
    net: Network,
    xs: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None = None,
    reads=None,
) -> list[np.ndarray]:
    """``[mu_1, ..., mu_L]`` from activities ``xs = [x_0, ..., x_L]`` (each ``(B, n_l)``)."""
    Ws = net.weights if weights is None else weights
    return [prediction(net, xs, i, Ws[i], reads) for i in range(net.n_layers)]


def errors(
    net: Network,
    xs: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None = None,
    units: UnitParams | None = None,
    reads=None,
) -> list[np.ndarray]:
    """``[eps_1, ..., eps_L]``, the prediction errors ``x_l - mu_l`` (through the error units)."""
    eps = [xs[i + 1] - mu for i, mu in enumerate(predictions(net, xs, weights, reads))]
    if units is not None:
        eps = [units.error_gain[i + 1] * e + units.error_offset[i + 1] for i, e in enumerate(eps)]
    return eps


def energy(
    net: Network, xs: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
) -> float:
    """The energy ``F = (1/B) sum 1/2 ||eps||^2`` (a float, batch mean)."""
    return energy_of(errors(net, xs, weights), xs[0].shape[0])


def energy_of(eps: Sequence[np.ndarray], batch: int) -> float:
    """``(1/batch) sum_l 1/2 ||eps_l||^2`` from errors already computed (dot products in the
    errors' dtype: a few ulp from a pairwise sum, without temporaries)."""
    return sum(0.5 * float(np.vdot(e, e)) for e in eps) / batch


def layer_energies(
    net: Network, xs: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Energy per weight layer, shape ``(L,)``; sums to :func:`energy`."""
    B = xs[0].shape[0]
    return np.array([0.5 * np.sum(e * e) / B for e in errors(net, xs, weights)])


def activity_drift(
    net: Network,
    xs: Sequence[np.ndarray],
    eps: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None = None,
    units: UnitParams | None = None,
    reads=None,
) -> list[np.ndarray]:
    """Per-sample ``-B dF/dx_l`` for every layer ``0..L`` (engines zero the clamped ones).

    With ``units``, a value unit's leak ``-leak_l * x_l`` is added.
    """
    Ws = net.weights if weights is None else weights
    dphi = activations.get(net.activation)[1]
    L = net.n_layers
    drift = []
    for l in range(L + 1):
        g = -eps[l - 1] if l > 0 else np.zeros_like(xs[0])
        if l < L:
            back = backward_product(net, l, eps[l], Ws[l], reads)
            g = g + (back if l == 0 else dphi(xs[l]) * back)
            if net.residual[l]:
                g = g + eps[l]
        if units is not None:
            g = g - units.leak[l] * xs[l]
        drift.append(g)
    return drift


def weight_drift(
    net: Network, xs: Sequence[np.ndarray], eps: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """``-dF/dW_l`` and ``-dF/db_l`` (batch means): the local, Hebbian-like learning rule."""
    B = xs[0].shape[0]
    dW = [
        (net.scales[i] / B) * weight_product(net, i, eps[i], presynaptic(net, xs, i))
        for i in range(net.n_layers)
    ]
    db = None if net.biases is None else [e.sum(axis=0) / B for e in eps]
    return dW, db


def feedforward(
    net: Network,
    x0: np.ndarray,
    weights: Sequence[np.ndarray] | None = None,
    units: UnitParams | None = None,
    reads=None,
) -> list[np.ndarray]:
    """The bottom-up pass: each layer at the equilibrium of its value and error units with
    top-down input off. Ideal units: ``x_l = mu_l`` (every error zero). With ``units`` (gain g,
    offset o, leak k): ``x_l = (g mu_l - o) / (g + k)``, where the measured error balances the
    leak, so that a chip's own feedforward pass starts where its error units read zero."""
    xs = [np.asarray(x0, dtype=net.dtype)]
    Ws = net.weights if weights is None else weights
    for i in range(net.n_layers):
        mu = prediction(net, xs, i, Ws[i], reads)
        if units is not None:
            g, o, k = units.error_gain[i + 1], units.error_offset[i + 1], units.leak[i + 1]
            mu = ((g * mu - o) / (g + k)).astype(net.dtype, copy=False)
        xs.append(mu)
    return xs


def backprop_gradients(
    net: Network, x0: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray], list[np.ndarray] | None]:
    """Exact backprop of the loss ``(1/B) sum 1/2 ||y - f(x0)||^2``: (loss, -dLoss/dW, -dLoss/db).

    Written independently of the PC field (classic reverse mode), as the baseline that PC
    approximates; returned as descent directions like :func:`weight_drift`.
    """
    dphi = activations.get(net.activation)[1]
    xs = feedforward(net, x0)
    B = x0.shape[0]
    L = net.n_layers
    delta = y - xs[L]  # -dLoss/dx_L per sample
    loss = float(0.5 * np.sum(delta * delta) / B)
    dW: list[np.ndarray] = [None] * L  # type: ignore[list-item]
    db: list[np.ndarray] | None = None if net.biases is None else [None] * L  # type: ignore
    for i in range(L - 1, -1, -1):
        dW[i] = (net.scales[i] / B) * weight_product(net, i, delta, presynaptic(net, xs, i))
        if db is not None:
            db[i] = delta.sum(axis=0) / B
        if i > 0:
            back = backward_product(net, i, delta, net.weights[i])
            delta = dphi(xs[i]) * back + (delta if net.residual[i] else 0.0)
    return loss, dW, db
