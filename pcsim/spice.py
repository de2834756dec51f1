"""Circuit-level truth: a pcsim network on its chip as an ngspice netlist, run and read back.

``export(circ, bottom, top, ...)`` writes the network of a :class:`~pcsim.circuit.Circuit` as a
transistor-free ngspice netlist in the physical units the chip gives (``pcsim export spice
CONFIG.toml -o net.cir`` calls :func:`export_spice_from_config`); :func:`run` runs ngspice in
batch mode and returns the node trajectories in seconds; :func:`reference` integrates the same
transient with pcsim's adaptive engine at the same times, so the two can be compared; and
:func:`energy_report` puts the energy ngspice integrates next to the cost ledger's.

The mapping (one activity unit = ``V_s = chip.value_units.signal_scale_v`` volts; time in seconds,
``tau_x = C / g`` of the chip's value units):

- **value unit** ``x<l>_<i>``: a capacitor ``C_i = C * tau_scale_i`` (the chip's tau mismatch is
  put on C) charged by a transconductor ``g`` driven by the drift written as a voltage,
  ``C_i dV/dt = g (-V(e) + V(d) V(bk) [+ V(e_above), residual] - leak V(x))``, so that
  ``tau_i = C_i / g`` seconds. The chip's output rails are a clamp conductance ``1000 g`` beyond
  ``V_s * rail``: it does nothing inside the rails (pcsim's adaptive engine has no rails, so
  compare transients that stay inside them).
- **error unit** ``e<l>_<i>``: a difference stage (behavioural source)
  ``V(e) = gain_i (V(x) - V(mu)) + V_s offset_i`` with the chip's per-unit gain and offset.
- **activation** ``p<l>_<i> = V_s phi(V(x)/V_s)`` and its derivative ``d<l>_<i> = phi'(V(x)/V_s)``
  (1 V = slope 1) as behavioural sources; layer 0 (identity) is a unity buffer ``p0_<j>``. These
  stages (and the error stages) drive the crossbars, so the value capacitors are never loaded.
  The step of relu's and leaky relu's phi' at 0 is smoothed over about +-1e-5 activity units
  (``KINK_WIDTH``): ngspice cannot step over the discontinuity. Where the drift changes sign
  across 0 a unit slides along the kink; the circuit holds it there, while pcsim's fixed-step
  engines chatter around it (first-order error in dt) and its adaptive engine crawls.
- **crossbar** ``W<l>``: the chip's differential pair per synapse, ``G+ - G- = k W_eff``,
  ``k = (g_max - g_min) / w_max``, with ``W_eff`` the weights as the chip reads them
  (``circ.read_weights()``: quantised, programmed, stuck, drifted; no read noise) and
  ``(G+, G-) = gain * Crossbar.conductances()`` (the programmed conductances times the device
  gain the read circuit sees). Row ``i`` sums ``sum_j (G+_ij - G-_ij) V(p_j)`` into two
  virtual-ground lines held at 0 V by the read-out stage (a transimpedance difference stage,
  ``tia``), whose output is ``V(mu) = R_f (I+ - I-) [+ V(b)] [+ V(x_below), residual]`` with
  ``R_f = a_l / k``, i.e. ``mu = a_l W phi(x) [+ b]`` in volts. The errors are read back through
  the transposed crossbar (``V(bk<l-1>_j) = a_l sum_i (G+ - G-)_ij V(e<l>_i) / k``); SPICE holds
  the same conductances a second time for that direction (a chip would switch its lines).
  An ideal chip has no ``w_max``: the mapping then uses ``w_max = max|W|`` and the chip's (or
  the default) ``g_min``/``g_max``.
- **learning (iPC)**: with ``tau_w`` each weight is a node ``W<l>_<i>_<j>`` (1 V = ``w_max``) on
  a capacitor ``C_w = C`` charged by ``g_w * a_l V(e_i) V(p_j) / (V_s^2 w_max)`` with
  ``g_w = C_w / (tau_w tau_x_s)``, so ``tau_w dW/dt = a_l eps_i phi_j`` (pcsim's weight flow,
  batch of one; biases likewise). The pair is then a voltage-controlled conductance
  ``G+- = g_min + (g_max - g_min) max(+-V(W), 0)`` (a behavioural multiplier
  ``I = G(V(W)) V(p)`` instead of a fixed resistor). The circuit integrates the plain gradient
  flow; the chip's pulsed, quantised writes are not modelled.
- **inputs and targets**: piecewise-linear voltage sources that switch (over ``1e-4 tau_x``) at
  every presentation time; the free units carry over from one presentation to the next (a chip
  has no reset; pcsim's ``IPC(init="carry")``). The initial state is given as capacitor initial
  conditions (``.tran ... uic``): by default the chip's feedforward pass of the first sample.
- **not modelled**: thermal and read noise, converters other than the input DAC's levels, the
  chip's pulsed writes; every source is ideal (a behavioural stage draws no bias current).

Energy: the netlist holds behavioural power meters (``pw_*``, 1 V = 1 W; ``pq_*``, 1 V = 1 A)
that ngspice integrates with ``.measure``: the power the driving stages deliver into each
crossbar (its Joule heating, ``sum G V^2``), the power into the value capacitors, and the charge
they move. :func:`energy_report` sets them beside the cost ledger's numbers for the same transient.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcsim import __version__
from pcsim import field as pcfield
from pcsim.circuit import Circuit
from pcsim.network import Network

__all__ = [
    "SpiceError",
    "SpiceNotFound",
    "SpiceNetlist",
    "SpiceResult",
    "RawData",
    "Reference",
    "Agreement",
    "EnergyRow",
    "INSTALL_HINT",
    "ngspice_path",
    "export",
    "export_spice_from_config",
    "run",
    "read_raw",
    "reference",
    "reference_circuit",
    "agreement",
    "energy_report",
    "format_energy_report",
]

INSTALL_HINT = "ngspice not found: apt-get install ngspice"
SWITCH_FRACTION = 1e-4  # input/target ramps last this fraction of tau_x
CLAMP_GAIN = 1e3  # rail clamp conductance, in units of the integrator's g
HUGE_RAIL_V = 1e9  # stands for an absent rail
# phi' of relu / leaky_relu steps at 0, which stops ngspice's integrator ("timestep too small")
# when a unit crosses 0; the netlist smooths the step over about +-KINK_WIDTH activity units
KINK_WIDTH = 1e-5
DEFAULT_G_MIN_S = 0.0  # ideal-chip mapping: SynapseConfig defaults (aihwkit-like PCM pair)
DEFAULT_G_MAX_S = 25e-6


class SpiceError(RuntimeError):
    """ngspice failed, or its output could not be read."""


class SpiceNotFound(SpiceError):
    """The ngspice binary is not installed (``apt-get install ngspice``)."""


def ngspice_path() -> str | None:
    """The ngspice executable on PATH (``PCSIM_NGSPICE`` overrides), or None."""
    env = os.environ.get("PCSIM_NGSPICE")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return shutil.which("ngspice")


# ---------------------------------------------------------------------------------------------
# netlist
# ---------------------------------------------------------------------------------------------
@dataclass
class SpiceNetlist:
    """An exported netlist and what it was made from (enough to rebuild the same transient in
    pcsim: :func:`reference`). Node names are lower case, as ngspice reports them."""

    text: str
    net: Network  # float64 copy holding the weights the chip reads (W_eff)
    tau_scale: list[np.ndarray]
    units: pcfield.UnitParams
    chip: Any  # hardware_models.Chip or None
    free: list[bool]
    x_init: list[np.ndarray]  # activities at t = 0, (n_l,) per layer
    bottom: np.ndarray | None  # (P, n_0) clamped bottom values per presentation
    top: np.ndarray | None  # (P, n_L)
    presentation_tau: float
    tau_w: float | None
    tau_x_s: float
    signal_scale_v: float
    w_map: list[float]  # weight represented by the full device range (w_max) per crossbar
    conductances: list[tuple[np.ndarray, np.ndarray]]  # (G+, G-) in siemens per crossbar
    capacitances: dict[str, float]  # value-unit node -> C (F)
    raw_name: str
    rails: tuple[float, float]

    @property
    def n_presentations(self) -> int:
        src = self.bottom if self.bottom is not None else self.top
        return 1 if src is None else int(src.shape[0])

    @property
    def duration_tau(self) -> float:
        return self.presentation_tau * self.n_presentations

    @property
    def duration_s(self) -> float:
        return self.duration_tau * self.tau_x_s

    @property
    def learning(self) -> bool:
        return self.tau_w is not None

    def value_nodes(self, layer: int) -> list[str]:
        return [f"x{layer}_{i}" for i in range(self.net.sizes[layer])]

    def weight_nodes(self, i: int) -> list[list[str]]:
        """Node names of crossbar ``i`` (``W_{i+1}``), row-major, in learning netlists."""
        n_out, n_in = self.net.weights[i].shape
        return [[f"w{i + 1}_{r}_{c}" for c in range(n_in)] for r in range(n_out)]

    @property
    def free_nodes(self) -> list[str]:
        return [n for l, f in enumerate(self.free) if f for n in self.value_nodes(l)]

    def activities(self, result: SpiceResult, layer: int) -> np.ndarray:
        """Layer ``layer``'s activities over time, ``(n_t, n_l)``, in activity units."""
        return np.stack([result.traces[n] for n in self.value_nodes(layer)], axis=1) / (
            self.signal_scale_v
        )

    def weights(self, result: SpiceResult, i: int) -> np.ndarray:
        """Crossbar ``i``'s weights over time, ``(n_t, n_out, n_in)``, in weight units."""
        if not self.learning:
            raise ValueError("the netlist has fixed weights (export with tau_w to learn)")
        rows = self.weight_nodes(i)
        arr = np.stack([np.stack([result.traces[n] for n in r], axis=1) for r in rows], axis=1)
        return arr * self.w_map[i]

    def write(self, path: str | Path) -> Path:
        """Write the netlist text to ``path``; returns the path."""
        p = Path(path)
        p.write_text(self.text, encoding="utf-8")
        return p


def _fmt(v: float) -> str:
    return f"{float(v):.12g}"


def _activation_subckt(name: str) -> str:
    """phi and phi' stages: p = V_s phi(V(x)/V_s), d = phi'(V(x)/V_s) (1 V = slope 1)."""
    u = "(v(x)/{vs})"
    exprs = {
        "tanh": (f"{{vs}}*tanh({u})", f"1 - tanh({u})*tanh({u})"),
        "linear": ("v(x)", "1"),
        "relu": ("max(v(x), 0)", f"0.5 + 0.5*tanh(v(x)/({KINK_WIDTH:g}*{{vs}}))"),
        "leaky_relu": (
            "v(x) > 0 ? v(x) : 0.01*v(x)",
            f"0.01 + 0.99*(0.5 + 0.5*tanh(v(x)/({KINK_WIDTH:g}*{{vs}})))",
        ),
        "sigmoid": (f"{{vs}}/(1 + exp(-{u}))", f"1/(1 + exp(-{u})) * (1 - 1/(1 + exp(-{u})))"),
    }
    if name not in exprs:
        raise ValueError(f"no SPICE stage for activation {name!r}")
    p, d = exprs[name]
    return (
        f"* activation stage: p = V_s phi(V(x)/V_s) through a current sense (Vs: the current it\n"
        f"* delivers to the crossbar), d = phi'(V(x)/V_s) (1 V = slope 1)\n"
        f".subckt act_{name} p d x params: vs=1\n"
        f"Bp pi 0 V = {p}\n"
        f"Vs pi p 0\n"
        f"Bd d 0 V = {d}\n"
        f".ends act_{name}\n"
    )


_SUBCKTS = """\
* value unit: C dV(x)/dt = g (-V(e) + V(d) V(bk) + V(r) - leak V(x)), tau = C / g; the rails are
* a clamp conductance gclamp beyond lo/hi; Vc senses the capacitor current
.subckt value_unit x e bk d r params: c=1e-12 g=1e-5 leak=0 lo=-1e9 hi=1e9 gclamp=1e-2 ic=0
Vc x xc 0
C1 xc 0 {c} IC={ic}
Bg 0 x I = {g}*(-v(e) + v(d)*v(bk) + v(r) - {leak}*v(x))
+ - {gclamp}*(max(v(x)-{hi}, 0) + min(v(x)-{lo}, 0))
.ends value_unit

* error unit: difference stage V(e) = gain (V(x) - V(mu)) + off; Vs senses the current it
* delivers to the transposed crossbar
.subckt error_unit e x mu params: gain=1 off=0
Be ei 0 V = {gain}*(v(x) - v(mu)) + {off}
Vs ei e 0
.ends error_unit

* unity buffer (layer 0 has no activation): drives the first crossbar from the input node
.subckt buffer p x
Bp pi 0 V = v(x)
Vs pi p 0
.ends buffer

* crossbar read-out: two virtual-ground lines (0 V sources sense the summed currents) and a
* transimpedance difference stage V(out) = rf (I+ - I-) + V(res) + V(bias)
.subckt tia out sp sm res bias params: rf=1e5
Vp sp 0 0
Vm sm 0 0
Bo out 0 V = {rf}*(i(Vp) - i(Vm)) + v(res) + v(bias)
.ends tia
"""

_LEARN_SUBCKTS = """\
* learning synapse (iPC): weight node w (1 V = w_max) on Cw, charged by the local product
* gw * k * V(e) V(p), k = a_l / (V_s^2 w_max); the differential pair is a voltage-controlled
* conductance G+- = gmin + gspan max(+-V(w), 0) read forward (p -> row lines sfp/sfm)
.subckt synapse_fwd w p e sfp sfm params: gmin=0 gspan=2.5e-5 cw=1e-12 gw=1e-7 k=1 ic=0
Cw w 0 {cw} IC={ic}
Bl 0 w I = {gw}*{k}*v(e)*v(p)
Bfp p sfp I = ({gmin} + {gspan}*max(v(w), 0))*v(p, sfp)
Bfm p sfm I = ({gmin} + {gspan}*max(-v(w), 0))*v(p, sfm)
.ends synapse_fwd

* the same, also read backward (e -> column lines sbp/sbm) for a free presynaptic layer
.subckt synapse w p e sfp sfm sbp sbm params: gmin=0 gspan=2.5e-5 cw=1e-12 gw=1e-7 k=1 ic=0
Cw w 0 {cw} IC={ic}
Bl 0 w I = {gw}*{k}*v(e)*v(p)
Bfp p sfp I = ({gmin} + {gspan}*max(v(w), 0))*v(p, sfp)
Bfm p sfm I = ({gmin} + {gspan}*max(-v(w), 0))*v(p, sfm)
Bbp e sbp I = ({gmin} + {gspan}*max(v(w), 0))*v(e, sbp)
Bbm e sbm I = ({gmin} + {gspan}*max(-v(w), 0))*v(e, sbm)
.ends synapse

* learning bias: V(b) = V_s b on Cb, charged by gw V(e)
.subckt bias_learn b e params: cb=1e-12 gw=1e-7 ic=0
Cb b 0 {cb} IC={ic}
Bl 0 b I = {gw}*v(e)
.ends bias_learn
"""


def _crossbar_mapping(
    circ: Circuit, i: int, W_eff: np.ndarray
) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """(w_map, g_min, g_max, G+, G-) of crossbar ``i`` for the weights the chip reads."""
    chip = circ.chip
    cb = circ.crossbars[i] if circ.crossbars is not None else None
    if cb is not None and math.isfinite(cb.w_max):
        g_min, g_max = cb.config.g_min_s, cb.config.g_max_s
        gp, gm = cb.conductances()
        gain = cb.gain  # what the read circuit sees: the device gain times the programmed g
        stored = cb.weights.astype(np.float64)
        # drift (or anything read_weights adds) scales each device of the pair alike
        ratio = np.divide(W_eff, stored, out=np.ones_like(W_eff), where=stored != 0)
        return float(cb.w_max), g_min, g_max, gain * gp * ratio, gain * gm * ratio
    syn = chip.synapses if chip is not None else None
    g_min = syn.g_min_s if syn is not None else DEFAULT_G_MIN_S
    g_max = syn.g_max_s if syn is not None else DEFAULT_G_MAX_S
    peak = float(np.max(np.abs(W_eff))) if W_eff.size else 0.0
    w_map = peak if peak > 0 else 1.0
    k = (g_max - g_min) / w_map
    return w_map, g_min, g_max, g_min + np.maximum(W_eff, 0) * k, g_min + np.maximum(-W_eff, 0) * k


def _pwl(values: np.ndarray, T_s: float, tr_s: float) -> str:
    pts = [(0.0, values[0])]
    for k in range(1, len(values)):
        t = k * T_s
        pts.append((t, values[k - 1]))
        pts.append((t + tr_s, values[k]))
    body = " ".join(f"{_fmt(t)} {_fmt(v)}" for t, v in pts)
    return f"PWL({body})"


def export(
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
) -> SpiceNetlist:
    """The netlist of ``circ`` (one sample circuit) driven by a sequence of presentations.

    ``bottom`` (P, n_0) and ``top`` (P, n_L) are the values clamped on layer 0 and layer L at
    each presentation (activity units; ``None`` leaves that layer free; 1-D means one
    presentation), held ``presentation_time`` tau_x each. ``x_init``: ``"feedforward"`` (the
    chip's bottom-up pass of the first presentation, the top then clamped), ``"rest"`` (free
    units at 0 V) or a list of per-layer arrays. ``tau_w`` (tau_x units) turns learning on.
    ``raw_name`` is the raw file the netlist's control block writes (ngspice's working dir).
    """
    net = circ.net
    L = net.n_layers
    if net.activation not in ("tanh", "linear", "relu", "leaky_relu", "sigmoid"):
        raise ValueError(f"no SPICE stage for activation {net.activation!r}")
    chip = circ.chip
    vu = chip.value_units if chip is not None else None
    C = vu.capacitance_f if vu is not None else 1e-12
    g = vu.conductance_s if vu is not None else 1e-5
    Vs = vu.signal_scale_v if vu is not None else 1.0
    tau_x_s = C / g
    conv = chip.converters if chip is not None else None

    def _rows(a, n):
        if a is None:
            return None
        a = np.asarray(a, dtype=np.float64)
        a = a.reshape(1, -1) if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != n:
            raise ValueError(f"clamped values need shape (P, {n}), got {a.shape}")
        return conv.dac(a) if conv is not None else a  # what the chip's DAC delivers

    bottom_v, top_v = _rows(bottom, net.sizes[0]), _rows(top, net.sizes[L])
    if bottom_v is None and top_v is None:
        raise ValueError("clamp at least one layer (bottom or top)")
    if bottom_v is not None and top_v is not None and len(bottom_v) != len(top_v):
        raise ValueError("bottom and top need the same number of presentations")
    P = len(bottom_v if bottom_v is not None else top_v)
    free = [True] * (L + 1)
    if bottom_v is not None:
        free[0] = False
    if top_v is not None:
        free[L] = False
    if presentation_time <= 0:
        raise ValueError("presentation_time must be > 0")
    if tau_w is not None and tau_w <= 0:
        raise ValueError("tau_w must be > 0")

    W_eff = [np.array(W, dtype=np.float64) for W in circ.read_weights()]
    ref_net = net.astype(np.float64)
    ref_net.weights = [W.copy() for W in W_eff]
    biases = None if net.biases is None else [b.astype(np.float64) for b in net.biases]
    units = pcfield.UnitParams(
        error_gain=[a.astype(np.float64) for a in circ.units.error_gain],
        error_offset=[a.astype(np.float64) for a in circ.units.error_offset],
        leak=[a.astype(np.float64) for a in circ.units.leak],
    )
    tau_scale = [s.astype(np.float64) for s in circ.tau_scale]

    # initial state
    if isinstance(x_init, str):
        if x_init not in ("feedforward", "rest"):
            raise ValueError("x_init must be 'feedforward', 'rest' or a list of arrays")
        if x_init == "feedforward" and bottom_v is not None:
            xs0 = pcfield.feedforward(ref_net, bottom_v[:1], W_eff, None if circ.ideal else units)
            xs0 = [x[0].copy() for x in xs0]
        else:
            xs0 = [np.zeros(n) for n in net.sizes]
    else:
        xs0 = [np.asarray(x, dtype=np.float64).reshape(-1).copy() for x in x_init]
        if [len(x) for x in xs0] != list(net.sizes):
            raise ValueError("x_init needs one array per layer of the network's sizes")
    if bottom_v is not None:
        xs0[0] = bottom_v[0].copy()
    if top_v is not None:
        xs0[L] = top_v[0].copy()

    T_s = presentation_time * tau_x_s
    tr_s = SWITCH_FRACTION * tau_x_s
    t_stop = P * T_s
    tstep = tau_x_s / points_per_tau
    rails = circ.rails
    lo_v = rails[0] * Vs if math.isfinite(rails[0]) else -HUGE_RAIL_V
    hi_v = rails[1] * Vs if math.isfinite(rails[1]) else HUGE_RAIL_V

    mappings = [_crossbar_mapping(circ, i, W_eff[i]) for i in range(L)]
    sizes = net.sizes
    chip_name = chip.name if chip is not None else "none (ideal substrate)"
    lines: list[str] = []
    add = lines.append

    # ---- header ---------------------------------------------------------------------------
    arch = "-".join(map(str, sizes))
    add(
        f"* pcsim {__version__}: predictive-coding network {arch} ({net.activation}, "
        f"{net.parameterisation}, {net.mode}) on chip '{chip_name}'"
    )
    add(f"* from: {source}")
    add("* An ngspice netlist in the chip's physical units (docstring of pcsim/spice.py):")
    add(
        f"*   value unit x<l>_<i>: C = {C:.4g} F (x per-unit tau mismatch), g = {g:.4g} S, "
        f"tau_x = C/g = {tau_x_s:.4g} s"
    )
    add(f"*   1 activity unit = {Vs:g} V; rails {rails[0]:g} .. {rails[1]:g} activity units")
    add("*   error unit e<l>_<i> = gain (x - mu) + offset; mu<l>_<i> = crossbar read-out (tia)")
    add("*   p<l>_<i> = V_s phi(x / V_s), d<l>_<i> = phi'(x / V_s); bk<l>_<j> = a W^T e (volts)")
    for i, (w_map, g_min, g_max, _, _) in enumerate(mappings):
        add(
            f"*   crossbar W{i + 1} ({sizes[i + 1]}x{sizes[i]}): G+ - G- = k W, "
            f"k = (g_max - g_min)/w_max = ({g_max:.4g} - {g_min:.4g}) S / {w_map:.6g}; "
            f"R_f = a/k = {net.scales[i] * w_map / (g_max - g_min):.6g} Ohm"
        )
    clamp_txt = ", ".join(
        t
        for t, on in (
            ("layer 0 (bottom)", bottom_v is not None),
            (f"layer {L} (top)", top_v is not None),
        )
        if on
    )
    add(
        f"*   clamped: {clamp_txt}; {P} presentation(s) of {presentation_time:g} tau_x = "
        f"{T_s:.4g} s; initial state: {x_init if isinstance(x_init, str) else 'given'}"
    )
    if tau_w is not None:
        add(
            f"*   learning (iPC): weight nodes w<l>_<i>_<j> (1 V = w_max), tau_w = {tau_w:g} tau_x"
            f" = {tau_w * tau_x_s:.4g} s"
        )
    else:
        add("*   weights fixed (resistor pairs RW<l>p/m_<i>_<j>, backward RB<l>p/m_<i>_<j>)")
    add("*   meters: pw_* in watts (1 V = 1 W), pq_* in amperes; .measure integrates them")
    add("*   not modelled: thermal and read noise, pulsed writes, ADCs (all sources ideal)")
    add(f"* run: ngspice -b <this file>   (prints the .measure lines below; writes {raw_name})")
    add("")
    add(_SUBCKTS)
    acts = {net.activation} if L > 1 else set()
    for a in sorted(acts):
        add(_activation_subckt(a))
    if tau_w is not None:
        add(_LEARN_SUBCKTS)

    # ---- sources and units ----------------------------------------------------------------
    need_one = free[0]
    if need_one:
        add("* phi' of the identity layer 0")
        add("Vone one 0 DC 1")
    capacitances: dict[str, float] = {}
    for l in range(L + 1):
        n = sizes[l]
        add(f"* ---- layer {l} ({n} units, {'free' if free[l] else 'clamped'})")
        for i in range(n):
            x = f"x{l}_{i}"
            if not free[l]:
                vals = (bottom_v if l == 0 else top_v)[:, i] * Vs
                add(f"Vx{l}_{i} {x} 0 {_pwl(vals, T_s, tr_s)}")
            else:
                e = f"e{l}_{i}" if l > 0 else "0"
                bk = f"bk{l}_{i}" if l < L else "0"
                d = ("one" if l == 0 else f"d{l}_{i}") if l < L else "0"
                r = f"e{l + 1}_{i}" if (l < L and net.residual[l]) else "0"
                c_i = C * float(tau_scale[l][i])
                capacitances[x] = c_i
                add(
                    f"Xx{l}_{i} {x} {e} {bk} {d} {r} value_unit c={_fmt(c_i)} g={_fmt(g)} "
                    f"leak={_fmt(units.leak[l][i])} lo={_fmt(lo_v)} hi={_fmt(hi_v)} "
                    f"gclamp={_fmt(CLAMP_GAIN * g)} ic={_fmt(xs0[l][i] * Vs)}"
                )
            if l < L:
                if l == 0:
                    add(f"Xp0_{i} p0_{i} {x} buffer")
                else:
                    add(f"Xp{l}_{i} p{l}_{i} d{l}_{i} {x} act_{net.activation} vs={_fmt(Vs)}")
            if l > 0:
                add(
                    f"Xe{l}_{i} e{l}_{i} {x} mu{l}_{i} error_unit "
                    f"gain={_fmt(units.error_gain[l][i])} off={_fmt(units.error_offset[l][i] * Vs)}"
                )

    # ---- crossbars -------------------------------------------------------------------------
    gw = C / (tau_w * tau_x_s) if tau_w is not None else 0.0
    for k in range(L):
        l = k + 1
        w_map, g_min, g_max, gp, gm = mappings[k]
        span = g_max - g_min
        rf = net.scales[k] * w_map / span
        n_out, n_in = W_eff[k].shape
        back = free[k]
        add(
            f"* ---- crossbar W{l}: {n_out}x{n_in}, read forward into mu{l}"
            + (f", backward into bk{k}" if back else "")
        )
        for i in range(n_out):
            res = f"x{k}_{i}" if net.residual[k] else "0"
            bias = f"b{l}_{i}" if biases is not None else "0"
            add(f"Xmu{l}_{i} mu{l}_{i} sf{l}p_{i} sf{l}m_{i} {res} {bias} tia rf={_fmt(rf)}")
            if biases is not None:
                bv = biases[k][i] * Vs
                if tau_w is not None:
                    add(
                        f"Xb{l}_{i} b{l}_{i} e{l}_{i} bias_learn cb={_fmt(C)} gw={_fmt(gw)} "
                        f"ic={_fmt(bv)}"
                    )
                else:
                    add(f"Vb{l}_{i} b{l}_{i} 0 DC {_fmt(bv)}")
        if back:
            for j in range(n_in):
                add(f"Xbk{k}_{j} bk{k}_{j} sb{k}p_{j} sb{k}m_{j} 0 0 tia rf={_fmt(rf)}")
        if tau_w is not None:
            kk = net.scales[k] / (Vs * Vs * w_map)
            for i in range(n_out):
                for j in range(n_in):
                    ports = f"w{l}_{i}_{j} p{k}_{j} e{l}_{i} sf{l}p_{i} sf{l}m_{i}"
                    kind = "synapse_fwd"
                    if back:
                        ports += f" sb{k}p_{j} sb{k}m_{j}"
                        kind = "synapse"
                    add(
                        f"XW{l}_{i}_{j} {ports} {kind} gmin={_fmt(g_min)} gspan={_fmt(span)} "
                        f"cw={_fmt(C)} gw={_fmt(gw)} k={_fmt(kk)} ic={_fmt(W_eff[k][i, j] / w_map)}"
                    )
        else:
            for i in range(n_out):
                for j in range(n_in):
                    for sgn, G in (("p", gp[i, j]), ("m", gm[i, j])):
                        if G <= 0:
                            continue  # a device at 0 S conducts nothing
                        R = _fmt(1.0 / G)
                        add(f"RW{l}{sgn}_{i}_{j} p{k}_{j} sf{l}{sgn}_{i} {R}")
                        if back:
                            add(f"RB{l}{sgn}_{i}_{j} e{l}_{i} sb{k}{sgn}_{j} {R}")

    # ---- meters ----------------------------------------------------------------------------
    add("* ---- power meters (behavioural, no load): pw_* watts, pq_* amperes")
    meters: list[tuple[str, str]] = []
    for k in range(L):
        l = k + 1
        terms = [f"v(p{k}_{j})*i(v.xp{k}_{j}.vs)" for j in range(sizes[k])]
        meters.append((f"fwd{l}", " + ".join(terms)))
        if free[k]:
            terms = [f"v(e{l}_{i})*i(v.xe{l}_{i}.vs)" for i in range(sizes[l])]
            meters.append((f"bwd{l}", " + ".join(terms)))
    for name, expr in meters:
        add(f"Bpw_{name} pw_{name} 0 V = {expr}")
    int_layers = [l for l in range(L + 1) if free[l]]
    for l in int_layers:
        cur = [f"i(v.xx{l}_{i}.vc)" for i in range(sizes[l])]
        add(
            f"Bpw_int{l} pw_int{l} 0 V = "
            + " + ".join(f"v(x{l}_{i})*{c}" for i, c in enumerate(cur))
        )
        add(f"Bpq_int{l} pq_int{l} 0 V = " + " + ".join(f"abs({c})" for c in cur))

    # ---- analysis --------------------------------------------------------------------------
    add("")
    add(f".options reltol={_fmt(reltol)} abstol=1e-15 vntol=1e-9 chgtol=1e-20")
    add(f".tran {_fmt(tstep)} {_fmt(t_stop)} 0 {_fmt(tstep)} uic")
    saves = [f"v({n})" for l in range(L + 1) for n in (f"x{l}_{i}" for i in range(sizes[l]))]
    saves += [f"v(e{l}_{i})" for l in range(1, L + 1) for i in range(sizes[l])]
    saves += [f"v(mu{l}_{i})" for l in range(1, L + 1) for i in range(sizes[l])]
    if tau_w is not None:
        saves += [
            f"v(w{k + 1}_{i}_{j})"
            for k in range(L)
            for i in range(sizes[k + 1])
            for j in range(sizes[k])
        ]
        if biases is not None:
            saves += [f"v(b{k + 1}_{i})" for k in range(L) for i in range(sizes[k + 1])]
    saves += [f"v(pw_{m})" for m, _ in meters]
    for l in int_layers:
        saves += [f"v(pw_int{l})", f"v(pq_int{l})"]
        saves += [f"i(v.xx{l}_{i}.vc)" for i in range(sizes[l])]
    for s in range(0, len(saves), 8):
        add(".save " + " ".join(saves[s : s + 8]))
    add("* energies over the transient: e_* joules, q_* coulombs")
    for m, _ in meters:
        add(f".meas tran e_{m} INTEG v(pw_{m})")
    for l in int_layers:
        add(f".meas tran e_int{l} INTEG v(pw_int{l})")
        add(f".meas tran q_int{l} INTEG v(pq_int{l})")
    add(".meas tran e_xbar param='" + " + ".join(f"e_{m}" for m, _ in meters) + "'")
    if int_layers:
        add(".meas tran e_int param='" + " + ".join(f"e_int{l}" for l in int_layers) + "'")
        add(".meas tran q_int param='" + " + ".join(f"q_int{l}" for l in int_layers) + "'")
    if print_nodes:
        add("* documented nodes: every free value unit at the end of every presentation (volts)")
        for p in range(P):
            t_end = t_stop if p == P - 1 else (p + 1) * T_s
            for l in int_layers:
                for i in range(sizes[l]):
                    add(f".meas tran x{l}_{i}_p{p + 1} FIND v(x{l}_{i}) AT={_fmt(t_end)}")
        if tau_w is not None:
            add("* final weight nodes (volts; x w_max for the weight)")
            for k in range(L):
                for i in range(sizes[k + 1]):
                    for j in range(sizes[k]):
                        add(
                            f".meas tran w{k + 1}_{i}_{j}_end FIND v(w{k + 1}_{i}_{j}) "
                            f"AT={_fmt(t_stop)}"
                        )
    add("")
    add(".control")
    add("run")
    add(f"write {raw_name}")
    add("quit")
    add(".endc")
    add(".end")

    return SpiceNetlist(
        text="\n".join(lines) + "\n",
        net=ref_net,
        tau_scale=tau_scale,
        units=units,
        chip=chip,
        free=free,
        x_init=xs0,
        bottom=bottom_v,
        top=top_v,
        presentation_tau=float(presentation_time),
        tau_w=None if tau_w is None else float(tau_w),
        tau_x_s=tau_x_s,
        signal_scale_v=Vs,
        w_map=[m[0] for m in mappings],
        conductances=[(m[3], m[4]) for m in mappings],
        capacitances=capacitances,
        raw_name=raw_name,
        rails=rails,
    )


def export_spice_from_config(
    cfg,
    out_path: str | Path,
    *,
    n_presentations: int = 1,
    presentation_time: float | None = None,
    learning: bool | None = None,
    x_init: str = "feedforward",
    source: str | None = None,
) -> Path:
    """Write the netlist of a run configuration's network on its chip (``pcsim export spice``).

    The network is built as :func:`pcsim.run.execute` builds it (same seeds), placed on
    ``cfg.chip_model()``, and driven by the first ``n_presentations`` training samples (input
    at the bottom, one-hot target on top; generative nets the other way round), each held
    ``presentation_time`` tau_x (default: ``algorithm.presentation_time``). ``learning``
    (default: on for iPC) adds the iPC weight flow with ``tau_w = dt / lr`` (tau_x units;
    plain gradient flow whatever the configured optimiser). The raw file is named after
    ``out_path`` (``net.cir`` -> ``net.raw``); ``source`` (e.g. the configuration's path) is
    named in the header. Returns ``out_path``.
    """
    from pcsim import run as pcrun

    out = Path(out_path)
    s_init, _, _, _, s_chip = np.random.SeedSequence(cfg.seed).spawn(5)
    data = pcrun.prepare_data(cfg)
    net = pcrun.build_network(cfg, data, s_init).astype(np.float64)
    circ = Circuit(net, chip=cfg.chip_model(), rng=np.random.default_rng(s_chip))
    n = max(1, int(n_presentations))
    x = np.asarray(data.x_train[:n], dtype=np.float64)
    y = np.asarray(data.one_hot(data.y_train[:n]), dtype=np.float64)
    bottom, top = (x, y) if net.mode == "supervised" else (y, x)
    T = (
        presentation_time
        if presentation_time is not None
        else cfg.algorithm.presentation_time / cfg.engine.tau_x
    )
    if learning is None:
        learning = cfg.algorithm.name == "ipc"
    tau_w = None
    if learning:
        tau_w = (cfg.engine.dt / cfg.weight_lr) / cfg.engine.tau_x
    src = f"configuration {source}" if source else "a configuration"
    src += (
        f" (seed {cfg.seed}, data {cfg.data.name}, chip {circ.chip.name}, first {n} training"
        f" sample(s))"
    )
    nl = export(
        circ,
        bottom,
        top,
        presentation_time=T,
        x_init=x_init,
        tau_w=tau_w,
        source=src,
        raw_name=out.with_suffix(".raw").name,
    )
    return nl.write(out)


# ---------------------------------------------------------------------------------------------
# running ngspice and reading its raw files
# ---------------------------------------------------------------------------------------------
@dataclass
class RawData:
    """One plot of an ngspice raw file: variable names (as written) and values (n_t, n_vars)."""

    title: str
    plotname: str
    names: list[str]
    kinds: list[str]
    values: np.ndarray


def read_raw(path: str | Path) -> RawData:
    """Parse an ngspice raw file (binary or ASCII, real data; the first plot)."""
    blob = Path(path).read_bytes()
    header: dict[str, str] = {}
    names: list[str] = []
    kinds: list[str] = []
    pos = 0
    n_vars = None
    while pos < len(blob):
        end = blob.find(b"\n", pos)
        if end < 0:
            raise SpiceError(f"{path}: truncated raw header")
        line = blob[pos:end].decode("latin-1").rstrip("\r")
        pos = end + 1
        key, _, rest = line.partition(":")
        key = key.strip().lower()
        if key == "variables":
            if n_vars is None:
                raise SpiceError(f"{path}: 'Variables' before 'No. Variables'")
            for _ in range(n_vars):
                end = blob.find(b"\n", pos)
                parts = blob[pos:end].decode("latin-1").split()
                pos = end + 1
                names.append(parts[1])
                kinds.append(parts[2] if len(parts) > 2 else "")
            continue
        if key in ("binary", "values"):
            fmt = key
            break
        header[key] = rest.strip()
        if key == "no. variables":
            n_vars = int(rest)
    else:
        raise SpiceError(f"{path}: no data section in the raw file")
    flags = header.get("flags", "real").lower()
    if "complex" in flags:
        raise SpiceError(f"{path}: complex data is not supported (transient raw files only)")
    n_pts = int(header.get("no. points", "0").split()[0] or 0)
    if fmt == "binary":
        count = len(blob[pos:]) // 8
        arr = np.frombuffer(blob[pos : pos + 8 * count], dtype="<f8")
        n = count // n_vars
        if n_pts:
            n = min(n, n_pts)
        values = arr[: n * n_vars].reshape(n, n_vars).copy()
    else:
        tok = blob[pos:].decode("latin-1").split()
        stride = n_vars + 1  # point index, then the values
        n = len(tok) // stride
        if n_pts:
            n = min(n, n_pts)
        values = np.array(
            [float(t) for k in range(n) for t in tok[k * stride + 1 : (k + 1) * stride]],
            dtype=np.float64,
        ).reshape(n, n_vars)
    return RawData(
        title=header.get("title", ""),
        plotname=header.get("plotname", ""),
        names=names,
        kinds=kinds,
        values=values,
    )


def _trace_key(name: str) -> str:
    n = name.lower()
    if n.startswith("v(") and n.endswith(")") and "," not in n:
        return n[2:-1]
    return n


@dataclass
class SpiceResult:
    """Trajectories from one ngspice run: ``time_s`` (n_t,), ``traces[node]`` (n_t,) in volts
    (node names without ``v(...)``; branch currents as ``i(name)``, amperes), the
    ``.measure`` results, and ``energy`` (the ``e_*`` joules and ``q_*`` coulombs among them)."""

    time_s: np.ndarray
    traces: dict[str, np.ndarray]
    measures: dict[str, float]
    energy: dict[str, float]
    stdout: str
    wall_s: float  # the ngspice process, start to exit
    analysis_s: float | None = None  # ngspice's own "Total analysis time"

    def __getitem__(self, node: str) -> np.ndarray:
        return self.traces[node.lower()]


_MEAS = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _parse_measures(stdout: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        m = _MEAS.match(line)
        if m:
            out[m.group(1).lower()] = float(m.group(2))
    return out


def run(
    netlist: SpiceNetlist | str | os.PathLike,
    nodes: Sequence[str] | None = None,
    timeout: float = 300.0,
    keep_dir: str | Path | None = None,
) -> SpiceResult:
    """Run ngspice in batch mode on a netlist (a :class:`SpiceNetlist`, its text, or a path)
    and read back the trajectories. ``nodes`` keeps only those traces (KeyError naming any
    missing one). Raises :class:`SpiceNotFound` when ngspice is not installed and
    :class:`SpiceError` when it fails (with the tail of its output)."""
    exe = ngspice_path()
    if exe is None:
        raise SpiceNotFound(INSTALL_HINT)
    if isinstance(netlist, SpiceNetlist):
        text = netlist.text
    elif isinstance(netlist, os.PathLike) or ("\n" not in str(netlist) and Path(netlist).is_file()):
        text = Path(netlist).read_text(encoding="utf-8")
    else:
        text = str(netlist)
    m = re.search(r"^\s*write\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    has_control = re.search(r"^\s*\.control\b", text, flags=re.MULTILINE | re.IGNORECASE)
    with tempfile.TemporaryDirectory(prefix="pcsim_spice_") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cir = work / "net.cir"
        cir.write_text(text, encoding="utf-8")
        cmd = [exe, "-b"]
        if has_control and m:
            raw = work / m.group(1)
        else:
            raw = work / "net.raw"
            cmd += ["-r", raw.name]
        cmd.append(cir.name)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SpiceError(f"ngspice ran past {timeout:g} s") from exc
        wall = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        fatal = [ln for ln in out.splitlines() if re.search(r"fatal|aborted|error", ln, re.I)]
        if proc.returncode != 0 or not raw.is_file() or fatal:
            tail = "\n".join((fatal or out.splitlines())[-8:])
            raise SpiceError(f"ngspice failed (exit {proc.returncode}):\n{tail}")
        data = read_raw(raw)
    keys = [_trace_key(n) for n in data.names]
    if not keys or keys[0] != "time":
        raise SpiceError("the raw file holds no transient (its first variable is not time)")
    traces = {k: data.values[:, c] for c, k in enumerate(keys) if c > 0}
    if nodes is not None:
        missing = [n for n in nodes if n.lower() not in traces]
        if missing:
            raise KeyError(f"not in the ngspice output: {', '.join(missing)}")
        traces = {n.lower(): traces[n.lower()] for n in nodes}
    measures = _parse_measures(proc.stdout)
    energy = {k: v for k, v in measures.items() if k.startswith(("e_", "q_"))}
    m_an = re.search(r"Total analysis time \(seconds\)\s*=\s*([0-9.eE+-]+)", out)
    return SpiceResult(
        time_s=data.values[:, 0].copy(),
        traces=traces,
        measures=measures,
        energy=energy,
        stdout=proc.stdout,
        wall_s=wall,
        analysis_s=float(m_an.group(1)) if m_an else None,
    )


# ---------------------------------------------------------------------------------------------
# pcsim's side of the comparison
# ---------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """pcsim's trajectory of the exported transient at given times (activity / weight units)."""

    t_s: np.ndarray
    xs: list[np.ndarray]  # per layer (n_t, n_l)
    weights: list[np.ndarray] | None  # per crossbar (n_t, n_out, n_in) when learning
    final_weights: list[np.ndarray]
    final_biases: list[np.ndarray] | None
    wall_s: float


def reference_circuit(nl: SpiceNetlist) -> Circuit:
    """A pcsim circuit of the exported network: the weights the chip read, its per-unit time
    constants, gains, offsets, leaks and rails, on the ideal substrate (no noise, no costs)."""
    rc = Circuit(nl.net.copy())
    rc.tau_scale = [s.copy() for s in nl.tau_scale]
    rc.units = copy.deepcopy(nl.units)
    rc.rails = nl.rails  # a stepping engine clips at the rails; the adaptive one ignores them
    return rc


def reference(
    nl: SpiceNetlist,
    t_s: np.ndarray | None = None,
    engine: Any = None,
) -> Reference:
    """Integrate the exported transient with pcsim (default: the adaptive engine, DOP853, rtol
    1e-10) and sample it at ``t_s`` (seconds; default: 20 points per tau_x). Presentations run
    one after the other with the free activities (and weights) carried over, as in the circuit.
    The adaptive engine has no rails; a stepping engine (clocked, which clips at the rails) is
    stepped over each presentation and interpolated linearly at ``t_s`` (inference only)."""
    from pcsim.engines.adaptive import AdaptiveEngine

    engine = engine or AdaptiveEngine()
    T = nl.presentation_tau
    P = nl.n_presentations
    if t_s is None:
        t_s = np.linspace(0.0, nl.duration_s, int(round(nl.duration_tau * 20)) + 1)[1:]
    t_tau = np.asarray(t_s, dtype=np.float64) / nl.tau_x_s
    rc = reference_circuit(nl)
    L = nl.net.n_layers
    xs = [x.reshape(1, -1).copy() for x in nl.x_init]
    out_x = [np.empty((len(t_tau), n)) for n in nl.net.sizes]
    out_w = [np.empty((len(t_tau), *W.shape)) for W in nl.net.weights] if nl.learning else None
    t0 = time.perf_counter()
    for p in range(P):
        if nl.bottom is not None:
            xs[0][0] = nl.bottom[p]
        if nl.top is not None:
            xs[L][0] = nl.top[p]
        lo, hi = p * T, (p + 1) * T
        sel = np.flatnonzero((t_tau >= lo) & ((t_tau < hi) | (p == P - 1)))
        local = np.clip(t_tau[sel] - lo, 0.0, T)
        if hasattr(engine, "solve"):
            traj = engine.solve(rc, xs, nl.free, T, t_eval=local, tau_w=nl.tau_w)
            for l in range(L + 1):
                out_x[l][sel] = traj.xs[l][: len(sel), 0]
            if out_w is not None:
                for k in range(L):
                    out_w[k][sel] = traj.weights[k][: len(sel)]
        else:
            if nl.learning:
                raise ValueError("a stepping engine compares inference transients only")
            n = max(1, int(round(T / engine.dt)))
            grid = np.arange(n + 1) * (T / n)
            states = [np.empty((n + 1, x.shape[1])) for x in xs]
            for l in range(L + 1):
                states[l][0] = xs[l][0]
            for s in range(n):
                engine.step(rc, xs, nl.free)
                for l in range(L + 1):
                    states[l][s + 1] = xs[l][0]
            for l in range(L + 1):  # linear interpolation between steps
                for u in range(states[l].shape[1]):
                    out_x[l][sel, u] = np.interp(local, grid, states[l][:, u])
    wall = time.perf_counter() - t0
    return Reference(
        t_s=np.asarray(t_s, dtype=np.float64),
        xs=out_x,
        weights=out_w,
        final_weights=[W.copy() for W in rc.net.weights],
        final_biases=None if rc.net.biases is None else [b.copy() for b in rc.net.biases],
        wall_s=wall,
    )


@dataclass
class Agreement:
    """ngspice against pcsim on the free value units (volts) and, when learning, the weights.

    ``full_scale_v`` is the largest |V| any compared unit reaches in pcsim's trajectory (a
    stricter scale than the rails); ``max_rel`` the largest difference at any sampled time over
    it, ``final_rel`` the same at the end (the equilibrium when the transient settled);
    ``weights_rel`` the largest final weight difference over the weights' range (per crossbar;
    biases over theirs) when learning."""

    max_abs_v: float
    full_scale_v: float
    max_rel: float
    final_rel: float
    weights_rel: float | None
    n_times: int


def agreement(nl: SpiceNetlist, result: SpiceResult, ref: Reference) -> Agreement:
    """Compare a run of ``nl`` with :func:`reference` sampled at ``result.time_s``."""
    if len(ref.t_s) != len(result.time_s) or not np.allclose(ref.t_s, result.time_s):
        raise ValueError("the reference must be sampled at the ngspice times (result.time_s)")
    Vs = nl.signal_scale_v
    diffs, scale, final = [], 0.0, []
    for l, f in enumerate(nl.free):
        if not f:
            continue
        sp = nl.activities(result, l) * Vs
        pc = ref.xs[l] * Vs
        diffs.append(np.abs(sp - pc))
        final.append(np.abs(sp[-1] - pc[-1]))
        scale = max(scale, float(np.max(np.abs(pc))))
    max_abs = float(max(d.max() for d in diffs))
    fin = float(max(f.max() for f in final))
    scale = scale if scale > 0 else 1.0
    w_rel = None
    if nl.learning:
        w_rel = 0.0
        for k in range(nl.net.n_layers):
            ws = nl.weights(result, k)[-1]
            wp = ref.weights[k][-1]
            rng_w = float(wp.max() - wp.min()) or 1.0
            w_rel = max(w_rel, float(np.max(np.abs(ws - wp))) / rng_w)
            if ref.final_biases is not None:
                bs = np.array([result.traces[f"b{k + 1}_{i}"][-1] for i in range(ws.shape[0])])
                bp = ref.final_biases[k]
                rng_b = float(bp.max() - bp.min()) or 1.0
                w_rel = max(w_rel, float(np.max(np.abs(bs / nl.signal_scale_v - bp))) / rng_b)
    return Agreement(
        max_abs_v=max_abs,
        full_scale_v=scale,
        max_rel=max_abs / scale,
        final_rel=fin / scale,
        weights_rel=w_rel,
        n_times=len(result.time_s),
    )


# ---------------------------------------------------------------------------------------------
# energy
# ---------------------------------------------------------------------------------------------
@dataclass
class EnergyRow:
    quantity: str
    spice_j: float | None
    ledger_j: float | None
    note: str


def energy_report(nl: SpiceNetlist, result: SpiceResult, ref: Reference) -> list[EnergyRow]:
    """The energy ngspice integrated over the transient next to the cost ledger's for the same
    transient (one sample circuit, pcsim's trajectory ``ref`` for the swings)."""
    from hardware_models.costs import EnergyLedger

    chip = nl.chip
    e = result.energy
    Vs = nl.signal_scale_v
    ledger: dict[str, float] = {}
    if chip is not None:
        c2 = copy.copy(reference_circuit(nl))
        c2.chip = chip
        c2.ledger = EnergyLedger()
        c2.charge_time(nl.duration_tau, 1)
        # swing sum |dx| of the free units, from t = 0 (the initial state) on
        swing = 0.0
        for l, f in enumerate(nl.free):
            if f:
                path = np.vstack([nl.x_init[l][None, :], ref.xs[l]])
                swing += float(np.sum(np.abs(np.diff(path, axis=0))))
        c2.charge_transitions(swing)
        ledger = c2.ledger.by_component()
    q = e.get("q_int")
    rows = [
        EnergyRow(
            "crossbar conduction",
            e.get("e_xbar"),
            ledger.get("crossbar_read"),
            "SPICE: Joule heat sum G V^2 in the device pairs, both read directions, delivered "
            "by the activation/error stages; ledger: read_energy_per_mac_j x 2 MACs per synapse "
            "per tau_x (a published chip's per-MAC figure, peripherals included)",
        ),
        EnergyRow(
            "unit dynamic",
            None if q is None else Vs * q,
            ledger.get("unit_dynamic"),
            "SPICE: V_s x the charge moved through the value capacitors (integral of |i_C|); "
            "ledger: C V_s^2 per unit of swing sum |dx| (nominal C; SPICE has C x tau mismatch)",
        ),
        EnergyRow(
            "capacitor energy change",
            e.get("e_int"),
            None,
            "SPICE: integral of V(x) i_C = change of 1/2 C V^2 (conserved; returned at the end)",
        ),
        EnergyRow(
            "static bias",
            None,
            ledger.get("static"),
            "ledger only: the behavioural stages draw no bias current in SPICE",
        ),
    ]
    return rows


def format_energy_report(rows: Sequence[EnergyRow]) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3e}"

    w = max(len(r.quantity) for r in rows)
    lines = [f"{'quantity':<{w}}  {'ngspice (J)':>12}  {'ledger (J)':>12}  note"]
    lines += [f"{r.quantity:<{w}}  {f(r.spice_j):>12}  {f(r.ledger_j):>12}  {r.note}" for r in rows]
    return "\n".join(lines)
