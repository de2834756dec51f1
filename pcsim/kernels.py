"""numba-fused hot loops of :mod:`pcsim.field` (tested equal to it, not trusted).

One synchronous Euler / Euler-Maruyama step of every free value unit, with the errors, the
top-down error sums and the update fused so each layer's arrays are touched once per step.
Matrix products go to BLAS through ``np.dot(a, b, out)``. Arguments are tuples of arrays
(one per layer), so the compiled function is reused for every network of the same depth.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls this BLAS; load it now so
from numba import njit  # that threadpoolctl limits set later (run.execute) reach it too

from pcsim.activations import LEAKY_SLOPE

TANH, RELU, LEAKY_RELU, SIGMOID, LINEAR = 0, 1, 2, 3, 4  # as pcsim.activations.ACTIVATION_CODES


@njit(cache=True, inline="always")
def _phi(v, act):
    if act == TANH:
        return np.tanh(v)
    if act == RELU:
        return v if v > 0 else 0.0 * v
    if act == LEAKY_RELU:
        return v if v > 0 else LEAKY_SLOPE * v
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-v))
    return v


@njit(cache=True, inline="always")
def _dphi(v, act):
    if act == TANH:
        t = np.tanh(v)
        return 1.0 - t * t
    if act == RELU:
        return 1.0 if v > 0 else 0.0
    if act == LEAKY_RELU:
        return 1.0 if v > 0 else LEAKY_SLOPE
    if act == SIGMOID:
        s = 1.0 / (1.0 + np.exp(-v))
        return s * (1.0 - s)
    return 1.0


@njit(cache=True, inline="always")
def _row_norm(a, b):
    acc = 0.0
    for j in range(a.shape[1]):
        acc += a[b, j] * a[b, j]
    return np.sqrt(acc)


@njit(cache=True)
def compute_errors(
    xs, Ws, bs, has_bias, scales, residual, act, egain, eoff, phis, eps, read_sig, zf, read_noise
):
    """eps_l = gain_l * (x_l - mu_l) + offset_l for l = 1..L; phis[i] = phi(x_i) for i >= 1.

    ``phis[0]`` is unused (the input is not squashed). ``eps[i]`` holds eps_{i+1}. With
    ``read_noise``, each prediction carries the crossbar's read noise in the output domain:
    ``mu += a * read_sig[i] * ||phi(x_i)|| * zf[i]`` (see ``Crossbar.read_mean``).
    """
    L = len(Ws)
    for i in range(L):
        x_prev = xs[i]
        B, n_prev = x_prev.shape
        if i > 0:
            p = phis[i]
            for b in range(B):
                for j in range(n_prev):
                    p[b, j] = _phi(x_prev[b, j], act)
            np.dot(p, Ws[i].T, eps[i])
        else:
            np.dot(x_prev, Ws[i].T, eps[i])
        e = eps[i]
        x = xs[i + 1]
        a = scales[i]
        g = egain[i + 1]
        o = eoff[i + 1]
        bias = bs[i]
        n = x.shape[1]
        res = residual[i]
        src = phis[i] if i > 0 else x_prev
        noisy = read_noise and read_sig[i] > 0
        for b in range(B):
            nz = a * read_sig[i] * _row_norm(src, b) if noisy else 0.0
            for j in range(n):
                mu = a * e[b, j]
                if noisy:
                    mu += nz * zf[i][b, j]
                if has_bias:
                    mu += bias[j]
                if res:
                    mu += x_prev[b, j]
                e[b, j] = g[j] * (x[b, j] - mu) + o[j]


@njit(cache=True)
def update_activities(
    xs,
    Ws,
    scales,
    residual,
    free,
    act,
    gammas,
    leaks,
    rail_lo,
    rail_hi,
    noise,
    noise_amp,
    use_noise,
    eps,
    back,
    read_sig,
    zb,
    read_noise,
):
    """x_l += gamma_l * (-eps_l + phi'(x_l) a_{l+1} eps_{l+1} W_{l+1} [+ eps_{l+1}] - leak x_l)
    (+ noise_amp_l * noise_l), then clipped to the rails; only layers with ``free[l]``.

    ``gammas[l]`` is dt / tau per unit (tau mismatch enters here), ``noise[l]`` standard normal
    draws and ``noise_amp[l]`` = sigma * sqrt(gamma) per unit (Euler-Maruyama). With
    ``read_noise``, the top-down sum carries the read noise of ``W_{l+1}`` in the output
    domain: ``back += read_sig[l] * ||eps_{l+1}|| * zb[l]``.
    """
    L = len(Ws)
    for l in range(L + 1):
        if not free[l]:
            continue
        x = xs[l]
        B, n = x.shape
        if l < L:
            np.dot(eps[l], Ws[l], back[l])
            if read_noise and read_sig[l] > 0:
                bk = back[l]
                for b in range(B):
                    nz = read_sig[l] * _row_norm(eps[l], b)
                    for j in range(n):
                        bk[b, j] += nz * zb[l][b, j]
        gam = gammas[l]
        lk = leaks[l]
        for b in range(B):
            for j in range(n):
                v = x[b, j]
                drift = -lk[j] * v
                if l > 0:
                    drift -= eps[l - 1][b, j]
                if l < L:
                    top = scales[l] * back[l][b, j]
                    if l > 0:
                        top *= _dphi(v, act)
                    drift += top
                    if residual[l]:
                        drift += eps[l][b, j]
                v += gam[j] * drift
                if use_noise:
                    v += noise_amp[l][j] * noise[l][b, j]
                if v < rail_lo:
                    v = rail_lo
                elif v > rail_hi:
                    v = rail_hi
                x[b, j] = v


@njit(cache=True)
def weight_gradients(xs, phis, eps, scales, has_bias, grads_w, grads_b):
    """-dF/dW_l = (a_l / B) eps_l^T phi(x_{l-1}) and -dF/db_l = mean eps_l, into the buffers."""
    L = len(eps)
    B = xs[0].shape[0]
    for i in range(L):
        src = xs[0] if i == 0 else phis[i]
        np.dot(eps[i].T, src, grads_w[i])
        s = scales[i] / B
        gw = grads_w[i]
        for r in range(gw.shape[0]):
            for c in range(gw.shape[1]):
                gw[r, c] *= s
        if has_bias:
            gb = grads_b[i]
            e = eps[i]
            for j in range(gb.shape[0]):
                acc = 0.0
                for b in range(B):
                    acc += e[b, j]
                gb[j] = acc / B


@njit(cache=True, fastmath=True)  # reassociated sums vectorise; tested to 1e-12
def ipc_presentation_batch1(xs, Ws, scales, free, act, gamma, lr, n_steps, fold0, bufs):
    """``n_steps`` synchronous Euler steps of iPC with a plain SGD weight step after each (batch
    1, no biases or skips, ideal units), in place on ``xs`` (1-D per layer) and ``Ws``: the same
    equations as ClockedEngine.step + IPC's learning, with the loops reassociated:

    - each weight matrix is swept twice per step: once to apply the previous step's rank-1
      change ``lr a eps phi^T`` while accumulating ``mu = a W phi`` (so W is read and written
      once), once for the top-down sum ``W^T eps`` (only where the presynaptic layer is free);
    - ``fold0``: with the input layer clamped, ``W_1(t) x_0 = W_1(0) x_0 + F(t) (x_0 . x_0)``
      with ``F = sum lr a_1 eps_1`` (exact algebra), so ``W_1`` is read once and written once
      per presentation instead of every step.
    """
    phis, eps, backs, pend_e, pend_p, base, F = bufs
    L = len(Ws)
    for i in range(L):
        pend_e[i][:] = 0.0
    g0 = 0.0
    if fold0:
        x0 = xs[0]
        W = Ws[0]
        for r in range(W.shape[0]):
            acc = 0.0
            for c in range(W.shape[1]):
                acc += W[r, c] * x0[c]
            base[r] = acc
            F[r] = 0.0
        for c in range(x0.shape[0]):
            g0 += x0[c] * x0[c]
    for _ in range(n_steps):
        for l in range(1, L):
            x, p = xs[l], phis[l]
            for j in range(x.shape[0]):
                p[j] = _phi(x[j], act)
        # errors: mu = a W(t) pre, applying the pending change of the previous step on the way
        for i in range(L):
            pre = xs[0] if i == 0 else phis[i]
            e, xp, a = eps[i], xs[i + 1], scales[i]
            if i == 0 and fold0:
                for r in range(e.shape[0]):
                    e[r] = xp[r] - a * (base[r] + F[r] * g0)
                continue
            W, pe, pp = Ws[i], pend_e[i], pend_p[i]
            for r in range(W.shape[0]):
                f = pe[r]
                acc = 0.0
                if f != 0.0:
                    for c in range(W.shape[1]):
                        w = W[r, c] + f * pp[c]
                        W[r, c] = w
                        acc += w * pre[c]
                else:
                    for c in range(W.shape[1]):
                        acc += W[r, c] * pre[c]
                e[r] = xp[r] - a * acc
        # top-down sums with W(t); this step's weight change becomes pending
        for i in range(L):
            pre = xs[0] if i == 0 else phis[i]
            e, s_lr = eps[i], lr * scales[i]
            if i == 0 and fold0:
                for r in range(e.shape[0]):
                    F[r] += s_lr * e[r]
            else:
                pe, pp = pend_e[i], pend_p[i]
                for r in range(e.shape[0]):
                    pe[r] = s_lr * e[r]
                for c in range(pre.shape[0]):
                    pp[c] = pre[c]
            if free[i]:
                W, bk = Ws[i], backs[i]
                bk[:] = 0.0
                for r in range(W.shape[0]):
                    er = e[r]
                    for c in range(W.shape[1]):
                        bk[c] += W[r, c] * er
        for l in range(L + 1):
            if not free[l]:
                continue
            x = xs[l]
            for j in range(x.shape[0]):
                v = x[j]
                d = 0.0
                if l > 0:
                    d -= eps[l - 1][j]
                if l < L:
                    t = scales[l] * backs[l][j]
                    if l > 0:
                        if act == TANH:  # phi' from phi(x(t)), as pcsim's 1 - tanh(x)^2
                            p = phis[l][j]
                            t *= 1.0 - p * p
                        else:
                            t *= _dphi(v, act)
                    d += t
                x[j] = v + gamma * d
    for i in range(L):  # flush the pending changes
        W = Ws[i]
        if i == 0 and fold0:
            x0 = xs[0]
            for r in range(W.shape[0]):
                for c in range(W.shape[1]):
                    W[r, c] += F[r] * x0[c]
        else:
            pe, pp = pend_e[i], pend_p[i]
            for r in range(W.shape[0]):
                for c in range(W.shape[1]):
                    W[r, c] += pe[r] * pp[c]
