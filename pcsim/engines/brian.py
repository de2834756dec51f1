"""The same predictive-coding circuit as Brian2 NeuronGroups and Synapses (cross-check, export).

A pcsim network on a (simple) chip becomes a Brian2 ``Network``:

- one ``NeuronGroup`` per layer ``l`` holds the layer's value units (``x``) and, for ``l >= 1``,
  its error units (``eps``, one per value unit, so they share the group's index);
- one all-to-all ``Synapses`` object per weight layer ``W_l`` (pre: layer ``l-1``, post: layer
  ``l``) holds the weights ``w`` and computes, with *summed variables*, the prediction sum
  ``mu_post = sum_i w_read * phi_pre`` and the top-down error sum ``back_pre = sum_j w_read *
  eps_post``; with learning on, ``w`` is a clock-driven synaptic variable of the iPC rule
  ``tau_w dw/dt = a_l eps_post phi_pre`` (Euler: ``dW = lr a_l eps phi`` per step, ``lr = dt /
  tau_w``, as :class:`pcsim.optim.SGD`);
- residual skips are linked variables (``xskip`` in layer ``l`` reads ``x`` of layer ``l-1``,
  ``eps_up`` in layer ``l-1`` reads ``eps`` of layer ``l``).

Units: time is in seconds with ``1 tau_x = 1 second`` (pcsim's engines run in tau_x units), so
``defaultclock.dt`` is the pcsim ``dt`` in seconds and every activity is dimensionless. A value
unit integrates ``dx/dt = (drift) / tau + sig * xi * tau**-0.5`` with ``tau = tau_unit``
(``tau_scale`` seconds) and ``method='euler'``, which is pcsim's Euler (Euler-Maruyama with
noise: ``x += sig * sqrt(dt/tau) * N(0, 1)``), followed by the output rails as a clip.

Synchronous Euler needs every error computed from ``x(t)`` before any ``x`` or ``w`` changes.
Brian2 orders same-slot objects by ``order`` and then by *name*, so every object gets an
explicit slot and order (never left to names, or the top-down sum reads a stale prediction)::

    before_groups 0  phi = activation(x)            (run_regularly, layers 1..L-1)
    before_groups 1  mu = sum w_read phi_pre         (summed variables, all weight layers)
    before_groups 2  eps = gain (x - mu...) + offset (run_regularly, layers 1..L)
    before_groups 3  back = sum w_read eps_post      (summed variables)
    groups        0  dw/dt (iPC)                     (synaptic state updaters)
    groups        1  dx/dt, db/dt                    (neuron state updaters)
    after_groups  0  x = clip(x, rail_lo, rail_hi)   (run_regularly, free layers)
    end              monitors (the state after each step)

Chip units (tau mismatch, leak, error-unit gain and offset, rails, thermal noise) are per-neuron
parameters. Read noise (:mod:`pcsim.read_noise`): every read line is a neuron variable (``uf``
on an error unit for its prediction, ``ub`` on a value unit for its top-down sum) stepped
exactly by a ``run_regularly`` operation at ``before_groups 0`` (``z = randn(); m = cm u + bm z
+ sm randn(); u = a u + sx z``), and the products add ``rs * sqrt(psq) * mf`` and
``rs * sqrt(esq) * mb``, with the squared input norms ``psq``/``esq`` as summed variables
beside ``mu``/``back``; the lines start from the circuit's OU state and hand it back.
Quantised weights: a chip's crossbar (``hardware_models``) quantises when it is
programmed, so its stored weights already sit on the levels and a frozen-weight run reads them
as they are. For a quantised *read* of full-precision stored weights, ``w_read`` is a
subexpression of ``w`` (:class:`hardware_models.quantisers.UniformQuantiser`), and pcsim reads
through the same function in :class:`pcsim.quantised.QuantisedCircuit`; learning then writes the
stored ``w``, as pcsim does.

What Brian2 cannot express is refused with :class:`BrianUnsupported`: one weight matrix learned
across a batch (a summed variable targets a pre- or postsynaptic group, never another synapse,
so per-sample synapses cannot share one ``w``), weight optimisers other than plain SGD, Heun,
drift (or PCM's age-dependent read noise) of the chip's synapses, learning through a chip's
device update model (pulses with stochastic rounding), and circuits with other read/write
hooks. Frozen batches are expressed by replicating the groups (sample ``b`` of layer ``l`` is
neurons ``b*n_l..``).
The engine does not feed the chip's energy ledger.

The model is held as a plain description (:func:`model_spec`: equations as strings, numbers,
array names) and made into Brian2 objects by :func:`build_brian_objects`, which uses only
``brian2`` and ``numpy``; :mod:`pcsim.export_brian` copies that function's source into the
exported script, so the script and this engine build one and the same model.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hardware_models.partial_sums import CLOCKED_ONLY
from hardware_models.quantisers import UniformQuantiser
from pcsim import field as pcfield
from pcsim import read_noise
from pcsim.activations import LEAKY_SLOPE
from pcsim.circuit import Circuit
from pcsim.conv import CLOCKED_ONLY as CONV_CLOCKED_ONLY
from pcsim.engines.protocol import Batch, Learning, Presentation, learn_after, start
from pcsim.network import Network
from pcsim.quantised import QuantisedCircuit

TARGETS = ("numpy", "cython", "cpp_standalone")

# slots and orders inside one time step (see the module docstring)
ORDER_PHI, ORDER_MU, ORDER_EPS, ORDER_BACK = 0, 1, 2, 3
ORDER_SYN_STATE, ORDER_NEURON_STATE = 0, 1

BATCH_LEARNING_MESSAGE = (
    "Brian2 summed variables cannot express one weight matrix learned across a batch "
    "(a summed variable sums synapses into a pre- or postsynaptic neuron group, never into "
    "another synapse, so the B per-sample copies of a synapse cannot share one learned w); "
    "use batch size 1 with Brian2, or [engine] kind = 'clocked'"
)


class BrianUnsupported(ValueError):
    """The requested model or run cannot be expressed in Brian2; the message says why and what
    to use instead."""


# --- activations as Brian2 expressions (same formulas as pcsim.activations) ------------------
def _phi_expr(act: str, v: str = "x") -> str:
    s = repr(LEAKY_SLOPE)
    return {
        "tanh": f"tanh({v})",
        "relu": f"{v}*int({v} > 0)",
        "leaky_relu": f"({v}*int({v} > 0) + {s}*{v}*int({v} <= 0))",
        "sigmoid": f"1/(1 + exp(-{v}))",
        "linear": v,
    }[act]


def _dphi_expr(act: str, v: str = "x") -> str:
    s = repr(LEAKY_SLOPE)
    return {
        "tanh": f"(1 - tanh({v})**2)",
        "relu": f"int({v} > 0)",
        "leaky_relu": f"(int({v} > 0) + {s}*int({v} <= 0))",
        "sigmoid": f"(1/(1 + exp(-{v})))*(1 - 1/(1 + exp(-{v})))",
        "linear": "1",
    }[act]


# --- read noise: the exact OU step of pcsim.read_noise as a run_regularly operation ----------
# u' = a u + sx z1, m = cm u + bm z1 + sm z2 (the line's mean over the step; ou_* constants)
_OU_STEP = (
    "z{s} = randn()\nm{s} = ou_cm*u{s} + ou_bm*z{s} + ou_sm*randn()\nu{s} = ou_a*u{s} + ou_sx*z{s}"
)


# --- quantised weight reads -----------------------------------------------------------------
def _quantised_read_expr(w: str = "w") -> str:
    """:meth:`UniformQuantiser.read` in Brian2's expression language (which has no round():
    round half up is ``floor(x + 1/2)``); ``qdelta`` and ``qkmax`` are namespace constants."""
    return f"clip(floor({w}/qdelta + 0.5), -qkmax, qkmax)*qdelta"


# --- the model as a plain description ----------------------------------------------------------
@dataclass
class ModelLayout:
    """How the Brian2 arrays map back to pcsim shapes."""

    sizes: tuple[int, ...]
    batch: int
    learning: bool


def _check_circuit(circ: Circuit, learning: bool) -> None:
    """Refuse substrate models that are not plain functions of the stored weights."""
    if circ.net.has_conv:
        raise BrianUnsupported(CONV_CLOCKED_ONLY)
    cls = type(circ)
    reads_plain = cls.read_weights in (Circuit.read_weights, QuantisedCircuit.read_weights)
    if not reads_plain or cls.apply_weight_update is not Circuit.apply_weight_update:
        raise BrianUnsupported(
            f"{cls.__name__} reads or writes weights through a substrate model that the Brian2 "
            "engine cannot express (only the ideal read and a uniform quantiser, "
            "QuantisedCircuit, are translated); use [engine] kind = 'clocked'"
        )
    crossbars = getattr(circ, "crossbars", None) or []
    if all(cb.is_ideal for cb in crossbars):
        if getattr(circ, "partial_sums", None) is not None:
            raise BrianUnsupported(CLOCKED_ONLY)
        return
    syn = crossbars[0].config
    if syn.time_varying_reads:
        raise BrianUnsupported(
            "the chip's synapses drift (or have PCM's age-dependent read noise), a read that "
            "depends on the time since each write, which Brian2 synapses cannot draw; use "
            "[engine] kind = 'clocked'"
        )
    if learning:
        raise BrianUnsupported(
            "the chip writes weights through its device update model (level-stepped pulses "
            "with stochastic rounding, bounds, clipping, stuck devices), which a clock-driven "
            "Brian2 synaptic variable cannot express; iPC on this chip needs [engine] kind = "
            "'clocked' (frozen-weight runs, e.g. PC inference, are fine)"
        )
    if getattr(circ, "partial_sums", None) is not None:
        raise BrianUnsupported(CLOCKED_ONLY)


def _quantiser_of(circ: Circuit) -> UniformQuantiser | None:
    return getattr(circ, "quantiser", None)


def model_spec(
    circ: Circuit,
    x_init: Sequence[np.ndarray],
    free: Sequence[bool],
    dt: float,
    sigma: float = 0.0,
    lr: float | None = None,
    record: bool = True,
    record_weights: bool = False,
) -> tuple[dict, dict[str, np.ndarray], ModelLayout]:
    """Describe the circuit as Brian2 equations: ``(spec, arrays, layout)``.

    ``spec`` is plain data (dicts, lists, strings and numbers; equations one per line);
    ``arrays`` holds every initial value and index array by the names ``spec`` uses.
    Raises :class:`BrianUnsupported`.
    """
    ctx = _spec_context(circ, x_init, free, dt, sigma, lr)
    arrays: dict[str, np.ndarray] = {}
    groups = [_layer_group(ctx, l, arrays, record) for l in range(ctx.net.n_layers + 1)]
    synapses = [_weight_synapses(ctx, i, arrays, record_weights) for i in range(ctx.net.n_layers)]
    spec = {"dt": float(dt), "groups": groups, "synapses": synapses}
    return spec, arrays, ModelLayout(tuple(ctx.net.sizes), ctx.B, ctx.learning)


@dataclass(frozen=True)
class _SpecContext:
    """What :func:`model_spec` builds from, checked: the circuit, the initial activities
    ``xs`` (float64, (B, n_l) per layer), the clamps, learning (``eta = lr / dt``, 1/tau_w in
    1/tau_x units), each layer's noise amplitude (Euler-Maruyama sigma and thermal noise in
    quadrature) and the read noise (``rsig``: (L,) stationary std per crossbar in weight units,
    zeros without; ``ou_ns``: the OU step's namespace constants; ``ou_fwd`` / ``ou_bwd``: the
    lines' starting states, per layer (B, n))."""

    circ: Circuit
    net: Network
    xs: list[np.ndarray]
    free: list[bool]
    B: int
    learning: bool
    eta: float
    lo: float
    hi: float
    noise_amp: list[np.ndarray]
    rsig: np.ndarray
    ou_ns: dict[str, float]
    ou_fwd: list[np.ndarray] | None
    ou_bwd: list[np.ndarray] | None

    def per_unit(self, v: np.ndarray, n: int) -> np.ndarray:
        """A per-unit array (or scalar) of a layer of n units, repeated per sample: (B * n,)."""
        return np.tile(np.broadcast_to(np.asarray(v, np.float64), (n,)), self.B)


def _spec_context(circ: Circuit, x_init, free, dt: float, sigma: float, lr) -> _SpecContext:
    """Check :func:`model_spec`'s arguments (ValueError, BrianUnsupported) and gather what the
    groups and synapses are built from."""
    net: Network = circ.net
    L = net.n_layers
    sizes = net.sizes
    if len(x_init) != L + 1 or len(free) != L + 1:
        raise ValueError(f"x_init and free need one entry per layer 0..{L}")
    xs = [np.asarray(v, dtype=np.float64) for v in x_init]
    if xs[0].ndim != 2:
        raise ValueError("x_init entries must have shape (batch, n_l)")
    B = xs[0].shape[0]
    for l, v in enumerate(xs):
        if v.shape != (B, sizes[l]):
            raise ValueError(f"x_init[{l}] has shape {v.shape}, expected {(B, sizes[l])}")
    learning = lr is not None and lr != 0.0
    if learning and B > 1:
        raise BrianUnsupported(BATCH_LEARNING_MESSAGE)
    _check_circuit(circ, learning)
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    lo, hi = (float(r) for r in circ.rails)
    noise_amp = [np.sqrt(sigma**2 + np.asarray(s, np.float64) ** 2) for s in circ.thermal_sigma]
    # read noise: one OU per read line (pcsim.read_noise), advanced exactly each step by a
    # run_regularly operation; the lines start from (and return to) the circuit's OU state
    rsig = np.zeros(L)
    ou_ns: dict[str, float] = {}
    ou_fwd = ou_bwd = None
    if getattr(circ, "has_read_noise", False):
        rsig = read_noise.stationary_std(circ.read_sigma)
        a_, sx_, cm_, bm_, sm_ = read_noise.ou_coefficients(dt / circ.read_window_tau)
        ou_ns = {"ou_a": a_, "ou_sx": sx_, "ou_cm": cm_, "ou_bm": bm_, "ou_sm": sm_}
        ou_fwd, ou_bwd = circ.read_noise_state(B)
    return _SpecContext(
        circ=circ,
        net=net,
        xs=xs,
        free=[bool(f) for f in free],
        B=B,
        learning=learning,
        eta=float(lr) / dt if learning else 0.0,  # 1/tau_w in 1/tau_x units
        lo=lo,
        hi=hi,
        noise_amp=noise_amp,
        rsig=rsig,
        ou_ns=ou_ns,
        ou_fwd=ou_fwd,
        ou_bwd=ou_bwd,
    )


@dataclass
class _GroupParts:
    """One layer's NeuronGroup as it is assembled: equations, namespace constants, initial
    values (variable -> [array name, unit]), run_regularly operations, linked variables."""

    lines: list[str] = field(default_factory=list)
    ns: dict[str, float] = field(default_factory=dict)
    values: dict[str, list] = field(default_factory=dict)
    ops: list[list] = field(default_factory=list)
    links: list[list] = field(default_factory=list)


def _layer_group(ctx: _SpecContext, l: int, arrays: dict, record: bool) -> dict:
    """Layer l's NeuronGroup: its value units, its error units (l >= 1) and the top-down sum
    its value units read (free layers below the top); adds its arrays to ``arrays``."""
    net, free = ctx.net, ctx.free
    L = net.n_layers
    n = net.sizes[l]
    name = f"layer{l}"
    has_err, has_up = l >= 1, l < L
    skip_in = has_err and net.residual[l - 1]
    skip_out = free[l] and has_up and net.residual[l]
    g = _GroupParts()
    if free[l]:
        _value_unit_dynamics(ctx, g, l, name, arrays)
    else:
        g.lines.append("x : 1")
    g.values["x"] = [f"{name}_x", ""]
    arrays[f"{name}_x"] = ctx.xs[l].reshape(-1).copy()
    if has_err and has_up:  # presynaptic rate phi(x) for the layer above (layer 0: x)
        g.lines.append("phi : 1")
        g.ops.append([f"phi = {_phi_expr(net.activation)}", "before_groups", ORDER_PHI])
    if has_err:
        _error_units(ctx, g, l, name, arrays)
    if free[l] and has_up:
        _top_down_sum(ctx, g, l, name, arrays)
    if skip_out:
        g.lines.append("eps_up : 1 (linked)")
    if free[l] and (math.isfinite(ctx.lo) or math.isfinite(ctx.hi)):
        g.ns["rail_lo"], g.ns["rail_hi"] = ctx.lo, ctx.hi
        g.ops.append(["x = clip(x, rail_lo, rail_hi)", "after_groups", 0])
    if skip_in:
        g.links.append(["xskip", l - 1, "x"])
    if skip_out:
        g.links.append(["eps_up", l + 1, "eps"])
    return {
        "name": name,
        "N": ctx.B * n,
        "model": g.lines,
        "namespace": g.ns,
        "ops": g.ops,
        "state_order": ORDER_NEURON_STATE,
        "values": g.values,
        "links": g.links,
        "record": ["x"] if record else [],
    }


def _value_unit_dynamics(ctx: _SpecContext, g: _GroupParts, l: int, name: str, arrays) -> None:
    """A free layer's ``dx/dt``: minus its own error, plus the scaled top-down sum (times
    phi'(x) above the input; with its read noise), plus a residual skip's error, minus the
    leak, over its time constant; thermal noise when any unit has some."""
    net = ctx.net
    n = net.sizes[l]
    has_err, has_up = l >= 1, l < net.n_layers
    noisy = bool(np.any(ctx.per_unit(ctx.noise_amp[l], n) > 0))
    drift = []
    if has_err:
        drift.append("-eps")
    if has_up:
        g.ns["a_up"] = float(net.scales[l])
        back = "back"
        if ctx.rsig[l] > 0:  # the top-down sum's read noise: its line's step mean
            back = "(back + rs_b*sqrt(esq)*mb)"
        drift.append(f"+ a_up*{back}" + ("" if l == 0 else "*" + _dphi_expr(net.activation)))
    if has_up and net.residual[l]:
        drift.append("+ eps_up")
    drift.append("- leak*x")
    rhs = f"({' '.join(drift)})/tau"
    if noisy:
        rhs += " + sig*xi*tau**-0.5"
    g.lines += [f"dx/dt = {rhs} : 1", "tau : second (constant)", "leak : 1 (constant)"]
    g.values["tau"] = [f"{name}_tau", "second"]
    g.values["leak"] = [f"{name}_leak", ""]
    arrays[f"{name}_tau"] = ctx.per_unit(ctx.circ.tau_scale[l], n)
    arrays[f"{name}_leak"] = ctx.per_unit(ctx.circ.units.leak[l], n)
    if noisy:
        g.lines.append("sig : 1 (constant)")
        g.values["sig"] = [f"{name}_sig", ""]
        arrays[f"{name}_sig"] = ctx.per_unit(ctx.noise_amp[l], n)


def _error_units(ctx: _SpecContext, g: _GroupParts, l: int, name: str, arrays) -> None:
    """Layer l's error units (l >= 1): ``eps = gain (x - (a mu + b + xskip + read noise)) +
    offset``, with the bias learned (``db/dt = eta eps``) or constant and the prediction's read
    line (its OU step and the squared input norm ``psq``)."""
    net = ctx.net
    n = net.sizes[l]
    g.lines += ["mu : 1", "eps : 1", "gain : 1 (constant)", "offset : 1 (constant)"]
    g.ns["a"] = float(net.scales[l - 1])
    pred = "a*mu"
    if net.biases is not None:
        pred += " + b"
        if ctx.learning:
            g.lines.append("db/dt = eta*eps/second : 1")
            g.ns["eta"] = ctx.eta
        else:
            g.lines.append("b : 1 (constant)")
        g.values["b"] = [f"{name}_b", ""]
        arrays[f"{name}_b"] = ctx.per_unit(net.biases[l - 1], n)
    if net.residual[l - 1]:
        g.lines.append("xskip : 1 (linked)")
        pred += " + xskip"
    if ctx.rsig[l - 1] > 0:  # the prediction's read noise: its line's step mean
        pred += " + a*rs_f*sqrt(psq)*mf"
        g.ns["rs_f"] = float(ctx.rsig[l - 1])
        g.ns.update(ctx.ou_ns)
        g.lines += ["uf : 1", "zf : 1", "mf : 1", "psq : 1"]
        g.values["uf"] = [f"{name}_uf", ""]
        arrays[f"{name}_uf"] = ctx.ou_fwd[l - 1].reshape(-1).copy()
        g.ops.append([_OU_STEP.format(s="f"), "before_groups", ORDER_PHI])
    g.ops.append([f"eps = gain*(x - ({pred})) + offset", "before_groups", ORDER_EPS])
    g.values["gain"] = [f"{name}_gain", ""]
    g.values["offset"] = [f"{name}_offset", ""]
    arrays[f"{name}_gain"] = ctx.per_unit(ctx.circ.units.error_gain[l], n)
    arrays[f"{name}_offset"] = ctx.per_unit(ctx.circ.units.error_offset[l], n)


def _top_down_sum(ctx: _SpecContext, g: _GroupParts, l: int, name: str, arrays) -> None:
    """The top-down sum ``back`` a free layer below the top reads, and its read line (OU step,
    squared input norm ``esq``) under read noise."""
    g.lines.append("back : 1")
    if ctx.rsig[l] > 0:
        g.ns["rs_b"] = float(ctx.rsig[l])
        g.ns.update(ctx.ou_ns)
        g.lines += ["ub : 1", "zb : 1", "mb : 1", "esq : 1"]
        g.values["ub"] = [f"{name}_ub", ""]
        arrays[f"{name}_ub"] = ctx.ou_bwd[l].reshape(-1).copy()
        g.ops.append([_OU_STEP.format(s="b"), "before_groups", ORDER_PHI])


def _weight_synapses(ctx: _SpecContext, i: int, arrays: dict, record_weights: bool) -> dict:
    """Weight layer W_{i+1}'s all-to-all Synapses, one block per sample: ``w`` (learned by
    ``dw/dt = eta a eps_post phi_pre`` or constant), its quantised read, the summed prediction
    ``mu_post`` and, above a free layer, the top-down sum ``back_pre`` (with the squared input
    norms under read noise); adds its index and weight arrays to ``arrays``."""
    net, B = ctx.net, ctx.B
    quant = _quantiser_of(ctx.circ)
    n_pre, n_post = net.sizes[i], net.sizes[i + 1]
    name = f"W{i + 1}"
    pre = "x_pre" if i == 0 else "phi_pre"
    lines = []
    ns = {}
    if ctx.learning:
        ns["a"], ns["eta"] = float(net.scales[i]), ctx.eta
        lines.append(f"dw/dt = eta*a*eps_post*{pre}/second : 1 (clock-driven)")
    else:
        lines.append("w : 1 (constant)")
    wread = "w"
    if quant is not None:
        ns["qdelta"], ns["qkmax"] = quant.delta, float(quant.k_max)
        lines.append(f"w_read = {_quantised_read_expr('w')} : 1")
        wread = "w_read"
    summed = {"mu_post": ORDER_MU}
    lines.append(f"mu_post = {wread}*{pre} : 1 (summed)")
    if ctx.rsig[i] > 0:  # the read's input norms, squared
        lines.append(f"psq_post = {pre}**2 : 1 (summed)")
        summed["psq_post"] = ORDER_MU
    if ctx.free[i]:
        lines.append(f"back_pre = {wread}*eps_post : 1 (summed)")
        summed["back_pre"] = ORDER_BACK
        if ctx.rsig[i] > 0:
            lines.append("esq_pre = eps_post**2 : 1 (summed)")
            summed["esq_pre"] = ORDER_BACK
    # synapse s = (b*n_pre + p)*n_post + q connects unit p of sample b to unit q of sample b
    b_idx, p_idx, q_idx = np.meshgrid(
        np.arange(B), np.arange(n_pre), np.arange(n_post), indexing="ij"
    )
    arrays[f"{name}_i"] = (b_idx * n_pre + p_idx).reshape(-1).astype(np.int32)
    arrays[f"{name}_j"] = (b_idx * n_post + q_idx).reshape(-1).astype(np.int32)
    arrays[f"{name}_w"] = np.tile(np.asarray(net.weights[i], np.float64).T.reshape(-1), B)
    return {
        "name": name,
        "pre": i,
        "post": i + 1,
        "model": lines,
        "namespace": ns,
        "summed": summed,
        "state_order": ORDER_SYN_STATE,
        "i": f"{name}_i",
        "j": f"{name}_j",
        "values": {"w": [f"{name}_w", ""]},
        "record": ["w"] if record_weights else [],
    }


# NOTE: this function's source is copied verbatim into exported scripts (pcsim.export_brian):
# it must use only its arguments, brian2 (as b2) and numpy (as np).
def build_brian_objects(spec, arrays, b2):
    """Make Brian2 objects from a model description; returns (network, objects by name,
    monitors by (object name, variable))."""
    clock = b2.Clock(dt=spec["dt"] * b2.second, name="pc_clock")
    objs, monitors = {}, {}
    net = b2.Network()

    def value(entry):
        arr = np.asarray(arrays[entry[0]], dtype=np.float64)
        return arr * getattr(b2, entry[1]) if entry[1] else arr

    for g in spec["groups"]:
        G = b2.NeuronGroup(
            g["N"],
            "\n".join(g["model"]),
            method="euler",
            namespace=dict(g["namespace"]),
            clock=clock,
            order=g["state_order"],
            name=g["name"],
        )
        G.state_updater.when = "groups"
        G.state_updater.order = g["state_order"]
        for var, entry in g["values"].items():
            setattr(G, var, value(entry))
        for k, (code, when, order) in enumerate(g["ops"]):
            G.run_regularly(code, when=when, order=order, name=f"{g['name']}_op{k}", clock=clock)
        objs[g["name"]] = G
        net.add(G)
    for g in spec["groups"]:
        for var, src, src_var in g["links"]:
            setattr(objs[g["name"]], var, b2.linked_var(objs[spec["groups"][src]["name"]], src_var))
    for s in spec["synapses"]:
        pre = objs[spec["groups"][s["pre"]]["name"]]
        post = objs[spec["groups"][s["post"]]["name"]]
        S = b2.Synapses(
            pre,
            post,
            "\n".join(s["model"]),
            method="euler",
            namespace=dict(s["namespace"]),
            clock=clock,
            order=s["state_order"],
            name=s["name"],
        )
        S.connect(i=np.asarray(arrays[s["i"]]), j=np.asarray(arrays[s["j"]]))
        for var, entry in s["values"].items():
            getattr(S, var)[:] = value(entry)
        for target, order in s["summed"].items():
            S.summed_updaters[target].when = "before_groups"
            S.summed_updaters[target].order = order
        if S.state_updater is not None:
            S.state_updater.when = "groups"
            S.state_updater.order = s["state_order"]
        objs[s["name"]] = S
        net.add(S)
    for o in list(spec["groups"]) + list(spec["synapses"]):
        for var in o["record"]:
            M = b2.StateMonitor(
                objs[o["name"]],
                var,
                record=True,
                when="end",
                clock=clock,
                name=f"{o['name']}_{var}_monitor",
            )
            monitors[(o["name"], var)] = M
            net.add(M)
    return net, objs, monitors


# --- results --------------------------------------------------------------------------------
@dataclass
class BrianRun:
    """One Brian2 simulation. Unpacks as ``times, xs, weights = run``.

    ``times``: ``(n_steps,)`` in tau_x units, the time after each step; ``xs[l]``: ``(n_steps,
    B, n_l)``, the activities after each step (empty ``(0, B, n_l)`` when not recorded);
    ``weights``: the weight matrices ``W_l`` at the end; ``weight_traces[i]``: ``(n_steps,
    n_{i+1}, n_i)`` after each step when ``record_weights``; ``final_xs``: the state at the end
    (``(B, n_l)`` per layer); ``final_biases`` with learning on a biased net.
    ``build_seconds``: making the objects and compiling (code generation, cython or C++);
    ``run_seconds``: the time-stepping loop alone, as Brian2 measures it (runtime targets:
    ``Network.run`` without its code generation; standalone: inside the binary).
    """

    times: np.ndarray
    xs: list[np.ndarray]
    weights: list[np.ndarray]
    weight_traces: list[np.ndarray] | None = None
    final_xs: list[np.ndarray] = field(default_factory=list)
    final_biases: list[np.ndarray] | None = None
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    n_steps: int = 0
    # the read lines' OU states at the end: ("f", l) for layer l's predictions, ("b", l) for
    # its top-down sums, each (B, n_l); empty without read noise
    final_read_ou: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.times, self.xs, self.weights))


@contextlib.contextmanager
def _brian_target(b2, target: str, directory: str | None):
    """Select a Brian2 code-generation target for the duration of a block, then restore."""
    prefs = b2.prefs
    old_target = prefs.codegen.target
    old_cache = prefs["codegen.runtime.cython.cache_dir"]
    try:
        if target == "cpp_standalone":
            b2.set_device("cpp_standalone", build_on_run=False, directory=directory)
        else:
            prefs.codegen.target = target
            if target == "cython" and directory is not None:
                prefs["codegen.runtime.cython.cache_dir"] = os.path.join(directory, "cython")
        yield
    finally:
        prefs.codegen.target = old_target
        prefs["codegen.runtime.cython.cache_dir"] = old_cache
        if target == "cpp_standalone":
            from brian2.devices.device import get_device, reset_device

            get_device().reinit()  # forget this project, then return to the previous device
            reset_device()


def _import_brian2():
    try:
        import brian2
    except ImportError as exc:  # pragma: no cover - brian2 is a dependency
        raise BrianUnsupported(
            f"Brian2 is not importable ({exc}); install brian2 (with numpy < 2.4)"
        ) from None
    brian2.prefs.logging.console_log_level = "WARNING"
    return brian2


def _as_circuit(circ_or_net: Circuit | Network) -> Circuit:
    return circ_or_net if isinstance(circ_or_net, Circuit) else Circuit(circ_or_net)


@dataclass
class BrianEngine:
    """Integrates a pcsim circuit with Brian2 (Euler / Euler-Maruyama, ``dt`` in tau_x units).

    ``target``: ``"numpy"`` or ``"cython"`` (Brian2 runtime code generation) or
    ``"cpp_standalone"`` (a compiled C++ project in ``directory``, a temporary one if None;
    for ``"cython"`` the extension cache goes to ``directory/cython`` when given).
    ``seed``: Brian2's random seed for the noise (None: drawn from the circuit's generator).

    :meth:`simulate` returns trajectories; :meth:`present` is the engine contract
    (:mod:`pcsim.engines.protocol`) through which pcsim's algorithms drive Brian2, built on
    :meth:`run` (frozen weights) and :meth:`run_learning` (iPC, SGD), which follow
    :class:`ClockedEngine.run`'s in-place contract (runtime targets reuse the built network).
    """

    dt: float = 0.1
    sigma: float = 0.0
    target: str = "numpy"
    directory: str | None = None
    seed: int | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"Brian2 target must be one of {TARGETS}, got {self.target!r}")
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be a positive finite number, got {self.dt}")
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    def n_steps(self, duration: float) -> int:
        """Steps for a duration (as ClockedEngine.run counts them)."""
        return max(1, int(round(duration / self.dt)))

    def simulate(
        self,
        circ_or_net: Circuit | Network,
        x_init: Sequence[np.ndarray],
        free: Sequence[bool],
        duration: float,
        lr: float | None = None,
        record: bool = True,
        record_weights: bool = False,
    ) -> BrianRun:
        """Run the circuit from ``x_init`` for ``duration`` (tau_x units) with the layers
        ``free[l]`` integrating and the others clamped; with ``lr`` the weights (and biases)
        learn by iPC with SGD step ``lr`` per Euler step (batch 1 only). Does not modify the
        network or ``x_init``; the results are in the returned :class:`BrianRun`."""
        circ = _as_circuit(circ_or_net)
        n = self.n_steps(duration)
        spec, arrays, layout = model_spec(
            circ, x_init, free, self.dt, self.sigma, lr, record, record_weights
        )
        return self._execute(spec, arrays, layout, n, circ)

    # -- the engine contract (pcsim.engines.protocol) -----------------------------------------
    def present(
        self,
        circ: Circuit,
        batch: Batch,
        duration: float,
        learning: Learning | None = None,
    ) -> Presentation:
        """Present ``batch`` for ``duration`` (tau_x units) (:class:`pcsim.engines.protocol.
        Engine`): frozen (:meth:`run`), iPC learning ``during`` it in Brian2's generated code
        (:meth:`run_learning`: batch 1, plain SGD), or PC's step ``after`` it. ``energy`` is
        the energy of the final state (weights as read now, the circuit's units)."""
        xs, _ = start(circ, batch)
        if learning is None:
            return Presentation(xs, steps=self.run(circ, xs, batch.free, duration))
        if learning.when == "after":
            energy = learn_after(
                circ, xs, learning.optimizer, lambda: self.run(circ, xs, batch.free, duration)
            )
            return Presentation(xs, energy, self.n_steps(duration))
        steps = self.run_learning(circ, xs, batch.free, duration, learning.optimizer)
        eps = pcfield.errors(circ.net, xs, circ.read_weights(), circ.units)
        return Presentation(xs, pcfield.energy_of(eps, xs[0].shape[0]), steps)

    def run(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        on_step=None,
    ) -> int:
        """As :meth:`ClockedEngine.run` with frozen weights (PC's settling phase, inference):
        integrates ``xs`` in place and advances ``circ.t``; returns the number of steps.
        Runtime targets reuse the built network between calls of the same shape."""
        if on_step is not None:
            raise BrianUnsupported(
                "Brian2 runs a whole presentation in generated code, so a per-step Python "
                "callback (on_step, which pcsim's iPC uses to learn) cannot run inside it; "
                "use BrianEngine.run_learning(circ, xs, free, duration, optimizer) for iPC"
            )
        return self._run_into(circ, xs, free, duration, None)

    def run_learning(
        self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool], duration: float, optimizer
    ) -> int:
        """One iPC presentation: activities and weights together (batch 1, plain SGD with
        ``optimizer.lr`` per Euler step). Writes ``xs``, the circuit's weights and biases in
        place and advances ``circ.t``. The energy ledger is not charged."""
        from pcsim.optim import SGD

        if not isinstance(optimizer, SGD) or optimizer.momentum != 0.0:
            raise BrianUnsupported(
                f"{type(optimizer).__name__} (momentum or adaptive steps) is not the iPC weight "
                "flow tau_w dW/dt = a eps phi^T that Brian2 integrates; use SGD without "
                "momentum, or [engine] kind = 'clocked'"
            )
        return self._run_into(circ, xs, free, duration, optimizer.lr)

    def _run_into(self, circ, xs, free, duration, lr) -> int:
        n = self.n_steps(duration)
        if getattr(circ, "has_read_noise", False):
            circ.read_noise_catch_up(xs[0].shape[0])
        spec, arrays, layout = model_spec(circ, xs, free, self.dt, self.sigma, lr, record=False)
        res = self._execute(spec, arrays, layout, n, circ, reuse=True)
        for x, v in zip(xs, res.final_xs, strict=True):
            x[...] = v
        if res.final_read_ou:  # the read lines continue from where Brian2 left them
            L = circ.net.n_layers
            t_end = circ.t + n * self.dt
            for (kind, l), u in res.final_read_ou.items():
                if kind == "f":
                    circ.read_ou_fwd[l - 1][...] = u
                    circ.read_ou_t[l - 1] = t_end
                else:
                    circ.read_ou_bwd[l][...] = u
                    circ.read_ou_t[L + l] = t_end
        if lr:
            for W, V in zip(circ.net.weights, res.weights, strict=True):
                W[...] = V  # in place: a chip's crossbar holds the same array
            if res.final_biases is not None:
                for b, v in zip(circ.net.biases, res.final_biases, strict=True):
                    b[...] = v
        circ.t += n * self.dt
        return n

    def _execute(
        self,
        spec: dict,
        arrays: dict,
        layout: ModelLayout,
        n: int,
        circ: Circuit,
        reuse: bool = False,
    ) -> BrianRun:
        b2 = _import_brian2()
        directory = self.directory
        if self.target == "cpp_standalone" and directory is None:
            directory = tempfile.mkdtemp(prefix="pcsim_brian_")
        seed = self.seed
        if seed is None:
            seed = int(circ.rng.integers(2**31 - 1))
        standalone = self.target == "cpp_standalone"
        key = repr(spec) if reuse and not standalone else None
        with _brian_target(b2, self.target, directory):
            t0 = time.perf_counter()
            b2.seed(seed)
            duration = n * spec["dt"] * b2.second
            if key is not None and key in self._cache:
                net, objs, mons = self._cache[key]
                _set_values(spec, arrays, objs, b2)
                build_s = time.perf_counter() - t0
                net.run(duration, namespace={})
                run_s = float(b2.device._last_run_time)  # the loop alone
                return _collect(spec, objs, mons, layout, n, build_s, run_s)
            net, objs, mons = build_brian_objects(spec, arrays, b2)
            if standalone:
                net.run(duration, namespace={})
                b2.device.build(directory=directory, compile=True, run=False)
                build_s = time.perf_counter() - t0
                b2.device.run(directory=directory, with_output=False)
                run_s = float(b2.device._last_run_time)
            else:
                net.run(0 * b2.second, namespace={})  # code generation and compilation
                build_s = time.perf_counter() - t0
                net.run(duration, namespace={})
                run_s = float(b2.device._last_run_time)  # the loop alone (not code generation)
                if key is not None:
                    while len(self._cache) >= 4:
                        self._cache.pop(next(iter(self._cache)))
                    self._cache[key] = (net, objs, mons)
            return _collect(spec, objs, mons, layout, n, build_s, run_s)


def _set_values(spec, arrays, objs, b2) -> None:
    """Load new initial values into already built objects (as build_brian_objects does)."""

    def value(entry):
        arr = np.asarray(arrays[entry[0]], dtype=np.float64)
        return arr * getattr(b2, entry[1]) if entry[1] else arr

    for g in spec["groups"]:
        for var, entry in g["values"].items():
            setattr(objs[g["name"]], var, value(entry))
    for s in spec["synapses"]:
        for var, entry in s["values"].items():
            getattr(objs[s["name"]], var)[:] = value(entry)


def _collect(spec, objs, mons, layout: ModelLayout, n, build_s, run_s) -> BrianRun:
    sizes, B = layout.sizes, layout.batch
    L = len(sizes) - 1
    xs, final_xs = [], []
    for l in range(L + 1):
        name = spec["groups"][l]["name"]
        final_xs.append(np.array(objs[name].x[:], dtype=np.float64).reshape(B, sizes[l]))
        m = mons.get((name, "x"))
        if m is None:
            xs.append(np.zeros((0, B, sizes[l])))
        else:
            xs.append(np.array(m.x, dtype=np.float64).T.reshape(-1, B, sizes[l]))
    weights, traces = [], []
    for i in range(L):
        S = objs[spec["synapses"][i]["name"]]
        # synapses are ordered (sample, pre, post); sample 0 holds the weights
        w = np.array(S.w[:], dtype=np.float64)[: sizes[i] * sizes[i + 1]]
        weights.append(w.reshape(sizes[i], sizes[i + 1]).T.copy())
        m = mons.get((spec["synapses"][i]["name"], "w"))
        if m is not None:
            tr = np.array(m.w, dtype=np.float64)[: sizes[i] * sizes[i + 1]]
            traces.append(tr.T.reshape(-1, sizes[i], sizes[i + 1]).transpose(0, 2, 1).copy())
    biases = None
    if layout.learning and "b" in spec["groups"][1]["values"]:
        biases = [
            np.array(objs[spec["groups"][l]["name"]].b[:], dtype=np.float64)[: sizes[l]]
            for l in range(1, L + 1)
        ]
    read_ou = {}
    for l in range(L + 1):
        g = spec["groups"][l]
        for kind in ("f", "b"):
            if f"u{kind}" in g["values"]:
                u = np.array(getattr(objs[g["name"]], f"u{kind}")[:], dtype=np.float64)
                read_ou[(kind, l)] = u.reshape(B, sizes[l])
    dt = spec["dt"]
    return BrianRun(
        final_read_ou=read_ou,
        times=dt * np.arange(1, n + 1),
        xs=xs,
        weights=weights,
        weight_traces=traces or None,
        final_xs=final_xs,
        final_biases=biases,
        build_seconds=build_s,
        run_seconds=run_s,
        n_steps=n,
    )


# --- pcsim's own run of the same thing, for comparison ----------------------------------------
def clocked_reference(
    circ: Circuit,
    x_init: Sequence[np.ndarray],
    free: Sequence[bool],
    dt: float,
    n_steps: int,
    lr: float | None = None,
    record_weights: bool = False,
    backend: str = "numba",
) -> BrianRun:
    """The same run on pcsim's clocked Euler engine, stepped as ``pcsim.algorithms.IPC`` does
    (each ``ClockedEngine.step`` followed by an SGD weight step from the errors and presynaptic
    rates the step saw). Works on a copy of the network; returns a :class:`BrianRun` with the
    same shapes as :meth:`BrianEngine.simulate` (timings: the whole loop)."""
    from pcsim.engines.clocked import ClockedEngine
    from pcsim.optim import SGD

    work = copy.deepcopy(circ)  # network, crossbars, generator and ledger alike
    net = work.net
    L = net.n_layers
    eng = ClockedEngine("euler", dt=dt, backend=backend)
    opt = SGD(lr) if lr else None
    xs = [np.array(v, dtype=net.dtype, order="C") for v in x_init]
    traj = [np.empty((n_steps,) + v.shape) for v in xs]
    wtr = [np.empty((n_steps,) + W.shape) for W in net.weights] if record_weights else None
    t0 = time.perf_counter()
    for k in range(n_steps):
        rec = eng.step(work, xs, free)
        if opt is not None:
            dW, db = eng.weight_drift(work, rec)
            d = opt.deltas(list(dW) + (list(db) if db is not None else []))
            work.apply_weight_update(d[:L], d[L:] if db is not None else None)
        for l in range(L + 1):
            traj[l][k] = xs[l]
        if wtr is not None:
            for i in range(L):
                wtr[i][k] = net.weights[i]
    elapsed = time.perf_counter() - t0
    return BrianRun(
        times=dt * np.arange(1, n_steps + 1),
        xs=traj,
        weights=[W.copy() for W in net.weights],
        weight_traces=wtr,
        final_xs=[v.copy() for v in xs],
        final_biases=[b.copy() for b in net.biases] if (opt and net.biases is not None) else None,
        run_seconds=elapsed,
        n_steps=n_steps,
    )


# --- what a configuration may ask of Brian2 ------------------------------------------------
def check_config(cfg) -> None:
    """Raise :class:`BrianUnsupported` if a :class:`pcsim.config.RunConfig` asks for what
    Brian2 cannot express (for ``[engine] kind = "brian2"``)."""
    if cfg.engine.method == "heun":
        raise BrianUnsupported(
            "Brian2's summed variables are evaluated once per step, so Heun's second field "
            "evaluation cannot see updated sums; use engine.method = 'euler' (or "
            "'euler_maruyama') with Brian2, or [engine] kind = 'clocked' for Heun"
        )
    if cfg.algorithm.name == "ipc":
        if cfg.learning.batch_size > 1:
            raise BrianUnsupported(BATCH_LEARNING_MESSAGE)
        if cfg.learning.optimizer != "sgd":
            raise BrianUnsupported(
                f"learning.optimizer = {cfg.learning.optimizer!r}: Brian2 learns weights as "
                "the clock-driven iPC flow tau_w dw/dt = a eps phi (plain SGD); use "
                "learning.optimizer = 'sgd' with Brian2, or [engine] kind = 'clocked'"
            )
    syn = cfg.chip_model().synapses
    if syn.time_varying_reads:
        raise BrianUnsupported(
            "chip.synapses: drift (or PCM's age-dependent read noise) makes each read depend "
            "on the time since its write, which Brian2 synapses cannot draw; use [engine] "
            "kind = 'clocked'"
        )
    if cfg.algorithm.name == "ipc" and not syn.is_ideal:
        raise BrianUnsupported(
            "chip.synapses: iPC writes weights through the chip's device update model (pulses, "
            "stochastic rounding, bounds), which Brian2 cannot express; use [engine] kind = "
            "'clocked' (or algorithm.name = 'pc', whose weight step pcsim applies)"
        )
    if cfg.chip_model().tile_reads() is not None:
        raise BrianUnsupported(CLOCKED_ONLY)
