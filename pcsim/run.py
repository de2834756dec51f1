"""One run from a configuration: data -> network + chip + algorithm + engine -> trainer ->
results. This is what ``pcsim run`` calls, and what sweeps call per point."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pcsim import __version__, network
from pcsim.algorithms import make_algorithm
from pcsim.circuit import Circuit
from pcsim.config import ConfigError, RunConfig
from pcsim.data import Dataset, load_dataset
from pcsim.engines.clocked import ClockedEngine
from pcsim.engines.events import EventsEngine, IPCEvents
from pcsim.inference import measure_inference
from pcsim.optim import make_optimizer
from pcsim.results import RunResult
from pcsim.train import Trainer


def prepare_data(cfg: RunConfig) -> Dataset:
    data = load_dataset(
        cfg.data.name, path=cfg.data.path, test_fraction=cfg.data.test_fraction, seed=cfg.seed
    )
    if cfg.data.limit_train is not None:
        n = cfg.data.limit_train
        data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    return data


def build_network(cfg: RunConfig, data: Dataset, seed: np.random.SeedSequence) -> network.Network:
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
    return network.build(
        sizes,
        cfg.network.activation,
        parameterisation=cfg.network.parameterisation,
        bias=cfg.network.bias,
        residual=cfg.network.residual,
        mode=cfg.network.mode,
        dtype=np.dtype(cfg.network.dtype),
        rng=np.random.default_rng(seed),
    )


def make_clocked_engine(cfg: RunConfig) -> ClockedEngine:
    e = cfg.engine
    return ClockedEngine(method=e.method, dt=e.dt / e.tau_x, sigma=e.sigma, backend=e.backend)


def make_engine(cfg: RunConfig):
    """The training engine: clocked, or the clock-free events engine."""
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
    return make_clocked_engine(cfg)


def make_training_algorithm(cfg: RunConfig):
    T = cfg.algorithm.presentation_time / cfg.engine.tau_x
    if cfg.engine.kind == "events":
        return IPCEvents(T=T, tau_w=cfg.tau_w, init=cfg.algorithm.init)
    return make_algorithm(cfg.algorithm.name, T=T, init=cfg.algorithm.init)


def execute(cfg: RunConfig, progress: bool = True) -> RunResult:
    """Train and evaluate as configured; returns everything to save or print."""
    s_init, s_order, s_noise, s_bp_order, s_chip = np.random.SeedSequence(cfg.seed).spawn(5)
    chip = cfg.chip_model()
    data = prepare_data(cfg)
    net = build_network(cfg, data, s_init)
    bp_net = net.copy()
    T = cfg.algorithm.presentation_time / cfg.engine.tau_x
    engine = make_engine(cfg)
    clocked = make_clocked_engine(cfg)  # evaluation and latency: the same equilibrium
    algorithm = make_training_algorithm(cfg)
    with threadpool_limits(cfg.blas_threads):
        circ = Circuit(net, chip=chip, rng=np.random.default_rng(s_chip))
        circ.rng = np.random.default_rng(s_noise)
        trainer = Trainer(
            circ=circ,
            algorithm=algorithm,
            engine=engine,
            eval_engine=clocked,
            optimizer=make_optimizer(cfg.learning.optimizer, cfg.weight_lr),
            data=data,
            batch_size=cfg.learning.batch_size,
            rng=np.random.default_rng(s_order),
            progress=progress,
            settle_time=cfg.algorithm.inference_time / cfg.engine.tau_x,
        )
        t0 = time.perf_counter()
        hist = trainer.fit(cfg.learning.epochs)
        train_seconds = time.perf_counter() - t0
        train_ledger = circ.ledger.by_component()
        inference = None
        if cfg.network.mode == "supervised":
            inference = measure_inference(circ, data.x_test[:64].astype(net.dtype), clocked)
        baseline = None
        if cfg.baseline.bp and cfg.algorithm.name != "bp" and cfg.network.mode == "supervised":
            bp = Trainer(
                circ=Circuit(bp_net),
                algorithm=make_algorithm("bp"),
                engine=clocked,
                optimizer=make_optimizer(cfg.learning.optimizer, cfg.baseline.lr),
                data=data,
                batch_size=cfg.learning.batch_size,
                rng=np.random.default_rng(s_bp_order),
                progress=False,
            )
            baseline = bp.fit(cfg.learning.epochs)
    n_presented = len(data.x_train) * cfg.learning.epochs
    digital = chip.digital_baseline(list(net.sizes), cfg.learning.batch_size, n_presented)
    breakdown = {k: v / n_presented for k, v in train_ledger.items()}
    energy = float(sum(breakdown.values()))
    summary: dict[str, Any] = {
        "algorithm": cfg.algorithm.name,
        "engine": "events" if cfg.engine.kind == "events" else f"clocked/{cfg.engine.method}",
        "chip": chip.name,
        "dataset": data.name,
        "sizes": list(net.sizes),
        "activation": net.activation,
        "epochs": cfg.learning.epochs,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
        "train_accuracy": hist.train_accuracy[-1],
        "test_accuracy": hist.test_accuracy[-1],
        "train_seconds": train_seconds,
        "gamma": cfg.gamma,
        "weight_lr": cfg.weight_lr,
        "simulated_time_tau": circ.t,
        "tau_x_s": chip.tau_x_s,
        # training: one presentation of one sample (the chip holds each sample for T)
        "energy_per_sample_j": energy,
        "latency_per_sample_s": T * chip.tau_x_s,
        "energy_breakdown_j": breakdown,
        "baseline_energy_per_sample_j": digital.train_energy_per_sample_j,
        "baseline_latency_per_sample_s": digital.train_latency_per_sample_s,
        "baseline_inference_energy_per_sample_j": digital.inference_energy_per_sample_j,
        "baseline_inference_latency_per_sample_s": digital.inference_latency_per_sample_s,
        "energy_ratio": digital.train_energy_per_sample_j / energy if energy > 0 else None,
        "seed": cfg.seed,
        "pcsim_version": __version__,
    }
    if inference is not None:
        summary.update(
            inference_energy_per_sample_j=inference.energy_j,
            inference_latency_per_sample_s=inference.latency_s,
            inference_settle_tau=inference.settle_tau,
            inference_settled=inference.settled,
            inference_energy_breakdown_j=inference.breakdown_j,
        )
    if baseline is not None:
        summary["bp_train_accuracy"] = baseline.train_accuracy[-1]
        summary["bp_test_accuracy"] = baseline.test_accuracy[-1]
    extra = {}
    stats = getattr(algorithm, "total_stats", None)
    if stats is not None:  # events engine: energy follows activity, per unit
        summary["unit_events"] = stats.total_events
        summary["unit_events_per_second"] = stats.events_per_second
        for l, v in enumerate(stats.value_events):
            extra[f"value_events_{l}"] = v
        for l, v in enumerate(stats.error_events):
            extra[f"error_events_{l + 1}"] = v
    params = {f"W{i + 1}": W for i, W in enumerate(net.weights)}
    if net.biases is not None:
        params.update({f"b{i + 1}": b for i, b in enumerate(net.biases)})
    text = cfg.source_text or _dump_toml(cfg.to_dict())
    return RunResult(
        config_text=text,
        summary=summary,
        metrics=hist.as_arrays(),
        parameters=params,
        baseline_metrics=baseline.as_arrays() if baseline is not None else None,
        ledger=train_ledger,
        extra=extra,
    )


def _dump_toml(d: dict[str, Any]) -> str:
    """Minimal TOML writer for a validated config dict (scalars, lists, nested tables)."""
    lines: list[str] = []

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return repr(v)

    def table(prefix: str, t: dict[str, Any]) -> None:
        scalars = {k: v for k, v in t.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {fmt(v)}" for k, v in scalars.items())
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", d)
    return "\n".join(lines).lstrip() + "\n"
