"""The chip against its digital baselines: the run summary's ``baselines`` entries, the fair
defaults (``baseline_*`` keys) and the printed comparison table.

Ratios are ``baseline / chip``: above 1, the chip uses fewer joules (or seconds) per sample.
A chip figure that is missing or not a positive finite number gives a ``None`` ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hardware_models.baselines import (
    FAIR_INFERENCE_PRECISION,
    FAIR_TRAIN_PRECISION,
    BaselineCost,
)

__all__ = ["baseline_summary", "format_baselines", "refresh_ratios"]


def _ratio(base: float, chip: float | None) -> float | None:
    if chip is None or not math.isfinite(chip) or chip <= 0:
        return None
    return base / chip


def baseline_summary(
    baselines: Sequence[BaselineCost],
    node_nm: float,
    train_energy_j: float | None,
    train_latency_s: float | None,
    inference_energy_j: float | None = None,
    inference_latency_s: float | None = None,
) -> dict[str, Any]:
    """Summary keys for a run: ``baselines`` (one dict per design: name, precision, node_nm,
    memory, energies in J/sample, latencies in s/sample, roofline bounds and the four ratios
    ``train_energy_ratio``, ``train_latency_ratio``, ``inference_energy_ratio``,
    ``inference_latency_ratio``), and the fair defaults: ``baseline_name`` (FP16 at the chip's
    node, training) and ``baseline_inference_name`` (INT8 at the chip's node, inference) with
    their ``baseline_*`` energies and latencies and ``energy_ratio``."""
    rows = []
    for b in baselines:
        d = b.to_dict()
        d["train_energy_ratio"] = _ratio(b.train_energy_per_sample_j, train_energy_j)
        d["train_latency_ratio"] = _ratio(b.train_latency_per_sample_s, train_latency_s)
        d["inference_energy_ratio"] = _ratio(b.inference_energy_per_sample_j, inference_energy_j)
        d["inference_latency_ratio"] = _ratio(b.inference_latency_per_sample_s, inference_latency_s)
        rows.append(d)

    def pick(precision: str) -> BaselineCost:
        return next(b for b in baselines if b.precision == precision and b.node_nm == node_nm)

    tr, inf = pick(FAIR_TRAIN_PRECISION), pick(FAIR_INFERENCE_PRECISION)
    return {
        "baselines": rows,
        "baseline_name": tr.name,
        "baseline_energy_per_sample_j": tr.train_energy_per_sample_j,
        "baseline_latency_per_sample_s": tr.train_latency_per_sample_s,
        "baseline_inference_name": inf.name,
        "baseline_inference_energy_per_sample_j": inf.inference_energy_per_sample_j,
        "baseline_inference_latency_per_sample_s": inf.inference_latency_per_sample_s,
        "energy_ratio": _ratio(tr.train_energy_per_sample_j, train_energy_j),
    }


def refresh_ratios(summary: dict[str, Any]) -> None:
    """Recompute the ratios of ``summary["baselines"]`` against the summary's chip figures
    (after they were replaced by means over seeds); in place."""
    chip = {
        "train_energy": summary.get("energy_per_sample_j"),
        "train_latency": summary.get("latency_per_sample_s"),
        "inference_energy": summary.get("inference_energy_per_sample_j"),
        "inference_latency": summary.get("inference_latency_per_sample_s"),
    }
    for row in summary.get("baselines") or []:
        for what, value in chip.items():
            unit = "j" if what.endswith("energy") else "s"
            row[f"{what}_ratio"] = _ratio(row[f"{what}_per_sample_{unit}"], value)


def _cell(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, fmt)


def format_baselines(summary: Mapping[str, Any]) -> list[str]:
    """The baselines of a run summary as a compact text table (one line per design)."""
    rows = summary.get("baselines") or []
    if not rows:
        return []
    head = ("baseline", "memory", "train J", "x", "train s", "x", "infer J", "x", "infer s", "x")
    body = [
        (
            r["name"],
            r["memory"].split(" (")[0],
            _cell(r["train_energy_per_sample_j"], ".3g"),
            _cell(r["train_energy_ratio"], ".3g"),
            _cell(r["train_latency_per_sample_s"], ".3g"),
            _cell(r["train_latency_ratio"], ".3g"),
            _cell(r["inference_energy_per_sample_j"], ".3g"),
            _cell(r["inference_energy_ratio"], ".3g"),
            _cell(r["inference_latency_per_sample_s"], ".3g"),
            _cell(r["inference_latency_ratio"], ".3g"),
        )
        for r in rows
    ]
    w = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in (head, *body)]
    lines.append(
        "  (per sample; x = baseline / chip, >1: the chip is cheaper or faster; "
        f"fair defaults: {summary.get('baseline_name')} training, "
        f"{summary.get('baseline_inference_name')} inference)"
    )
    return lines
