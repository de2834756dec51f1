"""The events engine's numba core: random streams, the calendar queue of next events, and the
event loop itself (:func:`_run_events`, :func:`_close_learning`).

The model these kernels simulate, and why each update has its form, is described in
:mod:`pcsim.engines.events`, whose driver (:class:`pcsim.engines.events.EventsEngine`) builds
their arguments and calls them. Nothing here allocates or knows of circuits or chips.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pcsim.kernels import SIGMOID, TANH, _dphi, _phi
from pcsim.read_noise import ou_coefficients

# statuses returned by the kernel
_DONE, _FIFO_UP_FULL, _FIFO_DOWN_FULL, _DIVERGED = 0, 1, 2, 3
_VALUE, _ERROR = 0, 1
_FM = {"reassoc", "contract", "arcp", "nsz"}  # fastmath without nnan/ninf (times may be inf)


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------
# -- random numbers: xoshiro256+ (Blackman & Vigna, "Scrambled linear pseudorandom number
# generators", ACM TOMS 2021), one state per simulated copy, seeded from circ.rng -----------
_U64 = np.uint64


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@njit(cache=True, inline="always")
def _uniform(s):
    """Uniform in (0, 1) from the top 53 bits of xoshiro256+."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    r = s0 + s3
    t = s1 << _U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    return (float(r >> _U64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _normal(s):
    """Standard normal (Box-Muller; one of the pair)."""
    return math.sqrt(-2.0 * math.log(_uniform(s))) * math.cos(2.0 * math.pi * _uniform(s))


@njit(cache=True, inline="always", error_model="numpy")
def _ou_mean(u, k, x, s):
    """Advance read line ``k``'s unit OU state ``u[k]`` exactly over ``x = h / tau_r`` and
    return its mean over that interval (:func:`pcsim.read_noise.ou_coefficients`)."""
    a, sx, cm, bm, sm = ou_coefficients(x)
    z1 = _normal(s)
    m = cm * u[k] + bm * z1 + sm * _normal(s)
    u[k] = a * u[k] + sx * z1
    return m


@njit(cache=True, inline="always")
def _interval(s, mean, poisson, jit_mu, jit_sigma):
    """Time to a unit's next event: exponential (Poisson clock) or lognormal (periodic clock
    with relative jitter; ``jit_mu = -jit_sigma^2 / 2`` keeps the mean interval at ``mean``)."""
    if poisson:
        return -mean * math.log(_uniform(s))
    if jit_sigma > 0.0:
        return mean * math.exp(jit_mu + jit_sigma * _normal(s))
    return mean


# -- the event set: a calendar queue (R. Brown, "Calendar queues: a fast O(1) priority queue
# implementation for the simulation event set problem", CACM 31(10), 1988). Every unit has
# exactly one pending event; bucket ``b = floor(t / w)`` (absolute number, stored per unit)
# lives in slot ``b mod nb`` as a singly linked list. With ``w`` about one mean gap between
# events of the whole network the current bucket holds about one event, so finding the next
# event is O(1); a binary heap of ~1000 units measured ~80 ns per event here, this ~25 ns.
@njit(cache=True, inline="always")
def _cq_insert(head, nxt, bno, mask, inv_w, u, t):
    b = np.int64(math.floor(t * inv_w))
    bno[u] = b
    slot = b & mask
    nxt[u] = head[slot]
    head[slot] = u


@njit(cache=True, inline="always")
def _cq_peek(head, nxt, bno, key, mask, cq):
    """The unit with the earliest event and its predecessor in its slot's list; advances the
    current bucket ``cq[0]`` past empty ones (no event can be scheduled before the minimum)."""
    cur = cq[0]
    while True:
        u = head[cur & mask]
        best, bprev, prev = -1, -1, -1
        bk = np.inf
        while u >= 0:
            if bno[u] == cur and key[u] < bk:
                best, bprev, bk = u, prev, key[u]
            prev = u
            u = nxt[u]
        if best >= 0:
            cq[0] = cur
            return best, bprev
        cur += 1


@njit(cache=True)
def _cq_build(head, nxt, bno, key, mask, inv_w, cq):
    head[:] = -1
    for u in range(key.shape[0]):
        _cq_insert(head, nxt, bno, mask, inv_w, u, key[u])
    cq[0] = np.int64(math.floor(np.min(key) * inv_w))


@njit(cache=True, inline="always")
def _dphi_cached(v, p, act):
    """phi'(v) given p = phi(v): saves a second tanh / exp per value event."""
    if act == TANH:
        return 1.0 - p * p
    if act == SIGMOID:
        return p * (1.0 - p)
    return _dphi(v, act)


@njit(cache=True, fastmath=_FM)
def _row_dot(row, v):
    acc = 0.0
    for k in range(row.shape[0]):
        acc += row[k] * v[k]
    return acc


@njit(cache=True, fastmath=_FM)
def _dot_apply(row, v, c):
    """row += c * v, returning the new row . v (one pass)."""
    acc = 0.0
    for k in range(row.shape[0]):
        w = row[k] + c * v[k]
        row[k] = w
        acc += w * v[k]
    return acc


@njit(cache=True)
def _flush_pending(Ws, phi_seen, pending, xoff, eoff):
    """Write every deferred learning step (row += c * phi of the clamped layer below)."""
    for i in range(len(Ws)):
        W = Ws[i]
        pre = phi_seen[xoff[i] : xoff[i + 1]]
        for j in range(W.shape[0]):
            c = pending[eoff[i] + j]
            if c != 0.0:
                _axpy(W[j], c, pre)
                pending[eoff[i] + j] = 0.0


@njit(cache=True, fastmath=_FM)
def _axpy(y, a, x):
    for k in range(y.shape[0]):
        y[k] += a * x[k]


@njit(cache=True, fastmath=_FM)
def _learn_row(row, back, de, c, e_seen_new, p):
    """back += de * row + (c * e_seen_new) * p ; row += c * p (fused, one pass)."""
    ce = c * e_seen_new
    for k in range(row.shape[0]):
        w = row[k]
        pk = p[k]
        back[k] += de * w + ce * pk
        row[k] = w + c * pk


@njit(cache=True)
def _recompute_back(Ws, e_seen, back, xoff, eoff, free, phi_seen, psq, esq):
    """back_l = W_{l+1}^T e_seen_{l+1} exactly, for every free layer l < L; and the squared
    norms of what each crossbar sees, ``psq[i] = ||phi_seen_i||^2`` (input of W_{i+1}) and
    ``esq[i] = ||e_seen_{i+1}||^2`` (input of its transpose), for output-domain read noise."""
    L = len(Ws)
    for i in range(L):
        p = phi_seen[xoff[i] : xoff[i + 1]]
        psq[i] = np.sum(p * p)
        es = e_seen[eoff[i] : eoff[i + 1]]
        esq[i] = np.sum(es * es)
        if not free[i]:
            continue
        b = back[xoff[i] : xoff[i + 1]]
        b[:] = 0.0
        W = Ws[i]
        es = e_seen[eoff[i] : eoff[i + 1]]
        for j in range(W.shape[0]):
            _axpy(b, es[j], W[j])


@njit(cache=True)
def _run_events(
    t_end,
    # network
    Ws,
    bs,
    has_bias,
    scales,
    residual,
    free,
    act,
    xoff,
    eoff,
    # unit circuits
    egain,
    eoff_v,
    leak,
    amp,
    rail_lo,
    rail_hi,
    # state
    x,
    e,
    x_seen,
    phi_seen,
    e_seen,
    back,
    phi_x,
    pending,
    psq,
    esq,
    rsig,
    read_noise,
    ou_x,
    ou_e,
    inv_tau_r,
    # units and clocks
    ukind,
    ulayer,
    uidx,
    utau,
    umean,
    unext,
    ulast,
    ulint,
    cq_head,
    cq_next,
    cq_bno,
    cq_cur,
    cq_inv_w,
    rng,
    poisson,
    jit_mu,
    jit_sigma,
    exp_update,
    # delays (FIFOs are rings: times, indices, values)
    delay_up,
    fu_t,
    fu_i,
    fu_l,
    fu_x,
    fu_p,
    fu_state,
    delay_down,
    fd_t,
    fd_i,
    fd_v,
    fd_state,
    # learning
    learn,
    inv_tau_w,
    direct,
    accW,
    accb,
    # ledger
    counts,
    reads,
    writes,
    deliveries,
    resync_every,
    since_resync,
):
    """Advance every unit until ``t_end``. Returns ``(status, t_reached)``.

    ``fu_state``/``fd_state`` = [head, count]; ``since_resync`` = [events since the last
    exact recomputation of ``back``]. The state arrays are updated in place, so a call that
    returns early (a full FIFO) resumes exactly where it stopped.
    """
    L = len(Ws)
    mask = cq_head.shape[0] - 1
    cap_u = fu_t.shape[0]
    cap_d = fd_t.shape[0]
    t = -np.inf
    while True:
        u, uprev = _cq_peek(cq_head, cq_next, cq_bno, unext, mask, cq_cur)
        tu = unext[u]
        tup = fu_t[fu_state[0]] if fu_state[1] > 0 else np.inf
        tdn = fd_t[fd_state[0]] if fd_state[1] > 0 else np.inf
        if tup <= tu and tup <= tdn:
            if tup > t_end:
                return _DONE, t_end
            # deliver a bottom-up change: x and phi of one value unit reach the row above
            h0 = fu_state[0]
            k = fu_i[h0]
            x_seen[k] = fu_x[h0]
            pv = fu_p[h0]
            psq[fu_l[h0]] += pv * pv - phi_seen[k] * phi_seen[k]
            phi_seen[k] = pv
            fu_state[0] = (h0 + 1) % cap_u
            fu_state[1] -= 1
            deliveries[0] += 1
            t = tup
            continue
        if tdn <= tu:
            if tdn > t_end:
                return _DONE, t_end
            # deliver a top-down change: e of one error unit reaches the value units below
            h0 = fd_state[0]
            q = fd_i[h0]
            v = fd_v[h0]
            fd_state[0] = (h0 + 1) % cap_d
            fd_state[1] -= 1
            deliveries[1] += 1
            i = 0
            while q >= eoff[i + 1]:
                i += 1
            j = q - eoff[i]
            de = v - e_seen[q]
            esq[i] += v * v - e_seen[q] * e_seen[q]
            e_seen[q] = v
            _axpy(back[xoff[i] : xoff[i + 1]], de, Ws[i][j])
            reads[i] += Ws[i].shape[1]
            t = tdn
            continue
        if tu > t_end:
            return _DONE, t_end
        kind = ukind[u]
        l = ulayer[u]
        n = uidx[u]
        # room for the change this event may send (resume after Python grows the FIFO)
        if kind == _VALUE and delay_up > 0.0 and l < L and fu_state[1] >= cap_u:
            return _FIFO_UP_FULL, tu
        if kind == _ERROR and delay_down > 0.0 and free[l - 1] and fd_state[1] >= cap_d:
            return _FIFO_DOWN_FULL, tu
        # take the unit's event out of the calendar
        if uprev < 0:
            cq_head[cq_cur[0] & mask] = cq_next[u]
        else:
            cq_next[uprev] = cq_next[u]
        t = tu
        h = t - ulast[u]
        ulast[u] = t
        tau = utau[u]
        counts[u] += 1
        if kind == _VALUE:
            q = xoff[l] + n
            xv = x[q]
            d = -leak[q] * xv
            if l > 0:
                d -= e[eoff[l - 1] + n]  # its own error unit: a local wire, never delayed
            if l < L:
                top = back[q]
                if read_noise and rsig[l] > 0.0 and h > 0.0:  # read noise of W_{l+1}^T
                    m = _ou_mean(ou_x, q, h * inv_tau_r, rng)  # its line's OU over h
                    top += rsig[l] * math.sqrt(max(esq[l], 0.0)) * m
                top *= scales[l]
                if l > 0:
                    top *= _dphi_cached(xv, phi_x[q], act)
                d += top
                if residual[l]:
                    d += e_seen[eoff[l] + n]
            if exp_update:
                w = -math.expm1(-h / tau)
            else:
                w = h / tau  # explicit Euler on stale inputs (for comparison only)
            xn = xv + w * d
            if amp[q] > 0.0:
                xn += amp[q] * math.sqrt(-0.5 * math.expm1(-2.0 * h / tau)) * _normal(rng)
            if xn < rail_lo:
                xn = rail_lo
            elif xn > rail_hi:
                xn = rail_hi
            if not math.isfinite(xn) or abs(xn) > 1e6:
                x[q] = xn
                return _DIVERGED, t
            x[q] = xn
            if l < L:
                pn = _phi(xn, act) if l > 0 else xn
                phi_x[q] = pn
                if delay_up > 0.0:
                    tail = (fu_state[0] + fu_state[1]) % cap_u
                    fu_t[tail] = t + delay_up
                    fu_i[tail] = q
                    fu_l[tail] = l
                    fu_x[tail] = xn
                    fu_p[tail] = pn
                    fu_state[1] += 1
                else:
                    x_seen[q] = xn
                    psq[l] += pn * pn - phi_seen[q] * phi_seen[q]
                    phi_seen[q] = pn
        else:
            i = l - 1  # weight layer index of W_l
            q = eoff[i] + n
            row = Ws[i][n]
            pre = phi_seen[xoff[i] : xoff[i + 1]]
            nin = row.shape[0]
            below_free = free[i]
            # below clamped (a constant input): the row's previous learning step is deferred
            # to here and fused with this read, one pass instead of two (exact: phi is the
            # same); _flush_pending writes what is left when the run returns
            deferred = learn and direct and not below_free
            if deferred:
                mu = scales[i] * _dot_apply(row, pre, pending[q])
                pending[q] = 0.0
            else:
                mu = scales[i] * _row_dot(row, pre)
            if read_noise and rsig[i] > 0.0 and h > 0.0:  # output-domain read noise of W_l
                m = _ou_mean(ou_e, q, h * inv_tau_r, rng)  # its line's OU over h
                mu += scales[i] * rsig[i] * math.sqrt(max(psq[i], 0.0)) * m
            reads[i] += nin
            if has_bias:
                mu += bs[i][n]
            if residual[i]:
                mu += x_seen[xoff[i] + n]
            target = egain[q] * (x[xoff[l] + n] - mu) + eoff_v[q]
            eo = e[q]
            if exp_update:
                dec = math.exp(-h / tau)
            else:
                dec = 1.0 - h / tau  # explicit Euler on stale inputs (for comparison only)
            en = target + (eo - target) * dec
            e[q] = en
            c = 0.0
            if learn:
                # exact integral of the exponential path over the part of the interval not
                # yet learned ([ulint, t]; ulint > ulast when a run ended in the interval)
                lag = ulint[u] - (t - h)
                dec0 = math.exp(-lag / tau) if lag > 0.0 else 1.0
                integral = target * (t - ulint[u]) + (eo - target) * tau * (dec0 - dec)
                ulint[u] = t
                c = scales[i] * integral * inv_tau_w
                if has_bias:
                    if direct:
                        bs[i][n] += integral * inv_tau_w
                    else:
                        accb[i][n] += integral * inv_tau_w
                writes[i] += nin
            if below_free and delay_down > 0.0:
                tail = (fd_state[0] + fd_state[1]) % cap_d
                fd_t[tail] = t + delay_down
                fd_i[tail] = q
                fd_v[tail] = en
                fd_state[1] += 1
            if learn and not direct:
                _axpy(accW[i][n], c, pre)
            if below_free:
                bk = back[xoff[i] : xoff[i + 1]]
                if delay_down > 0.0:
                    if learn and direct:
                        _learn_row(row, bk, 0.0, c, e_seen[q], pre)
                else:
                    de = en - e_seen[q]
                    esq[i] += en * en - e_seen[q] * e_seen[q]
                    e_seen[q] = en
                    if learn and direct:
                        _learn_row(row, bk, de, c, en, pre)
                    else:
                        _axpy(bk, de, row)
                    reads[i] += nin
            else:
                esq[i] += en * en - e_seen[q] * e_seen[q]
                e_seen[q] = en  # nobody below listens; keep the wire value anyway
                if deferred:
                    pending[q] = c
        # next event of this unit
        tn = t + _interval(rng, umean[u], poisson, jit_mu, jit_sigma)
        unext[u] = tn
        _cq_insert(cq_head, cq_next, cq_bno, mask, cq_inv_w, u, tn)
        since_resync[0] += 1
        if since_resync[0] >= resync_every:
            _recompute_back(Ws, e_seen, back, xoff, eoff, free, phi_seen, psq, esq)
            since_resync[0] = 0


@njit(cache=True)
def _close_learning(
    t_end,
    Ws,
    bs,
    has_bias,
    scales,
    residual,
    free,
    xoff,
    eoff,
    egain,
    eoff_v,
    x,
    e,
    x_seen,
    phi_seen,
    e_seen,
    back,
    ukind,
    ulayer,
    uidx,
    utau,
    ulast,
    ulint,
    inv_tau_w,
    direct,
    accW,
    accb,
    reads,
    writes,
):
    """Integrate every error unit's weight flow from where it stopped to ``t_end`` (its state
    relaxing towards the target it would see now), so the learning of a run covers the run's
    whole duration, as the continuous weight flow does; the units' own states are untouched."""
    for u in range(ukind.shape[0]):
        if ukind[u] != _ERROR:
            continue
        l = ulayer[u]
        n = uidx[u]
        i = l - 1
        q = eoff[i] + n
        span = t_end - ulint[u]
        if span <= 0.0:
            continue
        row = Ws[i][n]
        pre = phi_seen[xoff[i] : xoff[i + 1]]
        nin = row.shape[0]
        mu = scales[i] * _row_dot(row, pre)
        reads[i] += nin
        if has_bias:
            mu += bs[i][n]
        if residual[i]:
            mu += x_seen[xoff[i] + n]
        target = egain[q] * (x[xoff[l] + n] - mu) + eoff_v[q]
        tau = utau[u]
        eo = e[q]  # its state at its last event, ulast[u]
        dec0 = math.exp(-(ulint[u] - ulast[u]) / tau)
        dec1 = math.exp(-(t_end - ulast[u]) / tau)
        integral = target * span + (eo - target) * tau * (dec0 - dec1)
        ulint[u] = t_end
        c = scales[i] * integral * inv_tau_w
        writes[i] += nin
        if not direct:
            _axpy(accW[i][n], c, pre)
            if has_bias:
                accb[i][n] += integral * inv_tau_w
            continue
        if has_bias:
            bs[i][n] += integral * inv_tau_w
        if free[i]:  # the top-down sums below see the row change through the wire value
            _learn_row(row, back[xoff[i] : xoff[i + 1]], 0.0, c, e_seen[q], pre)
        else:
            _axpy(row, c, pre)
