"""Fixed-step engines: Euler, Heun and Euler-Maruyama, batched.

Every step integrates the vector field of :mod:`pcsim.field` for the free layers of a circuit,
in units of ``tau_x`` (``gamma = dt / tau_unit`` per unit). The Euler and Euler-Maruyama
steps run through the fused numba kernel (``backend="numba"``) or the numpy reference
(``backend="numpy"``); Heun, a validation method, always uses the reference. Networks with
convolutional layers (and chips whose tiles convert partial sums) always take the numpy
reference, whatever the backend (``Circuit.numpy_products``): the numba kernels are dense, and
the conv products are vectorised im2col numpy (:mod:`pcsim.conv`).
Noise follows docs/math.md (section 5): ``x += sigma * sqrt(dt / tau) * N(0, 1)``, the
normals drawn by :func:`pcsim.vecmath.standard_normal` from the circuit's Generator (the same
draws, in the same order, on both backends).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np

from pcsim import activations, conv, field, kernels, learning_rule
from pcsim.circuit import Circuit
from pcsim.engines.protocol import Batch, Learning, Presentation, start, write_update
from pcsim.kernels import seq
from pcsim.optim import SGD
from pcsim.vecmath import standard_normal

METHODS = ("euler", "heun", "euler_maruyama")
BACKENDS = ("numba", "numpy")
DIVERGENCE_BOUND = 1e6  # |x| beyond this (or non-finite) counts as a diverged simulation


class DivergenceError(RuntimeError):
    """The simulation blew up; the message names the layer and the simulated time."""


@dataclass
class StepRecord:
    """What a step saw at its start: errors ``eps[i] = eps_{i+1}`` and inputs
    ``pre[i] = phi_i(x_i)`` of each weight layer (``pre[0]`` is ``x_0``)."""

    eps: Sequence[np.ndarray]
    pre: Sequence[np.ndarray]


@dataclass
class ClockedEngine:
    """A fixed-step integrator. ``dt`` and the noise amplitude ``sigma`` are in tau_x units."""

    method: str = "euler"
    dt: float = 0.1
    sigma: float = 0.0
    backend: str = "numba"
    _bufs: tuple | None = dc_field(default=None, init=False, repr=False, compare=False)
    _rows: tuple | None = dc_field(default=None, init=False, repr=False, compare=False)
    _groups: kernels.GroupCache = dc_field(
        default_factory=kernels.GroupCache, init=False, repr=False, compare=False
    )
    _free_arrays: dict = dc_field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"engine method must be one of {METHODS}, got {self.method!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"engine backend must be one of {BACKENDS}, got {self.backend!r}")
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be a positive finite number, got {self.dt}")
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    @property
    def stochastic(self) -> bool:
        return self.method == "euler_maruyama"

    # -- the engine contract (pcsim.engines.protocol) -----------------------------------------
    def present(
        self,
        circ: Circuit,
        batch: Batch,
        duration: float,
        learning: Learning | None = None,
    ) -> Presentation:
        """Present ``batch`` for ``duration`` (tau_x units), with or without learning
        (:class:`pcsim.engines.protocol.Engine`). The one place where this engine chooses its
        path: PC's whole step in one kernel (:meth:`pc_step`), a stream of single samples of
        iPC in one kernel (``kernels.ipc_presentation_batch1``), iPC with plain SGD in one
        kernel (:meth:`run_ipc_sgd`), or the step-by-step reference with an optimiser step from
        every step's errors; all tested equal to the reference."""
        spent = circ.ledger.total()
        if learning is None:
            xs, _ = start(circ, batch)
            steps = self.run(circ, xs, batch.free, duration)
            return Presentation(xs, steps=steps, energy_j=circ.ledger.total() - spent)
        if learning.when == "after":
            rec = self._present_pc(circ, batch, duration, learning)
        else:
            rec = self._present_ipc(circ, batch, duration, learning)
        rec.energy_j = circ.ledger.total() - spent
        return rec

    def n_steps(self, duration: float) -> int:
        """Steps of a presentation of ``duration`` (tau_x units): at least one."""
        return max(1, int(round(duration / self.dt)))

    def _present_pc(self, circ, batch: Batch, duration, learning: Learning) -> Presentation:
        """Settle with frozen weights, then one optimiser step from the settled errors."""
        net = circ.net
        B = batch.size
        optimizer = learning.optimizer
        plain = learning.plain_sgd
        if batch.xs is None and batch.top is not None and learning.fused:
            lr = optimizer.lr if plain else 0.0
            rec = self.pc_step(circ, batch.bottom, batch.top, batch.free, duration, lr)
            if rec is not None:  # the whole step in one kernel call
                ws = circ.workspace(B)
                if not plain:  # the gradients are in the workspace
                    write_update(
                        circ, optimizer, ws.grads_w, ws.grads_b if net.has_bias else None, B
                    )
                return Presentation(
                    list(ws.states), field.energy_of(rec.eps, B), self.n_steps(duration)
                )
        xs, fresh = start(circ, batch)
        rec = self.settle(circ, xs, batch.free, duration, from_feedforward=fresh)
        dW, db = self.weight_drift(circ, rec)
        energy = field.energy_of(rec.eps, B)
        write_update(circ, optimizer, dW, db, B)
        return Presentation(xs, energy, self.n_steps(duration))

    def _present_ipc(self, circ, batch: Batch, duration, learning: Learning) -> Presentation:
        """Activities and weights together: an optimiser step from every step's errors."""
        net = circ.net
        xs, _ = start(circ, batch)
        B = xs[0].shape[0]
        free = batch.free
        optimizer = learning.optimizer
        n = self.n_steps(duration)
        if learning.fused and self._fuses_batch1(circ, learning, B):
            return Presentation(xs, self._batch1_presentation(circ, optimizer, xs, free, n), n)
        if learning.fused and learning.plain_sgd:
            done = self._run_ipc_sgd(circ, xs, free, duration, optimizer.lr)
            if done is not None:
                rec, moved = done
                if circ.chip is not None and net.has_bias:  # the digital biases' updates
                    ops = learning_rule.update_ops(optimizer, tuple(net.sizes), B, True)  # dense
                    circ.charge_digital(ops.times(n))
                change = np.asarray(moved, dtype=np.float64)
                return Presentation(xs, field.energy_of(rec.eps, B), n, weight_change=change)
        last: list[float] = [0.0]

        def learn(rec: StepRecord) -> None:
            dW, db = self.weight_drift(circ, rec)
            write_update(circ, optimizer, dW, db, B)
            last[0] = field.energy_of(rec.eps, B)

        steps = self.run(circ, xs, free, duration, on_step=learn)
        return Presentation(xs, last[0], steps)

    def _fuses_batch1(self, circ: Circuit, learning: Learning, batch: int) -> bool:
        """A stream of single samples on the pure algorithm (numba Euler, plain SGD, no chip,
        no biases or skips): a presentation runs in ``kernels.ipc_presentation_batch1``."""
        net = circ.net
        return (
            batch == 1
            and self.backend == "numba"
            and self.method == "euler"
            and circ.chip is None
            and not net.has_conv
            and not circ.noisy
            and isinstance(learning.optimizer, SGD)
            and learning.optimizer.momentum == 0.0
            and net.biases is None
            and not any(net.residual)
            and circ.rails == (-np.inf, np.inf)
            and circ.units.is_ideal()
            and all(np.all(s == 1) for s in circ.tau_scale)
        )

    def _batch1_presentation(self, circ: Circuit, optimizer, xs, free, n_steps: int) -> float:
        """One iPC presentation of one sample in one kernel call; returns its energy."""
        net = circ.net
        sizes, dt = net.sizes, net.dtype
        if self._bufs is None or self._bufs[0].phis[0].shape[0] != sizes[0]:
            bufs = kernels.Batch1Buffers.allocate(sizes, dt)
            self._bufs = (bufs, bufs.kernel_form())
        key = tuple(map(id, xs))
        if self._rows is None or self._rows[0] != key:  # row views of these activities
            self._rows = (key, tuple(xs), tuple(v[0] for v in xs))
        kernels.call(
            kernels.ipc_presentation_batch1,
            circ.kernel_list("rows", self._rows[2]),
            self._net(circ),
            self._free(free),
            self.dt,
            optimizer.lr,
            n_steps,
            not free[0],
            self._bufs[1],
        )
        circ.t += n_steps * self.dt
        check_finite(xs, free, circ.t)
        return field.energy_of(self._bufs[0].eps, 1)

    # -- one step ---------------------------------------------------------------------------
    def step(self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool]) -> StepRecord:
        """Advance the free layers of ``xs`` (in place) by ``dt``; return what the step saw."""
        if self.method == "heun":
            rec = self._heun_step(circ, xs, free)
        elif self.backend == "numba" and not circ.numpy_products:
            rec = self._kernel_step(circ, xs, free)
        else:
            rec = self._reference_step(circ, xs, free)
        circ.t += self.dt
        return rec

    def _noise_amplitudes(self, circ: Circuit, gammas: Sequence[np.ndarray]) -> list[np.ndarray]:
        """sqrt(engine sigma^2 + unit thermal sigma^2) * sqrt(dt / tau) per unit."""
        return [
            np.sqrt(self.sigma**2 + s**2) * np.sqrt(g)
            for s, g in zip(circ.thermal_sigma, gammas, strict=True)
        ]

    def _draw_noise(self, circ: Circuit, free: Sequence[bool], bufs: Sequence[np.ndarray]) -> None:
        for l, buf in enumerate(bufs):
            if free[l]:
                standard_normal(circ.rng, buf)

    def _draw_read_noise(self, circ: Circuit, free: Sequence[bool], ws) -> np.ndarray | None:
        """The crossbars' output-domain read noise over this step: each read line's OU mean
        over the step into ``ws.read_fwd`` (predictions) and ``ws.read_bwd`` (top-down sums
        of free layers), advanced exactly (:meth:`Circuit.read_noise_step`). Returns the
        per-layer stationary stds the products scale them by, or None without read noise.
        The same draws, in the same order, on both backends."""
        if not circ.has_read_noise:
            return None
        return circ.read_noise_step(self.dt, free, ws.read_fwd, ws.read_bwd)

    def _reference_step(
        self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool]
    ) -> StepRecord:
        net = circ.net
        Ws = circ.read_weights()
        ws = circ.workspace(xs[0].shape[0])
        pre = [field.presynaptic(net, xs, i).copy() for i in range(net.n_layers)]  # before update
        tiles = circ.partial_sums  # products through per-tile ADCs (None: plain)
        eps = field.errors(net, xs, Ws, circ.units, tiles)
        sig = self._draw_read_noise(circ, free, ws)
        read_noise = sig is not None
        if read_noise:  # mu_l += a_l sig_l ||phi(x_{l-1})|| z (Crossbar.read_mean)
            for i in range(net.n_layers):
                nrm = _read_norm(net, i, pre[i])
                eps[i] = eps[i] - circ.units.error_gain[i + 1] * (
                    net.scales[i] * (sig[i] * nrm) * ws.read_fwd[i]
                )
        drift = field.activity_drift(net, xs, eps, Ws, circ.units, tiles)
        if read_noise:  # top-down sums carry the read noise of W_{l+1}
            dphi = activations.get(net.activation)[1]
            for l in range(net.n_layers):
                if free[l] and sig[l] > 0:
                    nrm = _read_norm_back(net, l, eps[l])
                    extra = net.scales[l] * ((sig[l] * nrm) * ws.read_bwd[l])
                    drift[l] = drift[l] + (extra if l == 0 else dphi(xs[l]) * extra)
        gammas = circ.gammas(self.dt)
        noisy = self.stochastic or circ.noisy
        amps = self._noise_amplitudes(circ, gammas) if noisy else None
        lo, hi = circ.rails
        for l, x in enumerate(xs):
            if not free[l]:
                continue
            new = x + gammas[l] * drift[l]
            if amps is not None:
                new = new + amps[l] * standard_normal(circ.rng, np.empty_like(x))
            np.clip(new, lo, hi, out=x)
        return StepRecord(eps, pre)

    def _kernel_step(self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool]) -> StepRecord:
        ws = circ.workspace(xs[0].shape[0])
        kws = circ.kernel_workspace(xs[0].shape[0])
        xs_t = circ.kernel_list("xs", xs)
        net = self._net(circ)
        sig = self._draw_read_noise(circ, free, ws)
        read_noise = sig is not None
        if sig is None:
            sig = circ.read_sigma  # unused by the kernels (read_on False)
        gammas = circ.gammas(self.dt)
        units = self._units(circ, gammas)
        noisy = self.stochastic or circ.noisy
        if noisy:  # the same amplitudes while the rates and the units' noise stay
            key = ("amps", id(gammas), *map(id, circ.thermal_sigma), self.sigma)
            keep = (gammas, tuple(circ.thermal_sigma))
            amps = self._group(key, keep, lambda: seq(self._noise_amplitudes(circ, gammas)))
        else:
            amps = units.gammas  # unused placeholder of the right type
        noise = self._group(
            ("noise", id(amps), noisy, id(sig), read_noise),
            (amps, sig),
            lambda: kernels.Noise(amps, noisy, sig, read_noise),
        )
        if noisy:  # after the read-noise draws, as the reference step draws them
            self._draw_noise(circ, free, ws.noise)
        step_bufs = self._step_buffers(kws)[1]
        kernels.call(kernels.euler_step, xs_t, net, units, noise, self._free(free), step_bufs)
        return StepRecord(ws.eps, (xs[0],) + ws.phis[1:])

    def _free(self, free: Sequence[bool]) -> np.ndarray:
        """``free`` as the kernels take it (one array per pattern, kept)."""
        key = tuple(free)  # bools, numpy bools and 0/1 hash and compare alike
        arr = self._free_arrays.get(key)
        if arr is None:
            arr = self._free_arrays[key] = np.asarray([bool(f) for f in key], dtype=np.bool_)
        return arr

    def _heun_step(self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool]) -> StepRecord:
        net = circ.net
        Ws = circ.read_weights()
        tiles = circ.partial_sums
        eps0 = field.errors(net, xs, Ws, circ.units, tiles)
        pre = [field.presynaptic(net, xs, i).copy() for i in range(net.n_layers)]  # before update
        d0 = field.activity_drift(net, xs, eps0, Ws, circ.units, tiles)
        gammas = circ.gammas(self.dt)
        trial = [x + g * d if f else x for x, g, d, f in zip(xs, gammas, d0, free, strict=True)]
        d1 = field.activity_drift(
            net, trial, field.errors(net, trial, Ws, circ.units, tiles), Ws, circ.units, tiles
        )
        lo, hi = circ.rails
        for l, x in enumerate(xs):
            if free[l]:
                np.clip(x + 0.5 * gammas[l] * (d0[l] + d1[l]), lo, hi, out=x)
        return StepRecord(eps0, pre)

    # -- learning signal ----------------------------------------------------------------------
    def errors(self, circ: Circuit, xs: Sequence[np.ndarray]) -> StepRecord:
        """The errors and presynaptic inputs of the state ``xs`` as it stands (weights as read
        now, without read noise): what PC's weight step learns from after settling."""
        net = circ.net
        if not self._numba_path(circ):
            pre = [field.presynaptic(net, xs, i) for i in range(net.n_layers)]
            eps = field.errors(net, xs, circ.read_weights(), circ.units, circ.partial_sums)
            return StepRecord(eps, pre)
        ws = circ.workspace(xs[0].shape[0])
        kws = circ.kernel_workspace(xs[0].shape[0])
        units = self._units(circ, circ.gammas(self.dt))
        quiet = kernels.Noise(units.gammas, False, circ.read_sigma, False)
        kernels.call(
            kernels.compute_errors,
            circ.kernel_list("xs", xs),
            self._net(circ),
            units,
            quiet,
            self._step_buffers(kws)[0],
            kws.prod0,
            False,
        )
        return StepRecord(ws.eps, (xs[0],) + ws.phis[1:])

    def _numba_path(self, circ: Circuit) -> bool:
        """True when steps run in the numba kernels (their errors live in the workspace);
        reads through per-tile ADCs (``circ.partial_sums``) and convolutional networks take
        the numpy path (``circ.numpy_products``)."""
        return self.backend == "numba" and self.method != "heun" and not circ.numpy_products

    def weight_drift(
        self, circ: Circuit, rec: StepRecord
    ) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None]:
        """``-dF/dW`` and ``-dF/db`` from what a step saw (batch means)."""
        net = circ.net
        if self._numba_path(circ):
            ws = circ.workspace(rec.pre[0].shape[0])
            kws = circ.kernel_workspace(rec.pre[0].shape[0])
            Ws, bs = tuple(net.weights), circ.biases()  # the gradients do not read Ws
            key = ("net", id(net), *map(id, Ws), *map(id, bs))
            params = self._group(key, (net, Ws, bs), lambda: kernels.net_args(net, Ws, bs))
            grads = self._step_buffers(kws)[2]
            pre = circ.kernel_list("pre", rec.pre)
            kernels.call(kernels.weight_gradients, pre, params, grads, False)
            return ws.grads_w, (ws.grads_b if net.has_bias else None)
        B = rec.pre[0].shape[0]
        dW = [
            (net.scales[i] / B) * field.weight_product(net, i, e, p)
            for i, (e, p) in enumerate(zip(rec.eps, rec.pre, strict=True))
        ]
        db = [e.sum(axis=0) / B for e in rec.eps] if net.has_bias else None
        return dW, db

    # -- many steps ---------------------------------------------------------------------------
    def run(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        on_step=None,
        check_every: int = 16,
    ) -> int:
        """Integrate for ``duration`` (tau_x units); ``on_step(rec)`` after each step (iPC
        learns there). Returns the number of steps. Raises DivergenceError on blow-up.

        Deterministic runs without ``on_step`` on the numba backend go through
        :func:`pcsim.kernels.euler_run` in one call (the same steps, equal to the last bit
        or, with frozen weights and a clamped input, up to the sign of zeros)."""
        return self._run(circ, xs, free, duration, on_step, check_every, False)[0]

    def settle(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        from_feedforward: bool = False,
        check_every: int = 16,
    ) -> StepRecord:
        """:meth:`run` with frozen weights, then the errors of the settled state (weights as
        read now, no read noise): PC's inference phase and what its weight step learns from.
        ``from_feedforward``: ``xs`` is as :meth:`pcsim.circuit.Circuit.initial_activities` left
        it, whose products a fused run starts from (the first steps of a deep network then
        cost little: the error reaches layer ``l`` only after ``L - l`` steps)."""
        n, left = self._run(circ, xs, free, duration, None, check_every, from_feedforward)
        if left:
            ws = circ.workspace(xs[0].shape[0])
            return StepRecord(ws.eps, (xs[0],) + ws.phis[1:])
        return self.errors(circ, xs)

    def _run(self, circ, xs, free, duration, on_step, check_every, ready):
        """:meth:`run`; returns the steps and whether the errors of the final state were left
        in the workspace (the fused kernel ran with frozen weights and a clamped input)."""
        n = max(1, int(round(duration / self.dt)))
        costed = circ.chip is not None
        before = [x.copy() if f else None for x, f in zip(xs, free, strict=True)] if costed else []
        fused = on_step is None and self.fusable(circ)
        if fused:
            self._fused_run(circ, xs, free, n, check_every, None, ready)
        else:
            for k in range(n):
                rec = self.step(circ, xs, free)
                if on_step is not None:
                    on_step(rec)
                if (k + 1) % check_every == 0 or k == n - 1:
                    self._check_finite(circ, xs, free)
        if costed:
            circ.charge_time(n * self.dt, xs[0].shape[0])
            swing = sum(
                float(np.abs(x - b).sum()) for x, b in zip(xs, before, strict=True) if b is not None
            )
            circ.charge_transitions(swing)
        return n, fused and not free[0]

    def _check_finite(self, circ: Circuit, xs: list[np.ndarray], free: Sequence[bool]) -> None:
        """:func:`check_finite`, the test made in a kernel on the numba path (the same test:
        a free value that is not finite or beyond ``DIVERGENCE_BOUND``; numpy's ``abs`` and
        ``max`` cost about 10 us per presentation); the message from :func:`check_finite`."""
        if not self._numba_path(circ):
            check_finite(xs, free, circ.t)
            return
        xs_k = circ.kernel_list("xs", xs)
        if kernels.call(kernels.any_diverged, xs_k, self._free(free), DIVERGENCE_BOUND):
            check_finite(xs, free, circ.t)

    def pc_step(
        self,
        circ: Circuit,
        bottom: np.ndarray,
        top: np.ndarray,
        free: Sequence[bool],
        duration: float,
        sgd_lr: float = 0.0,
        check_every: int = 16,
    ) -> StepRecord | None:
        """PC's training step on the pure algorithm (no chip, :meth:`fusable`, clamped input)
        in one kernel call (:func:`pcsim.kernels.pc_train_step`): the feedforward start, the
        settling for ``duration``, the gradients of the settled state in the workspace and,
        with ``sgd_lr > 0``, the plain SGD step. The same numbers as
        ``initial_activities``, :meth:`settle`, :meth:`weight_drift` and ``SGD``. Returns what
        the weight step learnt from, or None where it does not apply."""
        if circ.chip is not None or free[0] or not self.fusable(circ):
            return None
        net = circ.net
        ws = circ.workspace(bottom.shape[0])
        n = max(1, int(round(duration / self.dt)))
        kws = circ.kernel_workspace(bottom.shape[0])
        done, diverged = kernels.call(
            kernels.pc_train_step,
            self._schedule(n, check_every),
            kws.states,
            # in the network's dtype here, as the kernel's copy into xs would round them (one
            # compiled variant per dtype, not per pairing of data and network dtypes)
            np.ascontiguousarray(bottom, dtype=net.dtype),
            np.ascontiguousarray(top, dtype=net.dtype),
            self._net(circ),  # the weights are updated in place: the same group every call
            self._units(circ, circ.gammas(self.dt)),
            self._free(free),
            kws,
            float(sgd_lr),
        )
        for _ in range(done):
            circ.t += self.dt
        if diverged:
            check_finite(ws.states, free, circ.t)
        return StepRecord(ws.eps, (ws.states[0],) + ws.phis[1:])

    def _net(self, circ: Circuit) -> kernels.Net:
        """The network as the kernels take it, with the weights as read now (the same group
        while the same arrays are read: its key in :func:`pcsim.kernels.call` is kept)."""
        Ws, bs = circ.read_weights(), circ.biases()
        key = ("net", id(circ.net), *map(id, Ws), *map(id, bs))
        return self._group(key, (circ.net, Ws, bs), lambda: kernels.net_args(circ.net, Ws, bs))

    def _schedule(self, n: int, check_every: int) -> kernels.Schedule:
        """A run's step count and divergence checks as the kernels take them (one group per
        pair, kept: :func:`pcsim.kernels.call` finds it by identity)."""
        return self._group(
            ("schedule", n, check_every),
            (),
            lambda: kernels.Schedule(n, check_every, DIVERGENCE_BOUND),
        )

    def _units(self, circ: Circuit, gammas: Sequence[np.ndarray]) -> kernels.Units:
        """The unit circuits as the kernels take them, with Euler rates ``gammas``."""
        key = ("units", id(circ.units), id(gammas), *circ.rails)
        return self._group(
            key, (circ.units, gammas), lambda: kernels.unit_args(circ.units, gammas, circ.rails)
        )

    def __getstate__(self) -> dict:
        """Copies (copy.deepcopy) leave out the kernel-argument caches (rebuilt on use; they may
        hold numba typed Lists, which cannot be copied)."""
        state = self.__dict__.copy()
        state.update(_bufs=None, _rows=None, _groups=kernels.GroupCache())
        return state

    def _step_buffers(self, kws: kernels.Workspace) -> tuple:
        """:func:`pcsim.kernels.step_buffers` of ``kws``, built once per workspace."""
        return self._group(("bufs", id(kws)), (kws,), lambda: kernels.step_buffers(kws))

    def _group(self, key: tuple, keep: tuple, build):
        """A named group built once per ``key`` (:class:`pcsim.kernels.GroupCache`)."""
        return self._groups.get(key, keep, build)

    def fusable(self, circ: Circuit) -> bool:
        """True when many steps can run in one kernel call: numba Euler, no noise of any kind,
        weights that read the same at every step (no drift) and plain dense products (no
        per-tile ADCs, no convolutions)."""
        return (
            self.backend == "numba"
            and self.method == "euler"
            and not circ.noisy
            and not circ.has_read_noise
            and circ.static_reads
            and not circ.numpy_products
        )

    def run_ipc_sgd(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        lr: float,
        check_every: int = 16,
    ) -> StepRecord | None:
        """iPC with plain SGD in one kernel call, when :meth:`fusable` and the weights are
        written exactly (no chip, or an ideal one): every step, then ``W += lr * (-dF/dW)``
        from the errors it saw -- the same numbers as ``run(on_step=...)`` with
        ``SGD(lr).deltas`` and ``circ.apply_weight_update``. Returns what the last step saw
        (its errors give the presentation's energy), or None when it cannot fuse."""
        done = self._run_ipc_sgd(circ, xs, free, duration, lr, check_every)
        return None if done is None else done[0]

    def _run_ipc_sgd(
        self,
        circ: Circuit,
        xs: list[np.ndarray],
        free: Sequence[bool],
        duration: float,
        lr: float,
        check_every: int = 16,
    ) -> tuple[StepRecord, np.ndarray] | None:
        """:meth:`run_ipc_sgd`, also returning the total absolute weight change per layer."""
        exact_writes = circ.crossbars is None or all(cb.is_ideal for cb in circ.crossbars)
        if not (self.fusable(circ) and exact_writes):
            return None
        n = max(1, int(round(duration / self.dt)))
        costed = circ.chip is not None
        before = [x.copy() if f else None for x, f in zip(xs, free, strict=True)] if costed else []
        moved = self._fused_run(circ, xs, free, n, check_every, lr, False)
        if circ.crossbars is not None:  # every write on each of the batch's replicas
            circ.charge_writes(circ.exact_write_pulses(moved) * xs[0].shape[0])
        if costed:
            circ.charge_time(n * self.dt, xs[0].shape[0])
            swing = sum(
                float(np.abs(x - b).sum()) for x, b in zip(xs, before, strict=True) if b is not None
            )
            circ.charge_transitions(swing)
        ws = circ.workspace(xs[0].shape[0])
        return StepRecord(ws.eps, (xs[0],) + ws.phis[1:]), moved

    def _fused_run(
        self, circ, xs, free, n, check_every, lr: float | None, ready: bool
    ) -> np.ndarray:
        """Run ``n`` steps in :func:`pcsim.kernels.euler_run`; advance ``circ.t`` step by step
        as :meth:`step` does; raise DivergenceError as :meth:`run` does. Returns the total
        absolute weight change written per layer.
        ``ready``: the kernel's ``ff_ready`` (frozen runs with a clamped input only)."""
        net = circ.net
        B = xs[0].shape[0]
        learn = lr is not None
        hoist = not learn and not free[0]
        # the folded W_1 is written once per run: only where no write is counted per step
        fold0 = learn and not free[0] and circ.crossbars is None
        rate = net.dtype.type(lr if learn else 0.0)
        mode = (hoist, hoist and ready, learn, rate, fold0)
        done, diverged, writes = kernels.call(
            kernels.euler_run,
            self._schedule(n, check_every),
            circ.kernel_list("xs", xs),
            self._net(circ),
            self._units(circ, circ.gammas(self.dt)),
            self._free(free),
            circ.kernel_workspace(B),
            self._group(("mode", *mode, rate.dtype), (), lambda: kernels.RunMode(*mode)),
        )
        for _ in range(done):
            circ.t += self.dt
        if diverged:
            check_finite(xs, free, circ.t)
        return writes


def check_finite(xs: Sequence[np.ndarray], free: Sequence[bool], t: float) -> None:
    """Raise DivergenceError naming the first free layer that left the finite range."""
    for l, x in enumerate(xs):
        if free[l]:
            m = float(np.max(np.abs(x))) if x.size else 0.0
            if not math.isfinite(m) or m > DIVERGENCE_BOUND:
                raise DivergenceError(
                    f"simulation diverged: activities of layer {l} reached {m:.3g} at "
                    f"t = {t:.4g} tau_x; reduce dt (Euler is stable for dt below about "
                    f"0.4 tau_x on typical networks)"
                )


def _read_norm(net, i: int, pre: np.ndarray) -> np.ndarray:
    """The norm of the inputs one forward read of weight layer ``i`` sums (B, 1) for a dense
    layer; per output unit (B, n_out) for a conv layer (its patch)."""
    g = net.conv(i)
    if g is None:
        return np.sqrt(np.sum(pre * pre, axis=1, keepdims=True))
    return np.sqrt(conv.patch_sum(pre * pre, g))


def _read_norm_back(net, i: int, e: np.ndarray) -> np.ndarray:
    """The norm of the errors one backward read of weight layer ``i`` sums: (B, 1) dense,
    per input unit (B, n_in) for a conv layer (the outputs whose patch holds it)."""
    g = net.conv(i)
    if g is None:
        return np.sqrt(np.sum(e * e, axis=1, keepdims=True))
    return np.sqrt(conv.transpose_sum(e * e, g))
