"""The vectorisable float32 tanh of the kernels against the float64 library tanh."""

from __future__ import annotations

import numba
import numpy as np

from pcsim.vecmath import tanh, tanh_rational


@numba.njit(error_model="numpy")
def _apply(x, out):
    for i in range(x.size):
        out[i] = tanh(x[i])


def _inputs() -> np.ndarray:
    dense = np.linspace(-12.0, 12.0, 1_000_001, dtype=np.float32)
    tiny = np.geomspace(1e-30, 1e-2, 20_000).astype(np.float32)
    return np.concatenate([dense, tiny, -tiny, [0.0, np.inf, -np.inf]]).astype(np.float32)


def test_float32_tanh_is_within_7_ulp_and_odd():
    x = _inputs()
    got = np.empty_like(x)
    _apply(x, got)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    err = np.abs(got - exact) / ulp
    assert err.max() <= 6.5 and err.mean() < 1.0
    assert np.all(np.abs(got) <= 1.0) and got[x == 0.0][0] == 0.0
    mirrored = np.empty_like(x)
    _apply(-x, mirrored)
    np.testing.assert_array_equal(mirrored, -got)
    np.testing.assert_array_equal(got, tanh_rational(x))  # the documented formula, exactly


def test_float64_tanh_is_the_library_function():
    x = np.linspace(-20, 20, 10_001)
    got = np.empty_like(x)
    _apply(x, got)
    np.testing.assert_allclose(got, np.tanh(x), rtol=1e-15, atol=0)
