"""Export a pcsim network as a self-contained Brian2 script (``pcsim export brian2``).

The script imports only ``brian2`` and ``numpy``; weights, initial activities and per-unit
parameters travel in an ``.npz`` beside it. It builds the model of
:mod:`pcsim.engines.brian` (the builder's source is copied into the script, so both are one
and the same model), runs it, saves the trajectories to ``<stem>_trajectory.npz`` and, when
pcsim's own trajectory was stored with it (deterministic runs), prints the largest difference
and exits with status 1 if it exceeds the tolerance (``--tolerance``, default 1e-9).

The exported run integrates in float64 (Brian2's default); a float32 pcsim network is exported
as its float64 copy, and the stored pcsim reference is the float64 run.
"""

from __future__ import annotations

import dataclasses
import inspect
import pprint
from pathlib import Path

import numpy as np

from pcsim import __version__
from pcsim.circuit import Circuit
from pcsim.engines.brian import (
    BrianUnsupported,
    build_brian_objects,
    clocked_reference,
    model_spec,
)
from pcsim.network import Network

_SCRIPT = '''\
#!/usr/bin/env python
"""Brian2 model of a pcsim predictive-coding network, exported by pcsim {version}.

    network      {sizes} ({activation}, {parameterisation}), batch 1
    clamped      layers {clamped}; free layers integrate
                 tau dx/dt = -eps + phi'(x) a W^T eps_above - leak x  (Euler, dt = {dt} tau_x)
    learning     {learning}
    steps        {n_steps} (time in seconds, 1 second = 1 tau_x)

Needs only brian2 and numpy. Reads {npz_name} beside this file and writes the activities
after every step (x0 .. x{L}, shape (n_steps, 1, n_l)), the final weights W1 .. W{L}
(shape (n_l, n_(l-1))) and, if recorded, weight traces to <this file>_trajectory.npz.

    python {script_name} [--target numpy|cython|cpp_standalone] [--out PATH] [--tolerance TOL]
"""

import argparse
import os
import sys

import brian2 as b2
import numpy as np

SPEC = {spec}
SIZES = {sizes_list}
N_STEPS = {n_steps}
SEED = {seed}


{builder}


def collect(objs, mons):
    out = {{}}
    for l, g in enumerate(SPEC["groups"]):
        m = mons.get((g["name"], "x"))
        if m is not None:
            out["x%d" % l] = np.asarray(m.x, dtype=float).T.reshape(-1, 1, SIZES[l])
    for k, s in enumerate(SPEC["synapses"]):
        n_pre, n_post = SIZES[k], SIZES[k + 1]
        w = np.asarray(objs[s["name"]].w[:], dtype=float)
        out["W%d" % (k + 1)] = w.reshape(n_pre, n_post).T.copy()
        m = mons.get((s["name"], "w"))
        if m is not None:
            tr = np.asarray(m.w, dtype=float).T.reshape(-1, n_pre, n_post)
            out["W%d_trace" % (k + 1)] = tr.transpose(0, 2, 1).copy()
    out["t"] = SPEC["dt"] * np.arange(1, N_STEPS + 1)
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    stem = os.path.splitext(os.path.basename(__file__))[0]
    p = argparse.ArgumentParser(description="Run the exported pcsim network in Brian2.")
    p.add_argument("--target", default="numpy", choices=["numpy", "cython", "cpp_standalone"])
    p.add_argument("--out", default=os.path.join(here, stem + "_trajectory.npz"))
    p.add_argument("--tolerance", type=float, default=1e-9)
    args = p.parse_args(argv)
    with np.load(os.path.join(here, "{npz_name}")) as f:
        arrays = {{k: f[k] for k in f.files}}
    standalone_dir = os.path.join(here, stem + "_standalone")
    if args.target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False, directory=standalone_dir)
    else:
        b2.prefs.codegen.target = args.target
    b2.seed(SEED)
    net, objs, mons = build_brian_objects(SPEC, arrays, b2)
    net.run(N_STEPS * SPEC["dt"] * b2.second, namespace={{}})
    if args.target == "cpp_standalone":
        b2.device.build(directory=standalone_dir, compile=True, run=True)
    out = collect(objs, mons)
    np.savez(args.out, **out)
    print("ran %d steps of %s on Brian2 %s (%s); wrote %s"
          % (N_STEPS, "-".join(map(str, SIZES)), b2.__version__, args.target, args.out))
    worst = 0.0
    for k in sorted(arrays):
        if k.startswith("ref_") and k[4:] in out:
            worst = max(worst, float(np.max(np.abs(out[k[4:]] - arrays[k]))))
    if any(k.startswith("ref_") for k in arrays):
        print("largest difference from the pcsim trajectory: %.3g" % worst)
        if not worst <= args.tolerance:
            print("mismatch above tolerance %.3g" % args.tolerance)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def export_brian2(
    net: Network | Circuit,
    x0: np.ndarray,
    y: np.ndarray | None,
    duration: float,
    dt: float,
    lr: float | None,
    out_path: str | Path,
    *,
    sigma: float = 0.0,
    record_weights: bool = False,
    reference: bool = True,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``out_path`` (a Brian2 script) and the ``.npz`` beside it; return both paths.

    ``net`` (or a circuit, e.g. a :class:`pcsim.quantised.QuantisedCircuit`) starts from
    the feedforward activities of the bottom-layer value ``x0`` (the input in supervised mode),
    with the top layer clamped to ``y`` (None: the top is free). Runs ``duration`` (tau_x units)
    with Euler step ``dt``; ``lr`` (None: frozen weights) is the iPC SGD step per Euler step.
    With ``reference`` and no noise, pcsim's own trajectory (clocked Euler) is stored in the
    npz so the script can check itself. Raises :class:`BrianUnsupported` for what Brian2 cannot
    express.
    """
    circ = net if isinstance(net, Circuit) else Circuit(net)
    if circ.net.dtype != np.float64:
        circ = _as_float64(circ)
    x0 = np.atleast_2d(np.asarray(x0, dtype=np.float64))
    if x0.shape[0] != 1:
        raise BrianUnsupported(
            "the exported script runs one sample (batch 1); pass a single x0 of shape (1, n_0)"
        )
    top = None if y is None else np.atleast_2d(np.asarray(y, dtype=np.float64))
    xs = circ.initial_activities(x0, top)
    L = circ.net.n_layers
    free = [False] + [True] * (L - 1) + [top is None]
    n_steps = max(1, int(round(duration / dt)))
    spec, arrays, layout = model_spec(
        circ, xs, free, dt, sigma, lr, record=True, record_weights=record_weights
    )
    if reference and sigma == 0.0 and not np.any([np.any(s) for s in circ.thermal_sigma]):
        ref = clocked_reference(circ, xs, free, dt, n_steps, lr, record_weights=record_weights)
        for l, tr in enumerate(ref.xs):
            arrays[f"ref_x{l}"] = tr
        for i, W in enumerate(ref.weights):
            arrays[f"ref_W{i + 1}"] = W
        if record_weights and ref.weight_traces is not None:
            for i, tr in enumerate(ref.weight_traces):
                arrays[f"ref_W{i + 1}_trace"] = tr
    out_path = Path(out_path)
    if out_path.suffix != ".py":
        out_path = out_path.with_suffix(".py")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    npz_path = out_path.with_suffix(".npz")
    np.savez(npz_path, **arrays)
    net_ = circ.net
    text = _SCRIPT.format(
        version=__version__,
        sizes="-".join(map(str, net_.sizes)),
        sizes_list=list(net_.sizes),
        activation=net_.activation,
        parameterisation=net_.parameterisation,
        clamped=", ".join(str(l) for l in range(L + 1) if not free[l]),
        dt=repr(float(dt)),
        learning=(
            f"iPC, tau_w dW/dt = a eps phi^T with SGD step lr = {lr!r} per Euler step"
            if lr
            else "off (frozen weights)"
        ),
        n_steps=n_steps,
        L=L,
        npz_name=npz_path.name,
        script_name=out_path.name,
        spec=pprint.pformat(spec, width=100, sort_dicts=False),
        seed=int(seed),
        builder=inspect.getsource(build_brian_objects).strip(),
    )
    out_path.write_text(text, encoding="utf-8")
    return out_path, npz_path


def _as_float64(circ: Circuit) -> Circuit:
    if circ.chip is not None:
        raise BrianUnsupported(
            "export a float64 circuit: a float32 circuit on a chip cannot be converted without "
            "reprogramming its crossbars (build the network with dtype float64)"
        )
    work = dataclasses.replace(circ, net=circ.net.astype(np.float64))
    work.tau_scale = [np.asarray(a, np.float64) for a in circ.tau_scale]
    work.units = circ.units
    work.thermal_sigma = [np.asarray(a, np.float64) for a in circ.thermal_sigma]
    return work


def export_from_config(cfg, out_path: str | Path, n_steps: int = 100) -> tuple[Path, Path]:
    """Export the network a :class:`pcsim.config.RunConfig` builds (as ``pcsim.run`` does, same
    seed) on its first training sample: ``n_steps`` Euler steps of its algorithm (iPC: activities
    and weights with SGD step ``cfg.weight_lr``; PC: the settling phase, frozen weights).
    Backs ``pcsim export brian2 CONFIG.toml -o model.py``."""
    from pcsim.run import build_network, prepare_data

    if cfg.algorithm.name == "bp":
        raise BrianUnsupported(
            "algorithm.name = 'bp' has no dynamics to export; export a 'pc' or 'ipc' run"
        )
    if cfg.engine.method == "heun":
        raise BrianUnsupported(
            "engine.method = 'heun' cannot be expressed with Brian2's once-per-step summed "
            "variables; export with engine.method = 'euler'"
        )
    lr = None
    if cfg.algorithm.name == "ipc":
        if cfg.learning.optimizer != "sgd":
            raise BrianUnsupported(
                f"learning.optimizer = {cfg.learning.optimizer!r}: the exported model learns "
                "by the iPC weight flow tau_w dW/dt = a eps phi^T, which is plain SGD; set "
                "learning.optimizer = 'sgd' to export an iPC run"
            )
        lr = cfg.weight_lr
    # the network, chip and generators as pcsim.run.execute makes them (float64 twin)
    s_init, _, s_noise, _, s_chip = np.random.SeedSequence(cfg.seed).spawn(5)
    data = prepare_data(cfg)
    net = build_network(cfg, data, s_init).astype(np.float64)
    chip = cfg.chip_model()
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(s_chip))
    circ.rng = np.random.default_rng(s_noise)
    x = data.x_train[:1].astype(np.float64)
    y = data.one_hot(data.y_train[:1]).astype(np.float64)
    bottom, top = (x, y) if net.mode == "supervised" else (y, x)
    dt = cfg.engine.dt / cfg.engine.tau_x
    sigma = cfg.engine.sigma if cfg.engine.method == "euler_maruyama" else 0.0
    return export_brian2(
        circ, bottom, top, n_steps * dt, dt, lr, out_path, sigma=sigma, seed=int(cfg.seed)
    )


def trajectory_difference(
    path: str | Path, reference: dict[str, np.ndarray] | None = None
) -> dict[str, float]:
    """Largest absolute difference per array between a script's ``*_trajectory.npz`` and a
    reference (default: the ``ref_*`` arrays of the model's npz)."""
    path = Path(path)
    with np.load(path) as f:
        out = {k: f[k] for k in f.files}
    if reference is None:
        model_npz = path.with_name(path.name.replace("_trajectory.npz", ".npz"))
        with np.load(model_npz) as f:
            reference = {k[4:]: f[k] for k in f.files if k.startswith("ref_")}
    return {k: float(np.max(np.abs(out[k] - v))) for k, v in reference.items() if k in out}


__all__ = ["export_brian2", "export_from_config", "trajectory_difference"]
