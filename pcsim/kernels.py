"""numba-fused hot loops of :mod:`pcsim.field` (tested equal to it, not trusted).

One synchronous Euler / Euler-Maruyama step of every free value unit, with the errors, the
top-down error sums and the update fused so each layer's arrays are touched once per step, and
:func:`euler_run`, many deterministic steps in one call (optionally with iPC's plain SGD weight
step after each; with frozen weights, :func:`_settle_frozen`), and :func:`pc_train_step`, PC's
whole training step. Matrix products go to BLAS through ``np.dot(a, b, out)``.

The kernels take their arguments in named groups, one per concern (:class:`Net`,
:class:`Units`, :class:`Noise`, :class:`Workspace`, :class:`Schedule`, :class:`RunMode`),
built by the engines (``pcsim.engines.clocked``) and the circuit; per-layer fields are
sequences of arrays (:func:`seq`: numba typed Lists, one compiled version for every depth).
``phi`` is evaluated once per unit and step; ``phi'`` comes from it (tanh: ``1 - phi^2``,
sigmoid: ``phi (1 - phi)``, the same formulas as :mod:`pcsim.activations`), and float32 tanh
is the vectorisable :func:`pcsim.vecmath.tanh`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls this BLAS; load it now so
from numba import njit  # that threadpoolctl limits reach it too
from numba.typed import List

from pcsim.activations import ACTIVATION_CODES, LEAKY_SLOPE
from pcsim.vecmath import tanh as _tanh

# BLAS threads are set where a run starts (pcsim.blas: the CLI, run.execute), not on import.

TANH, RELU, LEAKY_RELU, SIGMOID, LINEAR = 0, 1, 2, 3, 4  # as pcsim.activations.ACTIVATION_CODES
# Flags passed between kernels as numpy scalars, not Python constants: numba types a constant
# argument as a literal and compiles the callee once more for it (a second signature of
# compute_errors, _settle_frozen, feedforward, ... per dtype: ~15 s of the suite's compile).
_YES, _NO = np.bool_(True), np.bool_(False)
_MODE_NONE = np.int64(0)  # _relax's top-down mode for a free top layer (no top-down term)

# Per-layer arrays reach the kernels as numba typed Lists at every depth: a tuple is unrolled
# by its length (a compiled variant per depth, and a 130-layer tuple takes numba tens of
# minutes), a List compiles once for every depth (measured: 75 s instead of 187 s of compile
# CPU for four test files; tuples inside named groups took 278 s; benchmarks/RESULTS.md,
# "Named kernel arguments"). The dispatcher types a List inside a named tuple in Python at
# every call (~25 us per List), which :func:`call` avoids; unboxing a List still costs ~1 us
# per call, so the per-step kernels take only the buffers they read (:func:`step_buffers`).
# :func:`seq` keeps the Lists it built for the arrays it was given (the same arrays, by
# identity, give the same List): a run passes the same activities, buffers and unit constants
# at every step, and building a List costs about 2 us per array.
_SEQ_CACHE: dict[tuple[int, ...], tuple[tuple, Any]] = {}
SEQ_CACHE_SIZE = 64  # Lists kept (each keeps its arrays alive); the least recently used goes

Layers = Any  # per-layer arrays as :func:`seq` returns them (a tuple or a numba typed List)


def seq(arrays):
    """``arrays`` (per layer) as the kernels take them: a numba typed List (cached by the
    arrays' identity, see ``SEQ_CACHE_SIZE``), or a tuple where the arrays' numba types
    differ (dtype, dimensions, layout). The arrays themselves are shared, not copied."""
    arrays = tuple(arrays)
    if not arrays:
        return arrays
    key = tuple(map(id, arrays))
    hit = _SEQ_CACHE.pop(key, None)
    if hit is not None:
        _SEQ_CACHE[key] = hit  # most recently used last
        return hit[1]
    first = arrays[0]
    if not all(_same_type(a, first) for a in arrays):
        return arrays
    out = _list_from(arrays)
    if len(_SEQ_CACHE) >= SEQ_CACHE_SIZE:
        del _SEQ_CACHE[next(iter(_SEQ_CACHE))]
    _SEQ_CACHE[key] = (arrays, out)  # the arrays stay alive, so their ids stay theirs
    return out


# The Lists are built by compiled (and cached) functions called through their compiled entry
# points: List() and append called from Python compile numba's typed-list methods in every
# process (about 0.5 s of CPU per array type), and the dispatcher types its arguments at every
# call (a new List per presentation, for its new activities). One signature per array type.
@njit(cache=True)
def _list_of(a):
    out = List()
    out.append(a)
    return out


@njit(cache=True)
def _list_append(out, a):
    out.append(a)


@njit(cache=True)
def _list_set(out, i, a):
    out[i] = a


# array type key: the entry points of (_list_of, _list_append, _list_set) for that type
_LIST_ENTRIES: dict[tuple, tuple[Any, Any, Any]] = {}


def _array_key(a: np.ndarray) -> tuple:
    """An array's numba type as :func:`call` keys it: dtype, dimensions and flags (layout,
    alignment, writeable)."""
    return (a.dtype.str, a.ndim, a.flags.num)


def _list_entries(first: np.ndarray) -> tuple[Any, Any, Any]:
    """The compiled entry points that make, extend and set a List of ``first``'s type."""
    key = _array_key(first)
    fns = _LIST_ENTRIES.get(key)
    if fns is None:  # compile (or load) them for this type, then keep their entry points
        probe = _list_of(first)
        _list_append(probe, first)
        _list_set(probe, 0, first)
        t_a = _list_of.typeof_pyval(first)
        t_l = _list_append.typeof_pyval(probe)
        t_i = _list_set.typeof_pyval(0)
        fns = _LIST_ENTRIES[key] = (
            _list_of.overloads[(t_a,)].entry_point,
            _list_append.overloads[(t_l, t_a)].entry_point,
            _list_set.overloads[(t_l, t_i, t_a)].entry_point,
        )
    return fns


def _list_from(arrays: tuple) -> Any:
    """A typed List of ``arrays`` (one numba type, :func:`_same_type`)."""
    first = arrays[0]
    make, add, _ = _list_entries(first)
    out = make(first)
    for a in arrays[1:]:
        add(out, a)
    return out


class ListSlots:
    """Typed Lists that keep their identity while the arrays in them change: one List per
    name (e.g. a circuit's activities at one batch size), whose items are replaced in place
    (one compiled call per changed array) when arrays of the List's own numba type come.

    Each presentation's activities are new arrays; :func:`seq` would build a new List for
    them, and :func:`call` would key every kernel that takes it anew (60-90 us per
    presentation in Python: benchmarks/RESULTS.md, "The one-step iPC row"). A slot's List
    stays the same object, so :func:`call` finds it by identity. A List from a slot is only
    valid until the slot's next :meth:`get`: callers pass it straight to a kernel. Arrays of
    another type (dtype, dimensions, layout) get :func:`seq`'s List or tuple instead. Copies
    start empty (numba typed Lists cannot be copied)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size  # slots kept; then starts afresh
        # name: (the arrays, their List, the item type key, the List's set-item entry point)
        self._slots: dict[Any, tuple[tuple, Any, tuple, Any]] = {}

    def get(self, name: Any, arrays: Sequence[np.ndarray]) -> Layers:
        """``arrays`` as one typed List, the slot ``name``'s List where their types allow."""
        hit = self._slots.get(name)
        if hit is not None and len(hit[0]) == len(arrays):
            old, out, key, put = hit
            changed = None
            for i, a in enumerate(arrays):
                if a is not old[i]:
                    if not (isinstance(a, np.ndarray) and _array_key(a) == key):
                        break  # another type: a List of their own below
                    if changed is None:
                        changed = [i]
                    else:
                        changed.append(i)
            else:
                if changed is not None:
                    for i in changed:
                        put(out, i, arrays[i])
                    self._slots[name] = (tuple(arrays), out, key, put)
                return out
        arrays = tuple(arrays)
        first = arrays[0] if arrays else None
        if not (
            isinstance(first, np.ndarray)
            and first.flags.c_contiguous
            and all(
                isinstance(a, np.ndarray) and _array_key(a) == _array_key(first) for a in arrays
            )
        ):
            return seq(arrays)
        if len(self._slots) >= self.size:
            self._slots.clear()
        out = _list_from(arrays)
        self._slots[name] = (arrays, out, _array_key(first), _list_entries(first)[2])
        return out

    def __getstate__(self) -> dict:
        return {"size": self.size, "_slots": {}}


def _same_type(a, b) -> bool:
    """True when numba types ``a`` and ``b`` alike (one List holds them)."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype == b.dtype
        and a.ndim == b.ndim
        and a.flags.c_contiguous == b.flags.c_contiguous
        and a.flags.writeable == b.flags.writeable
        and a.flags.c_contiguous
    )


# -- the kernels' arguments, one named group per concern (module level, so numba's on-disk
# cache can name their types). Weight layer i = 0..L-1 is W_{i+1}; value layer l = 0..L.
class Net(NamedTuple):
    """The network's parameters."""

    Ws: Layers  # W_{i+1}, (n_{i+1}, n_i) per weight layer
    bs: Layers  # b_{i+1}, (n_{i+1},) (zeros without biases)
    has_bias: bool
    scales: np.ndarray  # (L,) float64: a_{i+1}, the scale of each prediction
    residual: np.ndarray  # (L,) bool: prediction i + 1 adds x_i (a skip connection)
    act: int  # activation code (TANH, RELU, ...)


class Units(NamedTuple):
    """The unit circuits, per value layer ``l = 0..L`` ((n_l,) arrays; index 0 of the error
    fields unused: the input has no error unit)."""

    egain: Layers  # error-unit gain g: eps = g (x - mu) + e_offset
    e_offset: Layers  # error-unit output offset (activity units)
    gammas: Layers  # dt / tau per value unit (the Euler rate; unused by feedforward)
    leaks: Layers  # value-unit leak (per tau)
    rail_lo: float  # activity rails, the same for every value unit
    rail_hi: float


class Noise(NamedTuple):
    """Noise of one Euler-Maruyama step; its draws are in the :class:`Workspace` (``noise``,
    ``read_fwd``, ``read_bwd``)."""

    amp: Layers  # sigma sqrt(gamma) per value unit, (n_l,)
    on: bool  # thermal / engine noise in this step
    read_sig: np.ndarray  # (L,) float64: read-noise std of each crossbar (weight units)
    read_on: bool  # output-domain read noise in this step


class Schedule(NamedTuple):
    """How many steps a fused run takes and how often it checks for divergence."""

    n_steps: int
    check_every: int  # the finite-value check every this many steps and after the last
    bound: float  # |x| beyond this (or non-finite) counts as diverged


class RunMode(NamedTuple):
    """What :func:`euler_run` does besides stepping (see its docstring)."""

    hoist: bool  # frozen weights, clamped input: the steps of _settle_frozen
    ff_ready: bool  # with hoist: the feedforward pass left its products in the workspace
    learn: bool  # iPC's plain SGD step after each step
    lr: Any  # its rate, in the weights' dtype
    fold0: bool  # learning with a clamped input: W_1 written once at the end


class Workspace(NamedTuple):
    """Preallocated per-step buffers for one batch size (shapes as :mod:`pcsim.field`):
    Python code holds them as tuples; :meth:`kernel_form` is what the kernels take."""

    phis: Layers  # phi(x_i) per weight layer, (B, n_i); phis[0] unused, (B, 1)
    eps: Layers  # eps_{i+1}, (B, n_{i+1})
    back: Layers  # eps_{l+1} W_{l+1} per value layer, (B, n_l)
    noise: Layers  # standard normal draws per value layer, (B, n_l)
    grads_w: Layers  # -dF/dW_{i+1}
    grads_b: Layers  # -dF/db_{i+1}
    read_fwd: Layers  # read-noise draws of the predictions, (B, n_{i+1})
    read_bwd: Layers  # read-noise draws of the top-down sums, (B, n_l)
    zeros: Layers  # shaped like x_l, never written: the kernels' absent terms
    prods: Layers  # W_{i+1} phi(x_i) kept between steps; prods[0] is prod0
    states: Layers  # activities of steps that keep none (PC's fused step)
    prod0: np.ndarray  # x_0 @ W_1.T, hoisted out of runs with a clamped input

    @classmethod
    def allocate(
        cls,
        sizes: Sequence[int],
        batch: int,
        dtype: np.dtype,
        weight_shapes: Sequence[tuple[int, int]] | None = None,
    ) -> Workspace:
        """The buffers of a network with layer ``sizes`` at batch size ``batch``."""
        L = len(sizes) - 1
        if weight_shapes is None:
            weight_shapes = [(sizes[i + 1], sizes[i]) for i in range(L)]
        prod0 = np.zeros((batch, sizes[1]), dtype)
        return cls(
            phis=tuple(np.empty((batch, sizes[i] if i > 0 else 1), dtype) for i in range(L)),
            eps=tuple(np.empty((batch, sizes[i + 1]), dtype) for i in range(L)),
            back=tuple(np.empty((batch, sizes[i]), dtype) for i in range(L + 1)),
            noise=tuple(np.zeros((batch, n), dtype) for n in sizes),
            grads_w=tuple(np.empty(shape, dtype) for shape in weight_shapes),
            grads_b=tuple(np.empty(sizes[i + 1], dtype) for i in range(L)),
            read_fwd=tuple(np.zeros((batch, sizes[i + 1]), dtype) for i in range(L)),
            read_bwd=tuple(np.zeros((batch, sizes[i]), dtype) for i in range(L + 1)),
            zeros=tuple(np.zeros((batch, n), dtype) for n in sizes),
            prods=(prod0,) + tuple(np.zeros((batch, n), dtype) for n in sizes[2:]),
            states=tuple(np.zeros((batch, n), dtype) for n in sizes),
            prod0=prod0,
        )

    def kernel_form(self) -> Workspace:
        """The same buffers with every per-layer field as :func:`seq` gives it."""
        return Workspace(*(seq(v) for v in self[:-1]), self.prod0)


# The per-step kernels take only the Workspace fields they read: numba unboxes every typed
# List of an argument at every call (about 1 us each), so the whole Workspace (11 Lists) three
# times a step cost a fifth of a batch-1 step of 784-256-256-10 (benchmarks/RESULTS.md).
class ErrorBuffers(NamedTuple):
    """What :func:`compute_errors` reads and writes of a :class:`Workspace`."""

    phis: Layers
    eps: Layers
    read_fwd: Layers


class ActivityBuffers(NamedTuple):
    """What :func:`update_activities` reads and writes of a :class:`Workspace`."""

    eps: Layers
    back: Layers
    read_bwd: Layers
    phis: Layers
    zeros: Layers
    noise: Layers


class FeedforwardBuffers(NamedTuple):
    """What :func:`feedforward` writes of a :class:`Workspace`."""

    phis: Layers
    prods: Layers


class StepBuffers(NamedTuple):
    """What one Euler step (:func:`euler_step`) reads and writes of a :class:`Workspace`."""

    phis: Layers
    eps: Layers
    read_fwd: Layers
    back: Layers
    read_bwd: Layers
    zeros: Layers
    noise: Layers
    prod0: np.ndarray


class GradientBuffers(NamedTuple):
    """What :func:`weight_gradients` reads and writes of a :class:`Workspace`."""

    phis: Layers
    eps: Layers
    grads_w: Layers
    grads_b: Layers


def step_buffers(kws: Workspace) -> tuple[ErrorBuffers, StepBuffers, GradientBuffers]:
    """The per-step kernels' parts of the kernel-form workspace ``kws`` (the same arrays and
    Lists; callers keep them, e.g. in a :class:`GroupCache`, so that :func:`call` finds them
    by identity)."""
    return (
        ErrorBuffers(kws.phis, kws.eps, kws.read_fwd),
        StepBuffers(
            kws.phis,
            kws.eps,
            kws.read_fwd,
            kws.back,
            kws.read_bwd,
            kws.zeros,
            kws.noise,
            kws.prod0,
        ),  # fmt: skip
        GradientBuffers(kws.phis, kws.eps, kws.grads_w, kws.grads_b),
    )


class Batch1Buffers(NamedTuple):
    """Scratch of :func:`ipc_presentation_batch1` (1-D per layer)."""

    phis: Layers  # phi(x_l), (n_l,)
    eps: Layers  # eps_{i+1}, (n_{i+1},)
    backs: Layers  # W_{l+1}^T eps_{l+1}, (n_l,)
    pend_e: Layers  # the pending rank-1 change of each W: lr a eps ...
    pend_p: Layers  # ... times these presynaptic values
    base: np.ndarray  # W_1(0) x_0, (n_1,)
    F: np.ndarray  # sum of lr a_1 eps_1 over the steps so far, (n_1,)

    @classmethod
    def allocate(cls, sizes: Sequence[int], dtype: np.dtype) -> Batch1Buffers:
        """Zeroed buffers, per-layer fields as tuples (:meth:`kernel_form` for the kernel)."""
        return cls(
            tuple(np.zeros(n, dtype) for n in sizes),
            tuple(np.zeros(n, dtype) for n in sizes[1:]),
            tuple(np.zeros(n, dtype) for n in sizes),
            tuple(np.zeros(n, dtype) for n in sizes[1:]),
            tuple(np.zeros(n, dtype) for n in sizes[:-1]),
            np.zeros(sizes[1], dtype),
            np.zeros(sizes[1], dtype),
        )

    def kernel_form(self) -> Batch1Buffers:
        """The same buffers with every per-layer field as :func:`seq` gives it."""
        return Batch1Buffers(*(seq(v) for v in self[:5]), self.base, self.F)


# -- calling a kernel with named groups without the dispatcher's typing cost --------------
# numba types a nested tuple (every named group) in Python at every call, about 0.6 us per
# array: a Workspace alone costs ~30 us, a clocked step ~130 us (18 % of a 784-256-256-10
# step at batch 64). :func:`call` remembers the compiled function per argument key instead.
_ENTRY: dict[tuple, tuple[Any, list]] = {}
_BY_ID: dict[tuple, tuple[Any, tuple]] = {}  # (kernel, ids of the arguments): entry, arguments
ENTRY_CACHE_SIZE = 64  # remembered keys (each keeps its arrays alive); then starts afresh
_GROUP_KEY: dict[int, tuple[Any, tuple]] = {}  # a named group's key, by the group's identity
_TYPE_TOKEN: dict[Any, int] = {}  # a small int per numba List type seen (cheap to hash)


def _arg_key(a, keep: list):
    """A key that fixes ``a``'s numba type: an array by dtype, dimensions and layout; a
    tuple by its items' keys; a named group by its fields' keys, remembered by the group's
    identity (the group kept alive in ``keep``, so the identity stays its own; its arrays are
    not reshaped in place); a typed List by its numba type; a scalar by its type."""
    if isinstance(a, np.ndarray):
        return (a.dtype.str, a.ndim, a.flags.num)  # num: contiguity, alignment, writeable
    if isinstance(a, tuple):
        if type(a) is tuple:  # a per-layer sequence: by its items' keys
            return ("s",) + tuple(_arg_key(v, keep) for v in a)
        keep.append(a)  # holds its fields
        hit = _GROUP_KEY.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        key = (type(a),) + tuple(_arg_key(v, []) for v in a)
        if len(_GROUP_KEY) >= ENTRY_CACHE_SIZE:
            _GROUP_KEY.clear()
        _GROUP_KEY[id(a)] = (a, key)
        return key
    if isinstance(a, (bool, int, float, np.generic)):
        return type(a)
    if isinstance(a, List):  # by a token of its numba type, remembered by identity (hashing
        hit = _GROUP_KEY.get(id(a))  # a numba type, at every lookup, costs more than the call)
        if hit is not None and hit[0] is a:
            return hit[1]
        keep.append(a)
        key = ("L", _TYPE_TOKEN.setdefault(a._numba_type_, len(_TYPE_TOKEN)))
        if len(_GROUP_KEY) >= ENTRY_CACHE_SIZE:
            _GROUP_KEY.clear()
        _GROUP_KEY[id(a)] = (a, key)
        return key
    keep.append(a)
    return ("o", id(a))


def call(kernel, *args):
    """``kernel(*args)`` through its compiled function for these argument types, found once
    per argument key (:func:`_arg_key`) by the dispatcher and remembered; the same result,
    without typing the named groups again at every call. The very same argument objects
    (a step's groups, kept by the engine) are looked up by identity first: ids are cheaper
    to hash than types (the objects are held by the cache, so their ids stay theirs)."""
    ids = (kernel, *map(id, args))
    hit = _BY_ID.get(ids)
    if hit is not None:
        return hit[0](*args)
    keep: list = []
    key = (kernel, *(_arg_key(a, keep) for a in args))
    hit = _ENTRY.get(key)
    if hit is not None:
        if len(_BY_ID) >= ENTRY_CACHE_SIZE:
            _BY_ID.clear()
        _BY_ID[ids] = (hit[0], args)
        return hit[0](*args)
    out = kernel(*args)
    sig = tuple(kernel.typeof_pyval(a) for a in args)
    ovl = kernel.overloads.get(sig)
    if ovl is not None:
        if len(_ENTRY) >= ENTRY_CACHE_SIZE:
            _ENTRY.clear()
        _ENTRY[key] = (ovl.entry_point, keep)
    return out


class GroupCache:
    """Kernel-argument groups built once per key (the identities of the objects a group is
    built from, which the cache keeps alive so that their ids stay theirs): a run passes the
    same weights, units and buffers at every step, and :func:`call` finds a group it has seen
    by identity. Copies start empty (a group may hold typed Lists)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._groups: dict[tuple, tuple[Any, tuple]] = {}

    def get(self, key: tuple, keep: tuple, build):
        """The group for ``key``, from ``build()`` the first time (``keep``: what it reads)."""
        hit = self._groups.get(key)
        if hit is None:
            if len(self._groups) >= self.size:
                self._groups.clear()
            hit = self._groups[key] = (build(), keep)
        return hit[0]

    def __getstate__(self) -> dict:
        return {"size": self.size, "_groups": {}}


def net_args(net, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> Net:
    """:class:`Net` of a :class:`pcsim.network.Network` with the weights as read now (the
    biases: zeros where the network has none)."""
    return Net(
        seq(weights),
        seq(biases),
        net.has_bias,
        np.asarray(net.scales, np.float64),
        np.asarray(net.residual, np.bool_),
        ACTIVATION_CODES[net.activation],
    )


def unit_args(units, gammas: Sequence[np.ndarray], rails: tuple[float, float]) -> Units:
    """:class:`Units` from a :class:`pcsim.field.UnitParams`, the Euler rates and the rails."""
    lo, hi = rails
    return Units(
        seq(units.error_gain),
        seq(units.error_offset),
        seq(gammas),
        seq(units.leak),
        float(lo),
        float(hi),
    )


@njit(cache=True, inline="always", error_model="numpy")
def _phi(v, act):
    if act == TANH:
        return _tanh(v)
    if act == RELU:
        return v if v > 0 else 0.0 * v
    if act == LEAKY_RELU:
        return v if v > 0 else LEAKY_SLOPE * v
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-v))
    return v


@njit(cache=True, inline="always", error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _fill_phi(x, p, act):
    """``p = phi(x)`` for a 2-D layer, one loop per activation (so each loop vectorises)."""
    B, n = x.shape
    zero, slope = x.dtype.type(0.0), x.dtype.type(LEAKY_SLOPE)
    if act == TANH:
        for b in range(B):
            for j in range(n):
                p[b, j] = _tanh(x[b, j])
    elif act == RELU:
        for b in range(B):
            for j in range(n):
                v = x[b, j]
                p[b, j] = v if v > 0 else zero * v
    elif act == LEAKY_RELU:
        for b in range(B):
            for j in range(n):
                v = x[b, j]
                p[b, j] = v if v > 0 else slope * v
    elif act == SIGMOID:
        for b in range(B):
            for j in range(n):
                p[b, j] = 1.0 / (1.0 + np.exp(-x[b, j]))
    else:  # linear
        for b in range(B):
            for j in range(n):
                p[b, j] = x[b, j]


@njit(cache=True, inline="always", error_model="numpy")
def _row_norm(a, b):
    acc = 0.0
    for j in range(a.shape[1]):
        acc += a[b, j] * a[b, j]
    return np.sqrt(acc)


@njit(cache=True, error_model="numpy")
def compute_errors(xs, net, units, noise, ws, prod0, use_prod0):
    """eps_l = gain_l * (x_l - mu_l) + offset_l for l = 1..L, into ``ws.eps``; ``ws.phis[i] =
    phi(x_i)`` for i >= 1.

    ``phis[0]`` is unused (the input is not squashed). ``eps[i]`` holds eps_{i+1}. With
    ``noise.read_on``, each prediction carries the crossbar's read noise in the output domain:
    ``mu += a * read_sig[i] * ||phi(x_i)|| * read_fwd[i]`` (see ``Crossbar.read_mean``).
    ``use_prod0``: ``prod0`` holds ``x_0 @ W_1.T`` computed earlier (a clamped input under
    frozen weights; otherwise it is not read). Arithmetic is in the activities' dtype (scales
    cast to it, as numpy does with a Python float and a float32 array).
    """
    Ws, bs, scales, residual, act = net.Ws, net.bs, net.scales, net.residual, net.act
    egain, e_offset = units.egain, units.e_offset
    read_sig, read_noise = noise.read_sig, noise.read_on
    phis, eps, zf = ws.phis, ws.eps, ws.read_fwd
    L = len(Ws)
    for i in range(L):
        x_prev = xs[i]
        e = eps[i]
        prod = e  # the product a_l W_l phi(x_{l-1}) is formed in eps, or was formed before
        if i > 0:
            _fill_phi(x_prev, phis[i], act)
            np.dot(phis[i], Ws[i].T, e)
        elif not use_prod0:
            np.dot(x_prev, Ws[i].T, e)
        else:
            prod = prod0
        x = xs[i + 1]
        a = x.dtype.type(scales[i])
        src = phis[i] if i > 0 else x_prev
        g, o, bias, sig = egain[i + 1], e_offset[i + 1], bs[i], read_sig[i]
        z = zf[i]
        noisy = read_noise and sig > 0
        if noisy or (use_prod0 and i == 0):  # noise, or the product in another array
            _prediction_errors(e, prod, x, a, g, o, bias, x_prev, src, z, sig, residual[i], noisy)
        elif residual[i]:
            _error_rows_in_place(e, x, a, g, o, bias, x_prev, True)
        else:
            _error_rows_in_place(e, x, a, g, o, bias, x_prev, False)


@njit(cache=True, inline="always", error_model="numpy")
def _error_rows_in_place(e, x, a, g, o, bias, skip, has_skip):
    """:func:`_error_rows` without read noise, with the product already in ``e``: a loop
    that reads and writes one array (two aliasing arguments would defeat vectorisation,
    LLVM's overlap check failing at run time)."""
    B, n = x.shape
    for b in range(B):
        for j in range(n):
            mu = a * e[b, j] + bias[j]
            if has_skip:
                mu += skip[b, j]
            e[b, j] = g[j] * (x[b, j] - mu) + o[j]


@njit(cache=True, inline="always", error_model="numpy")
def _error_rows(e, prod, x, a, g, o, bias, skip, src, z, sig, has_skip, noisy):
    """``e = g (x - mu) + o`` with ``mu = a prod [+ nz z] + bias [+ skip]``, where the read
    noise of a row is ``nz = a sig ||src_b||``; called with constant flags so that each
    variant is its own loop."""
    B, n = x.shape
    for b in range(B):
        nz = x.dtype.type(a * sig * _row_norm(src, b)) if noisy else x.dtype.type(0.0)
        for j in range(n):
            mu = a * prod[b, j]
            if noisy:
                mu += nz * z[b, j]
            mu += bias[j]
            if has_skip:
                mu += skip[b, j]
            e[b, j] = g[j] * (x[b, j] - mu) + o[j]


@njit(cache=True, error_model="numpy")
def _prediction_errors(e, prod, x, a, g, o, bias, skip, src, z, sig, has_skip, noisy):
    """:func:`_error_rows` with its flags given at run time and taken outside the loop: one
    compiled function (per signature) that every caller shares, rather than four loops
    inlined into each call site."""
    if noisy:
        if has_skip:
            _error_rows(e, prod, x, a, g, o, bias, skip, src, z, sig, True, True)
        else:
            _error_rows(e, prod, x, a, g, o, bias, skip, src, z, sig, False, True)
    elif has_skip:
        _error_rows(e, prod, x, a, g, o, bias, skip, src, z, sig, True, False)
    else:
        _error_rows(e, prod, x, a, g, o, bias, skip, src, z, sig, False, False)


@njit(cache=True, inline="always", error_model="numpy")
def _relax_loop(x, gam, lk, below, top, skip, p, s, mode, below_zero, lo, hi):
    """``x += gam (-lk x - below + T + skip)``, clipped to ``[lo, hi]``, with the top-down
    term ``T`` from ``top`` by ``mode`` (see :func:`_relax`; mode 4 is relu and leaky relu,
    ``below_zero`` their ``phi'`` at ``v <= 0``). Called with a constant mode, so that each
    mode is its own loop (one loop choosing among modes at run time does not vectorise)."""
    B, n = x.shape
    one = x.dtype.type(1.0)
    for b in range(B):
        for j in range(n):
            v = x[b, j]
            d = -lk[j] * v - below[b, j]
            if mode == 1:
                d += s * top[b, j]
            elif mode == 2:
                q = p[b, j]
                d += s * top[b, j] * (one - q * q)
            elif mode == 3:
                q = p[b, j]
                d += s * top[b, j] * (q * (one - q))
            elif mode == 4:
                d += s * top[b, j] * (one if v > 0 else below_zero)
            d += skip[b, j]
            v += gam[j] * d
            x[b, j] = min(max(v, lo), hi)


@njit(cache=True, error_model="numpy")
def _relax(x, gam, lk, below, top, skip, p, s, mode, amp, z, noisy, lo, hi):
    """``x += gam (-lk x - below + T + skip) [+ amp z]``, clipped to ``[lo, hi]`` (scalars
    cast to the activities' dtype), with the top-down term ``T`` from ``top`` by ``mode``: 0
    absent, 1 ``s top`` (input layer or linear), 2 ``s top (1 - p^2)`` (tanh), 3
    ``s top p (1 - p)`` (sigmoid), 4 relu, 5 leaky relu. ``skip`` is a zero array when the
    layer has no skip connection (adding it is data, not a compiled variant: the sum differs
    from leaving it out at most in the sign of a zero). With ``noisy``, the noise is added
    in a second pass over ``x``, the Euler step having been stored unclipped: the same
    operations in the same order as one fused loop, so each loop is compiled once per mode
    (5 loops, not the 24 of every flag combination)."""
    t = x.dtype.type  # constants in the activities' dtype: a float64 literal would widen the
    s, lo, hi = t(s), t(lo), t(hi)  # whole loop (2.5x slower in float32)
    lo1, hi1 = (t(-np.inf), t(np.inf)) if noisy else (lo, hi)
    bz = t(LEAKY_SLOPE) if mode == 5 else t(0.0)
    if mode == 0:
        _relax_loop(x, gam, lk, below, top, skip, p, s, 0, bz, lo1, hi1)
    elif mode == 1:
        _relax_loop(x, gam, lk, below, top, skip, p, s, 1, bz, lo1, hi1)
    elif mode == 2:
        _relax_loop(x, gam, lk, below, top, skip, p, s, 2, bz, lo1, hi1)
    elif mode == 3:
        _relax_loop(x, gam, lk, below, top, skip, p, s, 3, bz, lo1, hi1)
    else:
        _relax_loop(x, gam, lk, below, top, skip, p, s, 4, bz, lo1, hi1)
    if noisy:
        B, n = x.shape
        for b in range(B):
            for j in range(n):
                v = x[b, j] + amp[j] * z[b, j]
                x[b, j] = min(max(v, lo), hi)


@njit(cache=True, inline="always", error_model="numpy")
def _top_down_mode(l, act):
    """:func:`_relax`'s ``mode`` for layer ``l`` (the input layer is not squashed)."""
    if l == 0 or act == LINEAR:
        return 1
    if act == TANH:
        return 2
    if act == SIGMOID:
        return 3
    if act == RELU:
        return 4
    return 5


@njit(cache=True, error_model="numpy")
def update_activities(xs, net, units, noise, free, ws):
    """x_l += gamma_l * (-eps_l + phi'(x_l) a_{l+1} eps_{l+1} W_{l+1} [+ eps_{l+1}] - leak x_l)
    (+ amp_l * noise_l), then clipped to the rails; only layers with ``free[l]``.

    ``units.gammas[l]`` is dt / tau per unit (tau mismatch enters here), ``ws.noise[l]``
    standard normal draws and ``noise.amp[l]`` = sigma * sqrt(gamma) per unit
    (Euler-Maruyama, with ``noise.on``). With ``noise.read_on``, the top-down sum carries the
    read noise of ``W_{l+1}`` in the output domain: ``back += read_sig[l] * ||eps_{l+1}|| *
    read_bwd[l]``. ``ws.phis`` are the ``phi(x_l)`` that :func:`compute_errors` left
    (``phi'`` is taken from them); ``ws.back[l]`` ends holding ``eps_{l+1} W_{l+1}``.
    """
    Ws, scales, residual, act = net.Ws, net.scales, net.residual, net.act
    gammas, leaks, rail_lo, rail_hi = units.gammas, units.leaks, units.rail_lo, units.rail_hi
    noise_amp, use_noise, read_sig, read_noise = noise.amp, noise.on, noise.read_sig, noise.read_on
    eps, back, zb, phis, zeros, draws = ws.eps, ws.back, ws.read_bwd, ws.phis, ws.zeros, ws.noise
    L = len(Ws)
    for l in range(L + 1):
        if not free[l]:
            continue
        x = xs[l]
        B, n = x.shape
        top = zeros[l]
        skip = zeros[l]
        p = zeros[l]
        s = 0.0
        mode = 0
        if l < L:
            top = back[l]
            np.dot(eps[l], Ws[l], top)
            if read_noise and read_sig[l] > 0:
                e_top, z = eps[l], zb[l]  # typed-List items read once, not per element
                for b in range(B):
                    nz = read_sig[l] * _row_norm(e_top, b)
                    for j in range(n):
                        top[b, j] += nz * z[b, j]
            s = scales[l]
            mode = _top_down_mode(l, act)
            if l > 0:
                p = phis[l]
            if residual[l]:
                skip = eps[l]
        below = eps[l - 1] if l > 0 else zeros[l]
        _relax(
            x, gammas[l], leaks[l], below, top, skip, p, s, mode, noise_amp[l], draws[l],
            use_noise, rail_lo, rail_hi,
        )  # fmt: skip


@njit(cache=True, error_model="numpy")
def euler_step(xs, net, units, noise, free, bufs):
    """One Euler(-Maruyama) step of the free layers: :func:`compute_errors` then
    :func:`update_activities` in one call (the thermal draws already in ``bufs.noise``, the
    read-noise draws in ``bufs.read_fwd`` / ``bufs.read_bwd``)."""
    compute_errors(
        xs, net, units, noise, ErrorBuffers(bufs.phis, bufs.eps, bufs.read_fwd), bufs.prod0, _NO
    )
    act = ActivityBuffers(bufs.eps, bufs.back, bufs.read_bwd, bufs.phis, bufs.zeros, bufs.noise)
    update_activities(xs, net, units, noise, free, act)


@njit(cache=True, error_model="numpy")
def weight_gradients(xs, net, ws, skip_w0):
    """-dF/dW_l = (a_l / B) eps_l^T phi(x_{l-1}) and -dF/db_l = mean eps_l, from ``ws.eps``
    and ``ws.phis`` (``xs[0]``: the input) into ``ws.grads_w`` and ``ws.grads_b``
    (``skip_w0``: all but ``-dF/dW_1``, which :func:`euler_run` folds)."""
    phis, eps, grads_w, grads_b = ws.phis, ws.eps, ws.grads_w, ws.grads_b
    scales, has_bias = net.scales, net.has_bias
    L = len(eps)
    B = xs[0].shape[0]
    for i in range(L):
        if i > 0 or not skip_w0:
            src = xs[0] if i == 0 else phis[i]
            np.dot(eps[i].T, src, grads_w[i])
            gw = grads_w[i]
            s = gw.dtype.type(scales[i] / B)  # as numpy scales a float32 array by a float
            for r in range(gw.shape[0]):
                for c in range(gw.shape[1]):
                    gw[r, c] *= s
        if has_bias:
            gb = grads_b[i]
            e = eps[i]
            acc = np.zeros(gb.shape[0])  # float64 sums, each over b in order
            for b in range(B):
                for j in range(gb.shape[0]):
                    acc[j] += e[b, j]
            for j in range(gb.shape[0]):
                gb[j] = acc[j] / B


@njit(cache=True, error_model="numpy")
def add_scaled(params, directions, lr):
    """``p += lr * d`` in place for 2-D arrays, rounded as numpy rounds it (``lr`` cast to the
    arrays' dtype, the product rounded, then the sum): plain SGD without temporaries."""
    for i in range(len(params)):
        p, d = params[i], directions[i]
        c = p.dtype.type(lr)
        for r in range(p.shape[0]):
            for col in range(p.shape[1]):
                p[r, col] += c * d[r, col]


# fastmath: reassociated sums vectorise (tested equal to the step path to 1e-12)
@njit(cache=True, fastmath=True, error_model="numpy")
def ipc_presentation_batch1(xs, net, free, gamma, lr, n_steps, fold0, bufs):
    """``n_steps`` synchronous Euler steps of iPC with a plain SGD weight step after each (batch
    1, no biases or skips, ideal units), in place on ``xs`` (1-D per layer) and ``net.Ws``
    (``bufs``: :class:`Batch1Buffers`): the same
    equations as ClockedEngine.step + IPC's learning, with the loops reassociated:

    - each weight matrix is swept twice per step: once to apply the previous step's rank-1
      change ``lr a eps phi^T`` while accumulating ``mu = a W phi`` (so W is read and written
      once), once for the top-down sum ``W^T eps`` (only where the presynaptic layer is free);
    - ``fold0``: with the input layer clamped, ``W_1(t) x_0 = W_1(0) x_0 + F(t) (x_0 . x_0)``
      with ``F = sum lr a_1 eps_1`` (exact algebra), so ``W_1`` is read once and written once
      per presentation instead of every step.
    """
    phis, eps, backs, pend_e, pend_p, base, F = bufs
    Ws, scales, act = net.Ws, net.scales, net.act
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
            # typed-List items read once per layer, not per unit
            e_below = eps[l - 1] if l > 0 else eps[0]
            bk_l = backs[l] if l < L else backs[0]
            ph_l = phis[l] if l < L else phis[0]
            for j in range(x.shape[0]):
                v = x[j]
                d = 0.0
                if l > 0:
                    d -= e_below[j]
                if l < L:
                    t = scales[l] * bk_l[j]
                    if l > 0:
                        if act == TANH:  # phi' from phi(x(t)), as pcsim's 1 - tanh(x)^2
                            p = ph_l[j]
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


@njit(cache=True, error_model="numpy")
def feedforward(xs, net, units, chip_units, ws):
    """The bottom-up pass of :func:`pcsim.field.feedforward` into ``xs[1:]`` (``xs[0]`` given):
    ``x_l = mu_l`` or, with ``chip_units``, ``(g mu_l - o) / (g + leak)``. Leaves each
    product ``W_l phi(x_{l-1})`` in ``ws.prods[l-1]`` and ``phi(x_l)`` in ``ws.phis[l]``,
    which a frozen-weight run (:func:`euler_run` with ``ff_ready``) starts from (``ws``: a
    :class:`FeedforwardBuffers`, the two fields of the :class:`Workspace` it writes)."""
    Ws, bs, scales, residual, act = net.Ws, net.bs, net.scales, net.residual, net.act
    egain, e_offset, leaks = units.egain, units.e_offset, units.leaks
    phis, prods = ws.phis, ws.prods
    L = len(Ws)
    for i in range(L):
        x_prev = xs[i]
        x = xs[i + 1]
        prod = prods[i]
        if i == 0:
            np.dot(x_prev, Ws[0].T, prod)
        else:
            _fill_phi(x_prev, phis[i], act)
            np.dot(phis[i], Ws[i].T, prod)
        a = x.dtype.type(scales[i])
        bias, g, o, k = bs[i], egain[i + 1], e_offset[i + 1], leaks[i + 1]
        res = residual[i]
        B, n = x.shape
        for b in range(B):
            for j in range(n):
                mu = a * prod[b, j] + bias[j]
                if res:
                    mu += x_prev[b, j]
                if chip_units:
                    mu = (g[j] * mu - o[j]) / (g[j] + k[j])
                x[b, j] = mu


@njit(cache=True, error_model="numpy")
def any_diverged(xs, free, bound):
    """True if a free layer holds a non-finite value or one beyond ``bound`` in magnitude
    (:func:`pcsim.engines.clocked.check_finite`'s test; a row at a time, without a branch
    per value, so that the loop vectorises)."""
    for l in range(len(xs)):
        if not free[l]:
            continue
        x = xs[l]
        for b in range(x.shape[0]):
            bad = False
            for j in range(x.shape[1]):
                bad |= not abs(x[b, j]) <= bound
            if bad:
                return True
    return False


@njit(cache=True, error_model="numpy")
def _any_nonzero(a):
    """True if the 2-D array ``a`` holds a nonzero element (stops at the first)."""
    for b in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[b, j] != 0:
                return True
    return False


@njit(cache=True, inline="always", error_model="numpy")
def _layer_step_loop(x, e, p, gam, lk, top, skip, s, mode, bz, lo, hi, prod, a, g, o, bias, prev):
    """One Euler step of a hidden layer fused with what its new value feeds: ``x += gam (-lk x
    - e + T + skip)`` clipped to ``[lo, hi]`` (``T`` from ``top`` by ``mode`` as in
    :func:`_relax`, ``e`` the layer's own error), then ``p = phi(x)`` and the layer's
    error at the new state, ``e = g (x - mu) + o`` with ``mu = a prod + bias + prev``. ``e``
    and ``p`` hold the old values on entry; each element is read before it is written (one
    array per role, so the loop vectorises). Absent terms are zero arrays."""
    B, n = x.shape
    t = x.dtype.type
    one = t(1.0)
    for b in range(B):
        for j in range(n):
            v = x[b, j]
            q = p[b, j]
            d = -lk[j] * v - e[b, j]
            if mode == 1:
                d += s * top[b, j]
            elif mode == 2:
                d += s * top[b, j] * (one - q * q)
            elif mode == 3:
                d += s * top[b, j] * (q * (one - q))
            else:  # relu, leaky relu: bz is phi' at v <= 0
                d += s * top[b, j] * (one if v > 0 else bz)
            d += skip[b, j]
            v += gam[j] * d
            v = min(max(v, lo), hi)
            x[b, j] = v
            if mode == 2:
                p[b, j] = _tanh(v)
            elif mode == 3:
                p[b, j] = 1.0 / (1.0 + np.exp(-v))
            elif mode == 4:
                p[b, j] = v if v > 0 else bz * v
            else:
                p[b, j] = v
            mu = a * prod[b, j]
            mu += bias[j]
            mu += prev[b, j]
            e[b, j] = g[j] * (v - mu) + o[j]


@njit(cache=True, error_model="numpy")
def _layer_step(x, e, p, gam, lk, top, skip, s, mode, lo, hi, prod, a, g, o, bias, prev):
    """:func:`_layer_step_loop` with the mode taken outside the loop (relu and leaky relu
    share one loop, their slope below zero given as data)."""
    bz = x.dtype.type(LEAKY_SLOPE) if mode == 5 else x.dtype.type(0.0)
    if mode == 1:
        _layer_step_loop(x, e, p, gam, lk, top, skip, s, 1, bz, lo, hi, prod, a, g, o, bias, prev)
    elif mode == 2:
        _layer_step_loop(x, e, p, gam, lk, top, skip, s, 2, bz, lo, hi, prod, a, g, o, bias, prev)
    elif mode == 3:
        _layer_step_loop(x, e, p, gam, lk, top, skip, s, 3, bz, lo, hi, prod, a, g, o, bias, prev)
    else:
        _layer_step_loop(x, e, p, gam, lk, top, skip, s, 4, bz, lo, hi, prod, a, g, o, bias, prev)


@njit(cache=True, inline="always", error_model="numpy")
def _frozen_error(i, xs, prods, eps, scales, residual, egain, e_offset, bs):
    """eps[i] (the error of layer i + 1) from its stored prediction product."""
    x, e = xs[i + 1], eps[i]
    a = x.dtype.type(scales[i])
    g, o, bias = egain[i + 1], e_offset[i + 1], bs[i]
    _prediction_errors(e, prods[i], x, a, g, o, bias, xs[i], x, e, 0.0, residual[i], _NO)


@njit(cache=True, error_model="numpy")
def _settle_frozen(sched, xs, net, units, free, ws, ff_ready):
    """:func:`euler_run` with frozen weights and a clamped input, computing only what changed,
    and leaving the errors of the final state in ``eps`` (their inputs in ``phis``): what
    PC's weight step learns from.

    Each step sweeps the layers upwards. A hidden layer's Euler step (from the errors and
    top-down products of the step's start: the sweep reaches a layer before the one above it
    changes) is fused with ``phi`` of its new value and its own error at the new state,
    whose prediction was formed just before from the new value below. A prediction product
    ``W_l phi(x_{l-1})`` is formed only after ``x_{l-1}`` moved, a top-down product
    ``eps_{l+1} W_{l+1}`` only for a new, nonzero error, and a layer whose drift terms are
    all exactly zero (no error on either side, no leak, unbounded rails) is not stepped. The
    results equal the full synchronous steps' (up to the sign of zeros). From a feedforward
    start (``ff_ready``: the pass left its products and ``phi``s) every error but the top one
    is zero and the output error reaches layer ``l`` only after ``L - l`` steps, so the
    first steps of a deep network cost little."""
    n_steps, check_every, bound = sched.n_steps, sched.check_every, sched.bound
    Ws, bs, scales, residual, act = net.Ws, net.bs, net.scales, net.residual, net.act
    egain, e_offset, gammas, leaks = units.egain, units.e_offset, units.gammas, units.leaks
    rail_lo, rail_hi = units.rail_lo, units.rail_hi
    phis, eps, back, zeros, prods = ws.phis, ws.eps, ws.back, ws.zeros, ws.prods
    L = len(Ws)
    t = xs[0].dtype.type
    lo, hi = t(rail_lo), t(rail_hi)
    if not ff_ready:
        np.dot(xs[0], Ws[0].T, prods[0])
        for l in range(1, L):
            _fill_phi(xs[l], phis[l], act)
            np.dot(phis[l], Ws[l].T, prods[l])
    bounded = rail_lo > -np.inf or rail_hi < np.inf
    nonzero = np.zeros(L, np.bool_)  # eps[i] has a nonzero element
    for i in range(L):
        _frozen_error(i, xs, prods, eps, scales, residual, egain, e_offset, bs)
        nonzero[i] = _any_nonzero(eps[i])
    back_ok = np.zeros(L, np.bool_)  # back[l] holds eps[l] @ Ws[l] for the current eps[l]
    leaky = np.zeros(L + 1, np.bool_)
    for l in range(L + 1):
        for j in range(leaks[l].shape[0]):
            leaky[l] = leaky[l] or leaks[l][j] != 0
    moved = np.zeros(L + 1, np.bool_)  # x_l moved in this step
    done, diverged = n_steps, False
    for k in range(n_steps):
        for l in range(L + 1):
            moved[l] = False
        for l in range(1, L + 1):
            if moved[l - 1]:  # the prediction of layer l from the new value below
                np.dot(phis[l - 1], Ws[l - 1].T, prods[l - 1])
            below_nz = nonzero[l - 1]
            moves = free[l] and (bounded or leaky[l] or below_nz or (l < L and nonzero[l]))
            if moves and l < L:
                top = zeros[l]
                if nonzero[l]:
                    if not back_ok[l]:
                        np.dot(eps[l], Ws[l], back[l])
                        back_ok[l] = True
                    top = back[l]
                skip = eps[l] if residual[l] else zeros[l]
                prev = xs[l - 1] if residual[l - 1] else zeros[l]
                _layer_step(
                    xs[l], eps[l - 1], phis[l], gammas[l], leaks[l], top, skip, t(scales[l]),
                    _top_down_mode(l, act), lo, hi, prods[l - 1], t(scales[l - 1]), egain[l],
                    e_offset[l], bs[l - 1], prev,
                )  # fmt: skip
                moved[l] = True
            elif moves:  # a free top layer: no top-down term, no phi needed
                _relax(
                    xs[L], gammas[L], leaks[L], eps[L - 1], zeros[L], zeros[L], zeros[L], 0.0,
                    _MODE_NONE, gammas[L], zeros[L], _NO, rail_lo, rail_hi,
                )  # fmt: skip
                moved[L] = True
                _frozen_error(L - 1, xs, prods, eps, scales, residual, egain, e_offset, bs)
            elif moved[l - 1]:  # only the prediction changed
                _frozen_error(l - 1, xs, prods, eps, scales, residual, egain, e_offset, bs)
            else:
                continue
            nonzero[l - 1] = _any_nonzero(eps[l - 1])
            back_ok[l - 1] = False
        if (k + 1) % check_every == 0 or k == n_steps - 1:
            if any_diverged(xs, free, bound):
                done, diverged = k + 1, True
                break
    return done, diverged


@njit(cache=True, error_model="numpy")
def pc_train_step(sched, xs, bottom, top, net, units, free, ws, sgd_lr):
    """PC's whole training step on the pure algorithm in one call, the same numbers as its
    parts: the feedforward pass from ``bottom`` into ``xs`` (ideal units), ``top`` clamped,
    :func:`_settle_frozen` for ``sched.n_steps`` with the final errors, the weight and bias
    gradients (``ws.grads_w``, ``ws.grads_b``) and, with ``sgd_lr > 0``, the plain SGD step
    in place (:func:`add_scaled`). Returns ``(steps_done, diverged)``; a diverged step
    learns nothing."""
    Ws, bs, has_bias = net.Ws, net.bs, net.has_bias
    grads_w, grads_b = ws.grads_w, ws.grads_b
    L = len(Ws)
    xs[0][...] = bottom
    feedforward(xs, net, units, _NO, FeedforwardBuffers(ws.phis, ws.prods))
    xs[L][...] = top
    done, diverged = _settle_frozen(sched, xs, net, units, free, ws, _YES)
    if diverged:
        return done, True
    weight_gradients(xs, net, GradientBuffers(ws.phis, ws.eps, ws.grads_w, ws.grads_b), _NO)
    if sgd_lr > 0:
        add_scaled(Ws, grads_w, sgd_lr)
        if has_bias:
            for i in range(L):
                b, g = bs[i], grads_b[i]
                c = b.dtype.type(sgd_lr)
                for j in range(b.shape[0]):
                    b[j] += c * g[j]
    return done, False


@njit(cache=True, error_model="numpy")
def euler_run(sched, xs, net, units, free, ws, mode):
    """``sched.n_steps`` deterministic Euler steps in one call: each exactly ``compute_errors``
    then ``update_activities`` (no noise), and with ``mode.learn`` the plain SGD step of iPC
    after each, ``W_l += lr * (-dF/dW_l)`` (``lr`` in the weights' dtype, rounded as numpy's
    ``W += lr * d``) and the same for biases. ``mode.hoist`` (clamped input, frozen weights):
    the steps of :func:`_settle_frozen`, which forms ``x_0 @ W_1.T`` once and every other product
    only when its input moved (``ff_ready``: the feedforward start left them in the
    workspace), and leaves the errors of the final state.

    ``fold0`` (learning with the input clamped): ``W_1`` is not rewritten at every step.
    After ``k`` steps ``W_1 = W_1(0) + F_k^T x_0`` with ``F_k = sum_{j<k} c eps_1(j)``,
    ``c = lr a_1 / B``, so ``x_0 W_1^T = x_0 W_1(0)^T + (x_0 x_0^T) F_k``: a ``B x B`` product
    per step replaces the two ``B x n_0`` ones, and ``W_1`` is written once at the end (exact
    algebra; the rounding differs from the step-by-step path at the last digits).

    The finite-value check runs on the same schedule as ``ClockedEngine.run`` (every
    ``check_every`` steps and after the last). Returns ``(steps_done, diverged, writes)``:
    ``writes[i]`` is the total absolute change ``sum |lr * d|`` written to ``W_{i+1}`` (what
    an exactly written crossbar is priced by, ``Circuit.exact_write_pulses``; not counted for
    ``W_1`` under ``fold0``).
    """
    n_steps, check_every, bound = sched.n_steps, sched.check_every, sched.bound
    hoist, ff_ready, learn, lr, fold0 = mode.hoist, mode.ff_ready, mode.learn, mode.lr, mode.fold0
    Ws, bs, has_bias, scales = net.Ws, net.bs, net.has_bias, net.scales
    if hoist and not learn:
        done, diverged = _settle_frozen(sched, xs, net, units, free, ws, ff_ready)
        return done, diverged, np.zeros(len(Ws))
    eps, grads_w, grads_b, prod0 = ws.eps, ws.grads_w, ws.grads_b, ws.prod0
    quiet = Noise(units.gammas, False, np.zeros(len(Ws)), False)  # no noise of either kind
    err_bufs = ErrorBuffers(ws.phis, ws.eps, ws.read_fwd)
    act_bufs = ActivityBuffers(ws.eps, ws.back, ws.read_bwd, ws.phis, ws.zeros, ws.noise)
    grad_bufs = GradientBuffers(ws.phis, ws.eps, ws.grads_w, ws.grads_b)
    x0 = xs[0]
    B = x0.shape[0]
    if fold0:
        np.dot(x0, Ws[0].T, prod0)
    if fold0:
        gram = np.empty((B, B), x0.dtype)
        np.dot(x0, x0.T, gram)
        F = np.zeros_like(prod0)
        cur = np.empty_like(prod0)
        c = lr * scales[0] / B
    else:  # unused, typed alike
        gram = np.empty((1, 1), x0.dtype)
        F = prod0
        cur = prod0
        c = 0.0
    writes = np.zeros(len(Ws))
    done, diverged = n_steps, False
    for k in range(n_steps):
        if fold0:
            np.dot(gram, F, cur)
            for b in range(B):
                for j in range(cur.shape[1]):
                    cur[b, j] += prod0[b, j]
            compute_errors(xs, net, units, quiet, err_bufs, cur, _YES)
        else:
            compute_errors(xs, net, units, quiet, err_bufs, prod0, _NO)
        update_activities(xs, net, units, quiet, free, act_bufs)
        if learn:
            weight_gradients(xs, net, grad_bufs, fold0)
            for i in range(len(Ws)):
                if i > 0 or not fold0:
                    W, g = Ws[i], grads_w[i]
                    moved = 0.0
                    for r in range(W.shape[0]):
                        for col in range(W.shape[1]):
                            d = lr * g[r, col]
                            moved += abs(d)
                            W[r, col] += d
                    writes[i] += moved
                if has_bias:
                    bi, gb = bs[i], grads_b[i]
                    for j in range(bi.shape[0]):
                        bi[j] += lr * gb[j]
            if fold0:
                e0 = eps[0]
                for b in range(B):
                    for j in range(F.shape[1]):
                        F[b, j] += c * e0[b, j]
        if (k + 1) % check_every == 0 or k == n_steps - 1:
            if any_diverged(xs, free, bound):
                done, diverged = k + 1, True
                break
    if fold0:
        W0 = Ws[0]
        delta = np.empty_like(W0)
        np.dot(F.T, x0, delta)
        for r in range(W0.shape[0]):
            for col in range(W0.shape[1]):
                W0[r, col] += delta[r, col]
    return done, diverged, writes
