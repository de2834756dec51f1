"""Instability on every substrate: exit 3 with the actual cause, never a plain exit 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcsim import config, stability
from pcsim.cli import main
from pcsim.engines.clocked import ClockedEngine, DivergenceError
from pcsim.run import prepare


@settings(max_examples=100, deadline=None)
@given(
    scales=st.lists(st.floats(0.05, 5.0), min_size=1, max_size=8),
    gamma=st.floats(1e-3, 20.0),
)
def test_step_limit_is_eulers_on_the_fastest_unit(scales, gamma):
    """Refused exactly when Euler's amplification on the fastest unit's own decay,
    1 - gamma / s_min, falls to -1 or below (|factor| >= 1: no decay)."""
    tau_scale = [np.array([1.0]), np.array(scales)]
    unstable = 1 - gamma / min(scales) <= -1
    if unstable:
        with pytest.raises(DivergenceError, match="stability limit") as e:
            stability.check_step_limit(tau_scale, [False, True], gamma)
        assert "engine.dt" in str(e.value)
    else:
        stability.check_step_limit(tau_scale, [False, True], gamma)
    clamped_fast = [np.array([100.0]), np.array(scales)]
    stability.check_step_limit(clamped_fast, [True, False], gamma)  # clamped: no limit
    # the same instability, seen by integrating x' = -x / s with Euler from x = 1
    s = min(scales)
    x = 1.0
    for _ in range(200):
        x -= gamma / s * x
    assert (abs(x) >= 1.0) == unstable or abs(1 - gamma / s) > 0.999


def test_rail_flips_counts_jumps_of_half_the_rail_range():
    before = [np.zeros((2, 3)), np.array([[-2.0, 2.0, 0.0], [1.9, 0.0, 0.0]])]
    after = [np.zeros((2, 3)), np.array([[2.0, -2.0, 0.0], [-1.9, 2.1, 0.0]])]
    # jumps 4, 4, 0, 3.8, 2.1, 0 against half the range 2: four of six free units
    assert stability.rail_flips(before, after, [False, True], (-2.0, 2.0)) == pytest.approx(4 / 6)
    assert stability.rail_flips(before, after, [False, True], (-np.inf, np.inf)) == 0.0


def test_weights_checks_name_the_rate():
    with pytest.raises(DivergenceError, match="baseline.lr = 1e\\+06 is too large"):
        stability.check_weights([np.array([[np.nan]])], None, "baseline.lr", 1e6)
    with pytest.raises(DivergenceError, match="grew from 1 to 2e\\+06"):
        stability.check_energies([1.0, 2e6], 1.0, "learning.lr", 0.1)
    stability.check_energies([1.0, 1e5], 1.0, "learning.lr", 0.1)  # large, not exploding


def test_the_probe_leaves_the_run_as_it_found_it():
    cfg = config.loads(
        '[data]\nlimit_train = 40\n[learning]\nepochs = 1\n[chip]\npreset = "rram"\n'
        '[engine]\nmethod = "euler_maruyama"\nsigma = 0.1\n'
    )
    run = prepare(cfg, progress=False)
    circ, d = run.circ, run.trainer.data
    before = circ.t, circ.rng.bit_generator.state, dict(circ.ledger.by_component())
    x = d.x_train[:8].astype(circ.net.dtype)
    y = d.one_hot(d.y_train[:8]).astype(circ.net.dtype)
    frac = stability.probe_flips(circ, ClockedEngine("euler_maruyama", 0.5, 0.1), x, y, 2.0)
    assert 0.0 <= frac <= stability.FLIP_FRACTION  # a healthy run: no flipping
    assert (circ.t, circ.rng.bit_generator.state, dict(circ.ledger.by_component())) == before


BASE = "[data]\nlimit_train = 100\n[learning]\nepochs = 1\n"
CASES = {
    # rails hide the blow-up on rram; ideal exits 3 as well
    "rram dt 5": (
        '[algorithm]\npresentation_time = 50\n[engine]\ndt = 5\n[chip]\npreset = "rram"\n',
        "engine.dt",
    ),
    "ideal dt 5": (
        '[algorithm]\npresentation_time = 50\n[engine]\ndt = 5\n[chip]\npreset = "ideal"\n',
        "engine.dt",
    ),
    "rram sigma 1e3": (
        '[engine]\nmethod = "euler_maruyama"\nsigma = 1e3\n[chip]\npreset = "rram"\n',
        "lower engine.sigma",
    ),
    "rram sgd lr 1e6": (
        '[learning]\noptimizer = "sgd"\nlr = 1e6\n[chip]\npreset = "rram"\n',
        "learning.lr = 1e+06 is too large",
    ),
    "ideal sgd lr 1e6": (
        '[learning]\noptimizer = "sgd"\nlr = 1e6\n[chip]\npreset = "ideal"\n',
        "diverged",
    ),
    # at dt 0.5 (at the default 0.25 the run ends with an OscillationWarning instead)
    "rram adam lr 1": (
        '[learning]\nlr = 1.0\n[chip]\npreset = "rram"\n[engine]\ndt = 0.5\n',
        "devices' range limit",
    ),
    # the ideal chip: rram at dt = 0.5 is beyond Euler's limit (OscillationWarning)
    "bp baseline lr 1e6": (
        '[baseline]\nlr = 1e6\n[chip]\npreset = "ideal"\n',
        "BP baseline: learning diverged",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unstable_runs_exit_3_with_the_cause(case, tmp_path, capsys):
    text, expected = CASES[case]
    merged = BASE + text
    if "[learning]" in text:  # one [learning] table
        merged = "[data]\nlimit_train = 100\n" + text.replace(
            "[learning]\n", "[learning]\nepochs = 1\n"
        )
    cfg = tmp_path / "run.toml"
    cfg.write_text(merged)
    out = tmp_path / "r.h5"
    assert main(["run", str(cfg), "--quiet", "--out", str(out)]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    err = [
        line for line in lines if not line.startswith("pcsim: warning: ")
    ]  # warnings may precede
    assert len(err) == 1 and err[0].startswith("pcsim: error: "), lines
    assert expected in err[0], err[0]
    assert "RuntimeWarning" not in err[0] and not out.exists()
    assert err[0].count("diverge") == 1  # one cause, not a cause wrapped in another


def test_a_healthy_chip_run_passes_the_checks(tmp_path, capsys):
    """rram within Euler's limit for its settled inference (the default dt 0.25; at 0.5,
    dt x rate is about 2.2 and pcsim.stability warns)."""
    cfg = tmp_path / "run.toml"
    cfg.write_text(BASE + '[chip]\npreset = "rram"\n[baseline]\nbp = false\n[engine]\ndt = 0.25\n')
    assert main(["run", str(cfg), "--quiet"]) == 0
    assert "pcsim:" not in capsys.readouterr().err
