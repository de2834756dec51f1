"""pcsim's device and converter models beside IBM aihwkit's, on the same weights and pulse trains.

    python benchmarks/peers/compare_aihwkit.py [--markdown] [--devices N] [--seed S]

Runs in the environment of ``benchmarks/peers/aihwkit/requirements.txt`` (aihwkit 1.1.0, torch
2.10.0; see benchmarks/peers/README.md). Each check configures both libraries alike, drives them
with the same weights, pulse trains or inputs, and compares statistics:

- pulse responses: soft bounds with up/down asymmetry and rram-sized cycle-to-cycle noise
  (aihwkit ``SoftBoundsDevice``, pcsim ``update_bound = "soft"``), hard bounds (aihwkit
  ``ConstantStepDevice``), and the one-sided SET-only PCM pair with refresh (aihwkit
  ``PCMPresetUnitCell``, pcsim ``unit_cell = "one_sided"``): one pulse per device per call
  (aihwkit: ``desired_bl = 1`` with unit probabilities; pcsim: one nominal pulse requested);
- write noise (aihwkit ``write_noise_std``, pcsim ``write_noise_std``) on constant steps;
- PCM programming noise, drift (conductance-dependent exponent), 1/f read noise growing with
  time, global drift compensation (aihwkit ``PCMLikeNoiseModel`` on an ``InferenceTile``,
  pcsim ``prog_noise_scale``, ``drift_nu_model = "pcm"``, ``read_noise_model = "pcm"``,
  ``drift_compensation = "global"``);
- quantisers: a 7-bit DAC and a 9-bit ADC on the same matrix-vector products;
- bound management: outputs beyond the ADC range, with and without iterative bound management,
  and with abs-max input (noise) management.

Each row prints both statistics, their relative difference and whether the two models are
meant to be the same there (then the difference must be below ``TOLERANCE``; the exit status is
1 when one is not). Rows marked "design" differ by a stated design choice (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

# Agreement required where the two models are meant to be the same (the issue's "a few
# percent"); statistical errors at the default sizes are below 1 %.
TOLERANCE = 0.03


@dataclass
class Row:
    check: str
    statistic: str
    pcsim: float
    aihwkit: float
    same: bool  # meant to be the same model (else: a design difference, explained)
    scale: float | None = None  # compare |a - b| / scale instead of relative to aihwkit
    se: float = 0.0  # standard error of pcsim - aihwkit from sampling (same units as both)

    @property
    def diff(self) -> float:
        ref = self.scale if self.scale is not None else abs(self.aihwkit)
        return abs(self.pcsim - self.aihwkit) / ref if ref > 0 else abs(self.pcsim - self.aihwkit)

    @property
    def se_rel(self) -> float:
        """The sampling error of :attr:`diff` (same normalisation)."""
        ref = self.scale if self.scale is not None else abs(self.aihwkit)
        return self.se / ref if ref > 0 else self.se

    @property
    def ok(self) -> bool:
        return (not self.same) or self.diff <= TOLERANCE


# -- pulse responses -----------------------------------------------------------------------------
def _pulse_sequence(n_up: int, n_down: int, n_alt: int) -> list[int]:
    """+1 (potentiate) / -1 (depress) per call: ramp up, ramp down, then alternate."""
    return [1] * n_up + [-1] * n_down + [1, -1] * (n_alt // 2)


def _aihwkit_pulses(device, n: int, w0: float, seq: list[int], seed: int) -> np.ndarray:
    """Weights of ``n`` devices of one aihwkit tile after each pulse of ``seq`` (``(len, n)``)."""
    import torch
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.tiles import AnalogTile

    torch.manual_seed(seed)
    cfg = SingleRPUConfig(device=device)
    # one coincidence per call: one slot, probabilities 1 (lr large enough to saturate them)
    cfg.update.desired_bl = 1
    cfg.update.update_bl_management = False
    cfg.update.update_management = False
    cfg.forward.is_perfect = True
    tile = AnalogTile(n, 1, cfg)
    tile.set_learning_rate(1.0)
    tile.set_weights(torch.full((n, 1), float(w0)))
    x = torch.ones(1, 1)
    out = np.empty((len(seq), n))
    for k, s in enumerate(seq):
        tile.update(x, torch.full((1, n), -float(s)))  # aihwkit: W -= lr d x^T
        out[k] = tile.get_weights()[0][:, 0].numpy()
    return out


def _pcsim_pulses(config, n: int, w0: float, seq: list[int], seed: int) -> np.ndarray:
    """The same with a pcsim crossbar of ``n`` devices, one nominal pulse requested per call."""
    from hardware_models import Crossbar

    rng = np.random.default_rng(seed)
    xb = Crossbar(config, (n, 1))
    xb.program(np.full((n, 1), float(w0)), rng)
    one = config.relative_dw_min() * xb.w_max * (1 + 1e-7)  # one whole pulse, no rounding
    out = np.empty((len(seq), n))
    for k, s in enumerate(seq):
        # exactly one pulse per call as aihwkit fires: empty the accumulate-and-fire counters
        # (otherwise +1 and -1 pulse requests alternating around a rounding residual could
        # fire none)
        if xb._acc is not None:
            xb._acc[:] = 0.0
        xb.update(np.full((n, 1), s * one), rng)
        out[k] = xb.weights[:, 0]
    return out


def se_mean(x: np.ndarray) -> float:
    """Standard error of the sample mean."""
    return float(x.std() / math.sqrt(x.size))


def se_std(x: np.ndarray) -> float:
    """Standard error of the sample std (delta method: ``sqrt((m4 - s^4) / (4 n s^2))``)."""
    c = x - x.mean()
    s2 = float(np.mean(c * c))
    m4 = float(np.mean(c**4))
    return math.sqrt(max(m4 - s2 * s2, 0.0) / (4 * x.size * s2)) if s2 > 0 else 0.0


def mean_row(check: str, stat: str, p: np.ndarray, a: np.ndarray, same: bool = True, scale=None):
    se = math.hypot(se_mean(p), se_mean(a))
    return Row(check, stat, float(p.mean()), float(a.mean()), same, scale, se)


def std_row(check: str, stat: str, p: np.ndarray, a: np.ndarray, same: bool = True) -> Row:
    return Row(
        check, stat, float(p.std()), float(a.std()), same, None, math.hypot(se_std(p), se_std(a))
    )


# Independent repetitions of each pulse check (new devices, new seeds). aihwkit's random numbers
# are not independent enough across the devices of one tile for the i.i.d. standard error to
# hold (its run-to-run spread of a mean over 20000 devices is ten times that estimate), so the
# pulse checks take their sampling error from the spread between repetitions.
REPEATS = 10


def _runs(device, config, n: int, w0: float, seq: list[int], seed: int, scale: float = 1.0):
    """``REPEATS`` pairs ``(aihwkit, pcsim)`` of weight trajectories (``(len(seq), n)``)."""
    return [
        (
            _aihwkit_pulses(device, n, w0, seq, seed + r) / scale,
            _pcsim_pulses(config, n, w0, seq, seed + r),
        )
        for r in range(REPEATS)
    ]


def _stat_row(check: str, stat: str, fn, runs, same: bool = True, scale=None) -> Row:
    """``fn`` (a trajectory -> float) averaged over the repetitions; its sampling error from
    their spread."""
    vp = np.array([fn(p) for _, p in runs])
    va = np.array([fn(a) for a, _ in runs])
    se = math.hypot(vp.std(ddof=1), va.std(ddof=1)) / math.sqrt(len(runs))
    return Row(check, stat, float(vp.mean()), float(va.mean()), same, scale, se)


def _trajectory_rows(name: str, runs, marks: dict[str, int], same: bool = True) -> list[Row]:
    rows = []
    for label, k in marks.items():
        rows.append(_stat_row(name, f"mean w {label}", lambda x, k=k: x[k].mean(), runs, same, 1.0))
        rows.append(_stat_row(name, f"std w {label}", lambda x, k=k: x[k].std(), runs, same))
    return rows


def check_soft_bounds(n: int, seed: int) -> list[Row]:
    """rram-like soft bounds: dw_min 0.01, up_down 0.26 (aihwkit's device code), c2c 3.75."""
    from aihwkit.simulator.configs.devices import SoftBoundsDevice

    from hardware_models import SynapseConfig

    dw, ud, c2c = 0.01, 0.26, 3.75
    dev = SoftBoundsDevice(
        dw_min=dw, up_down=ud, dw_min_std=c2c, w_max=1.0, w_min=-1.0, dw_min_dtod=0.0,
        up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0,
    )  # fmt: skip
    cfg = SynapseConfig(
        w_max=1.0, dw_min=dw, update_bound="soft", up_down_asymmetry=ud, dw_min_std=c2c
    )
    seq = _pulse_sequence(150, 150, 600)
    runs = _runs(dev, cfg, n, 0.0, seq, seed)
    marks = {"after 150 up": 149, "after 150 down": 299, "after 600 alternating": len(seq) - 1}
    name = "soft bounds, up_down 0.26, c2c 3.75"
    rows = _trajectory_rows(name, runs, marks)
    # alternating pulses settle where up and down steps cancel, r_up (1 - w) = r_down (1 + w):
    # w* = (r_up - r_down) / (r_up + r_down) = 0.26 / 1.74 = 0.149 without noise
    w_star = ud / (2 - ud)
    rows.append(
        _stat_row(name, f"fixed point (noise-free closed form {w_star:.3f})",
                  lambda x: x[-200:].mean(), runs, True, 1.0)
    )  # fmt: skip
    return rows


def check_hard_bounds(n: int, seed: int) -> list[Row]:
    """Constant steps with the opposite asymmetry: dw_min 0.01, up_down -0.2, c2c 0.3."""
    from aihwkit.simulator.configs.devices import ConstantStepDevice

    from hardware_models import SynapseConfig

    dw, ud, c2c = 0.01, -0.2, 0.3
    dev = ConstantStepDevice(
        dw_min=dw, up_down=ud, dw_min_std=c2c, w_max=1.0, w_min=-1.0, dw_min_dtod=0.0,
        up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0,
    )  # fmt: skip
    cfg = SynapseConfig(
        w_max=1.0, dw_min=dw, update_bound="hard", up_down_asymmetry=ud, dw_min_std=c2c
    )
    seq = _pulse_sequence(80, 100, 200)
    runs = _runs(dev, cfg, n, 0.0, seq, seed)
    marks = {"after 80 up": 79, "after 100 down": 179, "after 200 alternating": len(seq) - 1}
    return _trajectory_rows("hard bounds, up_down -0.2, c2c 0.3", runs, marks)


def check_write_noise(n: int, seed: int) -> list[Row]:
    """Write noise 0.7 dw_min on constant steps (dw_min 0.01, no cycle-to-cycle noise; aihwkit
    ``LinearStepDevice`` with zero slopes, its ``ConstantStepDevice`` has no write noise): the
    weights read are the persistent state (ramped by the pulses) plus fresh N(0, (0.7
    dw_min)^2). Every device receives a pulse at every call, so aihwkit's redraw of all
    devices and pcsim's redraw of the written ones coincide."""
    from aihwkit.simulator.configs.devices import LinearStepDevice

    from hardware_models import SynapseConfig

    dw, wn = 0.01, 0.7
    dev = LinearStepDevice(
        dw_min=dw, write_noise_std=wn, dw_min_std=0.0, w_max=1.0, w_min=-1.0, dw_min_dtod=0.0,
        up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, gamma_up=0.0, gamma_down=0.0,
        gamma_up_dtod=0.0, gamma_down_dtod=0.0,
    )  # fmt: skip
    cfg = SynapseConfig(w_max=1.0, dw_min=dw, update_bound="hard", write_noise_std=wn)
    seq = _pulse_sequence(20, 10, 0)
    runs = _runs(dev, cfg, n, 0.0, seq, seed)
    marks = {"after 20 up": 19, "after 10 down": 29}
    rows = _trajectory_rows("write noise 0.7 dw_min, constant steps", runs, marks)
    # the noise of one read against the next: drawn anew at every write (correlation 0)
    rows.append(
        _stat_row("write noise 0.7 dw_min, constant steps",
                  "corr of successive reads' noise (0 when redrawn)",
                  lambda x: np.corrcoef(x[-1] - x[-1].mean(), x[-2] - x[-2].mean())[0, 1],
                  runs, True, 1.0)
    )  # fmt: skip
    return rows


def check_pcm_pair(n: int, seed: int) -> list[Row]:
    """aihwkit's PCMPresetUnitCell (d2d spreads off) against pcsim's pcm-refresh synapses."""
    from aihwkit.simulator.presets.compounds import PCMPresetUnitCell
    from aihwkit.simulator.presets.devices import PCMPresetDevice

    from hardware_models import load_preset

    dev = PCMPresetDevice(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, reset_dtod=0.0)
    cell = PCMPresetUnitCell(unit_cell_devices=[dev, dev])
    syn = load_preset("pcm-refresh", {"synapses.d2d_std": 0.0, "synapses.w_max": 1.0}).synapses
    # aihwkit's device range is [0, 2] (weight range [-2, 2]); pcsim's is [0, w_max]
    seq = _pulse_sequence(40, 80, 400)
    runs = _runs(cell, syn, n, 0.0, seq, seed, scale=2.0)
    name = "one-sided PCM pair (exp step)"
    rows = _trajectory_rows(name, runs, {"after 40 SET on g+": 39, "after 80 SET on g-": 119})
    rows += _trajectory_rows(name, runs, {"after 400 alternating (refreshes)": -1}, same=False)
    return rows


# -- PCM programming noise, drift, read noise, compensation ------------------------------------
def _pcm_weights(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    W = levels[rng.integers(0, len(levels), shape)] * np.where(rng.random(shape) < 0.5, -1, 1)
    W[0, 0] = 1.0  # max|W| = 1: aihwkit maps it to g_max, pcsim's w_max = 1
    return W


def check_pcm_inference(n: int, seed: int) -> list[Row]:
    import torch
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.tiles import InferenceTile

    from hardware_models import Crossbar, SynapseConfig

    W = _pcm_weights((n, n), seed)
    torch.manual_seed(seed)
    rc = InferenceRPUConfig()
    rc.noise_model = PCMLikeNoiseModel(g_max=25.0)
    rc.drift_compensation = GlobalDriftCompensation()
    rc.forward.is_perfect = True
    tile = InferenceTile(n, n, rc)
    tile.set_weights(torch.tensor(W, dtype=torch.float32))
    tile.program_weights()
    a_prog = tile.tile.get_weights().numpy().astype(np.float64)

    def crossbar(compensation: str, idle: bool = True) -> Crossbar:
        cfg = SynapseConfig(
            g_min_s=0.0, g_max_s=25e-6, w_max=1.0, prog_noise_scale=1.0, drift_nu_model="pcm",
            t0_s=20.0, read_noise_model="pcm", read_time_s=250e-9,
            drift_compensation=compensation, prog_noise_idle_device=idle,
        )  # fmt: skip
        xb = Crossbar(cfg, (n, n))
        xb.program(W, np.random.default_rng(seed))  # the same draws for both
        return xb

    xb, xb_comp = crossbar("none"), crossbar("global")
    p_prog = xb.weights.copy()

    p_default = crossbar("none", idle=False).weights  # pcsim's default: idle device noise-free

    rows: list[Row] = []
    name = "PCM programming noise (Nandakumar 2019)"
    sgn = np.sign(W)  # deviations towards |w|: the idle device's clamped noise shrinks |w|
    for g in (0.1, 0.5, 0.9):
        sel = np.abs(W) == g
        dp, da = ((p_prog - W) * sgn)[sel], ((a_prog - W) * sgn)[sel]
        rows.append(mean_row(name, f"change of abs(w) at w = ±{g}", dp, da, scale=g))
        rows.append(std_row(name, f"std at w = ±{g}", dp, da))
    sel = np.abs(W) == 0.1
    rows.append(
        std_row(name, "std at w = ±0.1, pcsim default (idle device not programmed)",
                ((p_default - W) * sgn)[sel], ((a_prog - W) * sgn)[sel], same=False)
    )  # fmt: skip
    for t_inf, label in ((3600.0, "1 h"), (86400.0, "1 day")):
        tile.drift_weights(t_inf)
        a_t = tile.tile.get_weights().numpy().astype(np.float64)
        alpha_a = float(tile.alpha)
        # aihwkit's inference time counts from t0 after programming: age t_inf + t0
        p_t = xb.read_mean(t_inf + 20.0, out=np.empty((n, n)))
        p_comp = xb_comp.read_mean(t_inf + 20.0, out=np.empty((n, n)))
        alpha_p = float(np.abs(p_comp).sum() / np.abs(p_t).sum())  # the gain pcsim applied
        name = f"PCM drift + 1/f read noise at {label}"
        for g in (0.1, 0.5, 0.9):
            sel = np.abs(W) == g
            rows.append(
                mean_row(name, f"mean w(t)/w0 at w = ±{g}", (p_t / p_prog)[sel],
                         (a_t / a_prog)[sel])
            )  # fmt: skip
            rows.append(
                std_row(name, f"std w(t) - w0 at w = ±{g}", (p_t - p_prog)[sel],
                        (a_t - a_prog)[sel])
            )  # fmt: skip
        rows.append(Row(f"global drift compensation at {label}", "alpha", alpha_p, alpha_a, True))
        rows.append(
            mean_row(f"global drift compensation at {label}", "mean alpha w(t) / w0 (all)",
                     p_comp / W, alpha_a * a_t / W)
        )  # fmt: skip
    return rows


# -- quantisers and bound management -------------------------------------------------------------
def _aihwkit_forward(W: np.ndarray, X: np.ndarray, io: dict) -> np.ndarray:
    import torch
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.configs.devices import ConstantStepDevice
    from aihwkit.simulator.tiles import AnalogTile

    dev = ConstantStepDevice(w_max=2.0, w_min=-2.0, w_max_dtod=0.0, w_min_dtod=0.0)
    cfg = SingleRPUConfig(device=dev)
    f = cfg.forward
    f.is_perfect = False
    f.out_noise = 0.0
    f.w_noise = 0.0
    f.inp_noise = 0.0
    f.inp_sto_round = False
    f.out_sto_round = False
    f.out_nonlinearity = 0.0
    f.ir_drop = 0.0
    for k, v in io.items():
        setattr(f, k, v)
    tile = AnalogTile(W.shape[0], W.shape[1], cfg)
    tile.set_weights(torch.tensor(W, dtype=torch.float32))
    with torch.no_grad():
        y = tile.forward(torch.tensor(X, dtype=torch.float32))
    return y.detach().numpy().astype(np.float64)


def check_quantisers(n: int, seed: int) -> list[Row]:
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    from hardware_models import ConverterConfig

    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.5, 0.5, (64, 128))
    X = rng.uniform(-1, 1, (n, 128))
    io = dict(
        inp_res=1 / (2**7 - 2), out_res=1 / (2**9 - 2), inp_bound=1.0, out_bound=12.0,
        noise_management=NoiseManagementType.NONE, bound_management=BoundManagementType.NONE,
    )  # fmt: skip
    a = _aihwkit_forward(W, X, io)
    cv = ConverterConfig(dac_bits=7, adc_bits=9, adc_low=-12.0, adc_high=12.0)
    p, _, _ = cv.convert_output(cv.convert_input(X)[0] @ W.T)
    step = 24.0 / (2**9 - 2)
    same = np.abs(p - a) < 1e-3 * step
    one = np.abs(np.abs(p - a) - step) < 1e-3 * step
    name = "7-bit DAC [-1, 1], 9-bit ADC [-12, 12]"
    return [
        Row(name, "outputs on the same ADC level (fraction)", float(same.mean()), 1.0, True),
        Row(name, "outputs one ADC level apart (fraction, float32 ties)", float(one.mean()), 0.0,
            True, scale=1.0),
        Row(name, "rms error vs exact W x (ADC steps)", _rms(p - X @ W.T) / step,
            _rms(a - X @ W.T) / step, True),
    ]  # fmt: skip


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a)))


def _rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def check_bound_management(n: int, seed: int) -> list[Row]:
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    from hardware_models import ConverterConfig

    rng = np.random.default_rng(seed)
    W = rng.uniform(-1.0, 1.0, (64, 256))
    X = rng.uniform(-1, 1, (n, 256))  # |W x| up to ~ 20: beyond the ADC's +-12 (some rows)
    ref = X @ W.T
    rows: list[Row] = []
    for bm, bm_p in (
        (BoundManagementType.NONE, "none"),
        (BoundManagementType.ITERATIVE, "iterative"),
    ):
        io = dict(
            inp_res=-1, out_res=1 / (2**9 - 2), inp_bound=1.0, out_bound=12.0,
            noise_management=NoiseManagementType.NONE, bound_management=bm,
        )  # fmt: skip
        a = _aihwkit_forward(W, X, io)
        cv = ConverterConfig(adc_bits=9, adc_low=-12.0, adc_high=12.0, bound_management=bm_p)
        p, _, _ = cv.convert_output(ref)
        rows.append(
            Row("outputs beyond the ADC range (ideal DAC)",
                f"relative error, bound management {bm_p}", _rel_err(p, ref), _rel_err(a, ref),
                True)
        )  # fmt: skip
    # inputs using a tenth of the DAC range: abs-max (noise) management restores resolution
    Xs = 0.1 * rng.uniform(-1, 1, (n, 256))
    ref = Xs @ W.T
    for nm, nm_p in ((NoiseManagementType.NONE, "none"), (NoiseManagementType.ABS_MAX, "abs_max")):
        io = dict(
            inp_res=1 / (2**7 - 2), out_res=1 / (2**9 - 2), inp_bound=1.0, out_bound=12.0,
            noise_management=nm, bound_management=BoundManagementType.ITERATIVE,
        )  # fmt: skip
        a = _aihwkit_forward(W, Xs, io)
        cv = ConverterConfig(
            dac_bits=7, adc_bits=9, adc_low=-12.0, adc_high=12.0, input_management=nm_p,
            bound_management="iterative",
        )  # fmt: skip
        p, _, _ = cv.convert_output(cv.convert_input(Xs)[0] @ W.T)
        rows.append(
            Row("inputs at a tenth of the DAC range", f"relative error, input management {nm_p}",
                _rel_err(p, ref), _rel_err(a, ref), nm_p == "none")
        )  # fmt: skip
    return rows


CHECKS = {
    "soft": check_soft_bounds,
    "hard": check_hard_bounds,
    "write_noise": check_write_noise,
    "pcm_pair": check_pcm_pair,
    "pcm_inference": check_pcm_inference,
    "quantisers": check_quantisers,
    "bound_management": check_bound_management,
}


def main() -> int:
    global REPEATS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--markdown", action="store_true", help="a markdown table (RESULTS.md)")
    ap.add_argument("--devices", type=int, default=10000, help="devices / samples per check")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="repetitions of pulse checks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    args = ap.parse_args()
    import aihwkit
    import torch

    torch.set_num_threads(1)
    REPEATS = max(args.repeats, 2)
    t0 = time.time()
    rows: list[Row] = []
    for key in args.only:
        n = args.devices if key != "pcm_inference" else int(math.sqrt(args.devices * 40))
        rows += CHECKS[key](n, args.seed)
    wall = time.time() - t0
    cmd = "python benchmarks/peers/compare_aihwkit.py " + " ".join(sys.argv[1:])
    print(
        f"pcsim vs aihwkit {aihwkit.__version__} (torch {torch.__version__}), "
        f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, "
        f"{wall:.0f} s; command: {cmd.strip()}"
    )
    print("")
    head = ["check", "statistic", "pcsim", "aihwkit", "difference (± sampling error)", "agree"]
    table = []
    for r in rows:
        mark = ("yes" if r.ok else "NO") if r.same else "design"
        kind = "abs" if r.scale is not None else "rel"
        diff = f"{r.diff:.2%} ± {r.se_rel:.2%} {kind}"
        table.append([r.check, r.statistic, f"{r.pcsim:.5g}", f"{r.aihwkit:.5g}", diff, mark])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in table:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(c[i]) for c in [head, *table]) for i in range(len(head))]
        for cells in [head, *table]:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    bad = [r for r in rows if not r.ok]
    if bad:
        print(f"\n{len(bad)} statistic(s) disagree by more than {TOLERANCE:.0%}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
