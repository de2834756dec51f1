"""Digital baselines a designer would accept: FP32, FP16 and INT8 accelerators, at 45 nm and at
a chip's own technology node, priced for backprop training and for inference.

Energy (joules per sample). Arithmetic and memory energies are Horowitz's 45 nm, 0.9 V table
(M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014):

    FP32 multiply 3.7 pJ, add 0.9 pJ;   FP16 multiply 1.1 pJ, add 0.4 pJ;
    8-bit integer multiply 0.2 pJ, 32-bit integer add 0.1 pJ (an INT8 MAC accumulates in
    32 bits, as every INT8 accelerator does; the 8-bit add of 0.03 pJ would undercount it);
    64-bit read of an SRAM of 8 kB 10 pJ, 32 kB 20 pJ, 1 MB 100 pJ; DRAM 1.3-2.6 nJ per
    64-bit access (the low end, 1.3 nJ, is used: the generous choice for digital).

Weights live in the smallest Horowitz SRAM that holds them (training: weights and their
gradient) up to ``sram_capacity_bytes`` = 1 MB, the largest on-chip memory Horowitz prices;
a larger model streams its weights from DRAM every batch. Activations and biases are O(n) per
layer against O(n^2) weights and are neglected, in the digital designs' favour.

Node scaling (Stillmaker and Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration 58, 74-81, 2017): energy at node ``n`` and
supply ``V`` is ``a_n V^2 + b_n V + c_n`` (their per-node quadratic fits, coefficients in
``_STILLMAKER_ENERGY`` below); a 45 nm energy moves to node ``n`` by
``E_n(V) / E_45(V)`` at Horowitz's 0.9 V on both sides (iso-voltage: only the node changes).
Nodes between fitted ones interpolate the fit linearly in the node. The factors this gives at
0.9 V: 45 nm 1, 32 nm 0.654, 22 nm 0.348, 20 nm 0.287, 16 nm 0.226, 14 nm 0.181, 7 nm 0.124
(see :func:`energy_scale`). A lower supply at a newer node would lower digital energy further
(14 nm at 0.8 V: 0.138 of 45 nm at 0.9 V).

Latency (seconds per sample) from a roofline of the batch that was run: each kernel (one per
layer for the forward pass, one per layer for the backward pass, one per layer for the SGD
update) takes ``max(FLOPs / peak, bytes / bandwidth) + overhead``; the batch time is the sum,
divided by the batch size. Peaks are an NVIDIA A100's (datasheet, 2020: FP32 19.5 TFLOP/s,
FP16 tensor cores 312 TFLOP/s, INT8 tensor cores 624 TOP/s, dense), bandwidth its HBM2's
1555 GB/s for DRAM-resident weights or its L2's 5120 B/clk x 1.41 GHz = 7.2 TB/s for on-chip
weights (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020); the overhead is a kernel
launch and synchronisation, 4 us (A. Gray, "Getting started with CUDA Graphs", NVIDIA
Technical Blog 2019: a few microseconds per short kernel). The same roofline is used at every
node: an A100 is a 7 nm design, so latencies at older nodes are optimistic for digital.

FLOPs per sample with ``P`` weights (``P_1`` of them in the first layer): inference ``2P``;
training ``2P`` forward, ``2(P - P_1)`` backward data gradient, ``2P`` weight gradient and
``2P / B`` for the SGD update ``W -= lr G``. 64-bit memory accesses per batch: inference reads
``W`` once (``P w / 8`` for ``w`` bytes per weight); training reads ``W`` forward and backward
(layers >= 2), writes ``G``, and the update reads ``W``, ``G`` and writes ``W``:
``(5P + P - P_1) w / 8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "PRECISIONS",
    "Precision",
    "Roofline",
    "BaselineCost",
    "REFERENCE_NODE_NM",
    "NODE_RANGE_NM",
    "FAIR_TRAIN_PRECISION",
    "FAIR_INFERENCE_PRECISION",
    "energy_scale",
    "memory_for",
    "price",
    "price_layers",
    "standard_baselines",
    "standard_baselines_layers",
]

REFERENCE_NODE_NM = 45.0  # Horowitz ISSCC 2014 energies: 45 nm
REFERENCE_VDD_V = 0.9  # Horowitz ISSCC 2014 energies: 0.9 V

# The fair defaults of the run summary (``baseline_*`` keys). Training: FP16 at the chip's
# node, the mixed-precision arithmetic digital trainers are built with (INT8 backprop does not
# train MLPs reliably, FP32 over-pays). Inference: INT8 at the chip's node, what a digital
# inference accelerator runs, at the 8-bit I/O precision of the analog presets.
FAIR_TRAIN_PRECISION = "fp16"
FAIR_INFERENCE_PRECISION = "int8"


@dataclass(frozen=True)
class Precision:
    """One digital arithmetic: 45 nm, 0.9 V energies (J) and the A100 peak (ops/s)."""

    name: str
    mult_j: float
    add_j: float
    word_bytes: int
    peak_ops_s: float  # FLOP/s (or integer OP/s); a MAC is 2 ops

    @property
    def mac_j(self) -> float:
        """One multiply-accumulate at 45 nm (J)."""
        return self.mult_j + self.add_j


PRECISIONS: dict[str, Precision] = {
    # Horowitz ISSCC 2014: FP32 mult 3.7 pJ, add 0.9 pJ; A100 datasheet FP32 19.5 TFLOP/s
    "fp32": Precision("fp32", 3.7e-12, 0.9e-12, 4, 19.5e12),
    # Horowitz ISSCC 2014: FP16 mult 1.1 pJ, add 0.4 pJ; A100 datasheet FP16 tensor 312 TFLOP/s
    "fp16": Precision("fp16", 1.1e-12, 0.4e-12, 2, 312e12),
    # Horowitz ISSCC 2014: 8-bit mult 0.2 pJ, 32-bit add 0.1 pJ (INT32 accumulator);
    # A100 datasheet INT8 tensor 624 TOP/s
    "int8": Precision("int8", 0.2e-12, 0.1e-12, 1, 624e12),
}

# Horowitz ISSCC 2014: 64-bit read energy by SRAM size (bytes -> J); DRAM 1.3-2.6 nJ (low end)
SRAM_LEVELS: tuple[tuple[float, float], ...] = ((8e3, 10e-12), (32e3, 20e-12), (1e6, 100e-12))
DRAM_ACCESS_J = 1.3e-9
ACCESS_BYTES = 8.0  # 64-bit accesses (Horowitz ISSCC 2014)

# Stillmaker and Baas, Integration 58 (2017): energy = a V^2 + b V + c per node (nm), the
# high-performance (HP) fits from 45 nm down (PTM HP at 45 and 32 nm, ITRS HP below), as a
# digital accelerator is built; 130-65 nm have one bulk fit. One family throughout: mixing the
# low-power 45/32 nm fits with the HP fits below (as an earlier version did) understated the
# 45 -> 22 nm factor by 13 %. Checked entry by entry against a second transcription of the
# paper's table (UCLA NanoCAD's nodeScale tool, 2021).
_STILLMAKER_ENERGY: dict[float, tuple[float, float, float]] = {
    130.0: (7.171, -6.709, 2.904),
    90.0: (4.762, -4.781, 2.092),
    65.0: (3.755, -4.398, 1.975),
    45.0: (1.018, -0.3107, 0.1539),
    32.0: (0.8367, -0.4341, 0.1701),
    20.0: (0.373, -0.1582, 0.04104),
    16.0: (0.2958, -0.1241, 0.03024),
    14.0: (0.2363, -0.09675, 0.02239),
    10.0: (0.2068, -0.09311, 0.02375),
    7.0: (0.1776, -0.09097, 0.02447),
}

NODE_RANGE_NM = (min(_STILLMAKER_ENERGY), max(_STILLMAKER_ENERGY))


@dataclass(frozen=True)
class Roofline:
    """The latency model and on-chip memory of the digital baselines (units: B, B/s, s)."""

    sram_capacity_bytes: float = 1e6  # Horowitz ISSCC 2014: largest on-chip SRAM priced, 1 MB
    dram_bandwidth_Bps: float = 1555e9  # NVIDIA A100 40 GB datasheet: HBM2 1555 GB/s
    sram_bandwidth_Bps: float = 5120 * 1.41e9  # A100 whitepaper: L2 5120 B/clk at 1.41 GHz
    overhead_per_kernel_s: float = 4e-6  # Gray, NVIDIA blog 2019: launch + sync, a few us


@dataclass(frozen=True)
class BaselineCost:
    """One digital design's price for one MLP: energies (J/sample), latencies (s/sample)."""

    name: str
    precision: str
    node_nm: float
    memory: str  # where the weights live: "SRAM 32 kB", "DRAM", ...
    weight_bytes: float
    train_energy_per_sample_j: float
    inference_energy_per_sample_j: float
    train_latency_per_sample_s: float
    inference_latency_per_sample_s: float
    train_bound: str  # "compute", "memory" or "overhead": the largest part of the latency
    inference_bound: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fit(node_nm: float, vdd_v: float) -> float:
    nodes = sorted(_STILLMAKER_ENERGY)
    if not nodes[0] <= node_nm <= nodes[-1]:
        raise ValueError(
            f"node_nm must be within {nodes[0]:g}-{nodes[-1]:g} nm "
            f"(Stillmaker and Baas 2017 fits), got {node_nm!r}"
        )

    def e(n: float) -> float:
        a, b, c = _STILLMAKER_ENERGY[n]
        return a * vdd_v**2 + b * vdd_v + c

    hi = min(n for n in nodes if n >= node_nm)
    lo = max(n for n in nodes if n <= node_nm)
    if hi == lo:
        return e(hi)
    w = (node_nm - lo) / (hi - lo)
    return (1 - w) * e(lo) + w * e(hi)


def energy_scale(
    node_nm: float, from_nm: float = REFERENCE_NODE_NM, vdd_v: float = REFERENCE_VDD_V
) -> float:
    """Factor moving an energy from ``from_nm`` to ``node_nm`` at supply ``vdd_v`` (Stillmaker
    and Baas 2017 fits; linear in the node between fitted nodes)."""
    return _fit(node_nm, vdd_v) / _fit(from_nm, vdd_v)


def _size_label(nbytes: float) -> str:
    return f"{nbytes / 1e6:g} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:g} kB"


def memory_for(nbytes: float, roofline: Roofline | None = None) -> tuple[str, float]:
    """Where ``nbytes`` of weights live and the energy of one 64-bit access there (J):
    the smallest Horowitz SRAM that holds them, else DRAM (at 45 nm)."""
    rl = roofline or Roofline()
    if nbytes <= rl.sram_capacity_bytes:
        for size, joules in SRAM_LEVELS:
            if nbytes <= size:
                return f"SRAM {_size_label(size)}", joules
        return f"SRAM {_size_label(rl.sram_capacity_bytes)}", SRAM_LEVELS[-1][1]
    return "DRAM", DRAM_ACCESS_J


def _kernel(flops: float, nbytes: float, peak: float, bw: float, rl: Roofline) -> dict[str, float]:
    c, m = flops / peak, nbytes / bw
    return {
        "compute": c if c >= m else 0.0,
        "memory": m if m > c else 0.0,
        "overhead": rl.overhead_per_kernel_s,
    }


def _roofline(kernels: list[dict[str, float]], batch: float) -> tuple[float, str]:
    parts = {k: math.fsum(kk[k] for kk in kernels) for k in ("compute", "memory", "overhead")}
    return math.fsum(parts.values()) / batch, max(parts, key=lambda k: parts[k])


def price(
    layer_sizes: Sequence[int],
    batch_size: int,
    precision: str,
    node_nm: float = REFERENCE_NODE_NM,
    roofline: Roofline | None = None,
) -> BaselineCost:
    """Price backprop training and inference of the MLP ``layer_sizes`` (batch
    ``batch_size``) on a digital ``precision`` accelerator at ``node_nm`` (module docstring)."""
    if len(layer_sizes) < 2 or any(int(n) < 1 for n in layer_sizes):
        raise ValueError(f"layer_sizes must be >= 2 positive integers, got {layer_sizes!r}")
    sizes = [int(n) for n in layer_sizes]
    P_l = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return price_layers(P_l, P_l, batch_size, precision, node_nm, roofline)


def price_layers(
    layer_macs: Sequence[int],
    layer_weights: Sequence[int],
    batch_size: int,
    precision: str,
    node_nm: float = REFERENCE_NODE_NM,
    roofline: Roofline | None = None,
) -> BaselineCost:
    """:func:`price` for layers given by their multiply-accumulates per sample (one forward
    pass) and their weight counts: a dense layer has ``macs = weights = n_in * n_out``, a
    convolution ``macs = positions * k^2 C_in * C_out`` (every patch position) and ``weights
    = k^2 C_in * C_out`` (the shared kernel). Arithmetic and FLOPs follow the MACs (backward
    data gradient and weight gradient: one pass each, as the forward), memory traffic and
    the SGD update follow the weights (module docstring, with ``P`` the weights and the
    MAC sums in place of ``P`` in the arithmetic)."""
    if len(layer_macs) < 1 or len(layer_macs) != len(layer_weights):
        raise ValueError(
            f"layer_macs and layer_weights must be equally long and non-empty, got "
            f"{len(layer_macs)} and {len(layer_weights)}"
        )
    if any(int(m) < 1 for m in layer_macs) or any(int(q) < 1 for q in layer_weights):
        raise ValueError(
            f"layer_macs and layer_weights must be positive, got {layer_macs!r}, {layer_weights!r}"
        )
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    rl = roofline or Roofline()
    p = PRECISIONS[precision]
    s = energy_scale(node_nm)
    M_l = [float(m) for m in layer_macs]
    P_l = [float(q) for q in layer_weights]
    M, M1 = math.fsum(M_l), M_l[0]
    P, P1, B, w = math.fsum(P_l), P_l[0], float(batch_size), float(p.word_bytes)

    inf_mem, inf_access_j = memory_for(P * w, rl)
    train_mem, train_access_j = memory_for(2 * P * w, rl)  # weights and their gradient
    macs_inf = M
    macs_train = M + (M - M1) + M + P / B
    acc_inf = P * w / ACCESS_BYTES / B
    acc_train = (5 * P + (P - P1)) * w / ACCESS_BYTES / B
    e_inf = s * (macs_inf * p.mac_j + acc_inf * inf_access_j)
    e_train = s * (macs_train * p.mac_j + acc_train * train_access_j)

    def bw(where: str) -> float:
        return rl.dram_bandwidth_Bps if where == "DRAM" else rl.sram_bandwidth_Bps

    peak = p.peak_ops_s
    fwd = [_kernel(2 * B * m, q * w, peak, bw(inf_mem), rl) for m, q in zip(M_l, P_l, strict=True)]
    t_inf, bound_inf = _roofline(fwd, B)
    bt = bw(train_mem)
    train = [_kernel(2 * B * m, q * w, peak, bt, rl) for m, q in zip(M_l, P_l, strict=True)]
    for i, (m, q) in enumerate(zip(M_l, P_l, strict=True)):
        # backward: weight gradient, data gradient above layer 1
        flops = 2 * B * m * (2 if i > 0 else 1)
        train.append(_kernel(flops, q * w * (2 if i > 0 else 1), peak, bt, rl))
    train += [_kernel(2 * q, 3 * q * w, peak, bt, rl) for q in P_l]  # update W -= lr G
    t_train, bound_train = _roofline(train, B)
    return BaselineCost(
        name=f"{precision}@{node_nm:g}nm",
        precision=precision,
        node_nm=float(node_nm),
        memory=inf_mem if inf_mem == train_mem else f"{inf_mem} (training: {train_mem})",
        weight_bytes=P * w,
        train_energy_per_sample_j=e_train,
        inference_energy_per_sample_j=e_inf,
        train_latency_per_sample_s=t_train,
        inference_latency_per_sample_s=t_inf,
        train_bound=bound_train,
        inference_bound=bound_inf,
    )


def standard_baselines(
    layer_sizes: Sequence[int],
    batch_size: int,
    node_nm: float,
    roofline: Roofline | None = None,
) -> list[BaselineCost]:
    """FP32, FP16 and INT8 at the chip's node ``node_nm`` and at 45 nm (once if equal)."""
    nodes = [float(node_nm)] + ([REFERENCE_NODE_NM] if node_nm != REFERENCE_NODE_NM else [])
    return [price(layer_sizes, batch_size, prec, n, roofline) for n in nodes for prec in PRECISIONS]


def standard_baselines_layers(
    layer_macs: Sequence[int],
    layer_weights: Sequence[int],
    batch_size: int,
    node_nm: float,
    roofline: Roofline | None = None,
) -> list[BaselineCost]:
    """:func:`standard_baselines` for layers given by MACs per sample and weight counts
    (:func:`price_layers`: convolutional networks)."""
    nodes = [float(node_nm)] + ([REFERENCE_NODE_NM] if node_nm != REFERENCE_NODE_NM else [])
    return [
        price_layers(layer_macs, layer_weights, batch_size, prec, n, roofline)
        for n in nodes
        for prec in PRECISIONS
    ]
