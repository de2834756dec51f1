"""Circuit-level truth: a pcsim network on its chip as an ngspice netlist, run and read back.

``export(circ, bottom, top, ...)`` writes the network of a :class:`~pcsim.circuit.Circuit` as a
transistor-free ngspice netlist in the physical units the chip gives (``pcsim export spice
CONFIG.toml -o net.cir`` calls :func:`export_spice_from_config`); :func:`run` runs ngspice in
batch mode and returns the node trajectories in seconds; :func:`reference` integrates the same
transient with pcsim at the same times through the engine protocol (the adaptive engine by
default, or any engine), so the two can be compared; and
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

Modules: :mod:`pcsim.spice.model` (the netlist as numbers: :func:`netlist_model`),
:mod:`pcsim.spice.render` (those numbers as netlist text: :func:`render`),
:mod:`pcsim.spice.netlist` (:func:`export`, :class:`SpiceNetlist`),
:mod:`pcsim.spice.ngspice` (running ngspice, raw files) and :mod:`pcsim.spice.compare` (pcsim's
reference transient, the agreement, the energy report).
"""

from pcsim.spice.compare import (
    Agreement,
    EnergyRow,
    Reference,
    agreement,
    energy_report,
    format_energy_report,
    reference,
    reference_circuit,
)
from pcsim.spice.model import CrossbarModel, SpiceModel, netlist_model
from pcsim.spice.netlist import SpiceNetlist, export, export_spice_from_config
from pcsim.spice.ngspice import (
    INSTALL_HINT,
    RawData,
    SpiceError,
    SpiceNotFound,
    SpiceResult,
    ngspice_path,
    read_raw,
    run,
)
from pcsim.spice.render import render

__all__ = [
    "SpiceError",
    "SpiceNotFound",
    "SpiceNetlist",
    "SpiceModel",
    "CrossbarModel",
    "SpiceResult",
    "RawData",
    "Reference",
    "Agreement",
    "EnergyRow",
    "INSTALL_HINT",
    "ngspice_path",
    "export",
    "netlist_model",
    "render",
    "export_spice_from_config",
    "run",
    "read_raw",
    "reference",
    "reference_circuit",
    "agreement",
    "energy_report",
    "format_energy_report",
]
