"""Bad input of every kind: one line ``pcsim: error: ...`` naming the field or file, exit 2,
within seconds, nothing written (README, "Exit codes")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcsim import config
from pcsim import sweep as sw
from pcsim.cli import main
from pcsim.data import DataError, write_idx

ROOT = Path(__file__).resolve().parents[1]

RUN_CASES = {
    "seed 2**32": ("seed = 4294967296\n", "seed must be at most 4294967295"),
    "seed 2**64": ("seed = 18446744073709551616\n", "seed must be at most"),
    "test_fraction high": ("[data]\ntest_fraction = 0.999\n", "data.test_fraction = 0.999"),
    "test_fraction low": ("[data]\ntest_fraction = 0.001\n", "data.test_fraction = 0.001"),
    "4400-digit integer": ("seed = " + "9" * 4400 + "\n", "malformed TOML"),
    "key with newline": ('"a\\nb" = 1\n', r"unknown key a\nb"),
    "chip file not utf-8": ('[chip]\npreset = "CHIP"\n', "is not UTF-8 text"),
    # 500 tau_x of inference measurement at dt / tau_x = 5e-7: 2e9 steps, refused at once
    "tau_x 1e6": ("[engine]\ntau_x = 1e6\n", "4e+09 engine steps (at most 1e+06)"),
    "tau_x 1e300": ("[engine]\ntau_x = 1e300\n", "engine steps (at most 1e+06)"),
    "events per tau": (
        '[engine]\nkind = "events"\nevents_per_tau = 1e9\n[learning]\noptimizer = "sgd"\n',
        "unit events (at most 1e+08)",
    ),
    # 84 bytes per float32 weight: about 350 GB, more than any machine running the tests
    "memory": ("[network]\nsizes = [64, 50000000, 10]\n", "GiB of memory, more than"),
}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcsim: error: "), err
    return err[0]


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_config_is_one_line_exit_2(case, tmp_path, capsys, monkeypatch):
    text, expected = RUN_CASES[case]
    chip = tmp_path / "chip.toml"
    chip.write_bytes(b"name = 'x'\n\xff\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text(text.replace("CHIP", str(chip)))
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["run", str(cfg), "--quiet", "--out", str(tmp_path / "o.h5")]) == 2
    assert expected in _one_error_line(capsys)
    assert time.perf_counter() - t0 < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.toml", "run.toml"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "/dev/zero"], "is not a regular file"),
        (["run", "CFG", "--out", ""], "--out is empty"),
        (["run", "CFG", "--checkpoint", " "], "--checkpoint is empty"),
        (["export", "spice", "CFG", "-o", "/proc/pcsim-x/x.cir"], "/proc/pcsim-x"),
        (["run", "CFG", "--out", "/proc/pcsim-x/r.h5"], "--out: cannot write in '/proc'"),
        (["run", "CFG", "--out", "/dev/null"], "is not a regular file"),
        (["run", "CFG", "--checkpoint", "/dev/null"], "is not a regular file"),
    ],
)
def test_bad_paths_are_one_line_exit_2(argv, expected, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[learning]\nepochs = 1\n")
    argv = [str(cfg) if a == "CFG" else a for a in argv]
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)


def test_bad_env_var_is_one_line_exit_2():
    env = {**os.environ, "PCSIM_BLAS_THREADS": "abc", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "pcsim.cli", "info"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2 and p.stderr == (
        "pcsim: error: PCSIM_BLAS_THREADS must be an integer from 1 to 1024, got 'abc'\n"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[sweep]\nseed = 18446744073709551616\n[axes]\n"engine.dt" = [0.5]', "sweep.seed"),
        (
            '[sweep]\nmode = "random"\nsamples = 100000000\n[axes]\n'
            '"engine.dt" = {low = 0.1, high = 0.5}',
            "sweep.samples = 100000000",
        ),
        (
            '[axes]\n"learning.epochs" = ' + str(list(range(1, 400))) + "\n"
            '"learning.batch_size" = ' + str(list(range(1, 400))),
            "the grid has 159201 points",
        ),
        ('[axes]\n"data.test_fraction" = [0.2, 0.999]', "point 1"),
    ],
)
def test_absurd_or_invalid_sweeps_are_refused_before_planning(text, expected):
    t0 = time.perf_counter()
    with pytest.raises(sw.SweepError, match=expected) as e:
        sw.parse_sweep(text)
    assert "\n" not in str(e.value) and time.perf_counter() - t0 < 5


def test_idx_directory_with_zero_images(tmp_path):
    import numpy as np

    from pcsim.data import load_idx_dir

    for stem, arr in [
        ("train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8)),
        ("train-labels-idx1-ubyte", np.zeros(0, np.uint8)),
        ("t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8)),
        ("t10k-labels-idx1-ubyte", np.zeros(0, np.uint8)),
    ]:
        write_idx(tmp_path / stem, arr)
    with pytest.raises(DataError, match="holds 0 images"):
        load_idx_dir(tmp_path)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(-(2**70), 2**70),
    fraction=st.floats(allow_nan=True, allow_infinity=True),
)
def test_seed_and_fraction_accepted_iff_the_split_can_be_made(seed, fraction):
    """Config validation accepts exactly what the data split takes (a 32-bit seed, a fraction
    leaving one digit per class on each side of 1797 images): the closed form is
    10 <= ceil(f * 1797) <= 1787."""
    import math

    text = f"seed = {seed}\n[data]\ntest_fraction = {fraction!r}\n".replace("nan", "nan")
    ok_seed = 0 <= seed < 2**32
    ok_frac = (
        math.isfinite(fraction) and 0 < fraction < 1 and 10 <= math.ceil(fraction * 1797) <= 1787
    )
    try:
        config.loads(text)
    except config.ConfigError as exc:
        assert not (ok_seed and ok_frac), str(exc)
        assert "\n" not in str(exc)
    else:
        assert ok_seed and ok_frac


def test_an_internal_error_is_one_line_exit_1(monkeypatch, capsys):
    from pcsim import cli

    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "cmd_info", boom)
    monkeypatch.delenv("PCSIM_DEBUG", raising=False)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pcsim: internal error: ZeroDivisionError")
    monkeypatch.setenv("PCSIM_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info"])


def test_atomic_write_never_renames_over_a_device(tmp_path):
    from pcsim import results

    res = results.RunResult(config_text="", summary={}, metrics={}, parameters={})
    with pytest.raises(results.ResultsError, match="not a regular file"):
        results.save("/dev/null", res)
    assert Path("/dev/null").is_char_device()
