"""Is a run still in the stable regime? Checks that name the cause when it is not.

A diverging simulation on an ideal substrate shows itself (activities beyond
``DIVERGENCE_BOUND`` or NaN, caught by the engines). On a chip the rails of the value units
clip the activities and the device range clips the weights, so an unstable run stays finite
and goes on producing numbers that mean nothing. These checks look for the signatures instead:

* **step beyond the fastest unit's limit** (before training): a free unit with time constant
  ``s * tau_x`` (``s`` = ``Circuit.tau_scale``, the chip's mismatch) decays as
  ``x' = -x / s`` plus the coupling to its neighbours, whose Jacobian term is negative
  semi-definite, so the linearised dynamics have a rate of at least ``1 / s``. Forward Euler
  (and Euler-Maruyama, Heun) on a rate ``lambda`` is stable only for ``dt * lambda < 2``
  (the real-axis limit of their stability regions; Hairer & Wanner, *Solving Ordinary
  Differential Equations II*, section IV.2). ``dt / s_min >= 2`` is therefore unstable
  whatever the weights.
* **activities flipping between the rails** (after every epoch): a probe settles a few
  training samples with the run's own step; in the unstable regime Euler's iterates alternate
  from one step to the next (a negative amplification factor beyond -1), and noise far above
  the rail range does the same at random. More than ``FLIP_FRACTION`` of the free units
  jumping by more than half the rail range in one step is instability.
* **activities oscillating around the settled state** (after every epoch, rails or not): a
  step beyond Euler's limit for the fastest mode of the settled inference
  (:mod:`pcsim.euler_modes`: ``dt * lambda_max >= 2``) makes the iterates alternate between
  states (period 2, longer cycles or chaos) that stay finite and far from the rails, so
  neither the engines nor the rail check see it; a warning (:class:`OscillationWarning`)
  names the step and the layer, since the run's numbers are still produced.
* **weights pinned at the device range or non-finite** (after every epoch): the learning rate
  drove them there.
* **non-finite or exploding energies** (after every epoch, and the BP baseline's weights).

:class:`pcsim.engines.clocked.DivergenceError` carries the cause and the field to change.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from pcsim import euler_modes
from pcsim.engines.clocked import DivergenceError

EULER_LIMIT = 2.0  # dt * rate below this: Euler's amplification factor 1 - dt*rate > -1
FLIP_FRACTION = 0.25  # of free units jumping by half the rail range in one step
PINNED_FRACTION = 0.5  # of weights at the device's +-w_max
MIN_BITS_PINNED = 5  # devices with 15+ levels per sign: +-w_max is not a common value
ENERGY_GROWTH = 1e6  # an epoch's mean PC energy this many times the first batch's: exploding


OWN_MESSAGES = ("learning diverged", "run diverged", "the run would diverge")
COUPLING_GROWTH = 2.0  # ||W||_F^2 this many times its initial value: the weights' doing
OSCILLATION_FRACTION = 0.25  # of probe samples whose settled state Euler's step cannot reach


class OscillationWarning(RuntimeWarning):
    """The run's step is beyond Euler's limit at the settled inference: the activities
    oscillate instead of settling (the numbers stay finite but are not the settled ones)."""


def oscillation_message(
    dt: float, layer: int, rate: float, n_bad: int, n: int, T: float | None = None
) -> str:
    """The one-line warning: the step, the layer, the rate, how much the mode grows over a
    presentation of ``T`` tau_x (Euler's factor ``|1 - dt rate|`` per step) and the step to
    use."""
    growth = ""
    if T is not None and T > 0:
        steps = max(1, round(T / dt))
        g = abs(1.0 - dt * rate) ** steps
        growth = f"; over one presentation of {T:g} tau_x ({steps} steps) it grows x{g:.3g}"
    return (
        f"engine.dt = {dt:.3g} tau_x is beyond Euler's stability limit for the settled "
        f"inference: its fastest mode (mostly in layer {layer}) relaxes at {rate:.3g}/tau_x, "
        f"dt x rate = {dt * rate:.3g} >= {EULER_LIMIT:g} on {n_bad} of {n} probe samples, so "
        "the activities oscillate between states (period 2 or longer) instead of settling and "
        f"the settled energies and accuracies are not those of the circuit{growth}; set "
        f"engine.dt below {EULER_LIMIT / rate:.3g} tau_x"
    )


def coupling(weights: Sequence[np.ndarray]) -> float:
    """``max_l ||W_l||_F^2``, an upper bound of ``sigma_max(W_l)^2``, the coupling term of PC's
    Jacobian (rate up to ``1 + sigma_max^2`` for a unit under a linear layer). One pass over
    each matrix."""
    out = 0.0
    for W in weights:
        v = float(np.vdot(W, W)) if W.size else 0.0
        out = max(out, v) if math.isfinite(v) else math.inf
    return out


def check_step_limit(tau_scale: Sequence[np.ndarray], free: Sequence[bool], gamma: float) -> None:
    """DivergenceError if the step ``gamma`` (tau_x units) is at or beyond Euler's limit for
    the fastest free unit (time constant ``min(tau_scale) * tau_x``)."""
    s_min = min(
        (float(np.min(s)) for s, f in zip(tau_scale, free, strict=True) if f and s.size),
        default=math.inf,
    )
    if not s_min > 0:
        return
    if gamma / s_min >= EULER_LIMIT:
        raise DivergenceError(
            f"the run would diverge: engine.dt / engine.tau_x = {gamma:.3g} is beyond the "
            f"stability limit {EULER_LIMIT * s_min:.3g} tau_x of the fastest unit (time constant "
            f"{s_min:.3g} tau_x after the chip's mismatch); set engine.dt below "
            f"{EULER_LIMIT * s_min:.3g} tau_x (about half of it for trained weights)"
        )


def rail_flips(
    before: Sequence[np.ndarray],
    after: Sequence[np.ndarray],
    free: Sequence[bool],
    rails: tuple[float, float],
) -> float:
    """Fraction of free units whose activity jumped by more than half the rail range between
    two consecutive steps (0 when the rails are not finite)."""
    lo, hi = rails
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return 0.0
    jumps = total = 0
    for a, b, f in zip(before, after, free, strict=True):
        if f:
            jumps += int(np.count_nonzero(np.abs(b - a) > 0.5 * (hi - lo)))
            total += a.size
    return jumps / total if total else 0.0


def pinned_weights(crossbars) -> float:
    """Fraction of devices within 0.1 % of their crossbar's +-w_max, gains divided out (0
    without crossbars)."""
    if not crossbars:
        return 0.0
    pinned = total = 0
    for cb in crossbars:
        bits = getattr(cb.config, "bits", None)
        if not math.isfinite(cb.w_max) or (bits is not None and bits < MIN_BITS_PINNED):
            continue  # few levels: +-w_max is one of a handful of values any weight takes
        # the stored weight is the device's programmed value times its gain (synapses.py)
        g = cb.gain
        stored = np.abs(cb.weights) / np.where(g > 0, g, 1.0)
        pinned += int(np.count_nonzero(stored >= 0.999 * cb.w_max))
        W = stored
        total += W.size
    return pinned / total if total else 0.0


def check_weights(
    weights: Sequence[np.ndarray], crossbars, rate_field: str, rate: float, who: str = "weights"
) -> None:
    """DivergenceError if weights are non-finite or beyond ``DIVERGENCE_BOUND`` (ideal), or if
    most devices sit at their range limit (a chip): the learning rate is the cause."""
    from pcsim.engines.clocked import DIVERGENCE_BOUND

    for l, W in enumerate(weights):
        m = float(np.max(np.abs(W))) if W.size else 0.0
        if not math.isfinite(m) or m > DIVERGENCE_BOUND:
            raise DivergenceError(
                f"learning diverged: {who} W{l + 1} reached {m:.3g}; {advice(rate_field, rate)}"
            )
    frac = pinned_weights(crossbars)
    if frac > PINNED_FRACTION:
        raise DivergenceError(
            f"learning diverged: {frac:.0%} of the {who} sit at the devices' range limit "
            f"(+-w_max); {advice(rate_field, rate)}"
        )


def check_energies(energies: Sequence[float], first: float, rate_field: str, rate: float) -> None:
    """DivergenceError if an epoch's PC energies are non-finite or grew by ENERGY_GROWTH."""
    e = np.asarray(energies, float)
    if e.size and not np.all(np.isfinite(e)):
        raise DivergenceError(
            f"learning diverged: the PC energy became non-finite; {advice(rate_field, rate)}, "
            "or reduce engine.dt if it is beyond the stable step"
        )
    if e.size and first > 0 and float(e.max()) > ENERGY_GROWTH * first:
        raise DivergenceError(
            f"learning diverged: the PC energy grew from {first:.3g} to {float(e.max()):.3g}; "
            f"{advice(rate_field, rate)}"
        )


def probe_flips(circ, engine, bottom: np.ndarray, top: np.ndarray, duration: float) -> float:
    """Settle ``bottom``/``top`` (training clamps) for ``duration`` tau_x with ``engine``, take
    one more step and return :func:`rail_flips` of it. The circuit's clock, ledger and random
    stream are restored: the probe leaves the run exactly as it found it."""
    from hardware_models.costs import EnergyLedger

    net = circ.net
    clamped = net.clamped_layers(True)
    free = [l not in clamped for l in range(net.n_layers + 1)]
    saved = circ.t, circ.ledger, circ.rng.bit_generator.state
    circ.ledger = EnergyLedger()
    try:
        xs = circ.initial_activities(bottom, top)
        engine.run(circ, xs, free, duration)
        before = [x.copy() for x in xs]
        engine.run(circ, xs, free, engine.dt)
        return rail_flips(before, xs, free, circ.rails)
    finally:
        circ.t, circ.ledger = saved[0], saved[1]
        circ.rng.bit_generator.state = saved[2]


def advice(rate_field: str, rate: float) -> str:
    """What to change when learning runs away: a weight time constant too short (the flow,
    ``learning.tau_w``) or a step per update too large (``learning.lr``, ``baseline.lr``)."""
    if rate_field.endswith("tau_w"):
        return f"{rate_field} = {rate:.3g} tau_x is too short, raise it"
    return f"{rate_field} = {rate:.3g} is too large, lower it"


class HealthCheck:
    """Called by :class:`pcsim.train.Trainer` after every epoch: raises DivergenceError with
    the cause when the run left the stable regime (see the module docstring).

    ``engine``: a ClockedEngine with the run's method, step and noise (tau_x units);
    ``rate_field``/``rate``: the learning-rate field to name; ``T``: presentation time."""

    def __init__(
        self,
        engine,
        rate_field: str,
        rate: float,
        T: float,
        n_probe: int = 16,
        sigma_field: str = "engine.sigma",
        weights: Sequence[np.ndarray] = (),
        probe: bool = True,
    ) -> None:
        self.engine, self.rate_field, self.rate, self.T = engine, rate_field, rate, T
        self.n_probe, self.sigma_field = n_probe, sigma_field
        self.first_energy: float | None = None
        self.coupling0 = coupling(weights)  # at initialisation
        self.probe = probe  # False: the training engine has no fixed step (events)
        self.warned = False  # the oscillation warning was given
        self.fastest_rate: float | None = None  # of the last probe, 1/tau_x

    def diagnose(self, circ, exc: DivergenceError) -> DivergenceError:
        """The engines' divergence error with its cause: the learning rate when the weights
        left the finite range or grew ``COUPLING_GROWTH`` times since initialisation, else
        the step (the engines' own message)."""
        what = str(exc).removeprefix("simulation diverged: ")
        if what.startswith(OWN_MESSAGES):  # already names its cause
            return exc if what == str(exc) else DivergenceError(what)
        now = coupling(circ.net.weights)
        if not math.isfinite(now) or (
            self.coupling0 > 0 and now >= COUPLING_GROWTH * self.coupling0
        ):
            return DivergenceError(
                f"learning diverged: the weights grew (largest ||W||_F^2 from "
                f"{self.coupling0:.3g} to {now:.3g}), then the "
                f"{what.split(';')[0]}; {advice(self.rate_field, self.rate)}"
            )
        return exc

    def __call__(self, trainer) -> None:
        circ = trainer.circ
        energies = trainer.position.energies if trainer.position is not None else []
        if self.first_energy is None and energies:
            self.first_energy = float(energies[0])
        check_weights(circ.net.weights, circ.crossbars, self.rate_field, self.rate)
        check_energies(energies, self.first_energy or 0.0, self.rate_field, self.rate)
        if not (self.probe and self.T > 0):
            return  # no fixed step (events) or no inference (the BP baseline)
        d = trainer.data
        n = min(self.n_probe, len(d.x_train))
        net = circ.net
        x = d.x_train[:n].astype(net.dtype)
        y = d.one_hot(d.y_train[:n]).astype(net.dtype)
        bottom, top = (x, y) if net.mode == "supervised" else (y, x)
        lo, hi = circ.rails
        if math.isfinite(lo) and math.isfinite(hi):
            if probe_flips(circ, self.engine, bottom, top, self.T) > FLIP_FRACTION:
                self._flips(circ, bottom, top)  # raises with the cause
        self.check_oscillation(circ, bottom, top)

    def check_oscillation(self, circ, bottom: np.ndarray, top: np.ndarray) -> None:
        """Warn (:class:`OscillationWarning`, once per run) when the run's step is beyond
        Euler's limit for the fastest mode of the settled inference on more than
        ``OSCILLATION_FRACTION`` of the probe samples (:mod:`pcsim.euler_modes`). With the
        rails far away the activities then alternate between states (period 2 or longer)
        without reaching them, which :func:`rail_flips` cannot see."""
        free = circ.net.free_mask(True)
        modes = euler_modes.fastest_modes(circ, bottom, top, free, self.T)
        dt = self.engine.dt
        bad = modes.unstable(dt, EULER_LIMIT)
        self.fastest_rate = float(np.max(modes.rate))
        if self.warned or np.count_nonzero(bad) <= OSCILLATION_FRACTION * bad.size:
            return
        self.warned = True
        layer = modes.worst_layer(bad)
        rate = float(np.median(modes.rate[bad]))
        warnings.warn(
            oscillation_message(dt, layer, rate, int(bad.sum()), bad.size, self.T),
            OscillationWarning,
            stacklevel=2,
        )

    def _flips(self, circ, bottom: np.ndarray, top: np.ndarray) -> None:
        """Raise DivergenceError naming why the activities flip between the rails."""
        lo, hi = circ.rails
        e = self.engine
        if e.sigma > 0 or circ.noisy:
            from pcsim.engines.clocked import ClockedEngine

            quiet = ClockedEngine("euler", e.dt, 0.0, e.backend)
            unit_noise = circ.thermal_sigma
            circ.thermal_sigma = [np.zeros_like(a) for a in unit_noise]  # the units' own noise
            try:
                calm = probe_flips(circ, quiet, bottom, top, self.T) <= FLIP_FRACTION
            finally:
                circ.thermal_sigma = unit_noise
            if calm and e.sigma > 0:
                raise DivergenceError(
                    f"run diverged: with {self.sigma_field} = {e.sigma:.3g} the activities "
                    f"jump from rail to rail at every step (the rails [{lo:g}, {hi:g}] hide it); "
                    f"lower {self.sigma_field}"
                )
            if calm:
                raise DivergenceError(
                    "run diverged: the units' own noise (kT/C and error-unit noise) makes the "
                    f"activities jump from rail to rail at every step (the rails [{lo:g}, "
                    f"{hi:g}] hide it); raise chip.value_units.capacitance_f or lower "
                    "chip.error_units.noise_std"
                )
        now = coupling(circ.net.weights)
        if self.coupling0 > 0 and now >= COUPLING_GROWTH * self.coupling0:
            raise DivergenceError(
                f"learning diverged: the weights grew (largest ||W||_F^2 from "
                f"{self.coupling0:.3g} to {now:.3g}) until the activities flip between the "
                f"rails [{lo:g}, {hi:g}] at every step; {advice(self.rate_field, self.rate)}"
            )
        raise DivergenceError(
            f"run diverged: the activities flip between the rails [{lo:g}, {hi:g}] at every "
            f"step of {e.dt:.3g} tau_x (Euler beyond its stability limit; the rails keep the "
            "numbers finite but meaningless); reduce engine.dt"
        )
