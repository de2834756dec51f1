"""One run from a configuration: data -> network + chip + algorithm + engine -> trainer ->
results. This is what ``pcsim run`` calls, and what sweeps call per point."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pcsim import __version__, learning_rule, network, read_noise, stability
from pcsim import checkpoint as ckpt
from pcsim.algorithms import IPCEvents, make_algorithm
from pcsim.blas import limit_threads
from pcsim.circuit import Circuit
from pcsim.compare import baseline_summary
from pcsim.config import ConfigError, RunConfig
from pcsim.data import Dataset, load_dataset
from pcsim.engines.brian import BrianEngine
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.engines.events import EventsEngine
from pcsim.inference import (
    INFERENCE_DT,
    MAX_SETTLE_TIME,
    StopRequested,
    measure_feedforward,
    measure_inference,
    settle_steps,
)
from pcsim.optim import make_optimizer
from pcsim.periphery import accumulator_energy, management_summary
from pcsim.results import ResultsError, RunResult
from pcsim.train import History, Interrupted, Trainer


def prepare_data(cfg: RunConfig) -> Dataset:
    data = load_dataset(
        cfg.data.name, path=cfg.data.path, test_fraction=cfg.data.test_fraction, seed=cfg.seed
    )
    if cfg.data.limit_train is not None:
        n = cfg.data.limit_train
        data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    return data


def build_network(cfg: RunConfig, data: Dataset, seed: np.random.SeedSequence) -> network.Network:
    if cfg.network.conv is not None:
        return _build_conv_network(cfg, data, seed)
    d_in, n_cls = data.x_train.shape[1], data.n_classes
    bottom, top = (d_in, n_cls) if cfg.network.mode == "supervised" else (n_cls, d_in)
    sizes = cfg.network.sizes or (bottom, 128, 128, top)
    what = (
        "inputs"
        if cfg.network.mode == "supervised"
        else "classes (generative: label at the bottom)"
    )
    if sizes[0] != bottom:
        raise ConfigError(f"network.sizes[0] is {sizes[0]} but {cfg.data.name} has {bottom} {what}")
    if sizes[-1] != top:
        raise ConfigError(
            f"network.sizes[-1] is {sizes[-1]} but {cfg.data.name} needs {top} units on top"
        )
    return _build(cfg, sizes, seed)


def _build(
    cfg: RunConfig, sizes: tuple[int, ...], seed: np.random.SeedSequence, convs=None
) -> network.Network:
    """``network.build`` with the configuration's activation, parameterisation and dtype."""
    return network.build(
        sizes,
        cfg.network.activation,
        parameterisation=cfg.network.parameterisation,
        bias=cfg.network.bias,
        residual=cfg.network.residual,
        mode=cfg.network.mode,
        dtype=np.dtype(cfg.network.dtype),
        rng=np.random.default_rng(seed),
        convs=convs,
    )


def _build_conv_network(
    cfg: RunConfig, data: Dataset, seed: np.random.SeedSequence
) -> network.Network:
    """``network.conv`` on the data set's images, then the dense ``network.sizes`` on top."""
    from pcsim.config import conv_geometries

    geoms = conv_geometries(cfg)
    if geoms[0].n_in != data.x_train.shape[1]:
        raise ConfigError(
            f"network.conv: {cfg.data.name} images have {data.x_train.shape[1]} pixels, not "
            f"{geoms[0].n_in}"
        )
    dense = cfg.network.sizes or (geoms[-1].n_out, data.n_classes)
    if dense[-1] != data.n_classes:
        raise ConfigError(
            f"network.sizes[-1] is {dense[-1]} but {cfg.data.name} needs {data.n_classes} "
            "units on top"
        )
    sizes = (geoms[0].n_in,) + tuple(g.n_out for g in geoms) + tuple(dense[1:])
    return _build(cfg, sizes, seed, convs=tuple(geoms) + (None,) * (len(dense) - 1))


def make_clocked_engine(cfg: RunConfig) -> ClockedEngine:
    e = cfg.engine
    return ClockedEngine(method=e.method, dt=e.dt / e.tau_x, sigma=e.sigma, backend=e.backend)


def make_engine(cfg: RunConfig):
    """The training engine: clocked, the clock-free events engine, or Brian2."""
    e = cfg.engine
    if e.kind == "events":
        return EventsEngine(
            events_per_tau=e.events_per_tau,
            clock=e.clock,
            rate_jitter=e.rate_jitter,
            delay_up=e.delay_up / e.tau_x,
            delay_down=e.delay_down / e.tau_x,
            error_tau=e.error_tau / e.tau_x,
            sigma=e.sigma,
        )
    if e.kind == "brian2":
        return BrianEngine(dt=e.dt / e.tau_x, sigma=e.sigma, target=e.brian_target)
    return make_clocked_engine(cfg)


def make_training_algorithm(cfg: RunConfig):
    T = cfg.algorithm.presentation_time / cfg.engine.tau_x
    if cfg.engine.kind == "events":
        return IPCEvents(T=T, tau_w=cfg.tau_w, init=cfg.algorithm.init)
    return make_algorithm(cfg.algorithm.name, T=T, init=cfg.algorithm.init)


MAX_STEPS_PER_BATCH = 1_000_000  # engine steps per presentation or test-time settle
MAX_STEPS_PER_MEASUREMENT = 1_000_000  # engine steps of measure_inference (default: 1e4)
MAX_EVENTS_PER_BATCH = 100_000_000  # events engine: unit updates per presentation of a batch
MAX_BLAS_THREADS = 1024


def preflight(cfg: RunConfig, data: Dataset) -> None:
    """Reject configurations whose fields are each valid but cannot run together: more engine
    steps per batch than a run can take, a network larger than this machine's memory.
    ConfigError naming the field, before anything is built."""
    steps = cfg.algorithm.presentation_time / cfg.engine.dt
    if not steps <= MAX_STEPS_PER_BATCH:
        raise ConfigError(
            f"algorithm.presentation_time / engine.dt is {steps:.3g} engine steps per batch "
            f"(at most {MAX_STEPS_PER_BATCH:.0e}): raise engine.dt or lower presentation_time"
        )
    settle_dt = min(cfg.engine.dt / cfg.engine.tau_x, INFERENCE_DT)
    steps = cfg.algorithm.inference_time / cfg.engine.tau_x / settle_dt
    if not steps <= MAX_STEPS_PER_BATCH:
        raise ConfigError(
            f"algorithm.inference_time / engine.tau_x is {steps:.3g} settling steps of "
            f"{settle_dt:g} tau_x (at most {MAX_STEPS_PER_BATCH:.0e})"
        )
    if cfg.network.mode == "supervised":
        steps = settle_steps(cfg.gamma)
        if not steps <= MAX_STEPS_PER_MEASUREMENT:
            raise ConfigError(
                f"engine.dt / engine.tau_x = {cfg.gamma:.3g}: measuring inference settles up to "
                f"{MAX_SETTLE_TIME:g} tau_x in steps of {min(cfg.gamma, INFERENCE_DT):.3g} "
                f"tau_x, {steps:.3g} engine steps (at most {MAX_STEPS_PER_MEASUREMENT:.0e}); "
                "dt and tau_x share one unit: raise engine.dt or lower engine.tau_x"
            )
    if cfg.engine.kind == "events":
        T = cfg.algorithm.presentation_time / cfg.engine.tau_x
        sizes_ = cfg.network.sizes or (data.x_train.shape[1], 128, 128, data.n_classes)
        batch = min(cfg.learning.batch_size, max(len(data.x_train), 1))
        events = batch * sum(sizes_) * cfg.engine.events_per_tau * T
        if not events <= MAX_EVENTS_PER_BATCH:
            raise ConfigError(
                f"engine.events_per_tau = {cfg.engine.events_per_tau:g}: one batch would take "
                f"about {events:.3g} unit events (at most {MAX_EVENTS_PER_BATCH:.0e}); lower "
                "events_per_tau, algorithm.presentation_time or learning.batch_size"
            )
    if cfg.blas_threads > MAX_BLAS_THREADS:
        raise ConfigError(
            f"blas_threads must be at most {MAX_BLAS_THREADS}, got {cfg.blas_threads}"
        )
    sizes = cfg.network.sizes
    if sizes is not None:
        need = memory_estimate(cfg, data)
        have = _available_memory()
        if have and need > have:
            raise ConfigError(
                f"network.sizes: this run needs about {need / 2**30:.3g} GiB of memory, more "
                f"than the {have / 2**30:.3g} GiB available now; use smaller layers or "
                "learning.batch_size"
            )


# Peak memory per weight and per activity, measured (ru_maxrss of a whole `execute`, one epoch,
# 32 training images, batch 32, BP baseline on) on networks [64, h, 10], float32, rram chip:
# h = 2000: 288 MiB, h = 50000: 577 MiB, h = 100000: 894 MiB (the ideal chip at h = 50000:
# 518 MiB). The slope, 6.3 kB per hidden unit, is 85 bytes per weight with the batch buffers
# included (weights and their float64 device state, read buffers, gradients, Adam m and v,
# the BP copy with its own). The estimate below (84 bytes per float32 weight plus ten batch
# buffers, pcsim.circuit.Workspace) is 7.5 kB per hidden unit: about 20 % above the measured
# peak, never below it.
BYTES_PER_WEIGHT_ITEM = 21  # times the dtype's itemsize: 84 bytes per float32 weight
# ten batch buffers, plus the read-noise Ornstein-Uhlenbeck lines (pcsim.read_noise): a
# float64 state per unit and direction and the step means drawn beside it, eight float32
# equivalents per unit and sample (checked by benchmarks/memory_estimate.py)
BUFFERS_PER_ACTIVITY = 18


def memory_estimate(cfg: RunConfig, data: Dataset) -> int:
    """Bytes a run of ``cfg`` needs at its peak beyond the interpreter and compiled kernels
    (see ``BYTES_PER_WEIGHT_ITEM``, measured)."""
    sizes = cfg.network.sizes
    if sizes is None:
        return 0
    itemsize = np.dtype(cfg.network.dtype).itemsize
    n_params = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    batch = min(cfg.learning.batch_size, max(len(data.x_train), 1))
    return itemsize * (BYTES_PER_WEIGHT_ITEM * n_params + BUFFERS_PER_ACTIVITY * batch * sum(sizes))


def _available_memory() -> int:
    """Bytes the kernel says can be allocated now (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _physical_memory()


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


class _Checkpointer:
    """Writes a trainer's checkpoints by a policy; remembers where it last wrote."""

    def __init__(
        self,
        trainer: Trainer,
        policy: ckpt.Policy | None,
        config_text: str,
        fingerprint: str,
        elapsed,
    ) -> None:
        self.trainer, self.policy = trainer, policy
        self.config_text, self.fingerprint, self.elapsed = config_text, fingerprint, elapsed
        self.last: tuple[int, int] | None = None
        self.last_failure = ""

    def where(self) -> tuple[int, int]:
        t = self.trainer
        return len(t.history.epoch), t.step

    def snapshot(self) -> ckpt.Checkpoint:
        return ckpt.capture(
            self.trainer,
            config_text=self.config_text,
            fingerprint=self.fingerprint,
            policy=self.policy,
            elapsed_s=self.elapsed(),
        )

    def write(self, snap: ckpt.Checkpoint | None = None) -> None:
        """Write now (ResultsError if the file cannot be written)."""
        ckpt.save(self.policy.path, snap or self.snapshot())
        self.policy.written()
        self.last = self.where() if snap is None else None

    def periodic(self, snap: ckpt.Checkpoint | None = None) -> None:
        """Write if not already written at this position; a failure is a warning."""
        if snap is None and self.last == self.where():
            return
        try:
            self.write(snap)
        except ResultsError as exc:
            if str(exc) != self.last_failure:  # once per reason, not at every batch
                self.last_failure = str(exc)
                tqdm.write(
                    f"pcsim: warning: {exc}; training goes on (the previous checkpoint is "
                    "intact; this warning is not repeated for the same reason)",
                    file=sys.stderr,
                )

    def after_batch(self, tr: Trainer) -> None:
        if self.policy.due_after_batch(tr.step):
            self.periodic()

    def after_epoch(self, tr: Trainer) -> None:
        if self.policy.due_after_epoch(len(tr.history.epoch)):
            self.periodic()

    def interrupted(self, snap: ckpt.Checkpoint | None = None) -> Interrupted:
        """The exception to raise for Ctrl-C: the checkpoint is written first."""
        if self.policy is None:
            return Interrupted(None, "no checkpoint file was given")
        try:
            self.write(snap)
        except ResultsError as exc:
            return Interrupted(None, str(exc))
        return Interrupted(self.policy.path)


@dataclass
class PreparedRun:
    """A run built from its configuration, ready to train (``trainer.fit``)."""

    chip: Any
    net: network.Network
    bp_net: network.Network
    circ: Circuit
    trainer: Trainer
    clocked: ClockedEngine
    bp_order_seed: np.random.SeedSequence


def _read_noise_scale(cfg: RunConfig) -> tuple[float, float, float]:
    """The chip's read time in tau_x (one tau_x where the preset states none, as
    ``Circuit.read_window_tau``), one read's noise in write pulses (0 where the devices fire
    no pulses) and the devices' largest ``|up_down_asymmetry|``."""
    chip = cfg.chip_model()
    syn = chip.synapses
    tau_r = 1.0 if syn.read_time_s is None else syn.read_time_s / chip.tau_x_s
    pulse = syn.relative_dw_min()
    pulses = syn.read_noise_std / pulse if pulse else 0.0
    return tau_r, pulses, abs(syn.up_down_asymmetry)


def resolve_read_time(cfg: RunConfig) -> tuple[RunConfig, int]:
    """``cfg`` with ``engine.dt`` cut into ``k`` steps where read noise fires the writes and
    the step does not resolve the read time (:func:`pcsim.read_noise.steps_to_resolve`), and
    ``k`` (1: unchanged). Not where ``engine.resolve_read_time`` is off, on the events engine
    (no fixed step), or for iPC with a per-step rule (``learning.lr``, Adam: its learning per
    unit time would change with the step); those warn instead (:func:`prepare`). A cut step
    is announced in one line, because the run then takes ``k`` times the steps."""
    e = cfg.engine
    per_step_ipc = cfg.algorithm.name == "ipc" and cfg.per_step_lr
    if not e.resolve_read_time or e.kind == "events" or per_step_ipc:
        return cfg, 1
    tau_r, pulses, _ = _read_noise_scale(cfg)
    k = read_noise.steps_to_resolve(cfg.gamma, tau_r, pulses)
    if k == 1:
        return cfg, 1
    dt = e.dt / k
    warnings.warn(
        f"engine.dt = {e.dt:g} runs as {k} steps of {dt:.3g}: one read's noise is "
        f"{pulses:.3g} write pulses and its correlation time (chip.synapses.read_time_s, "
        f"{tau_r:.3g} tau_x) needs {read_noise.STEPS_PER_READ} steps for the pulses, energy and "
        f"accuracy to converge in dt (engine.resolve_read_time = false keeps the step)",
        stacklevel=3,
    )
    return dataclasses.replace(cfg, engine=dataclasses.replace(e, dt=dt)), k


def prepare(
    cfg: RunConfig,
    data: Dataset | None = None,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> PreparedRun:
    """Build everything a run trains, deterministically from ``cfg`` and its seed: the chip,
    the network's initial weights (and a copy for the BP baseline), the circuit with its
    programmed devices and unit mismatch, the engines, the algorithm, the optimiser and the
    trainer with its batch-order generator. ``data`` defaults to the configured data set."""
    cfg, _ = resolve_read_time(cfg)  # a no-op on a config execute resolved already
    s_init, s_order, s_noise, s_bp_order, s_chip = np.random.SeedSequence(cfg.seed).spawn(5)
    chip = cfg.chip_model()
    data = prepare_data(cfg) if data is None else data
    preflight(cfg, data)
    net = build_network(cfg, data, s_init)
    bp_net = net.copy()
    engine = make_engine(cfg)
    clocked = make_clocked_engine(cfg)  # evaluation and latency: the same equilibrium
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(s_chip))
    circ.rng = np.random.default_rng(s_noise)
    if cfg.engine.kind != "events" and circ.crossbars is not None:  # events: no fixed step
        tau_r, pulses, asym = _read_noise_scale(cfg)
        msg = read_noise.unresolved_warning(cfg.gamma, tau_r, pulses, asym)
        if msg is not None:
            warnings.warn(msg, stacklevel=2)
    trainer = Trainer(
        circ=circ,
        algorithm=make_training_algorithm(cfg),
        engine=engine,
        eval_engine=clocked,
        optimizer=make_optimizer(cfg.learning.optimizer, cfg.weight_lr),
        data=data,
        batch_size=cfg.learning.batch_size,
        rng=np.random.default_rng(s_order),
        progress=progress,
        settle_time=cfg.algorithm.inference_time / cfg.engine.tau_x,
        should_stop=should_stop,
    )
    if cfg.engine.kind != "events":  # the events engine has no fixed step
        clamped = net.clamped_layers(True)
        free = [l not in clamped for l in range(net.n_layers + 1)]
        stability.check_step_limit(circ.tau_scale, free, cfg.gamma)
    # the learning rate to name: the flow's time constant, or a per-step lr
    rate_field, rate = (
        ("learning.lr", cfg.weight_lr) if cfg.per_step_lr else ("learning.tau_w", cfg.tau_w)
    )
    trainer.health = stability.HealthCheck(
        clocked,
        rate_field,
        rate,
        cfg.algorithm.presentation_time / cfg.engine.tau_x,
        weights=net.weights,
        probe=cfg.engine.kind != "events",
    )
    return PreparedRun(chip, net, bp_net, circ, trainer, clocked, s_bp_order)


def execute(
    cfg: RunConfig,
    progress: bool = True,
    *,
    checkpoint: ckpt.Policy | None = None,
    resume: ckpt.Checkpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train and evaluate as configured; returns everything to save or print.

    ``checkpoint``: where and how often to write checkpoints (also written when interrupted,
    and at the end of training when periodic). ``resume``: a loaded checkpoint of this
    configuration to continue from; the result is bit for bit the uninterrupted run's.
    ``should_stop()`` is polled between batches; True stops at that safe point, writes the
    checkpoint and raises :class:`pcsim.train.Interrupted`.
    """
    if cfg.seeds != 1:
        raise ConfigError(
            f"seeds = {cfg.seeds}: execute runs one seed; use pcsim.seeds.execute_seeds"
        )
    text = cfg.source_text or _dump_toml(cfg.to_dict())  # what the user asked for
    cfg, cut = resolve_read_time(cfg)
    data = prepare_data(cfg)
    preflight(cfg, data)
    fingerprint = ckpt.data_fingerprint(data) if (checkpoint or resume) else ""
    prior = float(resume.state["elapsed_s"]) if resume is not None else 0.0
    t0 = time.perf_counter()
    with limit_threads(cfg.blas_threads, user_api=None):
        run = prepare(cfg, data, progress=progress, should_stop=should_stop)
        if resume is not None:
            _resume(cfg, run, resume, fingerprint)
        cp = _Checkpointer(
            run.trainer, checkpoint, text, fingerprint, lambda: prior + time.perf_counter() - t0
        )
        hist = _train(cfg, run, cp, checkpoint)
        train_seconds = prior + time.perf_counter() - t0
        done = cp.snapshot() if (checkpoint is not None or should_stop is not None) else None
        if checkpoint is not None and checkpoint.every is not None:
            cp.periodic()  # the end of training, unless just written

        def check_stop() -> None:
            if should_stop is not None and should_stop():
                raise cp.interrupted(done)

        train_ledger = run.circ.ledger.by_component()
        train_counts = run.circ.ledger.counts()

        def interrupted() -> Exception:
            return cp.interrupted(done)

        inference, free_inference = _measure_inference(
            cfg, run, data, check_stop, should_stop, interrupted
        )
        baseline = _train_baseline(cfg, run, data, check_stop, should_stop, interrupted)
        check_stop()
    _check_finite_results(hist, baseline)
    summary, extra = _summarise(
        cfg, run, data, hist, baseline, (inference, free_inference), train_ledger, train_counts
    )
    summary["train_seconds"] = train_seconds
    summary["read_time_steps"] = cut  # engine.dt was cut into this many steps (1: not cut)
    net = run.net
    params = {f"W{i + 1}": W for i, W in enumerate(net.weights)}
    if net.biases is not None:
        params.update({f"b{i + 1}": b for i, b in enumerate(net.biases)})
    return RunResult(
        config_text=text,
        summary=summary,
        metrics=hist.as_arrays(),
        parameters=params,
        baseline_metrics=baseline.as_arrays() if baseline is not None else None,
        ledger=train_ledger,
        extra=extra,
    )


def _resume(cfg: RunConfig, run: PreparedRun, resume: ckpt.Checkpoint, fingerprint: str) -> None:
    """Continue from a checkpoint: refuse one already past the configured epochs."""
    started = resume.epochs_done + (resume.order is not None)
    if started > cfg.learning.epochs:
        raise ConfigError(
            f"learning.epochs is {cfg.learning.epochs} but the checkpoint is already "
            f"{'in' if resume.order is not None else 'past'} epoch {started}"
        )
    ckpt.restore(resume, run.trainer, fingerprint)


def _train(cfg: RunConfig, run: PreparedRun, cp, checkpoint: ckpt.Policy | None) -> History:
    """Train the configured epochs left; an interruption writes the checkpoint, a divergence
    is named by its cause (the step or the learning rate)."""
    trainer = run.trainer
    if checkpoint is not None and checkpoint.every is not None:
        trainer.after_batch, trainer.after_epoch = cp.after_batch, cp.after_epoch
    try:
        return trainer.fit(cfg.learning.epochs - len(trainer.history.epoch))
    except Interrupted:
        raise cp.interrupted() from None
    except DivergenceError as exc:  # name the cause: the step or the learning rate
        raise trainer.health.diagnose(run.circ, exc) if trainer.health else exc from None


def _measure_inference(
    cfg: RunConfig, run: PreparedRun, data: Dataset, check_stop, should_stop, interrupted
):
    """Supervised runs: one deployed inference and one free relaxation, priced on the first
    ``algorithm.inference_samples`` test images (None, None otherwise)."""
    if cfg.network.mode != "supervised":
        return None, None
    check_stop()
    x_inf = data.x_test[: cfg.algorithm.inference_samples].astype(run.net.dtype)
    inference = measure_feedforward(run.circ, x_inf, run.clocked)  # deployed
    check_stop()
    try:
        free = measure_inference(run.circ, x_inf, run.clocked, should_stop=should_stop)
    except StopRequested:
        raise interrupted() from None
    return inference, free


def _train_baseline(
    cfg: RunConfig, run: PreparedRun, data: Dataset, check_stop, should_stop, interrupted
):
    """The BP baseline on the same initial weights (its history, or None when not asked)."""
    if not (cfg.baseline.bp and cfg.algorithm.name != "bp" and cfg.network.mode == "supervised"):
        return None
    check_stop()
    clocked = run.clocked
    bp = Trainer(
        circ=Circuit(run.bp_net),
        algorithm=make_algorithm("bp"),
        engine=clocked,
        optimizer=make_optimizer(cfg.baseline.optimizer, cfg.baseline.lr),
        data=data,
        batch_size=cfg.baseline.batch_size,
        rng=np.random.default_rng(run.bp_order_seed),
        progress=False,
        should_stop=should_stop,
        health=stability.HealthCheck(
            clocked, "baseline.lr", cfg.baseline.lr, 0.0, sigma_field="engine.sigma"
        ),
    )
    try:
        with np.errstate(all="ignore"):  # a diverging baseline is reported, not warned
            return bp.fit(cfg.learning.epochs)
    except Interrupted:
        raise interrupted() from None
    except DivergenceError as exc:
        raise DivergenceError(f"BP baseline: {exc}") from None


def refresh_summary(circ: Circuit) -> dict[str, int]:
    """``{"refreshes": n, "refresh_pulses": p}``: the refreshes of one-sided device pairs
    since programming (:mod:`hardware_models.pcm_pair`) and the SET pulses they fired, summed
    over every crossbar (and every pair of a mapped one)."""
    counts = np.zeros(2, np.int64)
    for cb in circ.crossbars or []:
        for dev in getattr(cb, "pairs", [cb]):
            counts += dev.refresh_counts
    return {"refreshes": int(counts[0]), "refresh_pulses": int(counts[1])}


def _summarise(
    cfg: RunConfig,
    run: PreparedRun,
    data: Dataset,
    hist: History,
    baseline: History | None,
    inferences: tuple,
    train_ledger: dict,
    train_counts: dict,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The run's summary (accuracies, energies, latencies, area, baselines) and its extra
    arrays (the events engine's per-unit event counts)."""
    inference, free_inference = inferences
    summary: dict[str, Any] = {
        **_run_identity(cfg, run, data),
        "train_accuracy": hist.train_accuracy[-1],
        "test_accuracy": hist.test_accuracy[-1],
        "train_seconds": 0.0,  # set by execute
        **_learning_rule_summary(cfg, run),
        **_training_cost(cfg, run, data, train_ledger, train_counts),
        **_area_summary(cfg, run),
        "seed": cfg.seed,
        "pcsim_version": __version__,
    }
    if inference is not None and free_inference is not None:
        summary.update(_inference_summary(run.circ, inference, free_inference))
    summary.update(_digital_baselines(cfg, run, summary))
    if run.net.has_conv:
        _conv_summary(summary, run.net)
    if baseline is not None:
        summary["bp_train_accuracy"] = baseline.train_accuracy[-1]
        summary["bp_test_accuracy"] = baseline.test_accuracy[-1]
    events, extra = _events_summary(run.trainer.algorithm)
    summary.update(events)
    return summary, extra


def _run_identity(cfg: RunConfig, run: PreparedRun, data: Dataset) -> dict[str, Any]:
    """What ran: algorithm, engine (``events`` or ``<kind>/<method>``), chip, data set,
    layer sizes, activation, epochs and the number of training and test samples."""
    net = run.net
    return {
        "algorithm": cfg.algorithm.name,
        "engine": (
            "events" if cfg.engine.kind == "events" else f"{cfg.engine.kind}/{cfg.engine.method}"
        ),
        "chip": run.chip.name,
        "dataset": data.name,
        "sizes": list(net.sizes),
        "activation": net.activation,
        "epochs": cfg.learning.epochs,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
    }


def _learning_rule_summary(cfg: RunConfig, run: PreparedRun) -> dict[str, Any]:
    """gamma, the weight rate, the flow's time constant ``tau_w`` (tau_x; None where weights
    learn by a step per update: lr, Adam) and the learning rule in words."""
    return {
        "gamma": cfg.gamma,
        "weight_lr": cfg.weight_lr,
        "tau_w": None if cfg.per_step_lr else cfg.tau_w,
        "learning_rule": learning_rule.describe(
            run.trainer.optimizer,
            run.net.has_bias,
            cfg.learning.batch_size,
            on_chip=True,
            algorithm=cfg.algorithm.name,
        ),
    }


def _training_cost(
    cfg: RunConfig, run: PreparedRun, data: Dataset, train_ledger: dict, train_counts: dict
) -> dict[str, Any]:
    """Training's simulated time (tau_x), energy (J) and latency (s) per presented sample, the
    energy by component and the write pulses (and pcm-refresh refreshes) it fired."""
    chip, net, circ = run.chip, run.net, run.circ
    T = cfg.algorithm.presentation_time / cfg.engine.tau_x
    n_presented = len(data.x_train) * cfg.learning.epochs
    breakdown = {k: v / n_presented for k, v in train_ledger.items()}
    breakdown.update(
        accumulator_energy(
            chip, cfg.algorithm.name, list(net.sizes), T, net.n_macs if net.has_conv else None
        )
    )
    return {
        "simulated_time_tau": circ.t,
        "tau_x_s": chip.tau_x_s,
        # training: one presentation of one sample (the chip holds each sample for T)
        "energy_per_sample_j": float(sum(breakdown.values())),
        # T crossbar reads, each tau_x or the tiles' conversion if longer (read_period_s)
        "latency_per_sample_s": T * circ.read_period_s(),
        "conversion_latency_per_sample_s": T * (circ.read_period_s() - chip.tau_x_s),
        "energy_breakdown_j": breakdown,
        # update pulses fired per training sample (pulse-equivalents for exactly written devices)
        "write_pulses_per_sample": float(train_counts.get("synapse_write", 0.0)) / n_presented,
        # one-sided pairs (pcm-refresh): refreshes during training and the pulses they fired
        # (included in write_pulses_per_sample); 0 for other cells
        **refresh_summary(circ),
    }


def _area_summary(cfg: RunConfig, run: PreparedRun) -> dict[str, Any]:
    """The chip's node, area (mm^2, total and by component), tiles, ADC conversions per read and
    the slowest layer's conversion latency per read (s)."""
    chip, net = run.chip, run.net
    # the optimiser's per-weight state on the digital co-processor (FP32 words): Adam m and v,
    # momentum's velocity; the plain flow keeps none. A batch of B runs on B circuit replicas.
    state = learning_rule.optimizer_state(run.trainer.optimizer)
    state_bits = {"adam": 64, "momentum": 32}.get(state, 0)
    maps = run.circ.layer_maps()
    area = chip.area_mm2(
        list(net.sizes),
        digital_state_bits_per_weight=state_bits,
        replicas=cfg.learning.batch_size,
        maps=maps if net.has_conv else None,  # a conv layer: its kernel matrix on tiles
    )
    return {
        "node_nm": chip.node_nm,
        "area_mm2": float(sum(area.values())) if area else float("nan"),
        "area_mm2_by_component": area,
        "tiles": sum(m.tiles for m in maps),
        "partial_sums": chip.architecture.partial_sums,
        "adc_conversions_per_read": sum(
            m.conversions_forward + m.conversions_backward for m in maps
        ),
        # layers are read in parallel: the slowest layer and direction sets the read time
        "conversion_latency_per_read_s": max(
            max(m.latency_forward_s, m.latency_backward_s) for m in maps
        ),
    }


def _inference_summary(circ: Circuit, inference, free_inference) -> dict[str, Any]:
    """inference_*: the deployed protocol (the chip's own feedforward settle);
    inference_free_*: free relaxation from rest. Not settled: NaN numbers."""
    return dict(
        inference_protocol=inference.protocol,
        inference_energy_per_sample_j=inference.energy_j,
        inference_latency_per_sample_s=inference.latency_s,
        inference_settle_tau=inference.settle_tau,
        inference_settled=inference.settled,
        inference_energy_breakdown_j=inference.breakdown_j,
        inference_free_energy_per_sample_j=free_inference.energy_j,
        inference_free_latency_per_sample_s=free_inference.latency_s,
        inference_free_settle_tau=free_inference.settle_tau,
        inference_free_settled=free_inference.settled,
        inference_free_energy_breakdown_j=free_inference.breakdown_j,
        inference_settle_criterion=inference.criterion,
        inference_settle_tol=inference.tol,
        inference_max_tau=inference.max_tau,
        **management_summary(circ, inference),
    )


def _digital_baselines(cfg: RunConfig, run: PreparedRun, summary: dict[str, Any]) -> dict:
    """Digital baselines (FP32/FP16/INT8 at the chip's node and 45 nm) and the fair defaults:
    FP16 at the chip's node for training (what digital trainers are built with), INT8 at the
    chip's node for inference (the presets' 8-bit I/O); hardware_models.baselines. Compared
    with the chip's figures already in ``summary``."""
    chip, net = run.chip, run.net
    # digital backprop priced at the batch it trains with (its own choice, baseline.batch_size);
    # a conv net by its MACs per sample (every patch position) and its kernels' weights
    digital = chip.baselines(list(net.sizes), cfg.baseline.batch_size, *_layer_macs(net))
    return baseline_summary(
        digital,
        chip.node_nm,
        summary["energy_per_sample_j"],
        summary["latency_per_sample_s"],
        summary.get("inference_energy_per_sample_j"),
        summary.get("inference_latency_per_sample_s"),
    )


def _events_summary(algorithm) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The events engine's event counts (energy follows activity, per unit): summary keys
    ``unit_events``, ``unit_events_per_second`` and extra arrays ``value_events_<l>``,
    ``error_events_<l>``; both empty for the other engines."""
    summary: dict[str, Any] = {}
    extra = {}
    stats = getattr(algorithm, "total_stats", None)
    if stats is not None:
        summary["unit_events"] = stats.total_events
        summary["unit_events_per_second"] = stats.events_per_second
        for l, v in enumerate(stats.value_events):
            extra[f"value_events_{l}"] = v
        for l, v in enumerate(stats.error_events):
            extra[f"error_events_{l + 1}"] = v
    return summary, extra


def _layer_macs(net: network.Network) -> tuple[list[int] | None, list[int] | None]:
    """(MACs per sample, weights) of each weight layer of a conv network (a convolution:
    ``positions * k^2 C_in * C_out`` MACs on ``k^2 C_in * C_out`` shared weights), or
    (None, None) for a dense one (the digital baselines then price the MLP of its sizes)."""
    if not net.has_conv:
        return None, None
    macs = [
        int(W.size) if g is None else g.macs_per_sample
        for W, g in zip(net.weights, net.convs or (), strict=True)
    ]
    return macs, [int(W.size) for W in net.weights]


def _conv_summary(summary: dict[str, Any], net: network.Network) -> None:
    """A conv network's extra summary keys: its layers (``conv_layers``, None for a dense
    one) and its weight MACs per read of the network in one direction (``macs_per_read``)."""
    summary["conv_layers"] = [
        None if g is None else dataclasses.asdict(g) for g in (net.convs or ())
    ]
    summary["macs_per_read"] = net.n_macs


def _check_finite_results(hist, baseline) -> None:
    """DivergenceError if an accuracy or energy of the run or its baseline is not finite."""
    for who, h, field in (("", hist, "learning.lr"), ("BP baseline: ", baseline, "baseline.lr")):
        if h is None:
            continue
        for name in ("train_accuracy", "test_accuracy", "train_energy"):
            v = np.asarray(getattr(h, name), float)
            if v.size and not np.all(np.isfinite(v)):
                raise DivergenceError(
                    f"{who}the run produced a non-finite {name}; it diverged (lower {field} "
                    "or engine.dt)"
                )


def toml_value(v: Any) -> str:
    """A scalar or list as TOML text (what configurations hold)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (network.conv entries)
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _dump_toml(d: dict[str, Any]) -> str:
    """Minimal TOML writer for a validated config dict (scalars, lists, nested tables)."""
    lines: list[str] = []

    def table(prefix: str, t: dict[str, Any]) -> None:
        scalars = {k: v for k, v in t.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in scalars.items())
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", d)
    return "\n".join(lines).lstrip() + "\n"
