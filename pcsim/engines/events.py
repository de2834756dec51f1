"""Event engine: asynchronous, clock-free predictive coding, one unit at a time (numba).

On a chip there is no global step. Every value unit ``x_l[i]`` and every error unit
``e_l[j]`` is its own small circuit that updates at its own times, reading whatever its
neighbours last put on their wires. This engine simulates exactly that:

- **Clocks.** Unit ``u`` with time constant ``tau_u`` (value units: ``circ.tau_scale``, the
  chip's mismatch; error units: ``error_tau`` times that, or ``circ.error_tau_scale`` when a
  chip provides one) fires on average ``events_per_tau / tau_u`` times per tau_x, on a Poisson
  clock or a jittered periodic clock (lognormal intervals with relative std ``rate_jitter``,
  random phases). A calendar queue of next event times (written here, inside numba) picks
  the next unit in exact time order.
- **Error units are state.** Error unit ``j`` of layer ``l`` relaxes towards its target
  ``gain * (x_l[j] - mu_l[j]) + offset`` with ``mu_l[j] = a_l W_l[j,:] . phi(x_{l-1})
  (+ b_l[j]) (+ x_{l-1}[j] if residual)``, computed from the presynaptic values its row of
  synapses sees now. Given those held inputs the update is exact:
  ``e <- target + (e - target) exp(-h / tau_e)`` with ``h`` the time since its last event.
- **Value units.** Value unit ``i`` of layer ``l`` has the drift of :mod:`pcsim.field`
  evaluated on what it sees: ``d = -e_l[i] + phi'(x_l[i]) a_{l+1} (W_{l+1}^T e_{l+1})[i]
  (+ e_{l+1}[i] if residual) - leak x_l[i]``. It relaxes over the interval ``h`` since its last
  event as ``dx/dt = -(x - c) / tau`` towards ``c = x + d`` held fixed (the drift frozen at
  the event, as a real integrator sees constant inputs between changes):
  ``x <- c + (x - c) exp(-h / tau) = x + (1 - exp(-h / tau)) d``.

Why this relaxation form (and not an Euler step ``x += (h / tau) d``):

1. *Same fixed points as the field.* A value unit is stationary iff ``d = 0`` and an error
   unit iff ``e = target``; together these are exactly the zeros of ``field.activity_drift``
   with ``eps = field.errors(..., units)``. Delays, rates and clocks change the path, never
   the equilibrium.
2. *No overshoot however long a unit was silent.* Every update is a convex combination
   ``(1 - w) x + w c`` with ``w = 1 - exp(-h/tau)`` in ``(0, 1)``. An explicit Euler step on
   stale inputs has the unbounded factor ``h / tau``: a unit that fired rarely (rate mismatch,
   Poisson gaps) jumps far past its target and the network diverges (docs/math.md, section 5;
   ``update="euler"`` reproduces it for comparison). For the error units, whose drift is
   linear in their own state, the exponential update is the exact solution over the
   interval.
3. *The continuous system it discretises is stable for any time constants.* Linearised
   about an equilibrium (errors ``eps = A x - b``, ``A`` of full column rank because every
   free layer has its own error), the pair flow ``tau_x dx = -A^T e``,
   ``tau_e de = -(e - G (A x - b))`` has the Lyapunov function
   ``V = 1/2 sum tau_x dx^2 + 1/2 sum (tau_e / g) de^2`` with ``dV/dt = -sum de^2 / g
   - sum leak dx^2 <= 0``, whatever the mismatch. As ``events_per_tau`` grows the event
   process tends to this flow; at finite rates the convex-combination updates keep it a
   damped asynchronous iteration. Delays short compared with tau keep it stable; the tests
   check ``max |x - x*| <= 1e-6`` against the clocked engine with mismatch and delays on.

Incremental bookkeeping keeps an event cheap and local. Each value layer keeps the running
top-down sum ``back_l = W_{l+1}^T e_{l+1}`` (of the error values it sees): an error unit
that changes by ``de`` adds ``de * W_{l+1}[j, :]`` (its own row: contiguous). The bottom-up
prediction is the error unit's own row read: ``W_l[j, :] . phi`` (contiguous). So a value
event costs O(1) and an error event O(fan-in), all on the unit's own row of synapses;
``back`` is recomputed exactly every ``resync_every`` events to bound float drift.

Delays: ``delay_up`` (bottom-up: value unit -> error units above) and ``delay_down``
(top-down: error unit -> value units below), in tau_x units. A change is put on a FIFO with
its arrival time (one FIFO per class: arrivals are in time order because the delay is the
same for the whole class) and delivered then; a unit always reads the value as it was
``delay`` ago. A unit's own pair (value unit <-> its error unit) is local: no delay.

Learning (iPC, Salvatori et al., ICLR 2024): at each of its events, error unit ``j`` of layer
``l`` integrates the weight flow ``tau_w dW_l[j,:]/dt = a_l e_l[j] phi(x_{l-1})`` over its
own interval, with ``e`` the exact exponential path of that interval and ``phi`` what its
row sees, and writes its own row (and bias). ``tau_w`` is in tau_x units. When a run ends,
every row integrates the flow from its last event to the end (its state untouched), so a
presentation of length ``T`` learns for exactly ``T``, as the clocked engine does. On the
ideal substrate (no chip, or an ideal one) the rows are written in place in
``circ.net.weights`` (the chip's devices hold those very arrays); a row whose input layer is
clamped defers each write to its next read and fuses the two (one pass over the row instead
of two; exact, since a clamped input does not change within a run). On a non-ideal chip the
MACs use the weights as read (``circ.read_weights``: quantised, drifting), refreshed every
``sync_every`` tau_x, and the changes are accumulated and written through
``circ.apply_weight_update`` (the chip's update-response model: pulses, bounds, asymmetry,
its write energy) at the same interval.

Read noise, in the output domain as the clocked engine applies it: a row read (an error
unit's prediction) adds ``a_l * sigma_s * ||phi(x_{l-1})|| * m``, a value unit's read of its
top-down sum adds ``sigma_s * ||e_{l+1}|| * m`` (the distribution of a MAC through devices with
independent read noise of std ``sigma_s``), where ``m`` is the mean, over the unit's own
interval ``h`` since its last event, of its read line's unit Ornstein-Uhlenbeck process
(correlation time ``Circuit.read_window_tau``, stationary std ``sigma_s = read_sigma sqrt(e/2)``;
:mod:`pcsim.read_noise`), advanced exactly over ``h``, so its effect does not depend on the
event rate; the norms are kept as running sums, updated per event. Each copy's line states
live in its carried state (``ou_x``, ``ou_e``) and start in the stationary law.

Noise: value units follow the exact Ornstein-Uhlenbeck step of
``tau dx = -(x - c) dt + sigma sqrt(tau) dW``: ``+ sigma sqrt((1 - exp(-2h/tau)) / 2) N(0,1)``
with ``sigma^2 = engine sigma^2 + circ.thermal_sigma^2`` (the Euler-Maruyama amplitude of the
clocked engine in the small-``h`` limit). Values are clipped to ``circ.rails``.

The ledger: every event is counted per unit, every synapse read (a row MAC: bottom-up
prediction, top-down broadcast) and write (a learning row) per weight layer, in
:class:`EventStats`. On a chip, ``circ.ledger`` is charged per event: a transition energy per
unit event, a MAC energy per synapse read, a write per synapse written, plus static power x
time; so energy follows activity (the clocked engine charges crossbar reads per tau instead).

Delays and stability: without delays the scheme converged in every case tested (lognormal
mismatch up to sigma = 1, Poisson or periodic clocks, 2 to 10 events per tau). Delays add
phase lag to the value/error loops; measured here, error units as slow as their
value units (``error_tau = 1``) with ``delay >= 0.2`` tau_x make residual (muPC) networks
oscillate, while ``delay <= 0.1`` or fast error units (``error_tau = 0.1``) converge.

Batches: one sample is the natural mode. ``B > 1`` runs ``B`` independent copies one after
another when the weights are frozen; with learning it is refused (copies would share one set
of weights, which no asynchronous chip does): stream samples one by one or use the clocked
engine for mini-batch iPC.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hardware_models.partial_sums import CLOCKED_ONLY
from pcsim import activations
from pcsim import field as pcfield
from pcsim import read_noise as read_noise_model
from pcsim.activations import ACTIVATION_CODES
from pcsim.circuit import Circuit
from pcsim.conv import CLOCKED_ONLY as CONV_CLOCKED_ONLY
from pcsim.engines.clocked import DivergenceError, check_finite
from pcsim.engines.events_core import (
    _DIVERGED,
    _ERROR,
    _FIFO_DOWN_FULL,
    _FIFO_UP_FULL,
    _VALUE,
    Clocks,
    Delays,
    EvLearning,
    EvNet,
    EvState,
    EvUnits,
    Ledger,
    ReadNoise,
    _close_learning,
    _cq_build,
    _flush_pending,
    _recompute_back,
    _run_events,
)
from pcsim.engines.protocol import Batch, Learning, Presentation, learn_after, start

CLOCKS = ("poisson", "periodic")
UPDATES = ("exp", "euler")


# ---------------------------------------------------------------------------------------------
# Python side
# ---------------------------------------------------------------------------------------------
@dataclass
class EventStats:
    """What one :meth:`EventsEngine.run` did: the ledger of events.

    ``value_events[l]`` (n_l,) and ``error_events[l - 1]`` (n_l,) count each unit's events
    (summed over the batch rows); ``synapse_reads[i]`` / ``synapse_writes[i]`` count synapse
    reads (row MACs: bottom-up predictions and top-down broadcasts) and writes (learning) of
    weight layer ``i`` (W_{i+1}).
    """

    value_events: list[np.ndarray]
    error_events: list[np.ndarray]
    synapse_reads: np.ndarray
    synapse_writes: np.ndarray
    deliveries: int
    sim_time: float
    wall_seconds: float

    @property
    def total_value_events(self) -> int:
        return int(sum(int(v.sum()) for v in self.value_events))

    @property
    def total_error_events(self) -> int:
        return int(sum(int(v.sum()) for v in self.error_events))

    @property
    def total_events(self) -> int:
        """Unit events (value + error), the activity that costs energy."""
        return self.total_value_events + self.total_error_events

    @property
    def events_per_second(self) -> float:
        return self.total_events / self.wall_seconds if self.wall_seconds > 0 else math.inf

    def merge(self, other: EventStats) -> EventStats:
        return EventStats(
            [a + b for a, b in zip(self.value_events, other.value_events, strict=True)],
            [a + b for a, b in zip(self.error_events, other.error_events, strict=True)],
            self.synapse_reads + other.synapse_reads,
            self.synapse_writes + other.synapse_writes,
            self.deliveries + other.deliveries,
            self.sim_time + other.sim_time,
            self.wall_seconds + other.wall_seconds,
        )


@dataclass
class _Fifo:
    """A ring of changes in flight: arrival times, flat unit indices, layers, values."""

    t: np.ndarray
    i: np.ndarray
    layer: np.ndarray
    v: np.ndarray
    p: np.ndarray
    state: np.ndarray  # [head, count]

    @classmethod
    def empty(cls, cap: int) -> _Fifo:
        return cls(
            np.empty(cap),
            np.empty(cap, np.int64),
            np.empty(cap, np.int64),
            np.empty(cap),
            np.empty(cap),
            np.zeros(2, np.int64),
        )

    def grown(self) -> _Fifo:
        cap = self.t.shape[0]
        head, count = int(self.state[0]), int(self.state[1])
        order = (head + np.arange(count)) % cap
        new = _Fifo.empty(2 * cap)
        pairs = ((self.t, new.t), (self.i, new.i), (self.layer, new.layer), (self.v, new.v))
        for src, dst in (*pairs, (self.p, new.p)):
            dst[:count] = src[order]
        new.state[:] = (0, count)
        return new

    def shift(self, dt: float) -> None:
        self.t += dt


@dataclass
class _SampleState:
    """Everything one asynchronous copy of the network carries from call to call."""

    x: np.ndarray
    e: np.ndarray
    x_seen: np.ndarray
    phi_seen: np.ndarray
    e_seen: np.ndarray
    back: np.ndarray
    phi_x: np.ndarray  # phi of each value unit's own current value (for phi' at its event)
    ou_x: np.ndarray  # unit OU state of each value unit's top-down read line (read noise)
    ou_e: np.ndarray  # unit OU state of each error unit's prediction read line
    pending: np.ndarray  # deferred learning coefficient per error unit (clamped input rows)
    unext: np.ndarray
    ulast: np.ndarray
    ulint: np.ndarray  # time up to which each error unit's weight flow has been integrated
    cq_head: np.ndarray
    cq_next: np.ndarray
    cq_bno: np.ndarray
    cq_cur: np.ndarray
    cq_inv_w: float
    rng: np.ndarray
    fifo_up: _Fifo
    fifo_down: _Fifo
    t: float
    free: tuple[bool, ...]
    x_out: np.ndarray | None = None


@dataclass
class EventsEngine:
    """Asynchronous engine: every unit on its own clock (see the module docstring).

    Parameters (times in tau_x units):
      events_per_tau: mean events of a unit per its own time constant (its rate is
        ``events_per_tau / tau_unit``); the time resolution of the simulated circuit.
      clock: "poisson" (exponential intervals) or "periodic" (lognormal intervals with relative
        std ``rate_jitter``, random phases).
      delay_up / delay_down: transmission delay of bottom-up predictions / top-down errors.
      error_tau: error units' time constant relative to their value unit's (mismatch shared).
      sigma: value-unit noise amplitude (as ClockedEngine's Euler-Maruyama sigma).
      update: "exp" (exact exponential relaxation, the engine) or "euler" (explicit Euler step
        on stale inputs, kept only to show why it is not used).
      resync_every: events between exact recomputations of the running top-down sums.
      sync_every: on a modelled (non-ideal) chip, tau_x between writes of the accumulated
        weight changes through ``circ.apply_weight_update`` and fresh weight reads.
    Randomness (clocks, noise) is drawn from ``circ.rng``.
    """

    events_per_tau: float = 10.0
    clock: str = "poisson"
    rate_jitter: float = 0.0
    delay_up: float = 0.0
    delay_down: float = 0.0
    error_tau: float = 1.0
    sigma: float = 0.0
    update: str = "exp"
    resync_every: int = 1 << 20
    sync_every: float = 1.0
    _states: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _key: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {self.clock!r}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        for name in ("events_per_tau", "error_tau", "sync_every"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v}")
        for name in ("rate_jitter", "delay_up", "delay_down", "sigma"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be >= 0, got {v}")
        if self.rate_jitter > 0 and self.clock != "periodic":
            raise ValueError(
                "rate_jitter applies to clock='periodic' (Poisson intervals already have a "
                "relative std of 1)"
            )
        if self.resync_every < 1:
            raise ValueError("resync_every must be >= 1")

    def reset(self) -> None:
        """Forget the carried state (error units, wires in flight, clocks)."""
        self._states = {}
        self._key = None

    def get_state(self) -> dict:
        """What a checkpoint keeps: each copy's carried state (``state_<b>``) and the key it
        belongs to (``key``: sizes, free flags, batch); empty when nothing is carried."""
        if not self._states:
            return {}
        key = self._key
        state: dict = {"key": [list(key[1]), list(key[2]), int(key[3])]}
        state.update({f"state_{b}": st for b, st in self._states.items()})
        return state

    def set_state(self, state: dict, circ: Circuit) -> None:
        """Restore :meth:`get_state`, keyed to ``circ`` (the circuit it continues on)."""
        sizes, free, batch = state["key"]
        self._states = {int(k.split("_")[1]): v for k, v in state.items() if k != "key"}
        self._key = (id(circ), tuple(sizes), tuple(free), batch)

    # -- set-up -------------------------------------------------------------------------------
    def _unit_tables(self, circ: Circuit, free: Sequence[bool]):
        net = circ.net
        sizes, L = net.sizes, net.n_layers
        kinds, layers, idx, taus = [], [], [], []
        for l in range(L + 1):
            if free[l]:
                n = sizes[l]
                kinds.append(np.full(n, _VALUE, np.int8))
                layers.append(np.full(n, l, np.int32))
                idx.append(np.arange(n, dtype=np.int32))
                taus.append(np.asarray(circ.tau_scale[l], np.float64))
        etau = getattr(circ, "error_tau_scale", None)
        for l in range(1, L + 1):
            n = sizes[l]
            kinds.append(np.full(n, _ERROR, np.int8))
            layers.append(np.full(n, l, np.int32))
            idx.append(np.arange(n, dtype=np.int32))
            base = etau[l] if etau is not None else circ.tau_scale[l]
            taus.append(self.error_tau * np.asarray(base, np.float64))
        utau = np.concatenate(taus)
        if getattr(circ, "partial_sums", None) is not None:
            raise ValueError(CLOCKED_ONLY)
        if circ.net.has_conv:
            raise ValueError(CONV_CLOCKED_ONLY)
        if not np.all(utau > 0) or not np.all(np.isfinite(utau)):
            raise ValueError("unit time constants (circ.tau_scale) must be positive and finite")
        return np.concatenate(kinds), np.concatenate(layers), np.concatenate(idx), utau

    def _new_state(self, circ, x_flat, free, tables, t0, Ws, bs):
        net = circ.net
        L = net.n_layers
        xoff = self._x_start
        utau = tables[3]
        # error units start at their targets for the current activities (as the clocked
        # engine's instantaneous errors); the wires start carrying the current values
        xs1 = [x_flat[xoff[l] : xoff[l + 1]][None, :] for l in range(L + 1)]
        eps = pcfield.errors(net, xs1, list(Ws), circ.units)
        e = np.concatenate([v[0] for v in eps]).astype(np.float64)
        phi = activations.get(net.activation)[0]
        phi_seen = x_flat.copy()
        for l in range(1, L + 1):
            phi_seen[xoff[l] : xoff[l + 1]] = phi(x_flat[xoff[l] : xoff[l + 1]])
        umean = utau / self.events_per_tau
        rng = circ.rng
        ou_x, ou_e = np.zeros_like(x_flat), np.zeros_like(e)
        if np.any(getattr(circ, "read_sigma", 0.0)):  # read lines start in their stationary law
            ou_x, ou_e = rng.standard_normal(x_flat.shape), rng.standard_normal(e.shape)
        if self.clock == "poisson":
            unext = t0 + rng.exponential(umean)
        else:
            unext = t0 + rng.uniform(0.0, 1.0, umean.shape) * umean
        ulast = np.full(utau.shape, t0)
        nunits = utau.shape[0]
        nb = 1 << max(4, int(math.ceil(math.log2(4 * nunits))))
        inv_w = float(np.sum(1.0 / umean))  # bucket width: one mean gap between events
        cq = (np.full(nb, -1, np.int64), np.full(nunits, -1, np.int64), np.zeros(nunits, np.int64))
        cq_cur = np.zeros(1, np.int64)
        _cq_build(*cq, unext, nb - 1, inv_w, cq_cur)
        seed = rng.integers(1, 2**63 - 1, size=4, dtype=np.int64).astype(np.uint64)
        cap = 1024
        if self.delay_up > 0 or self.delay_down > 0:
            rate = float(np.sum(1.0 / umean))
            cap = max(cap, int(2 * rate * max(self.delay_up, self.delay_down)) + 1024)
        return _SampleState(
            x=x_flat,
            e=e,
            x_seen=x_flat.copy(),
            phi_seen=phi_seen,
            e_seen=e.copy(),
            back=np.zeros_like(x_flat),
            phi_x=phi_seen.copy(),
            ou_x=ou_x,
            ou_e=ou_e,
            pending=np.zeros_like(e),
            unext=unext,
            ulast=ulast,
            ulint=ulast.copy(),
            cq_head=cq[0],
            cq_next=cq[1],
            cq_bno=cq[2],
            cq_cur=cq_cur,
            cq_inv_w=inv_w,
            rng=seed,
            fifo_up=_Fifo.empty(cap if self.delay_up > 0 else 1),
            fifo_down=_Fifo.empty(cap if self.delay_down > 0 else 1),
            t=t0,
            free=tuple(free),
        )

    # -- the engine contract (pcsim.engines.protocol) -----------------------------------------
    def present(
        self,
        circ: Circuit,
        batch: Batch,
        duration: float,
        learning: Learning | None = None,
    ) -> Presentation:
        """Present ``batch`` for ``duration`` (tau_x units) (:class:`pcsim.engines.protocol.
        Engine`): frozen, learning ``during`` it (every error unit integrates the weight flow
        at its own events, ``tau_w`` from ``learning.flow_tau_w()``; batch 1 only), or one
        optimiser step ``after`` it from the settled errors. ``events`` holds the event
        ledger; ``energy`` is the energy of the final state (weights as read now)."""
        spent = circ.ledger.total()
        xs, _ = start(circ, batch)
        if learning is None:
            stats = self.run(circ, xs, batch.free, duration)
            return Presentation(xs, events=stats, energy_j=circ.ledger.total() - spent)
        if learning.when == "after":
            got = []
            energy = learn_after(
                circ,
                xs,
                learning.optimizer,
                lambda: got.append(self.run(circ, xs, batch.free, duration)),
            )
            stats = got[0]
        else:
            stats = self.run(circ, xs, batch.free, duration, tau_w=learning.flow_tau_w())
            energy = pcfield.energy(circ.net, xs, circ.read_weights())
        return Presentation(xs, energy, events=stats, energy_j=circ.ledger.total() - spent)

    # -- the run ------------------------------------------------------------------------------
    def run(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        tau_w: float | None = None,
    ) -> EventStats:
        """Let every unit run on its own clock for ``duration`` (tau_x units), in place on
        ``xs``; with ``tau_w`` the error units also learn (iPC weight flow, ``tau_w`` in tau_x
        units). Advances ``circ.t``. Returns the event ledger. Raises DivergenceError on
        blow-up, ValueError for ``B > 1`` with learning.

        The engine carries each copy's error units, wires in flight, clocks and random stream
        from one call to the next while the free activities in ``xs`` are the ones it returned
        (new clamped values, e.g. a new input, arrive on their wires at the start of the call:
        the only external event). Otherwise (new activities, another circuit, other clamps) it
        starts afresh: error units at their targets, wires carrying the current values."""
        net = circ.net
        L = net.n_layers
        free = tuple(bool(f) for f in free)
        if len(free) != L + 1 or len(xs) != L + 1:
            raise ValueError(f"xs and free need one entry per layer (0..{L})")
        if not (duration >= 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be >= 0 and finite, got {duration}")
        if tau_w is not None and not (tau_w > 0):
            raise ValueError(f"tau_w must be positive, got {tau_w}")
        B = xs[0].shape[0]
        learn = tau_w is not None
        if learn and B != 1:
            raise ValueError(
                f"the events engine learns from one sample at a time (batch {B} given): "
                "copies of the network would share one set of weights, which no asynchronous "
                "chip does. Stream the samples one by one (batch size 1, e.g. IPCEvents) or use "
                "the clocked engine for mini-batch iPC."
            )
        sizes = net.sizes
        self._x_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._e_start = np.concatenate([[0], np.cumsum(sizes[1:])]).astype(np.int64)
        key = (id(circ), sizes, free, B)
        if key != self._key:
            self._states = {}
            self._key = key
        tables = self._unit_tables(circ, free)
        t0 = float(circ.t)
        direct = bool(getattr(circ, "ideal", True))
        total = None
        wall0 = time.perf_counter()
        for b in range(B):
            x_flat = np.concatenate([np.asarray(x[b], np.float64) for x in xs])
            st = self._states.get(b)
            Ws, bs = self._weights(circ, direct)
            if st is None or not _continues(st, x_flat, free, self._x_start):
                st = self._new_state(circ, x_flat, free, tables, t0, Ws, bs)
                self._states[b] = st
            else:
                self._resume(st, x_flat, free, t0, net)
            stats = self._integrate(circ, st, tables, free, t0, duration, tau_w, direct)
            for l in range(L + 1):
                if free[l]:
                    xs[l][b] = st.x[self._x_start[l] : self._x_start[l + 1]]
            # what the caller holds now (cast to its dtype): the key to continue next time
            st.x_out = np.concatenate([np.asarray(x[b], np.float64) for x in xs])
            total = stats if total is None else total.merge(stats)
        circ.t = t0 + duration
        total.wall_seconds = time.perf_counter() - wall0
        total.sim_time = duration
        check_finite(xs, free, circ.t)
        _charge(circ, total, B, duration, direct and learn)
        return total

    def _weights(self, circ: Circuit, direct: bool):
        net = circ.net
        Ws = tuple(net.weights) if direct else tuple(circ.read_weights())
        if net.biases is not None:
            bs = tuple(net.biases)
        else:
            bs = tuple(np.zeros(n, net.dtype) for n in net.sizes[1:])
        return Ws, bs

    def _resume(self, st: _SampleState, x_flat, free, t0, net) -> None:
        """Continue a carried state: new clamped values arrive; clocks follow ``circ.t``."""
        if st.t != t0:
            dt = t0 - st.t
            st.unext += dt
            st.ulast += dt
            st.ulint += dt
            st.fifo_up.shift(dt)
            st.fifo_down.shift(dt)
            st.t = t0
            _cq_build(
                st.cq_head,
                st.cq_next,
                st.cq_bno,
                st.unext,
                st.cq_head.shape[0] - 1,
                st.cq_inv_w,
                st.cq_cur,
            )
        phi = activations.get(net.activation)[0]
        xoff = self._x_start
        for l in range(len(free)):
            if not free[l]:  # clamped inputs / targets: the external event, on their wires now
                sl = slice(xoff[l], xoff[l + 1])
                st.x[sl] = x_flat[sl]
                st.x_seen[sl] = x_flat[sl]
                st.phi_seen[sl] = x_flat[sl] if l == 0 else phi(x_flat[sl])

    def _integrate(self, circ, st, tables, free, t0, duration, tau_w, direct) -> EventStats:
        net = circ.net
        L = net.n_layers
        kinds, layers, idx, utau = tables
        umean = utau / self.events_per_tau
        egain = np.concatenate([np.asarray(g, np.float64) for g in circ.units.error_gain[1:]])
        e_offset = np.concatenate([np.asarray(o, np.float64) for o in circ.units.error_offset[1:]])
        leak = np.concatenate([np.asarray(k, np.float64) for k in circ.units.leak])
        amp = np.concatenate(
            [np.sqrt(self.sigma**2 + np.asarray(s, np.float64) ** 2) for s in circ.thermal_sigma]
        )
        lo, hi = (float(r) for r in circ.rails)
        scales = np.asarray(net.scales, np.float64)
        residual = np.asarray(net.residual, np.bool_)
        free_a = np.asarray(free, np.bool_)
        act = ACTIVATION_CODES[net.activation]
        poisson = self.clock == "poisson"
        js = math.sqrt(math.log1p(self.rate_jitter**2)) if self.rate_jitter > 0 else 0.0
        jm = -0.5 * js * js
        counts = np.zeros(utau.shape[0], np.int64)
        reads = np.zeros(L, np.int64)
        writes = np.zeros(L, np.int64)
        deliveries = np.zeros(2, np.int64)
        psq = np.zeros(L)
        esq = np.zeros(L)
        rsig = np.zeros(L)
        inv_tau_r = 1.0
        if getattr(circ, "read_sigma", None) is not None:  # per device, in weight units
            # each read line's OU (stationary std sigma_s, correlation time read_window_tau)
            # is advanced exactly over its unit's own interval h; the read sees its mean
            rsig[:] = read_noise_model.stationary_std(circ.read_sigma)
            inv_tau_r = 1.0 / circ.read_window_tau
        read_noise = bool(np.any(rsig > 0))
        since = np.zeros(1, np.int64)
        learn = tau_w is not None
        inv_tau_w = 1.0 / tau_w if learn else 0.0
        t_final = t0 + duration
        sync = math.inf if direct else self.sync_every  # fresh reads (noise, drift), writes
        units = EvUnits(egain, e_offset, leak, amp, lo, hi)
        rn = ReadNoise(rsig, read_noise, float(inv_tau_r), psq, esq)
        ledger = Ledger(counts, reads, writes, deliveries, int(self.resync_every), since)
        t = t0
        while True:
            Ws, bs = self._weights(circ, direct)
            accW = tuple(np.zeros_like(W) for W in Ws) if not direct else Ws
            accb = tuple(np.zeros_like(b) for b in bs) if not direct else bs
            knet = EvNet(
                Ws, bs, net.has_bias, scales, residual, free_a, act, self._x_start, self._e_start
            )
            kst = EvState(
                st.x, st.e, st.x_seen, st.phi_seen, st.e_seen, st.back, st.phi_x, st.pending,
                st.ou_x, st.ou_e,
            )  # fmt: skip
            learning = EvLearning(learn, inv_tau_w, direct, accW, accb)
            _recompute_back(knet, kst, rn)
            since[0] = 0
            t_chunk = min(t_final, t + sync)
            clock_args = (kinds, layers, idx, utau, umean, poisson, jm, js)
            t, clocks = self._run_chunk(
                st, t_chunk, clock_args, knet, units, kst, rn, learning, ledger
            )
            if learn:
                if direct:
                    _flush_pending(knet, kst)
                if t >= t_final:  # the weights learn up to the end, not to the last events
                    _close_learning(t_final, knet, units, kst, clocks, learning, ledger)
            if not direct and learn:
                circ.apply_weight_update(list(accW), list(accb) if net.has_bias else None)
            if t >= t_final:
                break
        st.t = t_final
        value_events, error_events = _per_layer_counts(counts, net.sizes, free)
        return EventStats(
            value_events, error_events, reads, writes, int(deliveries.sum()), duration, 0.0
        )

    def _run_chunk(self, st, t_chunk, clock_args, knet, units, kst, rn, learning, ledger):
        """The compiled event loop up to ``t_chunk``, again after growing a full delay FIFO;
        returns the time reached and the clocks group (DivergenceError on blow-up)."""
        kinds, layers, idx, utau, umean, poisson, jm, js = clock_args
        while True:
            clocks = Clocks(
                kinds, layers, idx, utau, umean, st.unext, st.ulast, st.ulint, st.cq_head,
                st.cq_next, st.cq_bno, st.cq_cur, st.cq_inv_w, st.rng, poisson, jm, js,
                self.update == "exp",
            )  # fmt: skip
            fu, fd = st.fifo_up, st.fifo_down  # replaced when they grow
            delays = Delays(
                float(self.delay_up), fu.t, fu.i, fu.layer, fu.v, fu.p, fu.state,
                float(self.delay_down), fd.t, fd.i, fd.v, fd.state,
            )  # fmt: skip
            status, t = _run_events(t_chunk, knet, units, kst, rn, clocks, delays, learning, ledger)
            if status == _FIFO_UP_FULL:
                st.fifo_up = st.fifo_up.grown()
            elif status == _FIFO_DOWN_FULL:
                st.fifo_down = st.fifo_down.grown()
            elif status == _DIVERGED:
                hint = (
                    "with update='euler' this is expected"
                    if self.update == "euler"
                    else "with learning on, a weight time constant tau_w long against the "
                    "slowest units keeps it stable"
                )
                raise DivergenceError(
                    f"event simulation diverged at t = {t:.4g} tau_x (a value unit left "
                    f"the finite range); {hint}"
                )
            else:
                return t, clocks


def _per_layer_counts(counts: np.ndarray, sizes, free) -> tuple[list, list]:
    """Split the per-unit event counts (free value units, then error units of layers 1..L)
    into per-layer arrays; clamped layers' value units have none (zeros)."""
    value_events, error_events = [], []
    pos = 0
    for l, n in enumerate(sizes):
        if free[l]:
            value_events.append(counts[pos : pos + n].copy())
            pos += n
        else:
            value_events.append(np.zeros(n, np.int64))
    for n in sizes[1:]:
        error_events.append(counts[pos : pos + n].copy())
        pos += n
    return value_events, error_events


def _charge(circ: Circuit, stats: EventStats, batch: int, duration: float, writes: bool):
    """Charge the chip's ledger per event: one transition energy per unit event (value or
    error: ``costs.transition_energy_j``, C V^2 by default), one MAC per device read (a
    synapse read reads each of its device pairs and bit slices, as the clocked engine's
    ``Circuit.charge_time`` counts them), one write per synapse written in place (writes
    through ``apply_weight_update`` are charged there, per pulse), and the static power of
    every biased unit times the simulated time."""
    chip = circ.chip
    if chip is None:
        return
    c = chip.costs
    led = circ.ledger
    seconds = duration * chip.tau_x_s * batch
    led.charge("static", c.static_energy_j(circ.n_units, seconds))
    led.add_time(seconds)
    n = stats.total_events
    led.charge("unit_dynamic", n * chip.transition_energy_j, n)
    # every device of a weight conducts when its row is read: its device pairs and bit slices
    reads = int(stats.synapse_reads.sum()) * circ.device_pairs * circ.weight_slices
    led.charge("crossbar_read", c.read_energy_j(reads), reads)
    circ.charge_periphery(duration, batch)  # tile ADCs convert on their clock, not per event
    if writes:
        w = int(stats.synapse_writes.sum())
        led.charge("synapse_write", c.write_energy_j(w), w)


def _continues(st: _SampleState, x_flat: np.ndarray, free, xoff) -> bool:
    """A carried state continues when the free activities are the ones it left."""
    if st.free != tuple(free):
        return False
    for l, f in enumerate(free):
        sl = slice(xoff[l], xoff[l + 1])
        if f and (st.x_out is None or not np.array_equal(st.x_out[sl], x_flat[sl])):
            return False
    return True
