"""The netlist as a model: every number the ngspice circuit of a pcsim network needs.

:func:`netlist_model` reads a :class:`~pcsim.circuit.Circuit` (the network on its chip) and the
clamped values of each presentation, validates them, and returns a :class:`SpiceModel`: plain
numbers and arrays in physical units (farads, siemens, volts, seconds) plus the pcsim objects a
reference run needs. :func:`pcsim.spice.render.render` turns a model into netlist text and
reads nothing else, so a model can be inspected or changed before it is written (the pattern of
:func:`pcsim.engines.brian.model_spec` and its builder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcsim import field as pcfield
from pcsim.circuit import Circuit
from pcsim.network import Network

ACTIVATIONS = ("tanh", "linear", "relu", "leaky_relu", "sigmoid")  # those with a SPICE stage
SWITCH_FRACTION = 1e-4  # input/target ramps last this fraction of tau_x
CLAMP_GAIN = 1e3  # rail clamp conductance, in units of the integrator's g
HUGE_RAIL_V = 1e9  # stands for an absent rail
# phi' of relu / leaky_relu steps at 0, which stops ngspice's integrator ("timestep too small")
# when a unit crosses 0; the netlist smooths the step over about +-KINK_WIDTH activity units
KINK_WIDTH = 1e-5
DEFAULT_G_MIN_S = 0.0  # ideal-chip mapping: SynapseConfig defaults (aihwkit-like PCM pair)
DEFAULT_G_MAX_S = 25e-6
# ideal-substrate value unit (hardware_models.ValueUnitConfig defaults): 1 pF / 10 uS = 100 ns
DEFAULT_C_F = 1e-12
DEFAULT_G_S = 1e-5


@dataclass(frozen=True)
class CrossbarModel:
    """Crossbar ``W_l`` as device pairs: ``G+ - G- = k W`` with ``k = (g_max - g_min) / w_map``,
    read out by a transimpedance stage of feedback ``R_f = a_l / k`` (ohms)."""

    w_map: float  # the weight the full device range represents (w_max)
    g_min_s: float
    g_max_s: float
    g_plus_s: np.ndarray  # (n_out, n_in) siemens
    g_minus_s: np.ndarray  # (n_out, n_in) siemens
    scale: float  # a_l

    @property
    def span_s(self) -> float:
        return self.g_max_s - self.g_min_s

    @property
    def feedback_ohm(self) -> float:
        """``R_f = a_l w_map / (g_max - g_min)``: ``mu = a_l W phi`` in volts."""
        return self.scale * self.w_map / (self.g_max_s - self.g_min_s)


@dataclass(frozen=True)
class SpiceModel:
    """Everything the netlist of one sample circuit holds (shapes per layer ``l = 0..L``).

    Activities are in activity units (1 unit = ``signal_scale_v`` volts); times ``*_tau`` in
    tau_x, ``*_s`` in seconds. ``net`` is a float64 copy whose weights are the weights the chip
    reads (``W_eff``); ``units`` and ``tau_scale`` the chip's per-unit error gains, offsets,
    leaks and time-constant factors."""

    net: Network
    units: pcfield.UnitParams
    tau_scale: list[np.ndarray]
    chip: Any  # hardware_models.Chip or None
    source: str
    capacitance_f: float
    conductance_s: float
    signal_scale_v: float
    rails: tuple[float, float]  # activity units (+-inf: none)
    free: list[bool]
    x_init: list[np.ndarray]  # (n_l,) per layer at t = 0
    x_init_label: str  # "feedforward", "rest" or "given"
    bottom: np.ndarray | None  # (P, n_0) what the input DAC delivers per presentation
    top: np.ndarray | None  # (P, n_L)
    presentation_tau: float
    tau_w: float | None  # tau_x units; None: fixed weights
    crossbars: list[CrossbarModel]
    raw_name: str
    reltol: float
    points_per_tau: int
    print_nodes: bool

    @property
    def chip_name(self) -> str:
        return self.chip.name if self.chip is not None else "none (ideal substrate)"

    @property
    def tau_x_s(self) -> float:
        return self.capacitance_f / self.conductance_s

    @property
    def n_presentations(self) -> int:
        src = self.bottom if self.bottom is not None else self.top
        return 1 if src is None else int(src.shape[0])

    @property
    def presentation_s(self) -> float:
        return self.presentation_tau * self.tau_x_s

    @property
    def switch_s(self) -> float:
        return SWITCH_FRACTION * self.tau_x_s

    @property
    def stop_s(self) -> float:
        return self.n_presentations * self.presentation_s

    @property
    def step_s(self) -> float:
        return self.tau_x_s / self.points_per_tau

    @property
    def rails_v(self) -> tuple[float, float]:
        """The rails in volts (``+-HUGE_RAIL_V`` for an absent rail)."""
        lo, hi = self.rails
        Vs = self.signal_scale_v
        return (
            lo * Vs if math.isfinite(lo) else -HUGE_RAIL_V,
            hi * Vs if math.isfinite(hi) else HUGE_RAIL_V,
        )

    @property
    def weight_gw_s(self) -> float:
        """Learning: the weight nodes' charging conductance ``C / (tau_w tau_x_s)`` (0 fixed)."""
        return self.capacitance_f / (self.tau_w * self.tau_x_s) if self.tau_w is not None else 0.0

    @property
    def capacitances(self) -> dict[str, float]:
        """Value-unit node -> capacitance (F): ``C`` times the unit's tau mismatch factor."""
        return {
            f"x{l}_{i}": self.capacitance_f * float(self.tau_scale[l][i])
            for l, f in enumerate(self.free)
            if f
            for i in range(self.net.sizes[l])
        }


def crossbar_model(circ: Circuit, i: int, W_eff: np.ndarray) -> CrossbarModel:
    """Crossbar ``i`` (``W_{i+1}``) as device pairs for the weights the chip reads."""
    chip = circ.chip
    scale = float(circ.net.scales[i])
    cb = circ.crossbars[i] if circ.crossbars is not None else None
    if cb is not None and hasattr(cb, "n_pairs"):  # hardware_models.mapping
        raise ValueError(
            "the netlist draws one differential pair per weight: chip.architecture."
            "device_pairs > 1 or column_remap cannot be exported"
        )
    if cb is not None and math.isfinite(cb.w_max):
        gp, gm = cb.conductances()
        gain = cb.gain  # what the read circuit sees: the device gain times the programmed g
        stored = cb.weights.astype(np.float64)
        # drift (or anything read_weights adds) scales each device of the pair alike
        ratio = np.divide(W_eff, stored, out=np.ones_like(W_eff), where=stored != 0)
        return CrossbarModel(
            float(cb.w_max),
            cb.config.g_min_s,
            cb.config.g_max_s,
            gain * gp * ratio,
            gain * gm * ratio,
            scale,
        )
    syn = chip.synapses if chip is not None else None
    g_min = syn.g_min_s if syn is not None else DEFAULT_G_MIN_S
    g_max = syn.g_max_s if syn is not None else DEFAULT_G_MAX_S
    peak = float(np.max(np.abs(W_eff))) if W_eff.size else 0.0
    w_map = peak if peak > 0 else 1.0
    k = (g_max - g_min) / w_map
    return CrossbarModel(
        w_map,
        g_min,
        g_max,
        g_min + np.maximum(W_eff, 0) * k,
        g_min + np.maximum(-W_eff, 0) * k,
        scale,
    )


def _clamped(a: np.ndarray | None, n: int, conv) -> np.ndarray | None:
    """Clamped values as ``(P, n)`` float64, as the chip's DAC delivers them (``conv``)."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    a = a.reshape(1, -1) if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != n:
        raise ValueError(f"clamped values need shape (P, {n}), got {a.shape}")
    return conv.dac(a) if conv is not None else a


def _initial_state(
    circ: Circuit,
    ref_net: Network,
    units: pcfield.UnitParams,
    W_eff: list[np.ndarray],
    x_init: str | Sequence[np.ndarray],
    bottom: np.ndarray | None,
    top: np.ndarray | None,
) -> list[np.ndarray]:
    """The activities at t = 0 (see :func:`netlist_model`), clamped layers set."""
    sizes = ref_net.sizes
    if isinstance(x_init, str):
        if x_init not in ("feedforward", "rest"):
            raise ValueError("x_init must be 'feedforward', 'rest' or a list of arrays")
        if x_init == "feedforward" and bottom is not None:
            xs0 = pcfield.feedforward(ref_net, bottom[:1], W_eff, None if circ.ideal else units)
            xs0 = [x[0].copy() for x in xs0]
        else:
            xs0 = [np.zeros(n) for n in sizes]
    else:
        xs0 = [np.asarray(x, dtype=np.float64).reshape(-1).copy() for x in x_init]
        if [len(x) for x in xs0] != list(sizes):
            raise ValueError("x_init needs one array per layer of the network's sizes")
    if bottom is not None:
        xs0[0] = bottom[0].copy()
    if top is not None:
        xs0[-1] = top[0].copy()
    return xs0


def netlist_model(
    circ: Circuit,
    bottom: np.ndarray | None,
    top: np.ndarray | None = None,
    *,
    presentation_time: float = 10.0,
    x_init: str | Sequence[np.ndarray] = "feedforward",
    tau_w: float | None = None,
    source: str = "Python (pcsim.spice.export)",
    raw_name: str = "pcsim_spice.raw",
    reltol: float = 1e-6,
    points_per_tau: int = 20,
    print_nodes: bool = True,
) -> SpiceModel:
    """The model of ``circ``'s netlist; the arguments are those of :func:`pcsim.spice.export`.

    Raises ValueError naming the argument for an activation without a SPICE stage, clamped
    values of the wrong shape, no clamped layer, unequal presentation counts, a non-positive
    ``presentation_time`` or ``tau_w``, or a bad ``x_init``."""
    net = circ.net
    L = net.n_layers
    if net.activation not in ACTIVATIONS:
        raise ValueError(f"no SPICE stage for activation {net.activation!r}")
    chip = circ.chip
    vu = chip.value_units if chip is not None else None
    conv = chip.converters if chip is not None else None

    # ---- what is clamped, for how long ------------------------------------------------------
    bottom_v = _clamped(bottom, net.sizes[0], conv)
    top_v = _clamped(top, net.sizes[L], conv)
    if bottom_v is None and top_v is None:
        raise ValueError("clamp at least one layer (bottom or top)")
    if bottom_v is not None and top_v is not None and len(bottom_v) != len(top_v):
        raise ValueError("bottom and top need the same number of presentations")
    free = [True] * (L + 1)
    if bottom_v is not None:
        free[0] = False
    if top_v is not None:
        free[L] = False
    if presentation_time <= 0:
        raise ValueError("presentation_time must be > 0")
    if tau_w is not None and tau_w <= 0:
        raise ValueError("tau_w must be > 0")

    # ---- the network as the chip presents it -----------------------------------------------
    W_eff = [np.array(W, dtype=np.float64) for W in circ.read_weights()]
    ref_net = net.astype(np.float64)
    ref_net.weights = [W.copy() for W in W_eff]
    units = pcfield.UnitParams(
        error_gain=[a.astype(np.float64) for a in circ.units.error_gain],
        error_offset=[a.astype(np.float64) for a in circ.units.error_offset],
        leak=[a.astype(np.float64) for a in circ.units.leak],
    )
    xs0 = _initial_state(circ, ref_net, units, W_eff, x_init, bottom_v, top_v)

    return SpiceModel(
        net=ref_net,
        units=units,
        tau_scale=[s.astype(np.float64) for s in circ.tau_scale],
        chip=chip,
        source=source,
        capacitance_f=vu.capacitance_f if vu is not None else DEFAULT_C_F,
        conductance_s=vu.conductance_s if vu is not None else DEFAULT_G_S,
        signal_scale_v=vu.signal_scale_v if vu is not None else 1.0,
        rails=circ.rails,
        free=free,
        x_init=xs0,
        x_init_label=x_init if isinstance(x_init, str) else "given",
        bottom=bottom_v,
        top=top_v,
        presentation_tau=float(presentation_time),
        tau_w=None if tau_w is None else float(tau_w),
        crossbars=[crossbar_model(circ, i, W_eff[i]) for i in range(L)],
        raw_name=raw_name,
        reltol=reltol,
        points_per_tau=points_per_tau,
        print_nodes=print_nodes,
    )
