"""Where each part of a learning rule runs on the chip, and what the digital part costs.

The analog array runs one rule by itself: the local weight flow ``tau_w dW/dt = a eps phi^T``
(plain SGD in continuous time), each device integrating the product of its row's error and its
column's input, with write pulses fired by the device's own accumulator. Anything else the rule
needs has no place in the array and runs on a digital co-processor beside it, charged in the
ledger as ``digital_coprocessor`` at the preset's digital costs (``chip.costs.baseline``):

- a per-weight optimiser state (momentum: one word; Adam: two) read and written at every update,
  with its arithmetic;
- the gradient itself, which a non-local rule must form digitally: every error and presynaptic
  value converted (one ADC conversion each, at the chip's ADC energy) and the outer product
  ``eps phi^T`` taken as ``B * n_out * n_in`` multiply-accumulates;
- bias updates (biases are digital registers in pcsim): the error of each unit converted and
  averaged over the batch, then one multiply-add per bias.

Operation counts per weight and update (one word = ``word_bytes``, moved in accesses of
``access_bytes``): momentum SGD ``v = m v + d, w += lr v``: 2 multiplies, 1 add, 2 words;
Adam (Kingma and Ba 2015): ``m``: 2 multiplies, 1 add; ``v``: 3 multiplies, 1 add; the step
``lr m / (sqrt(v) + eps)``: a square root and a division (each priced as a multiply here, a
lower bound: both take several cycles on real hardware), 1 add, 1 multiply; 4 words.
"""

from __future__ import annotations

from dataclasses import dataclass

from pcsim.optim import SGD, Adam


@dataclass(frozen=True)
class DigitalOps:
    """Digital work of one weight update (whole network, one batch)."""

    multiplies: float = 0.0
    adds: float = 0.0
    words: float = 0.0  # state words read or written
    conversions: float = 0.0  # ADC conversions of analog errors and inputs

    def times(self, k: int) -> DigitalOps:
        """The work of ``k`` such updates."""
        return DigitalOps(self.multiplies * k, self.adds * k, self.words * k, self.conversions * k)

    @property
    def is_zero(self) -> bool:
        return not (self.multiplies or self.adds or self.words or self.conversions)


# (multiplies, adds, words) per weight and update of each per-weight optimiser state
_STATE_OPS = {"momentum": (2.0, 1.0, 2.0), "adam": (8.0, 3.0, 4.0)}


def optimizer_state(optimizer: object) -> str | None:
    """The per-weight state a rule keeps (``"adam"``, ``"momentum"``), None for the flow."""
    if isinstance(optimizer, Adam):
        return "adam"
    if isinstance(optimizer, SGD) and optimizer.momentum != 0.0:
        return "momentum"
    return None


def update_ops(
    optimizer: object,
    sizes: tuple[int, ...],
    batch: int,
    bias: bool,
    n_weights: int | None = None,
    macs: int | None = None,
) -> DigitalOps:
    """What one weight update of a network ``sizes`` on a batch of ``batch`` needs digitally
    (zero for the plain flow on a network without biases). ``n_weights`` and ``macs`` (one
    sample's products per direction, :attr:`pcsim.network.Network.n_macs`) are given for
    networks with convolutions, whose kernels are shared: ``n_weights`` stored weights, and a
    gradient formed digitally of ``batch * macs`` products; omitted, dense layers of
    ``sizes``."""
    state = optimizer_state(optimizer)
    n_w = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    n_w = n_w if n_weights is None else n_weights
    n_prod = n_w if macs is None else macs
    n_b = sum(sizes[1:]) if bias else 0
    mul = add = words = conv = 0.0
    if state is not None:
        m, a, w = _STATE_OPS[state]
        mul += m * (n_w + n_b)
        add += a * (n_w + n_b)
        words += w * (n_w + n_b)
        # the gradient, formed digitally: errors and inputs converted, outer products taken
        conv += batch * sum(sizes[1:]) + batch * sum(sizes[:-1])
        mul += batch * n_prod + n_w  # products, then the 1/B scale
        add += batch * n_prod
    elif bias:
        conv += batch * sum(sizes[1:])  # the errors, converted for the digital biases
    if bias:
        add += batch * n_b  # the batch sum of each bias's error
        mul += n_b  # the scale and step
        add += n_b  # b += step
        if state is None:
            words += 2 * n_b  # read and write each bias
    return DigitalOps(mul, add, words, conv)


def describe(
    optimizer: object, bias: bool, batch: int, on_chip: bool, algorithm: str = "ipc"
) -> dict[str, object]:
    """Where each part of the learning rule runs (the run summary's ``learning_rule``).
    ``algorithm``: PC needs a global signal switching every circuit from settling to writing
    (not priced: one wire); iPC and BP (digital) need none on the chip."""
    state = optimizer_state(optimizer)
    if not on_chip:
        where = "exact arithmetic (no chip)"
    elif state is None:
        where = "analog array: local flow, pulses fired by each device's accumulator"
    else:
        where = "digital co-processor computes the step; the array is written with it"
    parts: dict[str, object] = {
        "rule": state or "flow",
        "local": state is None and not bias,
        "weights": where,
        "optimizer_state": (
            f"digital co-processor: {'m, v' if state == 'adam' else 'velocity'} per weight"
            if state is not None
            else "none"
        ),
        "biases": "digital co-processor" if bias else "none",
        "batch_execution": batch_execution(batch),
        "control": (
            "global phase signal: settle with weights frozen, then write"
            if algorithm == "pc"
            else "none: inference and learning run together"
        ),
    }
    return parts


def batch_execution(batch: int) -> str:
    """How a chip runs ``batch`` samples at once (README "What a batch is on a chip")."""
    if batch == 1:
        return "stream: one sample at a time on one circuit"
    return (
        f"replicas: {batch} copies of the circuit, each holding one sample; per weight one "
        f"accumulator sums the copies' local update currents and its pulses write every copy "
        f"({batch}x the area, static power, reads and writes)"
    )
