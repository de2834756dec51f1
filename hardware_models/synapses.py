"""Stored weights: a crossbar of resistive devices (or memory cells) holding one weight matrix.

Mapping (differential pair, as in aihwkit's ``SinglePairConductanceConverter``): a signed weight
``w`` in ``[-w_max, w_max]`` is held by two devices, ``g_plus - g_minus``, one of them at
``g_min``; ``|w| = w_max`` corresponds to ``g_max - g_min``::

    g_plus  = g_min + max(w, 0) / w_max * (g_max - g_min)
    g_minus = g_min + max(-w, 0) / w_max * (g_max - g_min)

Levels: ``bits = b`` is the signed weight precision. For ``b >= 2`` the weight takes the
``2^b - 1`` mid-tread levels ``k * lsb``, ``lsb = w_max / (2^(b-1) - 1)``, ``|k| <= 2^(b-1) - 1``
(sign-magnitude; each device of the pair holds one of ``2^(b-1)`` conductances); ``b = 1`` is a
binary weight ``+-w_max``. Either way at most ``2^b`` distinct values.

The crossbar keeps the *effective* weight each synapse presents to a matrix-vector product
(quantised, programmed with noise, stuck devices fixed) as one array in the crossbar's dtype;
drift and read noise are applied on the fly by :meth:`Crossbar.read` in one fused pass.
Weights are in the caller's units; ``w_max`` is either given or set at programming time from
the matrix (aihwkit-style weight remapping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hardware_models import stuck_aware as sa
from hardware_models._config import ConfigBase, param

__all__ = ["SynapseConfig", "Crossbar", "pcm_programming_noise_s", "pcm_drift_exponent"]

# Nandakumar et al. 2019 PCM programming noise, as in aihwkit's PCMLikeNoiseModel:
# sigma_prog(g) = c0 + c1 (g/g_max) + c2 (g/g_max)^2, in microsiemens, fitted at g_max = 25 uS.
PCM_PROG_COEFF_US: tuple[float, float, float] = (0.26348, 1.9650, -1.1731)


def pcm_drift_exponent(g_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCM drift exponent mean and device-to-device std at ``g_hat = g / g_max``.

    Nandakumar et al. 2019 as in aihwkit's ``PCMLikeNoiseModel`` (docs/sources.md):
    ``nu = clip(-0.0155 ln g_hat + 0.0244, 0.049, 0.1)``,
    ``std = clip(-0.0125 ln g_hat - 0.0059, 0.008, 0.045)``.
    """
    lg = np.log(np.clip(g_hat, 1e-12, None))
    return np.clip(-0.0155 * lg + 0.0244, 0.049, 0.1), np.clip(-0.0125 * lg - 0.0059, 0.008, 0.045)


def pcm_programming_noise_s(g_hat: np.ndarray | float) -> np.ndarray | float:
    """PCM programming-noise std in siemens at normalised conductance ``g_hat = g / g_max``.

    Nandakumar et al. 2019 (aihwkit ``PCMLikeNoiseModel.prog_coeff``), docs/sources.md.
    """
    c0, c1, c2 = PCM_PROG_COEFF_US
    return (c0 + c1 * g_hat + c2 * g_hat * g_hat) * 1e-6


@dataclass(frozen=True)
class SynapseConfig(ConfigBase):
    """A crossbar device model (aihwkit-style knobs). Defaults are the ideal device.

    Relative quantities (``prog_noise_std``, ``read_noise_std``, ``dw_min``) are fractions of
    ``w_max``. ``up_down_asymmetry = a`` follows aihwkit's device code (``PulsedRPUDevice::
    populate`` in ``src/rpucuda/rpu_pulsed_device.cpp``), not its docstring: the larger pulse is
    ``dw_min`` and the other is shrunk, ``a > 0``: up ``dw_min``, down ``dw_min (1 - a)``;
    ``a < 0``: up ``dw_min (1 + a)``, down ``dw_min`` (see :func:`pulse_sizes`).
    """

    _section: ClassVar[str] = "chip.synapses"

    g_min_s: float = param(0.0, "S", "nonneg", "device conductance at weight 0")
    g_max_s: float = param(25e-6, "S", "pos", "device conductance at |w| = w_max")
    w_max: float | None = param(
        None, "weight", "pos_or_none", "weight mapped to g_max - g_min; omitted: set at programming"
    )
    w_max_headroom: float = param(
        1.0, "", "pos", "omitted w_max = headroom * max|W| of the programmed matrix"
    )
    bits: int | None = param(None, "bit", "bits", "signed weight precision; omitted: analog")
    program_verify: bool = param(
        True, "", "bool", "closed-loop programming: the device gain spread is compensated"
    )
    prog_noise_std: float = param(0.0, "w_max", "std", "programming noise std (additive)")
    prog_noise_scale: float = param(
        0.0, "", "nonneg", "multiplier of the Nandakumar 2019 PCM programming-noise polynomial"
    )
    prog_noise_idle_device: bool = param(
        False,
        "",
        "bool",
        "the pair's idle device (at g_min) also gets PCM programming noise, clamped at g >= 0",
    )
    # read noise is an Ornstein-Uhlenbeck process per read line (pcsim/read_noise.py) whose
    # correlation time is read_time_s and whose mean over one read_time_s has std read_noise_std
    # (its stationary std is read_noise_std * sqrt(e / 2)); docs/math.md section 5
    read_noise_std: float = param(
        0.0,
        "w_max",
        "std",
        "read noise std of the mean over one read lasting read_time_s (OU process per line)",
    )
    read_time_s: float | None = param(
        None,
        "s",
        "pos_or_none",
        "integration time of one read = the read noise's correlation time; omitted: one tau_x",
    )
    drift_nu: float = param(0.0, "", "nonneg", "mean drift exponent: g(t) = g0 (t/t0)^-nu")
    drift_nu_std: float = param(0.0, "", "std", "device-to-device std of the drift exponent")
    drift_nu_model: str = param(
        "constant",
        "",
        ("constant", "pcm"),
        "constant: N(drift_nu, drift_nu_std); pcm: conductance-dependent (Nandakumar 2019)",
    )
    t0_s: float = param(20.0, "s", "pos", "drift reference time after programming")
    drift_compensation: str = param(
        "none",
        "",
        ("none", "global", "column"),
        "scale reads back by the drifted/undrifted response (aihwkit GlobalDriftCompensation)",
    )
    d2d_std: float = param(0.0, "", "std", "device gain spread: gain = 1 + d2d_std * N(0,1)")
    stuck_fraction: float = param(0.0, "", "frac", "fraction of synapses stuck (never change)")
    stuck_at_gmax_fraction: float = param(
        0.5, "", "frac", "of the stuck ones, fraction at g_max (|w| = w_max) rather than g_min"
    )
    stuck_model: str = param(
        "pair",
        "",
        ("pair", "device"),
        "pair: the whole synapse is fixed; device: one device of the pair, the partner works",
    )
    stuck_aware_mapping: bool = param(
        False,
        "",
        "bool",
        "map weights knowing the stuck devices (partner compensates; one-time read-out charged)",
    )
    dw_min: float | None = param(
        None, "w_max", "pos_or_none", "update pulse size; omitted: exact writes (or 1 LSB)"
    )
    update_bound: str = param(
        "soft", "", ("soft", "hard"), "soft: SoftBoundsDevice; hard: ConstantStepDevice"
    )
    up_down_asymmetry: float = param(
        0.0, "", "asym", "aihwkit up_down (device code): a>0 down = dw_min (1-a); a<0 up shrinks"
    )
    dw_min_std: float = param(
        0.0, "", "std", "cycle-to-cycle pulse-size std (relative, per pulse, unclipped)"
    )
    write_noise_std: float = param(
        0.0, "dw_min", "std", "write noise: a written device reads its state + this x dw_min N(0,1)"
    )
    unit_cell: str = param(
        "signed",
        "",
        ("signed", "one_sided"),
        "signed: pulses move w both ways; one_sided: SET-only pair w = g+ - g- with refresh",
    )
    set_step_a: float = param(
        0.0, "", "nonneg", "one_sided SET step dw_min (1 + a exp(-k g/g_max)) (aihwkit -A_up)"
    )
    set_step_k: float = param(
        0.0, "", "nonneg", "one_sided SET step decay k (aihwkit ExpStep 2 |a| gamma_up)"
    )
    dw_std_add: float = param(
        0.0, "w_max", "std", "one_sided pulse noise additive part (aihwkit dw_min_std_add)"
    )
    dw_std_slope: float = param(
        0.0, "", "std", "one_sided pulse noise part per g (aihwkit dw_min_std_slope)"
    )
    refresh_upper: float = param(
        0.75, "", "frac", "one_sided refresh: larger device above this fraction of its range"
    )
    refresh_lower: float = param(
        0.25, "", "frac", "one_sided refresh: and smaller device above this fraction"
    )
    reset_level: float = param(
        0.0, "", "frac", "one_sided conductance after RESET, fraction of the device range"
    )
    read_noise_model: str = param(
        "white",
        "",
        ("white", "pcm"),
        "white: read_noise_std only; pcm: plus 1/f noise growing with age (Nandakumar 2019)",
    )
    update_scheme: str = param(
        "accumulate",
        "",
        ("accumulate", "stochastic"),
        "accumulate: accumulate-and-fire; stochastic: x/d pulse-train coincidences (aihwkit)",
    )
    pulse_train_bl: int = param(
        31, "", "count", "stochastic: most slots per pulse train (aihwkit desired_bl)"
    )
    pulse_train_bl_management: bool = param(
        True, "", "bool", "stochastic: slots = ceil(max|dW| / dw_min), at most pulse_train_bl"
    )

    def _cross_checks(self) -> None:
        if not self.g_min_s < self.g_max_s:
            self._fail("g_min_s", f"must be < g_max_s ({self.g_max_s!r}), got {self.g_min_s!r}")
        if self.stuck_aware_mapping and self.stuck_model != "device":
            self._fail(
                "stuck_aware_mapping",
                "needs stuck_model = 'device' (a stuck pair has no free partner to compensate)",
            )
        if self.stuck_model == "device" and self.unit_cell == "one_sided":
            self._fail("stuck_model", "'device' is not modelled for unit_cell = 'one_sided'")
        if self.unit_cell == "one_sided":
            if self.dw_min is None or self.bits is not None:
                self._fail("unit_cell", "'one_sided' needs dw_min set and bits omitted")
            if not self.refresh_lower <= self.refresh_upper:
                self._fail(
                    "refresh_lower",
                    f"must be <= refresh_upper ({self.refresh_upper!r}), "
                    f"got {self.refresh_lower!r}",
                )
        if self.write_noise_std > 0 and (
            (self.dw_min is None and self.bits is None) or self.unit_cell == "one_sided"
        ):
            self._fail(
                "write_noise_std",
                "needs a pulsed signed device (dw_min or bits set, unit_cell = 'signed')",
            )
        if self.update_scheme == "stochastic" and self.dw_min is None and self.bits is None:
            self._fail("update_scheme", "'stochastic' needs a pulsed device (dw_min or bits)")
        if self.read_noise_model == "pcm" and self.read_time_s is None:
            self._fail("read_time_s", "must be set with read_noise_model = 'pcm' (its t_read)")

    @property
    def is_ideal(self) -> bool:
        """True when reading returns the stored weights and writes are exact additions."""
        return (
            self.w_max is None
            and self.bits is None
            and self.prog_noise_std == 0
            and self.prog_noise_scale == 0
            and self.read_noise_std == 0
            and not self.has_drift
            and self.d2d_std == 0
            and self.stuck_fraction == 0
            and self.dw_min is None
            and self.read_noise_model == "white"
        )

    @property
    def time_varying_reads(self) -> bool:
        """True when a read depends on the simulated time (drift or age-dependent noise)."""
        return self.has_drift or self.read_noise_model == "pcm"

    @property
    def has_drift(self) -> bool:
        return self.drift_nu > 0 or self.drift_nu_std > 0 or self.drift_nu_model == "pcm"

    @property
    def pulsed(self) -> bool:
        """Updates are realised as pulse trains (``dw_min`` given, or a multi-level device)."""
        return self.dw_min is not None or self.bits is not None

    def relative_lsb(self) -> float | None:
        """Weight step between adjacent levels as a fraction of ``w_max`` (None if analog)."""
        if self.bits is None:
            return None
        return 2.0 if self.bits == 1 else 1.0 / (2 ** (self.bits - 1) - 1)

    def relative_dw_min(self) -> float | None:
        """Pulse size as a fraction of ``w_max`` (one level for multi-level devices)."""
        return self.dw_min if self.dw_min is not None else self.relative_lsb()

    def pulse_sizes(self) -> tuple[float, float] | None:
        """Nominal ``(up, down)`` pulse sizes as fractions of ``w_max`` (None if not pulsed).

        aihwkit's device-code convention for ``up_down = a`` (``PulsedRPUDevice::populate``:
        ``up_bias = min(a, 0)``, ``down_bias = -max(a, 0)``, scale ``(1 + bias) dw_min``).
        """
        r = self.relative_dw_min()
        if r is None:
            return None
        a = self.up_down_asymmetry
        return r * (1.0 + min(a, 0.0)), r * (1.0 - max(a, 0.0))


class Crossbar:
    """Device state for one weight matrix of shape ``(n_out, n_in)``.

    Typical use::

        xb = Crossbar(cfg, W.shape, np.float32)
        xb.program(W, rng)                 # quantise, programming noise, stuck, d2d
        W_eff = xb.read(t_s, rng, out=buf) # drift + read noise, one fused pass
        n_pulses = xb.update(dW, rng)      # pulsed write through the update-response model

    With an ideal config ``read`` returns :attr:`weights` itself and ``update`` is ``W += dW``.
    """

    def __init__(
        self, config: SynapseConfig, shape: tuple[int, int], dtype: np.dtype | type = np.float64
    ) -> None:
        self.config = config
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"crossbar dtype must be float32 or float64, got {self.dtype}")
        self._w = np.zeros(self.shape, self.dtype)
        self.w_max: float = config.w_max if config.w_max is not None else math.inf
        self.t_program_s: float = 0.0
        self._gain: np.ndarray | None = None  # float64 (n_out*n_in,) or None
        self._nu: np.ndarray | None = None  # float64 (n_out*n_in,) or None (uniform)
        self._stuck_idx = np.zeros(0, np.intp)
        # stuck_model "pair": each stuck synapse's fixed weight; "device": the reachable end r
        # of its free partner (the weight stays in [min(0, r), max(0, r)])
        self._stuck_val = np.zeros(0, self.dtype)
        # accumulate-and-fire counters, in nominal pulses: float64 (n_out*n_in,) or None (zeros)
        self._acc: np.ndarray | None = None
        # per-device drift clocks: simulated time of the last write, float64 (n_out*n_in,);
        # None: every device is as old as the programming (t_program_s)
        self._t_write: np.ndarray | None = None
        # one-sided pairs (unit_cell = "one_sided"): float64 (n_out*n_in,) conductances in
        # weight units, weights = g_plus - g_minus; None otherwise
        self._gp: np.ndarray | None = None
        self._gm: np.ndarray | None = None
        # 1/f read noise (read_noise_model = "pcm"): one standard normal per device, float64
        self._z1f: np.ndarray | None = None
        # write noise (write_noise_std > 0): the persistent state updates act on, (n_out, n_in)
        # in the crossbar's dtype; the weights read are it plus each written device's noise
        self._wp: np.ndarray | None = None
        #: one-sided pairs: ``[refreshes, pulses they fired]`` since programming
        self.refresh_counts = np.zeros(2, np.int64)
        #: ``(tile_rows, tile_cols, wire_segment_ohm)``: reads go through the tiles' wires
        #: (:func:`hardware_models.ir_drop.effective_weights`); None: ideal wires
        self.ir_drop: tuple[int, int, float] | None = None
        self._ir_key: tuple | None = None
        self._ir_w: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"Crossbar(shape={self.shape}, dtype={self.dtype.name}, w_max={self.w_max:.4g}, "
            f"ideal={self.is_ideal})"
        )

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """The device state beyond the weights that a checkpoint keeps (copies): bound,
        programming time, per-device gains and drift exponents, pulse accumulators, write
        clocks, one-sided pairs' conductances, 1/f read-noise draws, the persistent weights
        under write noise and stuck devices (None where uniform or absent)."""

        def copy(a):
            return None if a is None else a.copy()

        return {
            "w_max": float(self.w_max),
            "t_program_s": float(self.t_program_s),
            "gain": copy(self._gain),
            "nu": copy(self._nu),
            "acc": copy(self._acc),
            "t_write": copy(self._t_write),
            "gp": copy(self._gp),
            "gm": copy(self._gm),
            "z1f": copy(self._z1f),
            "wp": None if self._wp is None else self._wp.astype(np.float64).reshape(-1),
            "refresh_counts": self.refresh_counts.copy(),
            "stuck_idx": self._stuck_idx.astype(np.int64),
            "stuck_val": self._stuck_val.copy(),
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` (``acc``, ``t_write``, ``gp``, ``gm``, ``z1f``, ``wp`` and
        ``refresh_counts`` may be absent: zeros, every device as old as its programming, no
        pairs, draws, write noise or refreshes)."""
        self.w_max = state["w_max"]
        self.t_program_s = state["t_program_s"]
        self._gain = state["gain"]
        self._nu = state["nu"]
        self._acc = state.get("acc")
        self._t_write = state.get("t_write")
        self._gp, self._gm, self._z1f = state.get("gp"), state.get("gm"), state.get("z1f")
        rc = state.get("refresh_counts")
        self.refresh_counts = np.zeros(2, np.int64) if rc is None else np.array(rc, np.int64)
        wp = state.get("wp")
        self._wp = None if wp is None else wp.reshape(self.shape).astype(self.dtype)
        self._stuck_idx = state["stuck_idx"]
        self._stuck_val = state["stuck_val"].astype(self.dtype)

    @property
    def is_ideal(self) -> bool:
        return self.config.is_ideal

    @property
    def weights(self) -> np.ndarray:
        """The stored effective weight array (modified in place by :meth:`update`)."""
        return self._w

    @property
    def gain(self) -> np.ndarray:
        """Per-device gain (device-to-device spread), shape ``(n_out, n_in)``."""
        if self._gain is None:
            return np.ones(self.shape)
        return self._gain.reshape(self.shape)

    @property
    def pulse_accumulator(self) -> np.ndarray:
        """Requested change not yet written, in nominal pulses (``|.| < 1``), ``(n_out, n_in)``."""
        if self._acc is None:
            return np.zeros(self.shape)
        return self._acc.reshape(self.shape)

    @property
    def stuck_mask(self) -> np.ndarray:
        mask = np.zeros(self.shape[0] * self.shape[1], bool)
        mask[self._stuck_idx] = True
        return mask.reshape(self.shape)

    @property
    def drift_exponents(self) -> np.ndarray:
        if self._nu is None:
            return np.full(self.shape, self.config.drift_nu)
        return self._nu.reshape(self.shape)

    @property
    def lsb(self) -> float | None:
        """Weight step between adjacent levels, ``w_max / (2^(bits-1) - 1)`` (``2 w_max`` for
        a binary weight)."""
        r = self.config.relative_lsb()
        return None if r is None else r * self.w_max

    def levels(self) -> np.ndarray | None:
        """The signed weight level grid (None if analog)."""
        b = self.config.bits
        if b is None:
            return None
        if b == 1:
            return np.array([-self.w_max, self.w_max])
        kmax = 2 ** (b - 1) - 1
        return np.arange(-kmax, kmax + 1) * self.lsb

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """``(g_plus, g_minus)`` in siemens of the differential pairs.

        A device of gain ``gamma`` presents ``gamma * g`` to the read circuit, so the programmed
        conductance is the effective weight divided by the gain (verified or not)."""
        cfg = self.config
        if not math.isfinite(self.w_max):
            raise ValueError("an ideal crossbar has no conductance mapping (w_max not set)")
        s = self._w.astype(np.float64)
        if self._gain is not None:
            s = s / np.where(self._gain > 0, self._gain, 1.0).reshape(self.shape)
        k = (cfg.g_max_s - cfg.g_min_s) / self.w_max
        g_plus = cfg.g_min_s + np.maximum(s, 0.0) * k
        g_minus = cfg.g_min_s + np.maximum(-s, 0.0) * k
        return g_plus, g_minus

    # -- programming -------------------------------------------------------------------------
    def program(
        self,
        W_target: np.ndarray,
        rng: np.random.Generator | None = None,
        t_s: float = 0.0,
        copy: bool = True,
    ) -> None:
        """Program the devices to represent ``W_target`` at simulated time ``t_s``.

        Steps (non-ideal): clip to ``+-w_max``; quantise to the level grid; draw device gains
        ``1 + d2d_std N(0,1)`` (compensated when ``program_verify``); add programming noise
        ``prog_noise_std * w_max`` and/or ``prog_noise_scale * sigma_PCM(g)`` (Nandakumar 2019;
        with ``prog_noise_idle_device`` also on the pair's idle device, as aihwkit);
        fix stuck synapses at 0 (both at ``g_min``) or ``+-w_max`` (one at ``g_max``), or, with
        ``stuck_model = "device"``, stick one device of each such pair and map the weight onto
        its partner (:mod:`hardware_models.stuck_aware`, unaware or aware mapping); draw drift
        exponents ``nu ~ N(drift_nu, drift_nu_std)`` (``drift_nu_model = "pcm"``: mean and std
        from each device's conductance, :func:`pcm_drift_exponent`), clipped at 0. Ideal: a
        plain copy (or, with ``copy=False`` and a matching C-contiguous array, adopt
        ``W_target`` itself).
        """
        W = np.asarray(W_target)
        if W.shape != self.shape:
            raise ValueError(f"W_target has shape {W.shape}, crossbar is {self.shape}")
        cfg = self.config
        self.t_program_s = float(t_s)
        self._acc = None
        self._t_write = None
        if cfg.is_ideal:
            if not copy and W.dtype == self.dtype and W.flags.c_contiguous:
                self._w = W
            else:
                self._w = np.array(W, dtype=self.dtype, order="C", copy=True)
            return
        if rng is None:
            raise ValueError("a non-ideal crossbar needs a numpy Generator to program")
        Wf = W.astype(np.float64)
        if cfg.w_max is None:
            peak = float(np.max(np.abs(Wf))) if Wf.size else 0.0
            self.w_max = cfg.w_max_headroom * (peak if peak > 0 else 1.0)
        w_max = self.w_max
        q = np.clip(Wf, -w_max, w_max)
        if cfg.bits == 1:
            q = np.where(q >= 0, w_max, -w_max)
        elif cfg.bits is not None:
            lsb = self.lsb
            q = np.rint(q / lsb) * lsb
        size = q.size
        if cfg.d2d_std > 0:
            self._gain = np.maximum(1.0 + cfg.d2d_std * rng.standard_normal(size), 0.0)
        else:
            self._gain = None
        bound = w_max if self._gain is None else (self._gain * w_max).reshape(self.shape)
        if cfg.program_verify or self._gain is None:
            w = q
        else:
            w = q * self._gain.reshape(self.shape)
        sigma = self._programming_sigma(q)
        idle = cfg.prog_noise_idle_device and cfg.prog_noise_scale > 0
        if sigma is not None:
            noise = sigma * rng.standard_normal(self.shape)
            if idle:  # a zero weight has no active device: both are idle (below)
                noise = np.where(q == 0, 0.0, noise)
            w = w + noise
        if idle:
            w = w + self._idle_device_noise(q, rng)
        w = np.clip(w, -bound, bound)
        if cfg.stuck_fraction > 0:
            idx = np.flatnonzero(rng.random(size) < cfg.stuck_fraction)
            at_gmax = rng.random(idx.size) < cfg.stuck_at_gmax_fraction
            sign = np.where(rng.random(idx.size) < 0.5, -1.0, 1.0)
            b_idx = w_max if self._gain is None else self._gain[idx] * w_max
            if cfg.stuck_model == "device":
                # one device of the pair (side = sign) is stuck, its partner works
                # (hardware_models/stuck_aware.py); the stored entry is the reachable end
                mapping = sa.map_aware if cfg.stuck_aware_mapping else sa.map_unaware
                w.reshape(-1)[idx] = mapping(w.reshape(-1)[idx], sign, at_gmax, b_idx)
                vals = sa.reachable_end(sign, at_gmax, b_idx)
            else:
                vals = np.where(at_gmax, sign * b_idx, 0.0)
                w.reshape(-1)[idx] = vals
            self._stuck_idx = idx
            self._stuck_val = vals.astype(self.dtype)
        else:
            self._stuck_idx = np.zeros(0, np.intp)
            self._stuck_val = np.zeros(0, self.dtype)
        if cfg.drift_nu_model == "pcm":
            # the device carrying |w| sits at g = g_min + |w| / w_max (g_max - g_min)
            g = cfg.g_min_s + np.abs(q.reshape(-1)) / w_max * (cfg.g_max_s - cfg.g_min_s)
            mean, std = pcm_drift_exponent(g / cfg.g_max_s)
            self._nu = np.maximum(mean + std * rng.standard_normal(size), 0.0)
        elif cfg.drift_nu_std > 0:
            nu = cfg.drift_nu + cfg.drift_nu_std * rng.standard_normal(size)
            self._nu = np.maximum(nu, 0.0)
        else:
            self._nu = None
        self._w = np.ascontiguousarray(w, dtype=self.dtype)
        self.refresh_counts = np.zeros(2, np.int64)
        if cfg.unit_cell == "one_sided":
            flat = self._w.reshape(-1).astype(np.float64)
            self._gp = np.maximum(flat, 0.0)
            self._gm = np.maximum(-flat, 0.0)
        else:
            self._gp = self._gm = None
        self._z1f = rng.standard_normal(size) if cfg.read_noise_model == "pcm" else None
        # write noise starts at the first update: programming has its own noise model
        self._wp = self._w.copy() if cfg.write_noise_std > 0 else None

    @property
    def pair_conductances(self) -> tuple[np.ndarray, np.ndarray] | None:
        """One-sided pairs: ``(g_plus, g_minus)`` in weight units, ``(n_out, n_in)`` (None for
        signed cells)."""
        if self._gp is None or self._gm is None:
            return None
        return self._gp.reshape(self.shape), self._gm.reshape(self.shape)

    def _idle_device_noise(self, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Weight change from programming the pair's idle device(s) to ``g_min`` with the PCM
        noise at ``g_min``, clamped at ``g >= 0`` (aihwkit's ``PCMLikeNoiseModel`` programs
        both devices of a ``SinglePairConductanceConverter`` pair). The idle device sits on the
        side opposite the weight's sign (both sides for a zero weight); its clamped noise has
        a positive mean, so it pulls weights towards zero."""
        cfg = self.config
        span = cfg.g_max_s - cfg.g_min_s
        sig = cfg.prog_noise_scale * pcm_programming_noise_s(cfg.g_min_s / cfg.g_max_s)

        def idle() -> np.ndarray:
            g = np.maximum(cfg.g_min_s + sig * rng.standard_normal(self.shape), 0.0)
            return (g - cfg.g_min_s) / span * self.w_max

        plus, minus = idle(), idle()  # drawn for both sides; used where that side is idle
        return np.where(q > 0, 0.0, plus) - np.where(q < 0, 0.0, minus)

    def _programming_sigma(self, q: np.ndarray) -> np.ndarray | float | None:
        """Programming-noise std in weight units for targets ``q`` (None if noise-free)."""
        cfg = self.config
        sigma: np.ndarray | float = 0.0
        if cfg.prog_noise_std > 0:
            sigma = cfg.prog_noise_std * self.w_max
        if cfg.prog_noise_scale > 0:
            # The device carrying |w| sits at g = g_min + |w|/w_max (g_max - g_min); its noise in
            # siemens (Nandakumar 2019 polynomial) maps back to weight units by w_max/(g_max-g_min).
            span = cfg.g_max_s - cfg.g_min_s
            g = cfg.g_min_s + np.abs(q) / self.w_max * span
            sig_s = cfg.prog_noise_scale * pcm_programming_noise_s(g / cfg.g_max_s)
            pcm = sig_s / span * self.w_max
            # independent noise sources add in variance
            sigma = np.sqrt(sigma * sigma + pcm * pcm)
        if np.all(np.asarray(sigma) == 0):
            return None
        return sigma

    # -- reading -----------------------------------------------------------------------------
    def drift_factor(self, t_s: float) -> float:
        """Uniform drift factor ``(age / t0)^-drift_nu`` of a device written at programming
        (1 before ``t0``)."""
        age = t_s - self.t_program_s
        if not self.config.has_drift or age <= self.config.t0_s:
            return 1.0
        return (age / self.config.t0_s) ** (-self.config.drift_nu)

    @property
    def write_times(self) -> np.ndarray:
        """Simulated time (s) each device was last written: its drift clock, ``(n_out, n_in)``."""
        if self._t_write is None:
            return np.full(self.shape, self.t_program_s)
        return self._t_write.reshape(self.shape)

    def _drifting(self, t_s: float) -> bool:
        cfg = self.config
        if not cfg.has_drift:
            return False
        oldest = self.t_program_s if self._t_write is None else float(self._t_write.min())
        return t_s - oldest > cfg.t0_s

    def _drifted(self, t_s: float, out: np.ndarray) -> np.ndarray:
        """``out = w * ((t - t_write) / t0)^-nu`` per device (the noise-free drifted weights)."""
        from hardware_models import _kernels as k

        cfg = self.config
        w, o = self._w.reshape(-1), out.reshape(-1)
        if self._t_write is not None:
            nu = self._nu if self._nu is not None else np.zeros(1)
            k.read_drift_clocks(
                w, nu, cfg.drift_nu, self._nu is not None, self._t_write, t_s, cfg.t0_s, o
            )
        elif self._nu is None:
            np.multiply(self._w, self.drift_factor(t_s), out=out)
        else:
            age = t_s - self.t_program_s
            k.read_drift(w, self._nu, math.log(age / cfg.t0_s), o)
        return out

    def _add_read_noise_1f(self, t_s: float, out: np.ndarray) -> None:
        """Add the age- and conductance-dependent 1/f deviation to ``out`` (drifted weights),
        ``read_noise_model = "pcm"`` (:mod:`hardware_models.pcm_read_noise`)."""
        from hardware_models.pcm_read_noise import add_read_noise_1f

        cfg = self.config
        assert self._z1f is not None and cfg.read_time_s is not None
        span = cfg.g_max_s - cfg.g_min_s
        c = self.w_max * cfg.g_max_s / span
        t_write = self._t_write
        if t_write is None:
            t_write = np.full(1, self.t_program_s)
            t_write = np.broadcast_to(t_write, (self._w.size,))
            t_write = np.ascontiguousarray(t_write)
        pair = self._gp is not None
        dummy = np.zeros(1)
        add_read_noise_1f(
            out.reshape(-1),
            self._w.reshape(-1),
            self._gp if pair else dummy,
            self._gm if pair else dummy,
            pair,
            self._z1f,
            t_write,
            float(t_s),
            float(cfg.read_time_s),
            cfg.g_min_s / cfg.g_max_s,
            c,
            self._nu if self._nu is not None else dummy,
            cfg.drift_nu if cfg.has_drift else 0.0,
            self._nu is not None and cfg.has_drift,
            cfg.t0_s,
        )

    def _through_wires(self, w: np.ndarray, drift_t: float | None) -> np.ndarray:
        """``w`` as the columns read it through the wires (cached until the weights change)."""
        import hashlib

        from hardware_models.ir_drop import effective_weights

        assert self.ir_drop is not None
        key = (drift_t, hashlib.blake2b(w.tobytes(), digest_size=16).digest())
        if key != self._ir_key:
            rows, cols, r = self.ir_drop
            cfg = self.config
            self._ir_w = effective_weights(
                w, cfg.g_min_s, cfg.g_max_s, self.w_max, rows, cols, r, r
            ).astype(self.dtype)
            self._ir_key = key
        return self._ir_w  # type: ignore[return-value]

    def compensation(self, drifted: np.ndarray) -> np.ndarray | float:
        """Drift-compensation gain for reads of ``drifted`` weights (1 when off).

        ``global`` (aihwkit ``GlobalDriftCompensation``): the periphery reads the summed
        magnitude of the array's response before drift (``sum |W0|``, re-read after each
        programming or write) and now, and scales every output by their ratio. ``column``: the
        same ratio per output line (shape ``(n_out, 1)``; a pcsim option).
        """
        mode = self.config.drift_compensation
        if mode == "none":
            return 1.0
        axis = None if mode == "global" else 1
        ref = np.abs(self._w).sum(axis=axis, dtype=np.float64)
        now = np.abs(drifted).sum(axis=axis, dtype=np.float64)
        gain = np.where(now > 0, ref / np.where(now > 0, now, 1.0), 1.0)
        return float(gain) if axis is None else gain[:, None]

    def read(
        self,
        t_s: float = 0.0,
        rng: np.random.Generator | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The weight matrix a matrix-vector product sees at simulated time ``t_s``.

        ``w(t) = alpha * (w0 * ((t - t_write) / t0)^-nu + read_noise_std * w_max * N(0, 1))``:
        drift after ``t0`` since each device's last write (Nandakumar 2019 / aihwkit PCM drift),
        ``alpha`` the drift compensation (:meth:`compensation`, 1 when off). Without read
        noise and drift this returns :attr:`weights` itself (no copy; do not modify it).
        Otherwise the result is written into ``out`` (allocated if None).
        """
        cfg = self.config
        noisy = cfg.read_noise_std > 0
        drifting = self._drifting(t_s)
        if self.ir_drop is not None or cfg.read_noise_model == "pcm":
            mean = self.read_mean(t_s, out)
            if not noisy:
                return mean
            if out is None or mean is not out:
                out = np.array(mean, dtype=self.dtype, order="C", copy=True)
            from hardware_models import _kernels as k

            sigma = cfg.read_noise_std * self.w_max
            k.read_affine_noise(out.reshape(-1), 1.0, sigma, rng, out.reshape(-1))
            return out
        if not noisy and not drifting:
            return self._w
        if noisy and rng is None:
            raise ValueError("a crossbar with read noise needs a numpy Generator to read")
        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {self.shape}")
        from hardware_models import _kernels as k

        sigma = cfg.read_noise_std * self.w_max
        if not drifting:
            k.read_affine_noise(self._w.reshape(-1), 1.0, sigma, rng, out.reshape(-1))
            return out
        self._drifted(t_s, out)
        alpha = self.compensation(out)
        if noisy:
            k.read_affine_noise(out.reshape(-1), 1.0, sigma, rng, out.reshape(-1))
        if cfg.drift_compensation != "none":
            out *= alpha
        return out

    def read_mean(self, t_s: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
        """The noise-free part of :meth:`read` (drift, wire IR drop and drift compensation
        included).

        A consumer that applies read noise in the output domain uses this with
        :attr:`read_sigma`: for ``y = W x`` with independent ``N(0, read_sigma^2)`` noise on
        every device at every read, ``y_i = (W x)_i + read_sigma * ||x|| * z_i`` exactly in
        distribution (``z`` standard normal, independent per output and per read).
        """
        if self.config.read_noise_model == "pcm":
            return self._read_mean_1f(t_s, out)
        if not self._drifting(t_s):
            if self.ir_drop is None:
                return self._w
            w_ir = self._through_wires(self._w, None)
            if out is None:
                return w_ir
            np.copyto(out, w_ir)
            return out
        if out is None:
            out = np.empty(self.shape, self.dtype)
        self._drifted(t_s, out)
        if self.ir_drop is not None:
            np.copyto(out, self._through_wires(out, t_s))
        if self.config.drift_compensation != "none":
            out *= self.compensation(out)
        return out

    def _read_mean_1f(self, t_s: float, out: np.ndarray | None) -> np.ndarray:
        """:meth:`read_mean` with the 1/f deviation of ``read_noise_model = "pcm"``: drift,
        then the deviation, then the wires, then drift compensation (whose reference read sees
        the deviation, as aihwkit's)."""
        if out is None:
            out = np.empty(self.shape, self.dtype)
        if self._drifting(t_s):
            self._drifted(t_s, out)
        else:
            np.copyto(out, self._w)
        self._add_read_noise_1f(t_s, out)
        if self.ir_drop is not None:
            np.copyto(out, self._through_wires(out, t_s))
        if self.config.drift_compensation != "none":
            out *= self.compensation(out)
        return out

    @property
    def read_sigma(self) -> float:
        """Standard deviation of the read noise of one device, in weight units."""
        if self.config.read_noise_std == 0:
            return 0.0
        return float(self.config.read_noise_std * self.w_max)

    # -- writing -----------------------------------------------------------------------------
    def update(
        self, dW: np.ndarray, rng: np.random.Generator | None = None, t_s: float | None = None
    ) -> int:
        """Apply a requested weight change; return the number of write pulses fired.

        Ideal: ``weights += dW`` exactly (returns the number of nonzero entries, one write
        each). Pulsed (``dw_min`` or ``bits`` set): accumulate-and-fire. Each device adds
        ``dW / (dw_min w_max)`` to its counter and fires the whole pulses it holds, keeping the
        residual for the next call (:attr:`pulse_accumulator`), through the soft- or
        hard-bounds response with per-pulse cycle-to-cycle noise (see
        :func:`hardware_models._kernels.pulsed_update`). A flow split into many small calls
        (small ``dt``) fires the same pulses as one call. Otherwise exact addition clipped to
        the device range. Stuck synapses keep their value (``stuck_model =
        "device"``: stay between 0 and their reachable end, the partner moving alone).

        ``t_s`` (simulated seconds) runs the drift clocks of a drifting device: a written
        device starts from its drifted value and restarts its clock at ``t_s``. Without it,
        writes add to the stored (undrifted) value and clocks stay at programming.

        ``unit_cell = "one_sided"``: SET pulses on the pair's ``g_plus`` (increase) or
        ``g_minus`` (decrease), refreshed when saturated (:mod:`hardware_models.pcm_pair`;
        refresh pulses are in the count and in :attr:`refresh_counts`). ``update_scheme =
        "stochastic"``: no accumulator; a rank-one ``dW`` fires the coincidences of random
        row and column pulse trains (:meth:`pulse_counts`), whose mean is ``dW``.

        ``write_noise_std > 0`` (aihwkit's write noise): the update acts on the hidden
        :attr:`persistent_weights`; each device it moved then reads that value plus
        ``write_noise_std * dw_min * w_max * N(0, 1)``, drawn anew at each write.
        """
        cfg = self.config
        if cfg.is_ideal:
            self._w += dW
            return int(np.count_nonzero(dW))
        dW = np.asarray(dW)
        if dW.shape != self.shape:
            raise ValueError(f"dW has shape {dW.shape}, crossbar is {self.shape}")
        apparent = None
        if self._wp is not None:  # the update acts on the persistent state
            apparent = self._w.copy()
            self._w[...] = self._wp
        r = cfg.relative_dw_min()
        clocks = t_s is not None and cfg.time_varying_reads
        if clocks and self._t_write is None:
            self._t_write = np.full(self._w.size, self.t_program_s)
        if r is None:
            n = int(np.count_nonzero(dW))
            if clocks:
                hit = np.flatnonzero(dW.reshape(-1))
                drifted = self._drifted(t_s, np.empty(self.shape, self.dtype))  # type: ignore[arg-type]
                self._w.reshape(-1)[hit] = drifted.reshape(-1)[hit]
                self._t_write[hit] = t_s  # type: ignore[index]
            self._w += dW
            if self._gain is None:
                np.clip(self._w, -self.w_max, self.w_max, out=self._w)
            else:
                b = (self._gain * self.w_max).reshape(self.shape)
                np.clip(self._w, -b, b, out=self._w)
        else:
            if rng is None:
                raise ValueError("a pulsed crossbar needs a numpy Generator to update")
            d = np.ascontiguousarray(dW).reshape(-1)
            if self._acc is None:
                self._acc = np.zeros(d.size)
            if cfg.update_scheme == "stochastic":
                n = self._update_stochastic(dW, rng, t_s)
            else:
                n = self._fire(d, self._acc, rng, t_s)
        if self._stuck_idx.size:
            flat = self._w.reshape(-1)
            if cfg.stuck_model == "device":  # the partner moves between 0 and the reachable end
                r = self._stuck_val
                flat[self._stuck_idx] = np.clip(
                    flat[self._stuck_idx], np.minimum(r, 0), np.maximum(r, 0)
                )
            else:
                flat[self._stuck_idx] = self._stuck_val
            if self._gp is not None and self._gm is not None:
                v = self._stuck_val.astype(np.float64)
                self._gp[self._stuck_idx] = np.maximum(v, 0.0)
                self._gm[self._stuck_idx] = np.maximum(-v, 0.0)
        if apparent is not None:
            self._write_noise(apparent, rng)
        return int(n)

    @property
    def persistent_weights(self) -> np.ndarray:
        """The state updates act on, ``(n_out, n_in)``: :attr:`weights` without the write
        noise (the weights themselves when ``write_noise_std = 0``)."""
        return self._w if self._wp is None else self._wp

    def _write_noise(self, apparent: np.ndarray, rng: np.random.Generator) -> None:
        """After an update (``self._w`` holds the new persistent state, ``apparent`` the
        weights read before it): every device the update moved reads its persistent value
        plus ``write_noise_std * dw_min * w_max * N(0, 1)``, drawn anew; the others read
        what they read before. aihwkit (``PulsedRPUDevice::applyUpdateWriteNoise``) redraws
        the noise of every device at every update; pcsim follows its documented semantics,
        "sampled anew when the device is touched again" (``write_noise_std`` docstring)."""
        assert self._wp is not None
        w, wp = self._w.reshape(-1), self._wp.reshape(-1)
        hit = np.flatnonzero(w != wp)
        wp[hit] = w[hit]
        sigma = self.config.write_noise_std * self.config.relative_dw_min() * self.w_max
        out = apparent.reshape(-1)
        out[hit] = wp[hit] + sigma * rng.standard_normal(hit.size)
        w[...] = out

    def _fire(
        self, d: np.ndarray, acc: np.ndarray, rng: np.random.Generator, t_s: float | None
    ) -> int:
        """Accumulate-and-fire ``d`` (flat, weight units) through the device response."""
        from hardware_models import _kernels as k

        cfg = self.config
        r = cfg.relative_dw_min()
        assert r is not None
        clocks = t_s is not None and cfg.time_varying_reads
        has_gain = self._gain is not None
        gain = self._gain if has_gain else np.ones(1)
        drift_args = (
            clocks,
            self._t_write if clocks else np.zeros(1),
            0.0 if t_s is None else float(t_s),
            self._nu if self._nu is not None else np.zeros(1),
            cfg.drift_nu,
            self._nu is not None,
            cfg.t0_s,
        )
        if cfg.unit_cell == "one_sided":
            from hardware_models.pcm_pair import pair_update

            assert self._gp is not None and self._gm is not None
            return pair_update(
                self._w.reshape(-1),
                self._gp,
                self._gm,
                d,
                acc,
                gain,
                has_gain,
                self.w_max,
                r * self.w_max,
                r,
                cfg.set_step_a,
                cfg.set_step_k,
                cfg.dw_min_std,
                cfg.dw_std_add,
                cfg.dw_std_slope,
                cfg.reset_level,
                cfg.refresh_upper,
                cfg.refresh_lower,
                rng,
                *drift_args,
                self.refresh_counts,
            )
        r_up, r_down = cfg.pulse_sizes()  # type: ignore[misc]
        snap = 0
        if cfg.update_bound == "hard" and cfg.bits is not None:
            snap = 2 if cfg.bits == 1 else 1
        return k.pulsed_update(
            self._w.reshape(-1),
            d,
            acc,
            gain,
            has_gain,
            self.w_max,
            r * self.w_max,
            r_up,
            r_down,
            cfg.dw_min_std,
            cfg.update_bound == "soft",
            snap,
            self.lsb or 0.0,
            rng,
            *drift_args,
        )

    def pulse_counts(self, dW: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Signed pulse counts the stochastic pulse trains fire for a rank-one ``dW``
        (``update_scheme = "stochastic"``; :mod:`hardware_models.pulse_trains`)."""
        from hardware_models.pulse_trains import coincidence_counts, rank_one_factors

        cfg = self.config
        factors = rank_one_factors(dW)
        if factors is None:
            raise ValueError(
                "chip.synapses.update_scheme = 'stochastic' needs rank-one weight changes "
                "(batch 1 with the flow or plain SGD); this change is not rank one"
            )
        dw = cfg.relative_dw_min() * self.w_max  # type: ignore[operator]
        return coincidence_counts(
            factors[0], factors[1], dw, cfg.pulse_train_bl, rng, cfg.pulse_train_bl_management
        )

    def _update_stochastic(
        self, dW: np.ndarray, rng: np.random.Generator, t_s: float | None
    ) -> int:
        """Fire the coincidences of stochastic pulse trains (no accumulator: aihwkit's
        ``StochasticCompressed``) through the device response."""
        counts = self.pulse_counts(dW, rng)
        dw = self.config.relative_dw_min() * self.w_max  # type: ignore[operator]
        # n whole pulses: request n + 1/2 (sign n) pulses from an empty counter, so the
        # kernel's truncation fires exactly n whatever the rounding of n * dw / dw
        d = ((counts + 0.5 * np.sign(counts)) * dw).reshape(-1)
        return self._fire(d, np.zeros(d.size), rng, t_s)
