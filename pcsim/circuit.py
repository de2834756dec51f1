"""A network placed on a chip: the state that engines integrate.

``Circuit`` owns what the substrate adds to the pure algorithm: per-unit rates (tau mismatch),
leaks, rails, error-unit gain/offset, noise amplitudes, how weights are read and written, the
converters at the edges, the simulated time and the energy ledger. With no chip, or the
``ideal`` chip, every hook is the identity, so a run is bit for bit the pure algorithm.

Time is in units of ``tau_x``; ``chip.tau_x_s`` converts to seconds. Costs (docs/math.md,
section 6) are charged as the engines report what happened:

- static power of every biased unit (value and error units) x time, per sample circuit; time
  is ``read_period_s`` per ``tau_x`` of the dynamics: ``tau_x``, or the tiles' conversion
  time where per-tile ADCs (shared columns) take longer than ``tau_x`` to close the loop;
- crossbar reads: each synapse conducts continuously in both directions (predictions up,
  errors down); pcsim counts one multiply-accumulate per synapse and direction per ``tau_x``
  (the crossbar's RC settling time is about one tau), priced at ``read_energy_per_mac_j``;
- dynamic ``C V^2`` per unit transition, counted as the total swing ``sum |dx|`` in activity
  units (one activity unit = ``signal_scale_v`` volts);
- write pulses fired by the update model, priced at ``write_energy_per_pulse_j``;
- one DAC conversion per clamped input or target value, one ADC conversion per output read;
- with digital partial sums (``chip.architecture``), one ADC conversion per tile output per
  read, at the crossbar-read clock (one read per ``tau_x`` and direction): ``tile_adc``.
  With ``chip.architecture.tile_adc_reads`` those conversions also shape what is read: every
  product goes through the tiles' ADCs (``partial_sums``, :mod:`hardware_models.partial_sums`),
  which the clocked engine's numpy path evaluates (the fused numba kernels read plain
  products and are not used then);
- a convolutional layer (:mod:`pcsim.conv`) is its kernel matrix ``(out_channels, rows)`` on
  the crossbar, read once per output position: ``positions * rows * out_channels`` MACs per
  read and direction, its tiles' conversions ``positions`` times, and its patches streamed
  one after another through the one crossbar, so that one read of the layer takes
  ``positions`` crossbar reads (:meth:`Circuit.layer_maps`); conv networks take the engines'
  numpy paths (``numpy_products``);
- with ``synapses.stuck_aware_mapping``, a one-time read-out of every device at placement
  (``stuck_map_readout``, :func:`hardware_models.stuck_aware.readout_energy_j`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hardware_models import Chip, stuck_aware
from hardware_models.architecture import output_conversion_s, read_period_s
from hardware_models.costs import EnergyLedger
from hardware_models.mapping import MappedCrossbar
from hardware_models.partial_sums import TileReads
from pcsim import blas, read_noise
from pcsim.field import UnitParams
from pcsim.kernels import FeedforwardBuffers, GroupCache, ListSlots, Workspace
from pcsim.network import Network
from pcsim.vecmath import standard_normal

# Exact writes are priced as pulses of a device with this many bits over the programmed range
# (the 8-bit weights of the NeuroSim V1.4 benchmark, docs/sources.md): see exact_write_pulses.
EXACT_WRITE_BITS = 8


@dataclass
class Circuit:
    """A network on a substrate. ``chip=None`` means the ideal substrate with no cost model.

    Per-layer attributes (index ``l = 0..L``) filled from the chip: ``tau_scale``
    (tau_unit / tau_x), ``units`` (error gain/offset, leak), ``thermal_sigma`` (noise amplitude
    in activity units per sqrt(tau)); ``rails`` (low, high) for every value unit.
    """

    net: Network
    chip: Chip | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    t: float = 0.0
    rails: tuple[float, float] = (-np.inf, np.inf)
    ledger: EnergyLedger = field(default_factory=EnergyLedger)
    tau_scale: list[np.ndarray] = field(init=False)
    units: UnitParams = field(init=False)
    thermal_sigma: list[np.ndarray] = field(init=False)
    crossbars: list | None = field(default=None, init=False, repr=False)
    # products read through per-tile ADCs (hardware_models.partial_sums); None: plain products
    partial_sums: TileReads | None = field(default=None, init=False, repr=False)
    # the largest number of bound-management repeats of the last output read (converters)
    adc_retries: int = field(default=0, init=False, repr=False)
    _read_periods: dict[bool, float] = field(default_factory=dict, init=False, repr=False)
    read_sigma: np.ndarray = field(init=False, repr=False)
    read_window_tau: float = field(default=1.0, init=False, repr=False)
    # the read lines' unit OU states (pcsim.read_noise): forward products' outputs (B, n_{i+1}),
    # backward products' inputs (B, n_i), and the circuit time each group was last advanced to
    read_ou_fwd: list[np.ndarray] | None = field(default=None, init=False, repr=False)
    read_ou_bwd: list[np.ndarray] | None = field(default=None, init=False, repr=False)
    read_ou_t: np.ndarray | None = field(default=None, init=False, repr=False)
    _read_scratch: dict = field(default_factory=dict, init=False, repr=False)
    _ou_sigma: tuple | None = field(default=None, init=False, repr=False)
    _exact_quantum: list = field(default_factory=list, init=False, repr=False)
    _read_bufs: list[np.ndarray] | None = field(default=None, init=False, repr=False)
    _workspaces: dict[int, tuple[Workspace, Workspace]] = field(
        default_factory=dict, init=False, repr=False
    )
    _kernel_groups: GroupCache = field(default_factory=GroupCache, init=False, repr=False)
    _kernel_lists: ListSlots = field(default_factory=ListSlots, init=False, repr=False)
    _gamma_cache: dict[float, tuple[np.ndarray, ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        blas.first_run_default()  # a simulation starts: one BLAS thread unless set already
        sizes, dt = self.net.sizes, self.net.dtype
        self.tau_scale = [np.ones(n, dt) for n in sizes]
        self.units = UnitParams.ideal(sizes, dt)
        self.thermal_sigma = [np.zeros(n, dt) for n in sizes]
        self._dummy_biases = tuple(np.zeros(n, dt) for n in sizes[1:])
        self.read_sigma = np.zeros(len(sizes) - 1)
        if self.chip is not None:
            self._place_on_chip(self.chip)

    def _place_on_chip(self, chip: Chip) -> None:
        net = self.net
        self.crossbars = []
        for i, W in enumerate(net.weights):
            cb = chip.crossbar(W.shape, net.dtype)
            cb.program(W, self.rng, t_s=0.0, copy=False)
            net.weights[i] = cb.weights  # the network's weights are the devices' weights
            self.crossbars.append(cb)
        if chip.synapses.stuck_aware_mapping:
            # the stuck map is read out once (every device read once) before mapping
            n_w = sum(W.size for W in net.weights)
            dpw = chip.architecture.devices_per_weight * chip.weight_slices
            e = stuck_aware.readout_energy_j(n_w, dpw, chip.costs.read_energy_per_mac_j)
            self.ledger.charge("stuck_map_readout", e, count=n_w * dpw)
        if not all(cb.is_ideal for cb in self.crossbars):
            self._read_bufs = [np.empty_like(W) for W in net.weights]
        self.read_sigma = np.array([cb.read_sigma for cb in self.crossbars])
        self.partial_sums = chip.tile_reads()
        if self.partial_sums is not None and net.has_conv:
            raise ValueError(
                "chip.architecture.tile_adc_reads: per-tile ADC reads of convolutional layers "
                "are not modelled; use it with dense networks"
            )
        self._exact_quantum = [self._write_quantum(cb) for cb in self.crossbars]
        t_read = chip.synapses.read_time_s
        self.read_window_tau = 1.0 if t_read is None else t_read / chip.tau_x_s
        for l, n in enumerate(net.sizes):
            ua = chip.units(n, self.rng, net.dtype)
            self.tau_scale[l] = ua.tau_scale
            self.units.leak[l] = ua.leak
            self.units.error_gain[l] = ua.error_gain
            self.units.error_offset[l] = ua.error_offset
            # error-unit noise reaches the value unit through -eps: folded into its noise
            self.thermal_sigma[l] = np.sqrt(ua.thermal_sigma**2 + ua.error_noise_std**2).astype(
                net.dtype
            )
            self.rails = (ua.rail_low, ua.rail_high)

    @staticmethod
    def _write_quantum(cb) -> float | None:
        """The pulse-equivalent of an exactly written crossbar (None where it fires pulses)."""
        if cb.config.relative_dw_min() is not None:
            return None
        w = cb.w_max if math.isfinite(cb.w_max) else float(np.max(np.abs(cb.weights)))
        return (w if w > 0 else 1.0) / (2 ** (EXACT_WRITE_BITS - 1) - 1)

    # -- substrate hooks ------------------------------------------------------------------
    @property
    def ideal(self) -> bool:
        return self.chip is None or self.chip.is_ideal

    @property
    def noisy(self) -> bool:
        """True when any unit has thermal noise (engines then integrate an SDE)."""
        # count_nonzero: the same answer as .any() (NaN counts), a third of the time
        return any(np.count_nonzero(s) for s in self.thermal_sigma)

    @property
    def tau_x_s(self) -> float:
        """Seconds per tau_x (0 when there is no chip to say)."""
        return self.chip.tau_x_s if self.chip is not None else 0.0

    def seconds(self, t_tau: float | None = None) -> float:
        return (self.t if t_tau is None else t_tau) * self.tau_x_s

    def read_weights(self) -> tuple[np.ndarray, ...]:
        """The weight matrices a matrix-vector product sees now, without read noise (ideal:
        the stored arrays). Engines add read noise in the output domain (``read_sigma``)."""
        if self._read_bufs is None:
            return tuple(self.net.weights)
        t_s = self.seconds()
        return tuple(
            cb.read_mean(t_s, out=buf)
            for cb, buf in zip(self.crossbars, self._read_bufs, strict=True)
        )

    @property
    def numpy_products(self) -> bool:
        """True when the products must take the numpy reference (:mod:`pcsim.field`): reads
        through per-tile ADCs, or convolutional layers (the numba kernels are dense)."""
        return self.partial_sums is not None or self.net.has_conv

    @property
    def static_reads(self) -> bool:
        """True when :meth:`read_weights` gives the same matrices at every time (no drift)."""
        return self._read_bufs is None or not any(
            cb.config.time_varying_reads for cb in self.crossbars
        )

    @property
    def has_read_noise(self) -> bool:
        return bool(self.read_sigma.any())  # sigmas are >= 0

    def read_sigma_step(self, dt: float) -> np.ndarray:
        """Per-device std (weight units) of the mean over a step of ``dt`` (tau_x units) of a
        *white* read noise whose one-read mean has std ``read_sigma``:
        ``read_sigma * sqrt(read_window_tau / dt)``, one entry per weight layer. The engines
        no longer use it (read noise is an OU process per line, :meth:`read_noise_step`); it
        is kept as the white-noise reference (benchmarks/noise_pulses.py)."""
        if not self.has_read_noise:
            return self.read_sigma
        return self.read_sigma * math.sqrt(self.read_window_tau / dt)

    @property
    def read_ou_sigma(self) -> np.ndarray:
        """Stationary std (weight units, per device) of each weight layer's read-line OU
        process: ``read_sigma * sqrt(e / 2)`` (:func:`pcsim.read_noise.stationary_std`). The
        same array while ``read_sigma`` is (the kernels' noise group is found by identity)."""
        kept = self._ou_sigma
        if kept is None or kept[0] is not self.read_sigma:
            kept = self._ou_sigma = (self.read_sigma, read_noise.stationary_std(self.read_sigma))
        return kept[1]

    def read_noise_state(self, batch: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The read lines' unit OU states for ``batch`` samples (``read_ou_fwd``,
        ``read_ou_bwd``); drawn from the stationary law (standard normals from ``rng``) when
        there are none yet or the batch size changed."""
        if self.read_ou_fwd is None or self.read_ou_fwd[0].shape[0] != batch:
            sizes = self.net.sizes
            L = len(sizes) - 1
            self.read_ou_fwd = [
                standard_normal(self.rng, np.empty((batch, sizes[i + 1]))) for i in range(L)
            ]
            self.read_ou_bwd = [
                standard_normal(self.rng, np.empty((batch, sizes[i]))) for i in range(L)
            ]
            self.read_ou_t = np.full(2 * L, self.t)
        assert self.read_ou_bwd is not None
        return self.read_ou_fwd, self.read_ou_bwd

    def read_noise_step(
        self,
        dt: float,
        free: Sequence[bool],
        fwd: Sequence[np.ndarray],
        bwd: Sequence[np.ndarray],
    ) -> np.ndarray:
        """Advance the read lines' OU processes exactly from ``t`` to ``t + dt`` (tau_x units)
        and write each line's mean over the step: ``fwd[i]`` (B, n_{i+1}) for every weight
        layer with read noise, ``bwd[l]`` (B, n_l) for the free layers among them (groups not
        read this step wait, and catch up exactly over the gap when next read). Returns the
        per-device stationary std of each layer (:attr:`read_ou_sigma`): the noise added to a
        product is ``a_l * sigma * ||input|| * mean`` (:mod:`pcsim.read_noise`). Normals are
        drawn from ``rng`` in a fixed order (forward groups, then backward), so both clocked
        backends see the same noise."""
        sig = self.read_sigma
        L = len(sig)
        ufwd, ubwd = self.read_noise_state(fwd[0].shape[0])
        assert self.read_ou_t is not None
        tau = self.read_window_tau
        t0, t1 = self.t, self.t + dt
        groups = [(i, ufwd[i], fwd[i]) for i in range(L) if sig[i] > 0]
        groups += [(L + l, ubwd[l], bwd[l]) for l in range(L) if free[l] and sig[l] > 0]
        n_draw = 2 * sum(u.size for _, u, _ in groups)
        z = self._read_scratch.get("z")
        if z is None or z.size < n_draw:
            z = self._read_scratch["z"] = np.empty(n_draw)
        for g, u, _ in groups:
            gap = t0 - self.read_ou_t[g]
            if gap > 0:  # not read since before t: the exact transition over the gap
                read_noise.relax(u, gap / tau, self.rng, z)
        zs = standard_normal(self.rng, z[:n_draw])  # every line's (z1, z2) of this step
        coeffs = read_noise.coefficients(dt / tau)
        off = 0
        for g, u, out in groups:
            n = u.size
            read_noise.advance_with(u.reshape(-1), out.reshape(-1), zs[off : off + 2 * n], *coeffs)
            off += 2 * n
            self.read_ou_t[g] = t1
        return self.read_ou_sigma

    def read_noise_catch_up(self, batch: int) -> None:
        """Advance every read line not read since before ``t`` exactly to ``t`` (an engine
        that takes the states as they are, Brian2, starts from here)."""
        self.read_noise_state(batch)
        assert self.read_ou_fwd is not None and self.read_ou_bwd is not None
        assert self.read_ou_t is not None
        tau = self.read_window_tau
        for g, u in enumerate(self.read_ou_fwd + self.read_ou_bwd):
            gap = self.t - self.read_ou_t[g]
            if gap > 0:
                read_noise.relax(u, gap / tau, self.rng, np.empty(u.size))
                self.read_ou_t[g] = self.t

    def get_read_noise_state(self) -> dict | None:
        """The read lines' OU states as a checkpoint keeps them (None where there are none)."""
        if self.read_ou_fwd is None or self.read_ou_bwd is None or self.read_ou_t is None:
            return None
        return {
            "fwd": [u.tolist() for u in self.read_ou_fwd],
            "bwd": [u.tolist() for u in self.read_ou_bwd],
            "t": self.read_ou_t.tolist(),
        }

    def set_read_noise_state(self, state: dict | None) -> None:
        """Restore :meth:`get_read_noise_state` (None: draw afresh when first needed)."""
        if state is None:
            self.read_ou_fwd = self.read_ou_bwd = self.read_ou_t = None
            return
        self.read_ou_fwd = [np.array(u, dtype=np.float64) for u in state["fwd"]]
        self.read_ou_bwd = [np.array(u, dtype=np.float64) for u in state["bwd"]]
        self.read_ou_t = np.array(state["t"], dtype=np.float64)

    def apply_weight_update(
        self,
        deltas_w: Sequence[np.ndarray],
        deltas_b: Sequence[np.ndarray] | None,
        replicas: int = 1,
    ) -> None:
        """Write ``W += dW`` through the substrate's update model (biases are digital).

        ``replicas``: copies of the circuit the batch runs on (``learning_rule.batch_execution``);
        every pulse is fired on each of them, so pulses and write energy count ``replicas``
        times."""
        if self.crossbars is None:
            for W, d in zip(self.net.weights, deltas_w, strict=True):
                W += d
        else:
            t_s = self.seconds()  # written devices restart their drift clocks
            pulses = 0.0
            for l, (cb, d) in enumerate(zip(self.crossbars, deltas_w, strict=True)):
                fired = cb.update(d, self.rng, t_s)
                q = self._exact_quantum[l]
                pulses += fired if q is None else _device_change(cb, d) / q
            self.charge_writes(replicas * pulses)

        if deltas_b is not None and self.net.biases is not None:
            for b, d in zip(self.net.biases, deltas_b, strict=True):
                b += d

    def dac(self, x: np.ndarray) -> np.ndarray:
        """Input values as the chip's DAC delivers them (charged per conversion)."""
        if self.chip is None:
            return x
        cv = self.chip.converters
        self.ledger.charge("dac", x.size * cv.dac_energy_j, x.size)
        y, ops = cv.convert_input(x)
        if ops:  # input (noise) management: digital scaling on the co-processor
            e = ops * self.chip.costs.baseline.mult_energy_j
            self.ledger.charge("noise_management", e, ops)
        return y

    def adc(self, x: np.ndarray) -> np.ndarray:
        """Output values as the chip's ADC reads them (charged per conversion)."""
        if self.chip is None:
            return x
        cv = self.chip.converters
        y, n, k = cv.convert_output(x)  # bound management repeats clipped reads
        self.ledger.charge("adc", x.size * cv.adc_energy_j, x.size)
        if n > x.size:  # the repeats: their own ledger entry
            self.ledger.charge("bound_management", (n - x.size) * cv.adc_energy_j, n - x.size)
        self.adc_retries = k
        return y

    def initial_activities(self, x: np.ndarray, y: np.ndarray | None) -> list[np.ndarray]:
        """Activities for a new batch: the chip's feedforward pass from the bottom layer ``x``
        (B, n_0) (weights as read now, units at their bottom-up equilibrium), with the top
        clamped to ``y`` (B, n_L) if given. Returns L+1 arrays (B, n_l).

        The pass (:func:`pcsim.kernels.feedforward`, equal to :func:`pcsim.field.feedforward`)
        leaves its products and ``phi``s in the circuit's workspace, where a following run with
        frozen weights starts from them (``ClockedEngine.settle``)."""
        from pcsim import kernels

        net = self.net
        x0 = np.array(self.dac(x.astype(net.dtype, copy=False)), dtype=net.dtype, order="C")
        xs = [x0] + [np.empty((x0.shape[0], n), net.dtype) for n in net.sizes[1:]]
        units = self.units
        if self.numpy_products:  # per-tile ADCs or convolutions: the numpy pass
            from pcsim import field

            ff = field.feedforward(
                net, x0, self.read_weights(), None if self.ideal else units, self.partial_sums
            )
            for xl, v in zip(xs[1:], ff[1:], strict=True):
                xl[...] = v
            if y is not None:
                xs[-1][...] = self.dac(y)
            return xs
        Ws, bs = self.read_weights(), self.biases()
        groups = self._kernel_groups
        kernels.call(
            kernels.feedforward,
            self.kernel_list("xs", xs),
            groups.get(
                ("net", id(net), *map(id, Ws), *map(id, bs)),
                (net, Ws, bs),
                lambda: kernels.net_args(net, Ws, bs),
            ),
            groups.get(  # leak as the (unused) rates: typed alike
                ("units", id(units), *self.rails),
                (units,),
                lambda: kernels.unit_args(units, units.leak, self.rails),
            ),
            not self.ideal,
            self._feedforward_buffers(x0.shape[0]),
        )
        if y is not None:
            xs[-1][...] = self.dac(y)
        return xs

    def _feedforward_buffers(self, batch: int):
        """What :func:`pcsim.kernels.feedforward` writes of the kernel workspace (kept: the
        kernel unboxes only these two Lists, and :func:`pcsim.kernels.call` finds the group
        by identity)."""
        kws = self.kernel_workspace(batch)
        return self._kernel_groups.get(
            ("ff_bufs", id(kws)), (kws,), lambda: FeedforwardBuffers(kws.phis, kws.prods)
        )

    def kernel_list(self, name: str, arrays: Sequence[np.ndarray]):
        """``arrays`` (per layer, e.g. ``"xs"``: the activities (B, n_l) of each presentation)
        as the kernels take them: a numba typed List that stays the same object for ``name``
        and the arrays' first dimension B while the arrays in it change
        (:class:`pcsim.kernels.ListSlots`), so that the kernels' argument keys stay valid.
        Valid until the next call with the same ``name`` and B: pass it straight to a kernel.
        Arrays of different numba types get :func:`pcsim.kernels.seq`'s List or tuple."""
        return self._kernel_lists.get((name, arrays[0].shape[0]), arrays)

    def read_period_s(self, backward: bool = True) -> float:
        """Seconds per crossbar read: ``tau_x`` or the tiles' conversion time, the longer
        (:func:`hardware_models.architecture.read_period_s`); 0 without a chip."""
        if self.chip is None:
            return 0.0
        period = self._read_periods.get(backward)
        if period is None:
            period = read_period_s(self.layer_maps(), self.chip.tau_x_s, backward)
            streamed = max(
                (g.positions for g in self.net.convs or () if g is not None), default=1
            )  # a conv layer's patches, one crossbar read each, one after another
            period = self._read_periods[backward] = max(period, streamed * self.chip.tau_x_s)
        return period

    def layer_maps(self) -> list:
        """Each weight layer on the chip's tiles (:class:`hardware_models.architecture.LayerMap`,
        per-read conversions and latencies). A conv layer is its kernel matrix
        ``(out_channels, rows)`` read at ``positions`` patches in sequence: its conversions and
        conversion latencies per read of the layer are ``positions`` times the matrix's."""
        if not self.net.has_conv:
            return self.chip.layer_maps(list(self.net.sizes))
        maps = []
        for i, W in enumerate(self.net.weights):
            m = self.chip.layer_maps([W.shape[1], W.shape[0]])[0]
            g = self.net.conv(i)
            if g is not None:
                p = g.positions
                m = dataclasses.replace(
                    m,
                    conversions_forward=p * m.conversions_forward,
                    conversions_backward=p * m.conversions_backward,
                    latency_forward_s=p * m.latency_forward_s,
                    latency_backward_s=p * m.latency_backward_s,
                )
            maps.append(m)
        return maps

    def output_conversion_s(self, retries: int = 0) -> float:
        """Seconds to convert the top layer at the edge ADCs (shared columns, ``retries``
        bound-management repeats; :func:`hardware_models.architecture.output_conversion_s`)."""
        if self.chip is None:
            return 0.0
        cv = self.chip.converters
        return output_conversion_s(
            self.net.sizes[-1], self.chip.architecture, cv.adc_bits, cv.sar_cycle_s, retries
        )

    def gammas(self, dt: float) -> tuple[np.ndarray, ...]:
        """Per-unit Euler rates ``dt / tau_unit`` (dt in units of tau_x); cached per dt."""
        g = self._gamma_cache.get(dt)
        if g is None:
            g = tuple((dt / s).astype(self.net.dtype) for s in self.tau_scale)
            self._gamma_cache[dt] = g
        return g

    def biases(self) -> tuple[np.ndarray, ...]:
        return tuple(self.net.biases) if self.net.biases is not None else self._dummy_biases

    def __getstate__(self) -> dict:
        """Copies (copy.deepcopy) leave out the kernels' buffers (rebuilt on use; their kernel
        form holds numba typed Lists, which cannot be copied)."""
        state = self.__dict__.copy()
        state["_workspaces"] = {}
        return state

    def workspace(self, batch: int) -> Workspace:
        """The kernels' buffers for batch size ``batch`` (per-layer tuples; allocated once)."""
        return self._workspace_pair(batch)[0]

    def kernel_workspace(self, batch: int) -> Workspace:
        """:meth:`workspace` as the kernels take it (``Workspace.kernel_form``; the same
        arrays)."""
        return self._workspace_pair(batch)[1]

    def _workspace_pair(self, batch: int) -> tuple[Workspace, Workspace]:
        pair = self._workspaces.get(batch)
        if pair is None:
            shapes = [W.shape for W in self.net.weights]
            ws = Workspace.allocate(self.net.sizes, batch, self.net.dtype, shapes)
            pair = self._workspaces[batch] = (ws, ws.kernel_form())
        return pair

    # -- costs --------------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Biased circuits per sample: every value unit and every error unit."""
        return sum(self.net.sizes) + sum(self.net.sizes[1:])

    @property
    def n_synapses(self) -> int:
        return sum(W.size for W in self.net.weights)

    def charge_time(self, duration_tau: float, batch: int) -> None:
        """Static power and continuous crossbar conduction of ``batch`` sample circuits."""
        if self.chip is None:
            return
        c = self.chip.costs
        # one read per tau_x of the dynamics, each tau_x or the tiles' conversion if longer
        seconds = duration_tau * self.read_period_s() * batch
        self.ledger.charge("static", c.static_energy_j(self.n_units, seconds))
        macs = 2.0 * self.net.n_macs * self.device_pairs * self.weight_slices * duration_tau * batch
        self.ledger.charge("crossbar_read", c.read_energy_j(macs), macs)
        self.ledger.add_time(seconds)
        self.charge_periphery(duration_tau, batch)

    @property
    def device_pairs(self) -> int:
        """Device pairs summed per weight (``architecture.device_pairs``; 1 without a chip):
        each conducts, so reads cost that many MACs (:mod:`hardware_models.mapping`)."""
        return 1 if self.chip is None else self.chip.architecture.device_pairs

    @property
    def weight_slices(self) -> int:
        """Bit slices per weight (``architecture.cell_bits``; 1 without a chip): each slice's
        devices conduct, so reads cost that many MACs (:mod:`hardware_models.architecture`)."""
        return 1 if self.chip is None else self.chip.weight_slices

    @property
    def tile_conversions_per_read(self) -> int:
        """ADC conversions of one read of every layer in both directions (0 with analog
        partial sums; :mod:`hardware_models.architecture`)."""
        if self.chip is None:
            return 0
        maps = self.layer_maps()
        return sum(m.conversions_forward + m.conversions_backward for m in maps)

    def charge_periphery(self, duration_tau: float, batch: int) -> None:
        """Per-tile ADC conversions with digital partial sums: every tile output is converted
        once per read, and the crossbars are read once per ``tau_x`` in each direction (the
        same clock as ``crossbar_read``)."""
        if self.chip is None:
            return
        if self.crossbars is not None and any(
            isinstance(cb, MappedCrossbar) and cb.column_remap for cb in self.crossbars
        ):  # one digital multiply per output and read direction (hardware_models.mapping)
            n = 2.0 * sum(self.net.sizes[1:]) * duration_tau * batch
            e = n * self.chip.costs.baseline.mult_energy_j
            self.ledger.charge("column_remap", e, n)
        if self.chip.converters.adc_bits is None:
            return
        n = self.tile_conversions_per_read * duration_tau * batch
        if n:
            self.ledger.charge("tile_adc", n * self.chip.converters.adc_energy_j, n)

    def exact_write_pulses(self, moved: Sequence[float]) -> float:
        """Pulse-equivalents of exact writes that moved layer ``l``'s weights by a total of
        ``moved[l]`` (sum of absolute changes). A device written exactly (no pulse size) is
        priced as a pulsed device of ``EXACT_WRITE_BITS`` over the programmed range: one
        pulse per ``w_max / (2^(bits-1) - 1)`` of change, so the write energy follows how
        far the weights travel, not how many steps the simulator took."""
        return float(
            sum(m / q for m, q in zip(moved, self._exact_quantum, strict=True) if q is not None)
        )

    def charge_writes(self, pulses: float) -> None:
        """Write energy of ``pulses`` update pulses (or pulse-equivalents)."""
        self.ledger.charge(
            "synapse_write", pulses * self.chip.costs.write_energy_per_pulse_j, pulses
        )

    def charge_digital(self, ops) -> None:
        """Digital co-processor work (:class:`pcsim.learning_rule.DigitalOps`) at the chip's
        digital costs: multiplies and adds, state words moved through SRAM, and the ADC
        conversions that bring analog values to it."""
        if self.chip is None or ops.is_zero:
            return
        d = self.chip.costs.baseline
        per_word = d.memory_energy_per_access_j * d.word_bytes / d.access_bytes
        joules = (
            ops.multiplies * d.mult_energy_j
            + ops.adds * d.add_energy_j
            + ops.words * per_word
            + ops.conversions * self.chip.converters.adc_energy_j
        )
        self.ledger.charge("digital_coprocessor", joules, ops.multiplies + ops.adds)

    def charge_transitions(self, total_swing: float) -> None:
        """Dynamic energy of a total unit swing ``sum |dx|`` (activity units)."""
        if self.chip is None:
            return
        self.ledger.charge("unit_dynamic", total_swing * self.chip.transition_energy_j, total_swing)


def _device_change(cb, d: np.ndarray) -> float:
    """Total absolute conductance change (weight units) that writing ``d`` asks of the
    devices of ``cb``: ``sum |d|``, or ``n * sum |s_o d|`` on a mapped crossbar."""
    if not isinstance(cb, MappedCrossbar):
        return float(np.abs(d).sum())
    return cb.n_pairs * float(np.abs(d * cb.scale).sum())
