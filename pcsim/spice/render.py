"""The netlist text of a :class:`~pcsim.spice.model.SpiceModel` (the circuit is described in
the docstring of ``pcsim/spice/__init__.py``).

:func:`render` reads the model and nothing else and writes the netlist section by section, one
function each: the header (what the file is, in words), the subcircuits, the sources and units
of every layer, the crossbars, the power meters, and the analysis (``.tran``, ``.save``,
``.measure`` and the control block).
"""

from __future__ import annotations

import numpy as np

from pcsim import __version__
from pcsim.spice.model import CLAMP_GAIN, KINK_WIDTH, SpiceModel


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


def _pwl(values: np.ndarray, T_s: float, tr_s: float) -> str:
    pts = [(0.0, values[0])]
    for k in range(1, len(values)):
        t = k * T_s
        pts.append((t, values[k - 1]))
        pts.append((t + tr_s, values[k]))
    body = " ".join(f"{_fmt(t)} {_fmt(v)}" for t, v in pts)
    return f"PWL({body})"


def render(m: SpiceModel) -> str:
    """The ngspice netlist of ``m``, ready to run with ``ngspice -b``."""
    meters = power_meters(m)
    lines = (
        _header(m)
        + _subcircuits(m)
        + _layers(m)
        + _crossbars(m)
        + _meter_sources(m, meters)
        + _analysis(m, meters)
    )
    return "\n".join(lines) + "\n"


def _header(m: SpiceModel) -> list[str]:
    """Comment lines: the network, the chip, the mapping to physical units, what is missing."""
    net, L, sizes = m.net, m.net.n_layers, m.net.sizes
    C, g, Vs, rails = m.capacitance_f, m.conductance_s, m.signal_scale_v, m.rails
    arch = "-".join(map(str, sizes))
    out = [
        f"* pcsim {__version__}: predictive-coding network {arch} ({net.activation}, "
        f"{net.parameterisation}, {net.mode}) on chip '{m.chip_name}'",
        f"* from: {m.source}",
        "* An ngspice netlist in the chip's physical units (docstring of pcsim/spice/__init__.py):",
        f"*   value unit x<l>_<i>: C = {C:.4g} F (x per-unit tau mismatch), g = {g:.4g} S, "
        f"tau_x = C/g = {m.tau_x_s:.4g} s",
        f"*   1 activity unit = {Vs:g} V; rails {rails[0]:g} .. {rails[1]:g} activity units",
        "*   error unit e<l>_<i> = gain (x - mu) + offset; mu<l>_<i> = crossbar read-out (tia)",
        "*   p<l>_<i> = V_s phi(x / V_s), d<l>_<i> = phi'(x / V_s); bk<l>_<j> = a W^T e (volts)",
    ]
    for i, cb in enumerate(m.crossbars):
        out.append(
            f"*   crossbar W{i + 1} ({sizes[i + 1]}x{sizes[i]}): G+ - G- = k W, "
            f"k = (g_max - g_min)/w_max = ({cb.g_max_s:.4g} - {cb.g_min_s:.4g}) S / "
            f"{cb.w_map:.6g}; R_f = a/k = {cb.feedback_ohm:.6g} Ohm"
        )
    clamp_txt = ", ".join(
        t
        for t, on in (
            ("layer 0 (bottom)", m.bottom is not None),
            (f"layer {L} (top)", m.top is not None),
        )
        if on
    )
    out.append(
        f"*   clamped: {clamp_txt}; {m.n_presentations} presentation(s) of "
        f"{m.presentation_tau:g} tau_x = {m.presentation_s:.4g} s; initial state: {m.x_init_label}"
    )
    if m.tau_w is not None:
        out.append(
            f"*   learning (iPC): weight nodes w<l>_<i>_<j> (1 V = w_max), tau_w = {m.tau_w:g} "
            f"tau_x = {m.tau_w * m.tau_x_s:.4g} s"
        )
    else:
        out.append("*   weights fixed (resistor pairs RW<l>p/m_<i>_<j>, backward RB<l>p/m_<i>_<j>)")
    out += [
        "*   meters: pw_* in watts (1 V = 1 W), pq_* in amperes; .measure integrates them",
        "*   not modelled: thermal and read noise, pulsed writes, ADCs (all sources ideal)",
        f"* run: ngspice -b <this file>   (prints the .measure lines below; writes {m.raw_name})",
        "",
    ]
    return out


def _subcircuits(m: SpiceModel) -> list[str]:
    """The value unit, error unit, buffer and read-out stages; the activation; learning cells."""
    out = [_SUBCKTS]
    if m.net.n_layers > 1:
        out.append(_activation_subckt(m.net.activation))
    if m.tau_w is not None:
        out.append(_LEARN_SUBCKTS)
    return out


def _layers(m: SpiceModel) -> list[str]:
    """Per layer: clamped sources or value units, activation stages, error units."""
    net, L, sizes, free = m.net, m.net.n_layers, m.net.sizes, m.free
    g, Vs, units = m.conductance_s, m.signal_scale_v, m.units
    lo_v, hi_v = m.rails_v
    caps = m.capacitances
    out = []
    if free[0]:
        out += ["* phi' of the identity layer 0", "Vone one 0 DC 1"]
    for l in range(L + 1):
        out.append(f"* ---- layer {l} ({sizes[l]} units, {'free' if free[l] else 'clamped'})")
        for i in range(sizes[l]):
            x = f"x{l}_{i}"
            if not free[l]:
                vals = (m.bottom if l == 0 else m.top)[:, i] * Vs
                out.append(f"Vx{l}_{i} {x} 0 {_pwl(vals, m.presentation_s, m.switch_s)}")
            else:
                e = f"e{l}_{i}" if l > 0 else "0"
                bk = f"bk{l}_{i}" if l < L else "0"
                d = ("one" if l == 0 else f"d{l}_{i}") if l < L else "0"
                r = f"e{l + 1}_{i}" if (l < L and net.residual[l]) else "0"
                out.append(
                    f"Xx{l}_{i} {x} {e} {bk} {d} {r} value_unit c={_fmt(caps[x])} g={_fmt(g)} "
                    f"leak={_fmt(units.leak[l][i])} lo={_fmt(lo_v)} hi={_fmt(hi_v)} "
                    f"gclamp={_fmt(CLAMP_GAIN * g)} ic={_fmt(m.x_init[l][i] * Vs)}"
                )
            if l < L:
                if l == 0:
                    out.append(f"Xp0_{i} p0_{i} {x} buffer")
                else:
                    out.append(
                        f"Xp{l}_{i} p{l}_{i} d{l}_{i} {x} act_{net.activation} vs={_fmt(Vs)}"
                    )
            if l > 0:
                out.append(
                    f"Xe{l}_{i} e{l}_{i} {x} mu{l}_{i} error_unit "
                    f"gain={_fmt(units.error_gain[l][i])} off={_fmt(units.error_offset[l][i] * Vs)}"
                )
    return out


def _crossbars(m: SpiceModel) -> list[str]:
    """Per crossbar: the read-out stages, the biases, and the device pairs (fixed resistors, or
    learning synapses with their weight nodes)."""
    net, free, Vs, C = m.net, m.free, m.signal_scale_v, m.capacitance_f
    biases = net.biases
    gw = m.weight_gw_s
    out = []
    for k, cb in enumerate(m.crossbars):
        l = k + 1
        W = net.weights[k]
        rf = cb.feedback_ohm
        n_out, n_in = W.shape
        back = free[k]
        out.append(
            f"* ---- crossbar W{l}: {n_out}x{n_in}, read forward into mu{l}"
            + (f", backward into bk{k}" if back else "")
        )
        for i in range(n_out):
            res = f"x{k}_{i}" if net.residual[k] else "0"
            bias = f"b{l}_{i}" if biases is not None else "0"
            out.append(f"Xmu{l}_{i} mu{l}_{i} sf{l}p_{i} sf{l}m_{i} {res} {bias} tia rf={_fmt(rf)}")
            if biases is not None:
                bv = biases[k][i] * Vs
                if m.tau_w is not None:
                    out.append(
                        f"Xb{l}_{i} b{l}_{i} e{l}_{i} bias_learn cb={_fmt(C)} gw={_fmt(gw)} "
                        f"ic={_fmt(bv)}"
                    )
                else:
                    out.append(f"Vb{l}_{i} b{l}_{i} 0 DC {_fmt(bv)}")
        if back:
            for j in range(n_in):
                out.append(f"Xbk{k}_{j} bk{k}_{j} sb{k}p_{j} sb{k}m_{j} 0 0 tia rf={_fmt(rf)}")
        out += _synapses(m, k) if m.tau_w is not None else _resistors(m, k)
    return out


def _synapses(m: SpiceModel, k: int) -> list[str]:
    """Learning crossbar ``k``: one synapse cell (weight node, voltage-controlled pair) each."""
    l, cb, W = k + 1, m.crossbars[k], m.net.weights[k]
    Vs, C, gw = m.signal_scale_v, m.capacitance_f, m.weight_gw_s
    back = m.free[k]
    kk = cb.scale / (Vs * Vs * cb.w_map)
    out = []
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            ports = f"w{l}_{i}_{j} p{k}_{j} e{l}_{i} sf{l}p_{i} sf{l}m_{i}"
            kind = "synapse_fwd"
            if back:
                ports += f" sb{k}p_{j} sb{k}m_{j}"
                kind = "synapse"
            out.append(
                f"XW{l}_{i}_{j} {ports} {kind} gmin={_fmt(cb.g_min_s)} gspan={_fmt(cb.span_s)} "
                f"cw={_fmt(C)} gw={_fmt(gw)} k={_fmt(kk)} ic={_fmt(W[i, j] / cb.w_map)}"
            )
    return out


def _resistors(m: SpiceModel, k: int) -> list[str]:
    """Fixed crossbar ``k``: a resistor per conducting device, and again for the backward read."""
    l, cb = k + 1, m.crossbars[k]
    back = m.free[k]
    out = []
    n_out, n_in = cb.g_plus_s.shape
    for i in range(n_out):
        for j in range(n_in):
            for sgn, G in (("p", cb.g_plus_s[i, j]), ("m", cb.g_minus_s[i, j])):
                if G <= 0:
                    continue  # a device at 0 S conducts nothing
                R = _fmt(1.0 / G)
                out.append(f"RW{l}{sgn}_{i}_{j} p{k}_{j} sf{l}{sgn}_{i} {R}")
                if back:
                    out.append(f"RB{l}{sgn}_{i}_{j} e{l}_{i} sb{k}{sgn}_{j} {R}")
    return out


def power_meters(m: SpiceModel) -> list[tuple[str, str]]:
    """``(name, expression)`` of each crossbar power meter: the power the activation (forward)
    and error (backward) stages deliver into crossbar ``l``, in watts."""
    sizes = m.net.sizes
    meters: list[tuple[str, str]] = []
    for k in range(m.net.n_layers):
        l = k + 1
        terms = [f"v(p{k}_{j})*i(v.xp{k}_{j}.vs)" for j in range(sizes[k])]
        meters.append((f"fwd{l}", " + ".join(terms)))
        if m.free[k]:
            terms = [f"v(e{l}_{i})*i(v.xe{l}_{i}.vs)" for i in range(sizes[l])]
            meters.append((f"bwd{l}", " + ".join(terms)))
    return meters


def _integrating_layers(m: SpiceModel) -> list[int]:
    return [l for l, f in enumerate(m.free) if f]


def _meter_sources(m: SpiceModel, meters: list[tuple[str, str]]) -> list[str]:
    """Behavioural meter nodes: crossbar powers, and power and |charge| into the capacitors."""
    sizes = m.net.sizes
    out = ["* ---- power meters (behavioural, no load): pw_* watts, pq_* amperes"]
    out += [f"Bpw_{name} pw_{name} 0 V = {expr}" for name, expr in meters]
    for l in _integrating_layers(m):
        cur = [f"i(v.xx{l}_{i}.vc)" for i in range(sizes[l])]
        out.append(
            f"Bpw_int{l} pw_int{l} 0 V = "
            + " + ".join(f"v(x{l}_{i})*{c}" for i, c in enumerate(cur))
        )
        out.append(f"Bpq_int{l} pq_int{l} 0 V = " + " + ".join(f"abs({c})" for c in cur))
    return out


def _saved_vectors(m: SpiceModel, meters: list[tuple[str, str]]) -> list[str]:
    """What ngspice writes to the raw file: nodes, errors, predictions, weights, meters."""
    sizes, L = m.net.sizes, m.net.n_layers
    saves = [f"v({n})" for l in range(L + 1) for n in (f"x{l}_{i}" for i in range(sizes[l]))]
    saves += [f"v(e{l}_{i})" for l in range(1, L + 1) for i in range(sizes[l])]
    saves += [f"v(mu{l}_{i})" for l in range(1, L + 1) for i in range(sizes[l])]
    if m.tau_w is not None:
        saves += [
            f"v(w{k + 1}_{i}_{j})"
            for k in range(L)
            for i in range(sizes[k + 1])
            for j in range(sizes[k])
        ]
        if m.net.biases is not None:
            saves += [f"v(b{k + 1}_{i})" for k in range(L) for i in range(sizes[k + 1])]
    saves += [f"v(pw_{name})" for name, _ in meters]
    for l in _integrating_layers(m):
        saves += [f"v(pw_int{l})", f"v(pq_int{l})"]
        saves += [f"i(v.xx{l}_{i}.vc)" for i in range(sizes[l])]
    return saves


def _analysis(m: SpiceModel, meters: list[tuple[str, str]]) -> list[str]:
    """The transient, what it saves, the energy and node measurements, the control block."""
    sizes, L = m.net.sizes, m.net.n_layers
    int_layers = _integrating_layers(m)
    tstep, t_stop = m.step_s, m.stop_s
    out = [
        "",
        f".options reltol={_fmt(m.reltol)} abstol=1e-15 vntol=1e-9 chgtol=1e-20",
        f".tran {_fmt(tstep)} {_fmt(t_stop)} 0 {_fmt(tstep)} uic",
    ]
    saves = _saved_vectors(m, meters)
    out += [".save " + " ".join(saves[s : s + 8]) for s in range(0, len(saves), 8)]
    out.append("* energies over the transient: e_* joules, q_* coulombs")
    out += [f".meas tran e_{name} INTEG v(pw_{name})" for name, _ in meters]
    for l in int_layers:
        out.append(f".meas tran e_int{l} INTEG v(pw_int{l})")
        out.append(f".meas tran q_int{l} INTEG v(pq_int{l})")
    out.append(".meas tran e_xbar param='" + " + ".join(f"e_{n}" for n, _ in meters) + "'")
    if int_layers:
        out.append(".meas tran e_int param='" + " + ".join(f"e_int{l}" for l in int_layers) + "'")
        out.append(".meas tran q_int param='" + " + ".join(f"q_int{l}" for l in int_layers) + "'")
    if m.print_nodes:
        out.append(
            "* documented nodes: every free value unit at the end of every presentation (volts)"
        )
        P, T_s = m.n_presentations, m.presentation_s
        for p in range(P):
            t_end = t_stop if p == P - 1 else (p + 1) * T_s
            for l in int_layers:
                for i in range(sizes[l]):
                    out.append(f".meas tran x{l}_{i}_p{p + 1} FIND v(x{l}_{i}) AT={_fmt(t_end)}")
        if m.tau_w is not None:
            out.append("* final weight nodes (volts; x w_max for the weight)")
            for k in range(L):
                for i in range(sizes[k + 1]):
                    for j in range(sizes[k]):
                        out.append(
                            f".meas tran w{k + 1}_{i}_{j}_end FIND v(w{k + 1}_{i}_{j}) "
                            f"AT={_fmt(t_stop)}"
                        )
    out += ["", ".control", "run", f"write {m.raw_name}", "quit", ".endc", ".end"]
    return out
