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


def test_standard_normal_matches_the_normal_distribution():
    """Moments, the Kolmogorov-Smirnov distance, tail frequencies and independence of
    neighbouring draws, on 4 million values."""
    from scipy import stats

    from pcsim.vecmath import standard_normal

    z = standard_normal(np.random.default_rng(0), np.empty(4_000_001))
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 0.01 and abs(stats.kurtosis(z)) < 0.02
    assert stats.kstest(z, "norm").pvalue > 1e-3
    for k in (2.0, 3.0, 4.0):
        p = 2 * stats.norm.sf(k)
        assert abs(np.mean(np.abs(z) > k) - p) < 5 * np.sqrt(p / n)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)  # the two of a pair too
    # float32 output, odd sizes, reproducible from the Generator state
    a = standard_normal(np.random.default_rng(5), np.empty((3, 7), np.float32))
    b = standard_normal(np.random.default_rng(5), np.empty(21, np.float32))
    np.testing.assert_array_equal(a.reshape(-1), b)
    assert a.dtype == np.float32 and np.all(np.isfinite(a))
