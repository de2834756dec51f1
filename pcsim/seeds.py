"""Several seeds of one run, and their statistics: what ``pcsim run`` does with ``seeds = N``.

Seed ``k`` of ``N`` is the configuration's ``seed + k`` (``k = 0..N-1``), run exactly as a
one-seed run with that seed would be. The combined summary is the first seed's, with every
figure (a number that is not a configuration echo, see :data:`NOT_FIGURES`) replaced by its
mean over the seeds; ``<name>_mean`` and ``<name>_std`` (sample standard deviation, ``ddof =
1``) are added beside it, and ``per_seed[<name>]`` lists the N values in seed order. A figure
that is NaN for any seed (an inference that did not settle) has a NaN mean and std; boolean
flags (``inference_settled``) are true only when true for every seed. The results file keeps
the first seed's metrics, parameters and ledger, and every seed's figures in its summary.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pcsim.compare import refresh_ratios
from pcsim.config import RunConfig
from pcsim.results import RunResult

__all__ = ["NOT_FIGURES", "combine_summaries", "execute_seeds", "seed_config"]

#: numeric summary keys that echo the configuration or the data set, not a measurement
NOT_FIGURES = frozenset(
    {
        "epochs",
        "n_train",
        "n_test",
        "seed",
        "gamma",
        "weight_lr",
        "tau_w",
        "tau_x_s",
        "node_nm",
        "inference_max_tau",
        "inference_settle_tol",
        "n_seeds",
    }
)


def seed_config(cfg: RunConfig, k: int) -> RunConfig:
    """The one-seed configuration of seed ``k``: ``seed + k``, ``seeds = 1``."""
    c = copy.deepcopy(cfg)
    c.seed, c.seeds = cfg.seed + k, 1
    return c


def _is_figure(key: str, v: Any) -> bool:
    return key not in NOT_FIGURES and isinstance(v, int | float) and not isinstance(v, bool)


def combine_summaries(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample std and per-seed values of every figure (module docstring)."""
    if not summaries:
        raise ValueError("combine_summaries needs at least one summary")
    out = copy.deepcopy(dict(summaries[0]))
    n = len(summaries)
    per_seed: dict[str, list[float]] = {}
    for key, v in summaries[0].items():
        if isinstance(v, bool) and all(isinstance(s.get(key), bool) for s in summaries):
            out[key] = all(s[key] for s in summaries)
        elif _is_figure(key, v):
            vals = [s.get(key) for s in summaries]
            x = np.array([math.nan if u is None else float(u) for u in vals])
            same = bool(np.all(x == x[0]))  # equal values: exactly their value, std 0
            mean = float(x[0]) if same else float(x.mean())
            std = math.nan if n == 1 else 0.0 if same else float(x.std(ddof=1))
            out[key], out[f"{key}_mean"], out[f"{key}_std"] = mean, mean, std
            per_seed[key] = x.tolist()
    out["seeds"] = [int(s.get("seed", 0)) for s in summaries]
    out["n_seeds"] = n
    out["per_seed"] = per_seed
    refresh_ratios(out)
    return out


def execute_seeds(
    cfg: RunConfig,
    run: Callable[[RunConfig], RunResult],
) -> RunResult:
    """Run ``cfg`` once per seed with ``run`` (``pcsim.run.execute`` with its options) and
    combine: the first seed's result with the combined summary."""
    results = [run(seed_config(cfg, k)) for k in range(cfg.seeds)]
    first = results[0]
    first.summary = combine_summaries([r.summary for r in results])
    return first
