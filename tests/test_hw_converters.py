"""Noise (input) and bound (output) management: closed forms and the resolution they buy."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models import ChipConfigError, ConverterConfig, quantise


def _rel_rms(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - x) ** 2) / np.mean(x**2)))


def test_abs_max_input_management_keeps_full_resolution_for_small_inputs():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.uniform(-1, 1, (500, 64))  # a tenth of the DAC range
    fixed = ConverterConfig(dac_bits=8)
    managed = ConverterConfig(dac_bits=8, input_management="abs_max")
    y0, ops0 = fixed.convert_input(x)
    y1, ops1 = managed.convert_input(x)
    assert ops0 == 0 and ops1 == 2 * x.size  # scale and rescale, one multiply each
    m = np.max(np.abs(x), axis=1, keepdims=True)
    np.testing.assert_allclose(y1, quantise(x / m, 8, -1.0, 1.0) * m, rtol=1e-12)
    # uniform quantisation error: step / sqrt(12) relative to the rms of the signal
    step = 2.0 / 254
    assert _rel_rms(y0, x) == pytest.approx(step / np.sqrt(12) / (0.1 / np.sqrt(3)), rel=0.05)
    assert _rel_rms(y0, x) / _rel_rms(y1, x) > 8  # about the 10x the range was under-used


def test_iterative_bound_management_recovers_clipped_outputs():
    rng = np.random.default_rng(1)
    x = 3.0 * 4.0 * rng.uniform(-1, 1, (400, 32))  # up to 3x the +-4 ADC range
    plain = ConverterConfig(adc_bits=8, adc_low=-4.0, adc_high=4.0)
    bm = ConverterConfig(adc_bits=8, adc_low=-4.0, adc_high=4.0, bound_management="iterative")
    y0, n0, k0 = plain.convert_output(x)
    y1, n1, k1 = bm.convert_output(x)
    assert n0 == x.size and k0 == 0
    assert _rel_rms(y0, x) > 0.3  # clipping
    assert _rel_rms(y1, x) < 0.02
    # per vector k = ceil(log2(max|x| / 4)); each vector converted k + 1 times
    k = np.ceil(np.log2(np.maximum(np.max(np.abs(x), axis=1) / 4.0, 1.0)))
    assert n1 == int(((k + 1) * x.shape[1]).sum()) and k1 == int(k.max()) == 2
    f = 2.0 ** k[:, None]
    np.testing.assert_allclose(y1, quantise(x / f, 8, -4.0, 4.0) * f, rtol=1e-12)
    # outputs inside the range are converted once, exactly as without management
    small = 0.5 * rng.uniform(-1, 1, (10, 32))
    ys, ns, ks = bm.convert_output(small)
    np.testing.assert_array_equal(ys, plain.adc(small))
    assert (ns, ks) == (small.size, 0)


def test_bound_management_is_capped():
    bm = ConverterConfig(adc_bits=6, bound_management="iterative", bound_management_max=2)
    y, n, k = bm.convert_output(np.array([[100.0, 0.1]]))
    assert k == 2 and n == 3 * 2 and y[0, 0] == pytest.approx(4.0)  # still clips at 4 x 1


def test_management_options_are_validated():
    with pytest.raises(ChipConfigError, match="chip.converters.input_management"):
        ConverterConfig(input_management="rms")
    with pytest.raises(ChipConfigError, match="chip.converters.bound_management_max"):
        ConverterConfig(bound_management_max=0)
