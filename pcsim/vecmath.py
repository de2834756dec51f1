"""Elementary functions for the numba kernels that LLVM can vectorise.

numba compiles ``np.tanh`` on a scalar to a call into the C library, which no loop vectoriser
can widen: about 10 ns per element, several times the cost of the matrix products of a PC
step on a modern core. :func:`tanh` is the accurate library function for float64 and, for
float32, a rational approximation evaluated in float32,

    tanh(x) ~ x P(x^2) / Q(x^2),  |x| <= 9.02 (beyond it tanh rounds to +-1 in float32),

with ``P`` and ``Q`` of degree 4, fitted for pcsim by iteratively reweighted least squares on
the relative error (Lawson's method) and rounded to float32. Over every float32 input its
error is at most 6.3 ulp (4e-7 absolute, near |x| = 7 where tanh is within 2e-6 of 1) and
0.9 ulp on average; numpy's float32 tanh is within 1.4 ulp. float64 runs use the library
function, so there the kernels equal the numpy reference to 1e-12.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

# x P(x^2) / Q(x^2), float32 coefficients in increasing powers of x^2 (fitted, see above)
TANH_P = (
    1.0,
    0.1338271200656891,
    0.003497486235573888,
    2.0636271074181423e-05,
    1.338487098934138e-08,
)
TANH_Q = (
    1.0,
    0.46716034412384033,
    0.025884471833705902,
    0.0003288563166279346,
    7.790495715198631e-07,
)
TANH_CLAMP = 9.02  # float32 tanh(x) == 1 for x >= 9.011


def tanh(x):
    """Python-level fallback (the kernels use the overload below)."""
    return np.tanh(x)


def tanh_rational(x: np.ndarray) -> np.ndarray:
    """The float32 approximation on float32 arrays, in numpy, operation for operation as the
    kernels evaluate it (for tests and documentation)."""
    f = np.float32
    v = np.clip(np.asarray(x, dtype=f), -f(TANH_CLAMP), f(TANH_CLAMP))
    t = v * v
    num = np.full_like(t, f(TANH_P[4]))
    den = np.full_like(t, f(TANH_Q[4]))
    for a, b in zip(TANH_P[3::-1], TANH_Q[3::-1], strict=True):
        num = num * t + f(a)
        den = den * t + f(b)
    return np.clip(v * num / den, f(-1.0), f(1.0))


@overload(tanh, inline="always")
def _tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        p0, p1, p2, p3, p4 = (np.float32(c) for c in TANH_P)
        q0, q1, q2, q3, q4 = (np.float32(c) for c in TANH_Q)
        clamp, one = np.float32(TANH_CLAMP), np.float32(1.0)

        def impl(x):
            v = min(max(x, -clamp), clamp)
            t = v * v
            num = ((((p4 * t + p3) * t + p2) * t + p1) * t) + p0
            den = ((((q4 * t + q3) * t + q2) * t + q1) * t) + q0
            return min(max(v * num / den, -one), one)

        return impl

    def impl_exact(x):
        return np.tanh(x)

    return impl_exact
