"""Property-based tests (hypothesis, 200 examples each):

- any configuration, nonsense included, either validates or raises ConfigError naming a field
  it was given; one that validates either trains (one epoch on a tiny data set) or stops with
  the package's own ConfigError (naming a field) or DivergenceError (naming layer and time);
- noise-free inference with a step in the stable range never increases the energy (the
  energy is a Lyapunov function of the circuit; Euler with dt <= 1/L descends it);
- converters never produce NaN or values outside their range; value units stay within their
  rails under every noise source; crossbar weights stay finite and within the device range
  through programming, pulsed updates and drift.
"""

from __future__ import annotations

import math
import os
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hardware_models import load_preset
from hardware_models.converters import ConverterConfig, quantise
from hardware_models.synapses import Crossbar, SynapseConfig
from pcsim import config, field, network
from pcsim.activations import ACTIVATIONS
from pcsim.circuit import Circuit
from pcsim.data import Dataset, load_dataset
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.run import preflight, prepare

# The same 200 examples on every run, so CI is reproducible; PCSIM_EXPLORE=1 draws new ones.
PROPS = settings(
    max_examples=200,
    derandomize=not os.environ.get("PCSIM_EXPLORE"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

NONSENSE = [
    None,
    True,
    0,
    -1,
    -3,
    2.5,
    -0.0,
    1e308,
    1e-300,
    10**30,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "yes",
    "1",
    [],
    [1, -2],
    {},
    {"x": 1},
]

JUNK_KEYS = ["bogus_key", "sizez", "epochz", "unknown_thing"]


def _paths(d, prefix: str = "") -> set[str]:
    """Every dotted key path of a nested dict (``engine.dt``, ``chip.synapses.bits``)."""
    out: set[str] = set()
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.add(p)
            out |= _paths(v, p)
    return out


def _assert_names_a_given_field(err: Exception, d: dict) -> None:
    msg = str(err)
    assert "\n" not in msg and msg, msg
    given = _paths(d)
    assert any(p in msg for p in given) or msg.startswith("the configuration must be"), (msg, d)


# --- 1. validation never lets anything but ConfigError escape ------------------------------
SECTION_FIELDS = {
    name: [f.name for f in __import__("dataclasses").fields(cls)]
    for name, cls in config.SECTIONS.items()
}
CHIP_SECTIONS = ["synapses", "value_units", "error_units", "converters", "costs"]
CHIP_FIELDS = {s: list(getattr(load_preset("ideal"), s).field_info()) for s in CHIP_SECTIONS}
values = st.sampled_from(NONSENSE) | st.floats() | st.integers() | st.text(max_size=4)


@st.composite
def any_config(draw) -> dict:
    d: dict = {}
    for key in draw(
        st.lists(
            st.sampled_from([*config.SECTIONS, "chip", "seed", "blas_threads", *JUNK_KEYS]),
            max_size=5,
        )
    ):
        if key in config.SECTIONS:
            names = st.sampled_from(SECTION_FIELDS[key] + JUNK_KEYS[:1])
            d[key] = draw(st.dictionaries(names, values, max_size=4) | st.sampled_from(NONSENSE))
        elif key == "chip":
            chip: dict = {}
            if draw(st.booleans()):
                chip["preset"] = draw(
                    st.sampled_from(["ideal", "rram", "pcm", "graphene", "../x", 3, None])
                )
            for sec in draw(st.lists(st.sampled_from([*CHIP_SECTIONS, "bogus_key"]), max_size=2)):
                names = st.sampled_from(CHIP_FIELDS.get(sec, ["x"]) + ["bogus_key"])
                chip[sec] = draw(
                    st.dictionaries(names, values, max_size=3) | st.sampled_from(NONSENSE)
                )
            d["chip"] = chip
        else:
            d[key] = draw(values)
    return d


@PROPS
@given(any_config())
def test_any_configuration_validates_or_names_the_field(d):
    try:
        cfg = config.from_dict(d)
    except config.ConfigError as err:
        _assert_names_a_given_field(err, d)
        return
    assert isinstance(cfg, config.RunConfig)


# --- 2. a configuration that validates runs, or fails with the package's errors ---------------
def _opt(valid: list, wrong: list = ()) -> tuple[list, list]:
    """A field's sensible values (None: left out) and its wrong ones (plus NONSENSE)."""
    return [None, *valid], list(wrong)


RUNNABLE = {
    "seed": _opt([0, 1, 2**64], [-1]),
    "blas_threads": _opt([1, 2], [0, 10**30]),
    "network": {
        "sizes": _opt(
            [[64, 10], [64, 7, 10], [64, 12, 5, 10]],
            [[64, 0, 10], [63, 10], [64, 2**40, 10], [10, 8, 64]],
        ),
        "activation": _opt(list(ACTIVATIONS), ["swish"]),
        "parameterisation": _opt(["sp", "mupc"], ["ntk"]),
        "bias": _opt([True, False]),
        "residual": _opt([True, False]),
        "mode": _opt(["supervised"], ["generative", "both"]),
        "dtype": _opt(["float32", "float64"], ["float16"]),
    },
    "algorithm": {
        "name": _opt(["pc", "ipc", "bp"], ["ep"]),
        "presentation_time": _opt([0.5, 1.0, 2.0], [0.01]),
        "inference_time": _opt([1.0, 5.0]),
        "init": _opt(["feedforward", "carry"], ["zeros"]),
    },
    "engine": {
        # brian2 compiles code per network: too slow for 200 examples (validated above)
        "kind": _opt(["clocked"], ["events", "analog"]),
        "method": _opt(["euler", "heun"], ["euler_maruyama", "rk4"]),
        "backend": _opt(["numba", "numpy"], ["cuda"]),
        "dt": _opt([0.1, 0.25, 0.5], [5.0]),
        "tau_x": _opt([0.5, 1.0, 2.0]),
        "sigma": _opt([0.0], [0.05]),
        "events_per_tau": _opt([2.0, 5.0]),
    },
    "learning": {
        "optimizer": _opt(["sgd", "adam"], ["rmsprop"]),
        "lr": _opt([1e-3, 0.05], [1e3]),
        "tau_w": _opt([], [20.0, 200.0]),
        "epochs": _opt([1]),
        "batch_size": _opt([1, 3, 8, 1000]),
    },
    "baseline": {"bp": _opt([True, False]), "lr": _opt([1e-3])},
    "chip": {
        "preset": _opt(["ideal", "rram", "pcm", "sram-cim", "subthreshold", "digital"], ["x"]),
        "synapses": {
            "bits": _opt([1, 4, 8], [0, 25]),
            "read_noise_std": _opt([0.0, 0.05]),
            "dw_min": _opt([0.01, 0.1]),
        },
        "value_units": {
            "rail_high": _opt([1.0, 3.0], [-5.0]),
            "thermal_noise": _opt([True, False]),
            "tau_mismatch_std": _opt([0.0, 0.2]),
        },
        "error_units": {"offset_std": _opt([0.0, 0.02]), "noise_std": _opt([0.0, 0.05])},
        "converters": {"adc_bits": _opt([4, 8], [1, 30]), "dac_bits": _opt([6], [0])},
    },
}


def _leaves(spec, prefix=()) -> list[tuple[str, ...]]:
    out = []
    for k, v in spec.items():
        out += _leaves(v, (*prefix, k)) if isinstance(v, dict) else [(*prefix, k)]
    return out


def _at(spec, path):
    for k in path:
        spec = spec[k]
    return spec


@st.composite
def _sensible(draw, spec) -> dict:
    out = {}
    for key, sub in spec.items():
        v = draw(_sensible(sub)) if isinstance(sub, dict) else draw(st.sampled_from(sub[0]))
        if v is not None and v != {}:
            out[key] = v
    return out


@st.composite
def runnable_config(draw) -> dict:
    """Sensible values for every field, then nonsense in none, one or two of them."""
    d = draw(_sensible(RUNNABLE))
    for path in draw(st.lists(st.sampled_from(_leaves(RUNNABLE)), max_size=2)):
        t = d
        for k in path[:-1]:
            t = t.setdefault(k, {})
        t[path[-1]] = draw(st.sampled_from(_at(RUNNABLE, path)[1] + NONSENSE))
    return d


@cache
def tiny_digits() -> Dataset:
    d = load_dataset("digits")
    return Dataset(
        d.x_train[:8], d.y_train[:8], d.x_test[:8], d.y_test[:8], d.n_classes, d.name, d.source
    )


@PROPS
@given(runnable_config())
def test_a_valid_configuration_trains_or_fails_with_a_package_error(d):
    try:
        cfg = config.from_dict(d)
        data = tiny_digits()
        preflight(cfg, data)
        run = prepare(cfg, data, progress=False)
    except config.ConfigError as err:
        event("configuration error")
        _assert_names_a_given_field(err, d)
        return
    except DivergenceError as err:  # a step beyond the fastest unit's stability limit
        event("unstable step")
        assert "engine.dt" in str(err) and "stability limit" in str(err)
        assert "\n" not in str(err) and cfg.gamma >= 2 * (1 - 0.2)  # mismatch below 20 %
        return
    try:
        hist = run.trainer.fit(1)
    except DivergenceError as err:  # a learning rate of 1e3 may blow up: said in one line
        event("diverged")
        assert "diverged" in str(err) and "\n" not in str(err)
        return
    event("trained")
    assert len(hist.epoch) == 1 and 0.0 <= hist.test_accuracy[0] <= 1.0
    for W in run.net.weights:
        assert W.shape[0] > 0


# --- 3. the energy is a Lyapunov function of noise-free inference ------------------------------
# bounds of |phi'| and |phi''| of the smooth activations
SMOOTH = {"tanh": (1.0, 4 / (3 * math.sqrt(3))), "sigmoid": (0.25, 0.0962), "linear": (1.0, 0.0)}


def _lipschitz(net: network.Network, xs, free) -> float:
    """An upper bound of the Hessian norm of the per-sample energy on its sublevel set:
    sum_l (1 + a_l ||W_l|| c1)^2 + sum_l a_l ||W_l|| c2 E_max, with c1, c2 the bounds of
    |phi'|, |phi''| (phi is the identity on layer 0) and E_max >= ||eps_l|| for every sample
    while its energy does not exceed its start (doubled for the segment between iterates)."""
    c1, c2 = SMOOTH[net.activation]
    eps = field.errors(net, xs)
    e_max = 2.0 * math.sqrt(
        max(float(sum(np.sum(e[b] ** 2) for e in eps)) for b in range(xs[0].shape[0]))
    )
    L = 0.0
    for i, W in enumerate(net.weights):
        a_norm = abs(net.scales[i]) * float(np.linalg.norm(W, 2))
        d1, d2 = (1.0, 0.0) if i == 0 else (c1, c2)
        L += (1.0 + a_norm * d1) ** 2 + a_norm * d2 * e_max
    return L


@PROPS
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    activation=st.sampled_from(sorted(SMOOTH)),
    parameterisation=st.sampled_from(["sp", "mupc"]),
    bias=st.booleans(),
    weight_scale=st.floats(0.05, 3.0),
    free_output=st.booleans(),
    fraction=st.floats(0.05, 1.0),
    backend=st.sampled_from(["numba", "numpy"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_noise_free_inference_never_increases_the_energy(
    sizes, activation, parameterisation, bias, weight_scale, free_output, fraction, backend, seed
):
    rng = np.random.default_rng(seed)
    net = network.build(
        sizes, activation, parameterisation=parameterisation, bias=bias, residual=False, rng=rng
    )
    for W in net.weights:
        W *= weight_scale
    if bias:
        for b in net.biases:
            b[...] = rng.normal(0, 0.5, b.shape)
    xs = [rng.normal(0, 1.5, (3, n)) for n in sizes]
    free = [
        0 < l < len(sizes) - 1 or (free_output and l == len(sizes) - 1) for l in range(len(sizes))
    ]
    assume(any(free))
    dt = fraction / _lipschitz(net, xs, free)
    circ = Circuit(net)
    engine = ClockedEngine("euler", dt=dt, backend=backend)
    energies = [field.energy(net, xs)]
    for _ in range(25):
        engine.step(circ, xs, free)
        energies.append(field.energy(net, xs))
    e = np.array(energies)
    assert np.all(np.isfinite(e))
    rises = np.diff(e)
    assert rises.max() <= 1e-12 * max(1.0, e[0]), (dt, e)


# --- 4. converters: no NaN, never outside the range --------------------------------------------
@PROPS
@given(
    bits=st.integers(2, 24),
    lo=st.floats(-1e6, 1e6),
    width=st.floats(1e-6, 1e6),
    x=st.lists(st.floats(allow_nan=False), min_size=1, max_size=40),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_quantisers_never_give_nan_or_leave_their_range(bits, lo, width, x, dtype):
    hi = lo + width
    assume(hi > lo)
    cfg = ConverterConfig(
        dac_bits=bits, dac_low=lo, dac_high=hi, adc_bits=bits, adc_low=lo, adc_high=hi
    )
    arr = np.array(x, dtype=np.float64)
    for out in (quantise(arr, bits, lo, hi), cfg.dac(arr), cfg.adc(arr)):
        assert not np.isnan(out).any()
        assert out.min() >= lo and out.max() <= hi, (lo, hi, out.min(), out.max())
    xf = np.clip(arr, -1e30, 1e30).astype(dtype)
    out = quantise(xf, bits, lo, hi)
    assert not np.isnan(out).any()
    # in float32 the range itself is rounded: within one float32 rounding of it
    tol = 4 * np.finfo(dtype).eps * max(abs(lo), abs(hi))
    assert out.min() >= lo - tol and out.max() <= hi + tol


# --- 5. value units within their rails under every noise source ---------------------------------
@PROPS
@given(
    preset=st.sampled_from(["rram", "pcm", "subthreshold", "sram-cim"]),
    rail=st.floats(0.05, 5.0),
    asym=st.floats(-0.9, 0.9),
    thermal=st.booleans(),
    offset_std=st.floats(0.0, 1.0),
    noise_std=st.floats(0.0, 2.0),
    read_noise=st.floats(0.0, 0.5),
    sigma=st.floats(0.0, 3.0),
    weight_scale=st.floats(0.1, 50.0),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    backend=st.sampled_from(["numba", "numpy"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_value_units_stay_within_their_rails_and_finite(
    preset,
    rail,
    asym,
    thermal,
    offset_std,
    noise_std,
    read_noise,
    sigma,
    weight_scale,
    sizes,
    activation,
    backend,
    seed,
):
    lo, hi = -rail * (1 - asym), rail * (1 + asym)
    chip = load_preset(
        preset,
        overrides={
            "value_units": {"rail_low": lo, "rail_high": hi, "thermal_noise": thermal},
            "error_units": {"offset_std": offset_std, "noise_std": noise_std},
            "synapses": {"read_noise_std": read_noise},
        },
    )
    rng = np.random.default_rng(seed)
    net = network.build(sizes, activation, bias=True, rng=rng)
    for W in net.weights:
        W *= weight_scale
    circ = Circuit(net, chip=chip, rng=rng)
    xs = [rng.normal(0, 10.0, (2, n)) for n in sizes]
    free = [l > 0 for l in range(len(sizes))]
    engine = ClockedEngine("euler_maruyama", dt=0.2, sigma=sigma, backend=backend)
    for _ in range(8):
        rec = engine.step(circ, xs, free)
        dW, db = engine.weight_drift(circ, rec)
        circ.apply_weight_update([0.5 * d for d in dW], [0.5 * d for d in db])
    for l, x in enumerate(xs):
        assert np.all(np.isfinite(x))
        if free[l]:
            assert x.min() >= circ.rails[0] and x.max() <= circ.rails[1]
    for cb in circ.crossbars:
        bound = cb.w_max * (cb.gain if cb._gain is not None else 1.0)
        assert np.all(np.isfinite(cb.weights)) and np.all(np.abs(cb.weights) <= bound * (1 + 1e-6))


# --- 6. crossbars: programming, pulsed updates and drift stay finite and in range ---------------
@PROPS
@given(
    bits=st.sampled_from([None, 1, 2, 4, 8]),
    w_max=st.sampled_from([None, 0.5, 2.0]),
    prog_noise=st.floats(0.0, 0.5),
    pcm_noise=st.floats(0.0, 2.0),
    d2d=st.floats(0.0, 0.5),
    verify=st.booleans(),
    stuck=st.floats(0.0, 0.5),
    dw_min=st.sampled_from([None, 0.001, 0.05, 0.5]),
    bound=st.sampled_from(["soft", "hard"]),
    asym=st.floats(-0.9, 0.9),
    dw_std=st.floats(0.0, 1.0),
    drift=st.floats(0.0, 0.2),
    drift_std=st.floats(0.0, 0.1),
    scale=st.floats(1e-3, 1e3),
    update_scale=st.floats(1e-4, 1e6),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_crossbar_weights_stay_finite_and_within_the_device_range(
    bits,
    w_max,
    prog_noise,
    pcm_noise,
    d2d,
    verify,
    stuck,
    dw_min,
    bound,
    asym,
    dw_std,
    drift,
    drift_std,
    scale,
    update_scale,
    dtype,
    seed,
):
    cfg = SynapseConfig(
        bits=bits,
        w_max=w_max,
        prog_noise_std=prog_noise,
        prog_noise_scale=pcm_noise,
        d2d_std=d2d,
        program_verify=verify,
        stuck_fraction=stuck,
        dw_min=dw_min,
        update_bound=bound,
        up_down_asymmetry=asym,
        dw_min_std=dw_std,
        drift_nu=drift,
        drift_nu_std=drift_std,
    )
    rng = np.random.default_rng(seed)
    xb = Crossbar(cfg, (5, 7), dtype)
    xb.program(rng.normal(0, scale, (5, 7)), rng)
    limit = xb.w_max * xb.gain * (1 + 1e-6) + (0 if dtype == np.float64 else 1e-6 * xb.w_max)
    assert np.all(np.isfinite(xb.weights)) and np.all(np.abs(xb.weights) <= limit)
    for _ in range(3):
        xb.update(rng.normal(0, update_scale, (5, 7)).astype(dtype), rng)
        assert np.all(np.isfinite(xb.weights)) and np.all(np.abs(xb.weights) <= limit)
    for t in (0.0, 1e3, 1e9):
        w = xb.read_mean(t)
        assert np.all(np.isfinite(w)) and np.all(np.abs(w) <= limit)


@pytest.mark.parametrize("kind", ["rram", "pcm"])
def test_property_helpers_see_the_real_chips(kind):
    """Guard against vacuous properties: the presets used above really are noisy chips."""
    chip = load_preset(kind)
    assert not chip.is_ideal
