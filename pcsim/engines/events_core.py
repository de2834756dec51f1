"""The events engine's numba core: random streams, the calendar queue of next events, and the
event loop itself (:func:`_run_events`, :func:`_close_learning`).

The model these kernels simulate, and why each update has its form, is described in
:mod:`pcsim.engines.events`, whose driver (:class:`pcsim.engines.events.EventsEngine`) builds
their arguments and calls them. Nothing here allocates or knows of circuits or chips.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from pcsim.kernels import SIGMOID, TANH, _dphi, _phi
from pcsim.read_noise import ou_coefficients

# statuses returned by the kernel
_DONE, _FIFO_UP_FULL, _FIFO_DOWN_FULL, _DIVERGED = 0, 1, 2, 3
_VALUE, _ERROR = 0, 1
_FM = {"reassoc", "contract", "arcp", "nsz"}  # fastmath without nnan/ninf (times may be inf)


# ---------------------------------------------------------------------------------------------
# the kernels' arguments, one named group per concern (module level, so that numba's on-disk
# cache can name their types). Flat per-unit arrays are float64 and indexed by the layer's
# start: value unit n of layer l is x[x_start[l] + n], error unit n of layer i + 1 (weight
# layer i) is e[e_start[i] + n].
# ---------------------------------------------------------------------------------------------
class EvNet(NamedTuple):
    """The network and where each layer's units start in the flat arrays."""

    Ws: Any  # tuple of W_{i+1}, (n_{i+1}, n_i)
    bs: Any  # tuple of b_{i+1} (zeros without biases)
    has_bias: bool
    scales: np.ndarray  # (L,) float64
    residual: np.ndarray  # (L,) bool
    free: np.ndarray  # (L + 1,) bool
    act: int  # activation code (pcsim.kernels.TANH, ...)
    x_start: np.ndarray  # (L + 2,) int64: value layer l is x[x_start[l] : x_start[l + 1]]
    e_start: np.ndarray  # (L + 1,) int64: error layer i + 1 is e[e_start[i] : e_start[i + 1]]


class EvUnits(NamedTuple):
    """The unit circuits, flat per unit (float64)."""

    egain: np.ndarray  # per error unit: eps target = egain (x - mu) + e_offset
    e_offset: np.ndarray  # per error unit, activity units
    leak: np.ndarray  # per value unit
    amp: np.ndarray  # per value unit: noise std per sqrt(tau)
    rail_lo: float
    rail_hi: float


class EvState(NamedTuple):
    """One sample's state (updated in place; :class:`pcsim.engines.events._SampleState`)."""

    x: np.ndarray  # value units
    e: np.ndarray  # error units
    x_seen: np.ndarray  # values as the row above sees them (after the up delay)
    phi_seen: np.ndarray  # phi of those
    e_seen: np.ndarray  # errors as the layer below sees them (after the down delay)
    back: np.ndarray  # per value unit: W_{l+1}^T e_seen_{l+1}
    phi_x: np.ndarray  # phi(x) at each value unit's last event
    pending: np.ndarray  # per error unit: a deferred learning step (clamped layer below)
    ou_x: np.ndarray  # per value unit: the OU state of its backward read line
    ou_e: np.ndarray  # per error unit: the OU state of its forward read line


class ReadNoise(NamedTuple):
    """Output-domain read noise (each read line an OU process, advanced exactly)."""

    rsig: np.ndarray  # (L,) stationary std per crossbar, weight units
    on: bool
    inv_tau_r: float  # 1 / correlation time, per tau_x
    psq: np.ndarray  # (L,) ||phi_seen_i||^2, what W_{i+1} reads (kept up to date)
    esq: np.ndarray  # (L,) ||e_seen_{i+1}||^2, what its transpose reads


class Clocks(NamedTuple):
    """Per-unit tables, next-event times and the calendar queue."""

    ukind: np.ndarray  # _VALUE or _ERROR
    ulayer: np.ndarray  # value layer l (an error unit: the layer of its value unit)
    uidx: np.ndarray  # index within the layer
    utau: np.ndarray  # time constant (tau_x units)
    umean: np.ndarray  # mean interval between events
    unext: np.ndarray  # time of the next event
    ulast: np.ndarray  # time of the last event
    ulint: np.ndarray  # time up to which an error unit's weight flow is integrated
    cq_head: np.ndarray  # calendar queue: slot heads (a power of two of them)
    cq_next: np.ndarray  # per unit: next in its slot's list
    cq_bno: np.ndarray  # per unit: absolute bucket number
    cq_cur: np.ndarray  # [current bucket]
    cq_inv_w: float  # 1 / bucket width
    rng: np.ndarray  # xoshiro256+ state (4 uint64)
    poisson: bool  # Poisson clocks (else periodic with lognormal jitter)
    jit_mu: float
    jit_sigma: float
    exp_update: bool  # the exact exponential update (else explicit Euler, for comparison)


class Delays(NamedTuple):
    """Wire delays; the FIFOs are rings of (time, index[, layer], value[, phi]) with
    ``state = [head, count]``."""

    up: float  # bottom-up delay (tau_x units; 0: none)
    fu_t: np.ndarray
    fu_i: np.ndarray
    fu_l: np.ndarray
    fu_x: np.ndarray
    fu_p: np.ndarray
    fu_state: np.ndarray
    down: float  # top-down delay
    fd_t: np.ndarray
    fd_i: np.ndarray
    fd_v: np.ndarray
    fd_state: np.ndarray


class EvLearning(NamedTuple):
    """The weight flow ``tau_w dW/dt = -dF/dW``."""

    on: bool
    inv_tau_w: float
    direct: bool  # written in place (ideal substrate); else accumulated in accW / accb
    accW: Any  # tuple like Ws
    accb: Any  # tuple like bs


class Ledger(NamedTuple):
    """Counts for the cost model, and the schedule of exact recomputations of ``back``."""

    counts: np.ndarray  # events per unit
    reads: np.ndarray  # synapse reads per weight layer
    writes: np.ndarray  # synapse writes per weight layer
    deliveries: np.ndarray  # [bottom-up, top-down] delayed deliveries
    resync_every: int
    since_resync: np.ndarray  # [events since the last recomputation]


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
def _flush_pending(net, st):
    """Write every deferred learning step (row += c * phi of the clamped layer below)."""
    Ws, x_start, e_start = net.Ws, net.x_start, net.e_start
    phi_seen, pending = st.phi_seen, st.pending
    for i in range(len(Ws)):
        W = Ws[i]
        pre = phi_seen[x_start[i] : x_start[i + 1]]
        for j in range(W.shape[0]):
            c = pending[e_start[i] + j]
            if c != 0.0:
                _axpy(W[j], c, pre)
                pending[e_start[i] + j] = 0.0


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
def _recompute_back(net, st, rn):
    """back_l = W_{l+1}^T e_seen_{l+1} exactly, for every free layer l < L; and the squared
    norms of what each crossbar sees, ``rn.psq[i] = ||phi_seen_i||^2`` (input of W_{i+1}) and
    ``rn.esq[i] = ||e_seen_{i+1}||^2`` (input of its transpose), for output-domain read
    noise."""
    Ws, x_start, e_start, free = net.Ws, net.x_start, net.e_start, net.free
    e_seen, back, phi_seen, psq, esq = st.e_seen, st.back, st.phi_seen, rn.psq, rn.esq
    L = len(Ws)
    for i in range(L):
        p = phi_seen[x_start[i] : x_start[i + 1]]
        psq[i] = np.sum(p * p)
        es = e_seen[e_start[i] : e_start[i + 1]]
        esq[i] = np.sum(es * es)
        if not free[i]:
            continue
        b = back[x_start[i] : x_start[i + 1]]
        b[:] = 0.0
        W = Ws[i]
        es = e_seen[e_start[i] : e_start[i + 1]]
        for j in range(W.shape[0]):
            _axpy(b, es[j], W[j])


# -- the event loop's sections, inlined into it: each takes the named groups it touches -------
# One array per assignment (``x = st.x``), never unpacked from a tuple (``x, e, back, phi_x =
# st.x, ...``): numba's dead-code elimination does not see that a name unpacked from a built tuple
# aliases an argument, and drops a store to it that nothing after it in the function reads
# (numba 0.68 ``ir_utils.find_potential_aliases`` has no case for ``build_tuple``). Inside
# _run_events' loop every array is read again, so the loop itself is not affected.
@njit(cache=True, inline="always")
def _deliver_up(st, rn, delays, ledger):
    """Deliver the oldest bottom-up change: x and phi of one value unit reach the row above."""
    fu_state = delays.fu_state
    x_seen = st.x_seen
    phi_seen = st.phi_seen
    h0 = fu_state[0]
    k = delays.fu_i[h0]
    x_seen[k] = delays.fu_x[h0]
    pv = delays.fu_p[h0]
    rn.psq[delays.fu_l[h0]] += pv * pv - phi_seen[k] * phi_seen[k]
    phi_seen[k] = pv
    fu_state[0] = (h0 + 1) % delays.fu_t.shape[0]
    fu_state[1] -= 1
    ledger.deliveries[0] += 1


@njit(cache=True, inline="always")
def _deliver_down(net, st, rn, delays, ledger):
    """Deliver the oldest top-down change: e of one error unit reaches the value units below
    (their ``back`` sums move by the change times its weight row)."""
    fd_state = delays.fd_state
    e_start = net.e_start
    x_start = net.x_start
    Ws = net.Ws
    e_seen = st.e_seen
    h0 = fd_state[0]
    q = delays.fd_i[h0]
    v = delays.fd_v[h0]
    fd_state[0] = (h0 + 1) % delays.fd_t.shape[0]
    fd_state[1] -= 1
    ledger.deliveries[1] += 1
    i = 0
    while q >= e_start[i + 1]:
        i += 1
    j = q - e_start[i]
    de = v - e_seen[q]
    rn.esq[i] += v * v - e_seen[q] * e_seen[q]
    e_seen[q] = v
    _axpy(st.back[x_start[i] : x_start[i + 1]], de, Ws[i][j])
    ledger.reads[i] += Ws[i].shape[1]


@njit(cache=True, inline="always")
def _take_event(clocks, ledger, u, uprev, mask, t):
    """Take unit u's event (at time t) out of the calendar and count it; returns the time h
    since its previous event (tau_x units)."""
    cq_next = clocks.cq_next
    if uprev < 0:
        clocks.cq_head[clocks.cq_cur[0] & mask] = cq_next[u]
    else:
        cq_next[uprev] = cq_next[u]
    h = t - clocks.ulast[u]
    clocks.ulast[u] = t
    ledger.counts[u] += 1
    return h


@njit(cache=True, inline="always")
def _value_event(t, h, u, l, n, net, units, st, rn, clocks, delays):
    """Value unit n of layer l updates over the interval h since its last event (exact
    exponential step on its inputs as seen now, its thermal noise, the rails) and sends its
    new x and phi up (through the wire's FIFO when delayed). Returns True when it diverged."""
    x = st.x
    e = st.e
    back = st.back
    phi_x = st.phi_x
    x_seen = st.x_seen
    phi_seen = st.phi_seen
    e_seen = st.e_seen
    scales = net.scales
    act = net.act
    x_start = net.x_start
    e_start = net.e_start
    amp = units.amp
    rail_lo = units.rail_lo
    rail_hi = units.rail_hi
    rng = clocks.rng
    delay_up = delays.up
    fu_state = delays.fu_state
    L = len(net.Ws)
    tau = clocks.utau[u]
    q = x_start[l] + n
    xv = x[q]
    d = -units.leak[q] * xv
    if l > 0:
        d -= e[e_start[l - 1] + n]  # its own error unit: a local wire, never delayed
    if l < L:
        top = back[q]
        if rn.on and rn.rsig[l] > 0.0 and h > 0.0:  # read noise of W_{l+1}^T
            m = _ou_mean(st.ou_x, q, h * rn.inv_tau_r, rng)  # its line's OU over h
            top += rn.rsig[l] * math.sqrt(max(rn.esq[l], 0.0)) * m
        top *= scales[l]
        if l > 0:
            top *= _dphi_cached(xv, phi_x[q], act)
        d += top
        if net.residual[l]:
            d += e_seen[e_start[l] + n]
    if clocks.exp_update:
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
        return True
    x[q] = xn
    if l < L:
        pn = _phi(xn, act) if l > 0 else xn
        phi_x[q] = pn
        if delay_up > 0.0:
            tail = (fu_state[0] + fu_state[1]) % delays.fu_t.shape[0]
            delays.fu_t[tail] = t + delay_up
            delays.fu_i[tail] = q
            delays.fu_l[tail] = l
            delays.fu_x[tail] = xn
            delays.fu_p[tail] = pn
            fu_state[1] += 1
        else:
            x_seen[q] = xn
            rn.psq[l] += pn * pn - phi_seen[q] * phi_seen[q]
            phi_seen[q] = pn
    return False


@njit(cache=True, inline="always")
def _learn_on_read(t, h, tau, u, i, n, target, eo, dec, nin, net, clocks, learning, ledger):
    """The weight flow of error unit (i, n) over its interval: the exact integral of its
    exponential path over the part not yet learned ([ulint, t]; ulint > ulast when a run ended
    in the interval). Steps its bias (in place or into accb) and returns the row's step
    coefficient c (row += c * phi of the layer below)."""
    ulint = clocks.ulint
    lag = ulint[u] - (t - h)
    dec0 = math.exp(-lag / tau) if lag > 0.0 else 1.0
    integral = target * (t - ulint[u]) + (eo - target) * tau * (dec0 - dec)
    ulint[u] = t
    c = net.scales[i] * integral * learning.inv_tau_w
    if net.has_bias:
        if learning.direct:
            net.bs[i][n] += integral * learning.inv_tau_w
        else:
            learning.accb[i][n] += integral * learning.inv_tau_w
    ledger.writes[i] += nin
    return c


@njit(cache=True, inline="always")
def _error_event(t, h, u, l, n, net, units, st, rn, clocks, delays, learning, ledger):
    """Error unit n of layer l reads its row of W_l (with read noise), relaxes towards
    ``egain (x - mu) + e_offset`` over h, learns (:func:`_learn_on_read`) and sends its new e
    down (through the wire's FIFO when delayed; a clamped layer below only keeps the value)."""
    Ws = net.Ws
    scales = net.scales
    x_start = net.x_start
    e_start = net.e_start
    e = st.e
    e_seen = st.e_seen
    pending = st.pending
    esq = rn.esq
    learn = learning.on
    direct = learning.direct
    delay_down = delays.down
    fd_state = delays.fd_state
    reads = ledger.reads
    tau = clocks.utau[u]
    i = l - 1  # weight layer index of W_l
    q = e_start[i] + n
    row = Ws[i][n]
    pre = st.phi_seen[x_start[i] : x_start[i + 1]]
    nin = row.shape[0]
    below_free = net.free[i]
    # below clamped (a constant input): the row's previous learning step is deferred to here
    # and fused with this read, one pass instead of two (exact: phi is the same);
    # _flush_pending writes what is left when the run returns
    deferred = learn and direct and not below_free
    if deferred:
        mu = scales[i] * _dot_apply(row, pre, pending[q])
        pending[q] = 0.0
    else:
        mu = scales[i] * _row_dot(row, pre)
    if rn.on and rn.rsig[i] > 0.0 and h > 0.0:  # output-domain read noise of W_l
        m = _ou_mean(st.ou_e, q, h * rn.inv_tau_r, clocks.rng)  # its line's OU over h
        mu += scales[i] * rn.rsig[i] * math.sqrt(max(rn.psq[i], 0.0)) * m
    reads[i] += nin
    if net.has_bias:
        mu += net.bs[i][n]
    if net.residual[i]:
        mu += st.x_seen[x_start[i] + n]
    target = units.egain[q] * (st.x[x_start[l] + n] - mu) + units.e_offset[q]
    eo = e[q]
    if clocks.exp_update:
        dec = math.exp(-h / tau)
    else:
        dec = 1.0 - h / tau  # explicit Euler on stale inputs (for comparison only)
    en = target + (eo - target) * dec
    e[q] = en
    c = 0.0
    if learn:
        c = _learn_on_read(t, h, tau, u, i, n, target, eo, dec, nin, net, clocks, learning, ledger)
    if below_free and delay_down > 0.0:
        tail = (fd_state[0] + fd_state[1]) % delays.fd_t.shape[0]
        delays.fd_t[tail] = t + delay_down
        delays.fd_i[tail] = q
        delays.fd_v[tail] = en
        fd_state[1] += 1
    if learn and not direct:
        _axpy(learning.accW[i][n], c, pre)
    if below_free:
        bk = st.back[x_start[i] : x_start[i + 1]]
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


@njit(cache=True, inline="always")
def _schedule_next(t, u, mask, net, st, rn, clocks, ledger):
    """Draw unit u's next event time, file it in the calendar and, every ``resync_every``
    events, recompute ``back`` exactly."""
    tn = t + _interval(clocks.rng, clocks.umean[u], clocks.poisson, clocks.jit_mu, clocks.jit_sigma)
    clocks.unext[u] = tn
    _cq_insert(clocks.cq_head, clocks.cq_next, clocks.cq_bno, mask, clocks.cq_inv_w, u, tn)
    since_resync = ledger.since_resync
    since_resync[0] += 1
    if since_resync[0] >= ledger.resync_every:
        _recompute_back(net, st, rn)
        since_resync[0] = 0


# _nrt=False (numba's option to compile without its reference counting): the sections above are
# inlined with the named groups as arguments, and numba would otherwise increment and decrement
# the reference count of every array of every group at every section call, i.e. at every event
# (5x slower, benchmarks/bench_events.py). Nothing inlined here allocates (_recompute_back,
# which does, is compiled on its own with reference counting), and the caller keeps every array
# alive for the duration of the call.
@njit(cache=True, _nrt=False)
def _run_events(t_end, net, units, st, rn, clocks, delays, learning, ledger):
    """Advance every unit until ``t_end``. Returns ``(status, t_reached)``.

    ``fu_state``/``fd_state`` = [head, count]; ``since_resync`` = [events since the last
    exact recomputation of ``back``]. The state arrays are updated in place, so a call that
    returns early (a full FIFO) resumes exactly where it stopped. Each step takes the earliest
    of: the oldest bottom-up delivery, the oldest top-down delivery, the calendar's next unit
    event.
    """
    cq_head = clocks.cq_head
    cq_next = clocks.cq_next
    cq_bno = clocks.cq_bno
    cq_cur = clocks.cq_cur
    unext = clocks.unext
    fu_t = delays.fu_t
    fu_state = delays.fu_state
    fd_t = delays.fd_t
    fd_state = delays.fd_state
    L = len(net.Ws)
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
            _deliver_up(st, rn, delays, ledger)
            t = tup
            continue
        if tdn <= tu:
            if tdn > t_end:
                return _DONE, t_end
            _deliver_down(net, st, rn, delays, ledger)
            t = tdn
            continue
        if tu > t_end:
            return _DONE, t_end
        kind = clocks.ukind[u]
        l = clocks.ulayer[u]
        n = clocks.uidx[u]
        # room for the change this event may send (resume after Python grows the FIFO)
        if kind == _VALUE and delays.up > 0.0 and l < L and fu_state[1] >= cap_u:
            return _FIFO_UP_FULL, tu
        if kind == _ERROR and delays.down > 0.0 and net.free[l - 1] and fd_state[1] >= cap_d:
            return _FIFO_DOWN_FULL, tu
        t = tu
        h = _take_event(clocks, ledger, u, uprev, mask, t)
        if kind == _VALUE:
            if _value_event(t, h, u, l, n, net, units, st, rn, clocks, delays):
                return _DIVERGED, t
        else:
            _error_event(t, h, u, l, n, net, units, st, rn, clocks, delays, learning, ledger)
        _schedule_next(t, u, mask, net, st, rn, clocks, ledger)


@njit(cache=True)
def _close_learning(t_end, net, units, st, clocks, learning, ledger):
    """Integrate every error unit's weight flow from where it stopped to ``t_end`` (its state
    relaxing towards the target it would see now), so the learning of a run covers the run's
    whole duration, as the continuous weight flow does; the units' own states are untouched."""
    Ws, bs, has_bias, scales, residual = net.Ws, net.bs, net.has_bias, net.scales, net.residual
    free, x_start, e_start = net.free, net.x_start, net.e_start
    egain, e_offset = units.egain, units.e_offset
    x, e, x_seen, phi_seen, e_seen, back = st.x, st.e, st.x_seen, st.phi_seen, st.e_seen, st.back
    ukind, ulayer, uidx = clocks.ukind, clocks.ulayer, clocks.uidx
    utau, ulast, ulint = clocks.utau, clocks.ulast, clocks.ulint
    inv_tau_w, direct, accW, accb = (
        learning.inv_tau_w,
        learning.direct,
        learning.accW,
        learning.accb,
    )
    reads, writes = ledger.reads, ledger.writes
    for u in range(ukind.shape[0]):
        if ukind[u] != _ERROR:
            continue
        l = ulayer[u]
        n = uidx[u]
        i = l - 1
        q = e_start[i] + n
        span = t_end - ulint[u]
        if span <= 0.0:
            continue
        row = Ws[i][n]
        pre = phi_seen[x_start[i] : x_start[i + 1]]
        nin = row.shape[0]
        mu = scales[i] * _row_dot(row, pre)
        reads[i] += nin
        if has_bias:
            mu += bs[i][n]
        if residual[i]:
            mu += x_seen[x_start[i] + n]
        target = egain[q] * (x[x_start[l] + n] - mu) + e_offset[q]
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
            _learn_row(row, back[x_start[i] : x_start[i + 1]], 0.0, c, e_seen[q], pre)
        else:
            _axpy(row, c, pre)
