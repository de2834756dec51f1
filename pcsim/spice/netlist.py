"""Exporting a network on its chip as an ngspice netlist: :func:`export` (a model, then its
text) and :func:`export_spice_from_config` (``pcsim export spice CONFIG.toml -o net.cir``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pcsim import field as pcfield
from pcsim.circuit import Circuit
from pcsim.network import Network
from pcsim.spice.model import SpiceModel, netlist_model
from pcsim.spice.render import render

if TYPE_CHECKING:
    from pcsim.spice.ngspice import SpiceResult


@dataclass
class SpiceNetlist:
    """An exported netlist and what it was made from (enough to rebuild the same transient in
    pcsim: :func:`reference`). Node names are lower case, as ngspice reports them."""

    text: str
    net: Network  # float64 copy holding the weights the chip reads (W_eff)
    tau_scale: list[np.ndarray]
    units: pcfield.UnitParams
    chip: Any  # hardware_models.Chip or None
    free: list[bool]
    x_init: list[np.ndarray]  # activities at t = 0, (n_l,) per layer
    bottom: np.ndarray | None  # (P, n_0) clamped bottom values per presentation
    top: np.ndarray | None  # (P, n_L)
    presentation_tau: float
    tau_w: float | None
    tau_x_s: float
    signal_scale_v: float
    w_map: list[float]  # weight represented by the full device range (w_max) per crossbar
    conductances: list[tuple[np.ndarray, np.ndarray]]  # (G+, G-) in siemens per crossbar
    capacitances: dict[str, float]  # value-unit node -> C (F)
    raw_name: str
    rails: tuple[float, float]

    @classmethod
    def of(cls, model: SpiceModel) -> SpiceNetlist:
        """The rendered netlist of ``model``, with the numbers a reference run needs."""
        return cls(
            text=render(model),
            net=model.net,
            tau_scale=model.tau_scale,
            units=model.units,
            chip=model.chip,
            free=model.free,
            x_init=model.x_init,
            bottom=model.bottom,
            top=model.top,
            presentation_tau=model.presentation_tau,
            tau_w=model.tau_w,
            tau_x_s=model.tau_x_s,
            signal_scale_v=model.signal_scale_v,
            w_map=[cb.w_map for cb in model.crossbars],
            conductances=[(cb.g_plus_s, cb.g_minus_s) for cb in model.crossbars],
            capacitances=model.capacitances,
            raw_name=model.raw_name,
            rails=model.rails,
        )

    @property
    def n_presentations(self) -> int:
        src = self.bottom if self.bottom is not None else self.top
        return 1 if src is None else int(src.shape[0])

    @property
    def duration_tau(self) -> float:
        return self.presentation_tau * self.n_presentations

    @property
    def duration_s(self) -> float:
        return self.duration_tau * self.tau_x_s

    @property
    def learning(self) -> bool:
        return self.tau_w is not None

    def value_nodes(self, layer: int) -> list[str]:
        return [f"x{layer}_{i}" for i in range(self.net.sizes[layer])]

    def weight_nodes(self, i: int) -> list[list[str]]:
        """Node names of crossbar ``i`` (``W_{i+1}``), row-major, in learning netlists."""
        n_out, n_in = self.net.weights[i].shape
        return [[f"w{i + 1}_{r}_{c}" for c in range(n_in)] for r in range(n_out)]

    @property
    def free_nodes(self) -> list[str]:
        return [n for l, f in enumerate(self.free) if f for n in self.value_nodes(l)]

    def activities(self, result: SpiceResult, layer: int) -> np.ndarray:
        """Layer ``layer``'s activities over time, ``(n_t, n_l)``, in activity units."""
        return np.stack([result.traces[n] for n in self.value_nodes(layer)], axis=1) / (
            self.signal_scale_v
        )

    def weights(self, result: SpiceResult, i: int) -> np.ndarray:
        """Crossbar ``i``'s weights over time, ``(n_t, n_out, n_in)``, in weight units."""
        if not self.learning:
            raise ValueError("the netlist has fixed weights (export with tau_w to learn)")
        rows = self.weight_nodes(i)
        arr = np.stack([np.stack([result.traces[n] for n in r], axis=1) for r in rows], axis=1)
        return arr * self.w_map[i]

    def write(self, path: str | Path) -> Path:
        """Write the netlist text to ``path``; returns the path."""
        p = Path(path)
        p.write_text(self.text, encoding="utf-8")
        return p


def export(
    circ: Circuit,
    bottom: np.ndarray | None,
    top: np.ndarray | None = None,
    *,
    presentation_time: float = 10.0,
    x_init: str | Sequence[np.ndarray] = "feedforward",
    tau_w: float | None = None,
    source: str = "Python (pcsim.spice.export)",
    raw_name: str = "pcsim_spice.raw",
    reltol: float = 1e-6,
    points_per_tau: int = 20,
    print_nodes: bool = True,
) -> SpiceNetlist:
    """The netlist of ``circ`` (one sample circuit) driven by a sequence of presentations.

    ``bottom`` (P, n_0) and ``top`` (P, n_L) are the values clamped on layer 0 and layer L at
    each presentation (activity units; ``None`` leaves that layer free; 1-D means one
    presentation), held ``presentation_time`` tau_x each. ``x_init``: ``"feedforward"`` (the
    chip's bottom-up pass of the first presentation, the top then clamped), ``"rest"`` (free
    units at 0 V) or a list of per-layer arrays. ``tau_w`` (tau_x units) turns learning on.
    ``raw_name`` is the raw file the netlist's control block writes (ngspice's working dir).

    The same as ``render(netlist_model(...))`` with the model's numbers kept beside the text
    (:func:`pcsim.spice.model.netlist_model`, :func:`pcsim.spice.render.render`).
    """
    model = netlist_model(
        circ,
        bottom,
        top,
        presentation_time=presentation_time,
        x_init=x_init,
        tau_w=tau_w,
        source=source,
        raw_name=raw_name,
        reltol=reltol,
        points_per_tau=points_per_tau,
        print_nodes=print_nodes,
    )
    return SpiceNetlist.of(model)


def export_spice_from_config(
    cfg,
    out_path: str | Path,
    *,
    n_presentations: int = 1,
    presentation_time: float | None = None,
    learning: bool | None = None,
    x_init: str = "feedforward",
    source: str | None = None,
) -> Path:
    """Write the netlist of a run configuration's network on its chip (``pcsim export spice``).

    The network is built as :func:`pcsim.run.execute` builds it (same seeds), placed on
    ``cfg.chip_model()``, and driven by the first ``n_presentations`` training samples (input
    at the bottom, one-hot target on top; generative nets the other way round), each held
    ``presentation_time`` tau_x (default: ``algorithm.presentation_time``). ``learning``
    (default: on for iPC) adds the iPC weight flow with ``tau_w = dt / lr`` (tau_x units;
    plain gradient flow whatever the configured optimiser). The raw file is named after
    ``out_path`` (``net.cir`` -> ``net.raw``); ``source`` (e.g. the configuration's path) is
    named in the header. Returns ``out_path``.
    """
    from pcsim import run as pcrun

    out = Path(out_path)
    s_init, _, _, _, s_chip = np.random.SeedSequence(cfg.seed).spawn(5)
    data = pcrun.prepare_data(cfg)
    net = pcrun.build_network(cfg, data, s_init).astype(np.float64)
    circ = Circuit(net, chip=cfg.chip_model(), rng=np.random.default_rng(s_chip))
    n = max(1, int(n_presentations))
    x = np.asarray(data.x_train[:n], dtype=np.float64)
    y = np.asarray(data.one_hot(data.y_train[:n]), dtype=np.float64)
    bottom, top = (x, y) if net.mode == "supervised" else (y, x)
    T = (
        presentation_time
        if presentation_time is not None
        else cfg.algorithm.presentation_time / cfg.engine.tau_x
    )
    if learning is None:
        learning = cfg.algorithm.name == "ipc"
    tau_w = None
    if learning:
        tau_w = (cfg.engine.dt / cfg.weight_lr) / cfg.engine.tau_x
    src = f"configuration {source}" if source else "a configuration"
    src += (
        f" (seed {cfg.seed}, data {cfg.data.name}, chip {circ.chip.name}, first {n} training"
        f" sample(s))"
    )
    nl = export(
        circ,
        bottom,
        top,
        presentation_time=T,
        x_init=x_init,
        tau_w=tau_w,
        source=src,
        raw_name=out.with_suffix(".raw").name,
    )
    return nl.write(out)
