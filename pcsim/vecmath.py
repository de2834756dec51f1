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
from numba import njit, types
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


# -- standard normal draws ------------------------------------------------------------------
# numpy's ziggurat costs ~10 ns a draw here, and a noisy chip step needs one per unit and per
# read (about 1e5 per step of a 784-256-256-10 net at batch 64): more than the step's matrix
# products. Box-Muller (Box & Muller 1958) on the Generator's raw 64-bit words, with its
# logarithm, square root and sine/cosine written as loops LLVM vectorises, costs a fraction.
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_HALF_PI = 1.5707963267948966
_TWO_M32 = 2.0**-32
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.uint64(0x3FF0000000000000)


@njit(cache=True, error_model="numpy")
def _box_muller(raw, work_f, work_u, out):
    """Two standard normals per raw word: ``u1 = (hi + 1/2) 2^-32`` (never 0, so the largest
    draw is 6.8 sigma: the truncation removes probability 1e-11), ``u2 = lo 2^-32``,
    ``r = sqrt(-2 ln u1)``, ``(r cos 2 pi u2, r sin 2 pi u2)``. ``ln`` by exponent and
    mantissa split (bits through array views) and ``2 atanh((m - 1) / (m + 1))`` on
    ``m`` in [1/sqrt 2, sqrt 2); sine and cosine by Taylor series on [-pi/4, pi/4] and the
    quadrant; all to ~1e-15 relative in float64, then stored in ``out``'s dtype."""
    m = raw.shape[0]
    for i in range(m):
        work_f[i] = np.float64(raw[i] >> np.uint64(32)) + 0.5
    bits = work_f.view(np.uint64)
    for i in range(m):
        work_u[i] = (bits[i] & _MANT) | _ONE_BITS
    mant = work_u.view(np.float64)
    for i in range(m):  # r = sqrt(-2 ln u1), into work_f
        e = np.float64(np.int64(bits[i] >> np.uint64(52)) - 1055)  # exponent of u1 = f 2^-32
        x = mant[i]
        big = x > _SQRT2
        x = x * 0.5 if big else x
        e = e + 1.0 if big else e
        s = (x - 1.0) / (x + 1.0)
        t = s * s
        p = 1.0 / 21.0
        p = p * t + 1.0 / 19.0
        p = p * t + 1.0 / 17.0
        p = p * t + 1.0 / 15.0
        p = p * t + 1.0 / 13.0
        p = p * t + 1.0 / 11.0
        p = p * t + 1.0 / 9.0
        p = p * t + 1.0 / 7.0
        p = p * t + 1.0 / 5.0
        p = p * t + 1.0 / 3.0
        p = p * t + 1.0
        work_f[i] = np.sqrt(-2.0 * (e * _LN2 + 2.0 * s * p))
    n2 = out.shape[0] // 2
    for i in range(n2):
        c, sv = _cos_sin_quarter(raw[i])
        out[2 * i] = work_f[i] * c
        out[2 * i + 1] = work_f[i] * sv
    if out.shape[0] % 2:
        c, sv = _cos_sin_quarter(raw[n2])
        out[2 * n2] = work_f[n2] * c


@njit(cache=True, inline="always", error_model="numpy")
def _cos_sin_quarter(word):
    """``(cos, sin)`` of ``2 pi u2`` with ``u2`` the low 32 bits of ``word`` over 2^32."""
    q4 = np.float64(word & np.uint64(0xFFFFFFFF)) * (4.0 * _TWO_M32)  # 4 u2 in [0, 4)
    k = np.floor(q4 + 0.5)  # nearest quarter turn, 0..4 (4 is a full turn, as 0)
    phi = (q4 - k) * _HALF_PI  # in [-pi/4, pi/4]
    f2 = phi * phi
    sn = f2 * (1.0 / 362880.0 + f2 * (-1.0 / 39916800.0 + f2 / 6227020800.0))
    sn = phi * (1.0 + f2 * (-1.0 / 6.0 + f2 * (1.0 / 120.0 + f2 * (-1.0 / 5040.0 + sn))))
    cs = f2 * (1.0 / 40320.0 + f2 * (-1.0 / 3628800.0 + f2 / 479001600.0))
    cs = 1.0 + f2 * (-0.5 + f2 * (1.0 / 24.0 + f2 * (-1.0 / 720.0 + cs)))
    # rotate (cos, sin) of phi by k quarter turns
    c = cs if (k == 0.0 or k == 4.0) else (-sn if k == 1.0 else (-cs if k == 2.0 else sn))
    s = sn if (k == 0.0 or k == 4.0) else (cs if k == 1.0 else (-sn if k == 2.0 else -cs))
    return c, s


def standard_normal(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (a C-contiguous float32/float64 array) with independent standard normals
    drawn from ``rng``'s bit generator (one 64-bit word per two values, in order), so a run is
    reproducible from the Generator's state like any numpy draw. Returns ``out``."""
    flat = out.reshape(-1)
    m = (flat.size + 1) // 2
    if m:
        raw = rng.bit_generator.random_raw(m)
        _box_muller(raw, np.empty(m), np.empty(m, np.uint64), flat)
    return out
