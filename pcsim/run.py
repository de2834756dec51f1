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


def make_engine(cfg: RunConfig) -> ClockedEngine:
    e = cfg.engine
    return ClockedEngine(method=e.method, dt=e.dt / e.tau_x, sigma=e.sigma, backend=e.backend)


def execute(cfg: RunConfig, progress: bool = True) -> RunResult:
    """Train and evaluate as configured; returns everything to save or print."""
    s_init, s_order, s_noise, s_bp_order = np.random.SeedSequence(cfg.seed).spawn(4)
    data = prepare_data(cfg)
    net = build_network(cfg, data, s_init)
    bp_net = net.copy()
    T = cfg.algorithm.presentation_time / cfg.engine.tau_x
    with threadpool_limits(cfg.blas_threads):
        circ = Circuit(net, rng=np.random.default_rng(s_noise))
        trainer = Trainer(
            circ=circ,
            algorithm=make_algorithm(cfg.algorithm.name, T=T, init=cfg.algorithm.init),
            engine=make_engine(cfg),
            optimizer=make_optimizer(cfg.learning.optimizer, cfg.weight_lr),
            data=data,
            batch_size=cfg.learning.batch_size,
            rng=np.random.default_rng(s_order),
            progress=progress,
        )
        t0 = time.perf_counter()
        hist = trainer.fit(cfg.learning.epochs)
        train_seconds = time.perf_counter() - t0
        baseline = None
        if cfg.baseline.bp and cfg.algorithm.name != "bp" and cfg.network.mode == "supervised":
            bp = Trainer(
                circ=Circuit(bp_net),
                algorithm=make_algorithm("bp"),
                engine=make_engine(cfg),
                optimizer=make_optimizer(cfg.learning.optimizer, cfg.baseline.lr),
                data=data,
                batch_size=cfg.learning.batch_size,
                rng=np.random.default_rng(s_bp_order),
                progress=False,
            )
            baseline = bp.fit(cfg.learning.epochs)
    summary: dict[str, Any] = {
        "algorithm": cfg.algorithm.name,
        "engine": f"{cfg.engine.kind}/{cfg.engine.method}",
        "chip": cfg.chip.get("preset", "ideal"),
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
        "seed": cfg.seed,
        "pcsim_version": __version__,
    }
    if baseline is not None:
        summary["bp_train_accuracy"] = baseline.train_accuracy[-1]
        summary["bp_test_accuracy"] = baseline.test_accuracy[-1]
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
