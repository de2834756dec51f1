"""``kernels._relax`` with its flags as data (skip as a zero array, noise in a second pass, one
loop for relu and leaky relu) equals the fused Euler step written out in numpy, to the last
bit, for every top-down mode, with and without noise and skip, in float32 and float64."""

import numpy as np
import pytest

from pcsim import kernels
from pcsim.activations import LEAKY_SLOPE


def _reference(x, gam, lk, below, top, skip, p, s, mode, amp, z, noisy, lo, hi):
    """The step as the kernel's docstring states it, one numpy operation at a time."""
    t = x.dtype.type
    s, one = t(s), t(1.0)
    factor = {
        0: None,
        1: one,
        2: one - p * p,
        3: p * (one - p),
        4: np.where(x > 0, one, t(0.0)),
        5: np.where(x > 0, one, t(LEAKY_SLOPE)),
    }[mode]
    d = -lk * x - below
    if factor is not None:
        d = d + (s * top if mode == 1 else s * top * factor)
    d = d + skip
    v = x + gam * d
    if noisy:
        v = v + amp * z
    return np.minimum(np.maximum(v, t(lo)), t(hi))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relax_equals_numpy_step_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    B, n = 5, 33  # odd width: the vector loop's remainder is exercised too
    x0 = rng.standard_normal((B, n)).astype(dtype)
    gam, lk, amp = (rng.uniform(0.01, 0.2, n).astype(dtype) for _ in range(3))
    below, top, skip, p, z = (rng.standard_normal((B, n)).astype(dtype) for _ in range(5))
    zero = np.zeros((B, n), dtype)
    for mode in range(6):
        for noisy in (False, True):
            for sk in (zero, skip):
                for lo, hi in ((-0.5, 0.7), (-np.inf, np.inf)):
                    x = x0.copy()
                    kernels._relax(x, gam, lk, below, top, sk, p, 0.3, mode, amp, z, noisy, lo, hi)
                    want = _reference(
                        x0, gam, lk, below, top, sk, p, 0.3, mode, amp, z, noisy, lo, hi
                    )
                    np.testing.assert_array_equal(x, want, err_msg=f"mode {mode} noisy {noisy}")
                    if lo > -np.inf:  # the rails bind somewhere, so clipping is tested
                        assert (x == dtype(lo)).any() or (x == dtype(hi)).any()
