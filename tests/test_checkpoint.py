"""Checkpoints as a user meets them: a run killed with SIGKILL at random points and resumed
ends bit for bit where the uninterrupted run ends; Ctrl-C stops at a safe point, writes a
checkpoint and says how to resume; bad checkpoint files are one line and exit 2; an existing
results file survives a killed or failed run."""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pcsim import checkpoint as ckpt
from pcsim import config, integrity, results
from pcsim.cli import main
from pcsim.run import execute

ROOT = Path(__file__).resolve().parents[1]

BASE = """
seed = {seed}
blas_threads = 1
[network]
sizes = [64, 24, 10]
bias = {bias}
[data]
limit_train = {n}
[learning]
epochs = {epochs}
batch_size = {bs}
{learning}
[baseline]
bp = {bp}
[algorithm]
inference_samples = 8  # inference priced on 8 test images (what is compared is the training)
{algorithm}
[chip]
preset = "{chip}"
"""

# (name, TOML, number of SIGKILLs): 5 kills in all, on the ideal chip, a non-ideal chip with
# every random process (programming, read and thermal noise, drift, pulsed updates), and the
# events engine (per-copy clocks and random streams carried from batch to batch)
CASES = {
    "pcm-ipc-adam": (
        BASE.format(
            seed=3,
            bias="true",
            n=128,
            epochs=3,
            bs=32,
            learning="",
            bp="true",
            chip="pcm",
            algorithm="",
        ),
        2,
    ),
    "ideal-ipc-carry-sgd": (
        BASE.format(
            seed=5,
            bias="false",
            n=200,
            epochs=4,
            bs=16,
            bp="false",
            chip="ideal",
            learning='optimizer = "sgd"\nlr = 0.02',
            algorithm='init = "carry"',
        ),
        2,
    ),
    "events-pcm": (
        BASE.format(
            seed=2,
            bias="false",
            n=40,
            epochs=2,
            bs=8,
            bp="false",
            chip="pcm",
            learning='optimizer = "sgd"\ntau_w = 50.0',
            algorithm='init = "carry"\npresentation_time = 1.0',
        )
        + '[engine]\nkind = "events"\n',
        1,
    ),
}

# wall-clock measurements are not part of the computation
NOT_DETERMINISTIC = {"train_seconds", "unit_events_per_second"}


def spawn(*args: str, **popen_kw) -> subprocess.Popen:
    """``pcsim ARGS`` as a separate process (unbuffered, so its lines arrive as printed)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "pcsim.cli", *args], env=env, **popen_kw)


def assert_same_run(a: results.RunResult, b: results.RunResult) -> None:
    assert a.parameters.keys() == b.parameters.keys()
    for k in a.parameters:
        assert np.array_equal(a.parameters[k], b.parameters[k]), k
    for k in a.metrics:
        if k != "wall_seconds":
            assert np.array_equal(a.metrics[k], b.metrics[k]), k
    assert (a.baseline_metrics is None) == (b.baseline_metrics is None)
    for k in a.baseline_metrics or {}:
        if k != "wall_seconds":
            assert np.array_equal(a.baseline_metrics[k], b.baseline_metrics[k]), k
    for k in a.extra:
        assert np.array_equal(a.extra[k], b.extra[k]), k
    sa = {k: v for k, v in a.summary.items() if k not in NOT_DETERMINISTIC}
    sb = {k: v for k, v in b.summary.items() if k not in NOT_DETERMINISTIC}
    assert sa == sb
    assert a.ledger == b.ledger


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs (in process), saved as results files."""
    d = tmp_path_factory.mktemp("ref")
    refs = {}
    for name, (text, _) in CASES.items():
        t0 = time.perf_counter()
        res = execute(config.loads(text), progress=False)
        out = d / f"{name}.h5"
        results.save(out, res)
        refs[name] = (results.load(out), out, time.perf_counter() - t0)
    return refs


@pytest.mark.parametrize("name", list(CASES))
def test_sigkill_at_random_points_then_resume_is_bit_for_bit(name, references, tmp_path):
    text, kills = CASES[name]
    ref, ref_file, ref_seconds = references[name]
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    out, ck = tmp_path / "r.h5", tmp_path / "r.ckpt.h5"
    rnd = random.Random(f"{name}-kills")
    positions = []
    # the window for a kill, first guessed from the in-process reference (which may include
    # compiling the kernels), then learnt from any run that finished before its kill
    window = 0.7 * ref_seconds
    for _ in range(kills):
        ck.unlink(missing_ok=True)
        out.write_bytes(ref_file.read_bytes())  # a previous results file at the same path
        before = out.read_bytes()
        for _attempt in range(6):
            p = spawn(
                *("run", str(cfg), "--out", str(out), "--quiet", "--checkpoint-every", "1b"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while not ck.exists() and p.poll() is None:
                time.sleep(0.005)
            first_checkpoint = time.perf_counter()
            # a random point in training (checkpoint writes included)
            kill_at = first_checkpoint + rnd.uniform(0.0, window)
            while p.poll() is None and time.perf_counter() < kill_at:
                time.sleep(0.002)
            p.send_signal(signal.SIGKILL)
            killed = p.wait() == -signal.SIGKILL
            if killed and out.read_bytes() == before:
                break
            # it finished first, or the kill came after it had saved: then the results file
            # is the complete new one (never half-written); try an earlier point
            assert_same_run(ref, results.load(out))
            out.write_bytes(before)
            window = 0.8 * (time.perf_counter() - first_checkpoint)
        else:
            pytest.fail("the run always finished before the kill")
        # the killed run never touched the results file, and left a valid checkpoint
        assert out.read_bytes() == before
        state = ckpt.load(ck).state
        positions.append((state["epoch"], state["batch"]))
        # resume (config taken from the checkpoint) to the end
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pcsim.cli",
                "run",
                "--resume",
                str(ck),
                "--out",
                str(out),
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        assert_same_run(ref, results.load(out))
    assert positions  # (epoch, batch) where each kill struck; printed on failure
    leftovers = [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
    assert not leftovers, leftovers  # temporaries of killed writers are cleaned up


def test_ctrl_c_stops_writes_a_checkpoint_says_how_to_resume_and_exits_130(references, tmp_path):
    text, _ = CASES["pcm-ipc-adam"]
    ref = references["pcm-ipc-adam"][0]
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    out = tmp_path / "r.h5"
    p = spawn(
        *("run", str(cfg), "--out", str(out)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in p.stdout:  # progress on: the first epoch's line, then Ctrl-C
        if line.startswith("epoch   1"):
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted: checkpoint written to (\S+); resume with: (pcsim run .*)", last)
    assert m, err
    assert "Traceback" not in err and not out.exists()
    ck = tmp_path / m.group(1)
    assert ck.name == "r.ckpt.h5" and ck.exists()
    state = ckpt.load(ck).state
    assert 1 <= state["epoch"] < 4 or state["batch"] > 0
    cmd = shlex.split(m.group(2))
    assert cmd[:3] == ["pcsim", "run", str(cfg)] and "--resume" in cmd and "--out" in cmd
    r = subprocess.run(
        [sys.executable, "-m", "pcsim.cli", *cmd[1:], "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert_same_run(ref, results.load(out))


# --- bad checkpoint files and resume mismatches: one line, exit 2 --------------------------
SMALL = BASE.format(
    seed=1, bias="true", n=60, epochs=2, bs=16, learning="", bp="false", chip="rram", algorithm=""
)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    path = d / "good.ckpt.h5"
    cfg = config.loads(SMALL.replace("epochs = 2", "epochs = 1"))
    res = execute(cfg, progress=False, checkpoint=ckpt.Policy(path, 1, "epochs"))
    results.save(d / "results.h5", res)
    return path, d / "results.h5"


def _damaged(src: Path, dst: Path, edit) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    integrity.seal(dst)  # a deliberate edit, sealed again: the reader's own checks must see it
    return dst


def _set(f, key, value):
    del f[key]
    f[key] = value


BAD_FILES = {
    "missing": (lambda d, g, r: d / "nope.h5", "does not exist"),
    "directory": (lambda d, g, r: d, "is a directory"),
    "text file": (lambda d, g, r: _write(d / "t.h5", b"seed = 1\n"), "not a readable HDF5"),
    "truncated": (
        lambda d, g, r: _write(d / "trunc.h5", g.read_bytes()[: len(g.read_bytes()) // 2]),
        "truncated or extended",
    ),
    "foreign hdf5": (lambda d, g, r: _foreign(d / "foreign.h5"), "not a pcsim-checkpoint file"),
    "results file": (lambda d, g, r: r, "results file, not a checkpoint"),
    "future version": (
        lambda d, g, r: _damaged(g, d / "v.h5", lambda f: f.attrs.modify("format_version", 99)),
        "unsupported format_version 99",
    ),
    "wrong shape": (
        lambda d, g, r: _damaged(
            g, d / "s.h5", lambda f: _set(f, "parameters/W1", np.zeros((3, 3), np.float32))
        ),
        "/parameters/W1 must be float32 of shape (24, 64)",
    ),
    "wrong dtype": (
        lambda d, g, r: _damaged(
            g, d / "dt.h5", lambda f: _set(f, "parameters/W2", np.zeros((10, 24), np.int32))
        ),
        "/parameters/W2 must be a floating-point array",
    ),
    "missing group": (
        lambda d, g, r: _damaged(g, d / "m.h5", lambda f: f.__delitem__("optimizer")),
        "missing required entry /optimizer",
    ),
    "bad state json": (
        lambda d, g, r: _damaged(g, d / "j.h5", lambda f: _set(f, "state", "{not json")),
        "/state is not valid JSON",
    ),
    "state without rng": (
        lambda d, g, r: _damaged(
            g,
            d / "r.h5",
            lambda f: _set(
                f, "state", f["state"][()].decode().replace('"rng_noise"', '"rng_nois"')
            ),
        ),
        "/state.rng_noise is missing",
    ),
    "metrics of the wrong length": (
        lambda d, g, r: _damaged(
            g, d / "ml.h5", lambda f: _set(f, "metrics/train_accuracy", np.zeros(5))
        ),
        "/metrics/train_accuracy has 5 entries for 1 epochs",
    ),
}


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _foreign(p: Path) -> Path:
    with h5py.File(p, "w") as f:
        f["x"] = [1, 2, 3]
    return p


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_checkpoint_is_one_line_and_exit_2(case, good_checkpoint, tmp_path, capsys):
    make, expected = BAD_FILES[case]
    good, res = good_checkpoint
    bad = make(tmp_path, good, res)
    out = tmp_path / "out.h5"
    assert main(["run", "--resume", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcsim: error:"), err
    assert expected in err[0], err[0]
    assert not out.exists()


def test_resume_with_another_config_names_the_field(good_checkpoint, tmp_path, capsys):
    good, _ = good_checkpoint
    cfg = tmp_path / "other.toml"
    cfg.write_text(SMALL.replace("[learning]", "[learning]\nlr = 0.01"))
    assert main(["run", str(cfg), "--resume", str(good), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learning.lr" in err[0] and "checkpoint" in err[0], err


def test_resume_may_extend_epochs_and_equals_the_longer_run(good_checkpoint, tmp_path):
    good, _ = good_checkpoint
    cfg = config.loads(SMALL)  # epochs = 2; the checkpoint has done 1
    resumed = execute(cfg, progress=False, resume=ckpt.load(good))
    straight = execute(cfg, progress=False)
    for k in straight.parameters:
        np.testing.assert_array_equal(resumed.parameters[k], straight.parameters[k])
    for k in straight.metrics:
        if k != "wall_seconds":
            np.testing.assert_array_equal(resumed.metrics[k], straight.metrics[k])
    # the other way round is refused: two epochs done, one asked for
    two = tmp_path / "two.ckpt.h5"
    execute(cfg, progress=False, checkpoint=ckpt.Policy(two, 1, "epochs"))
    one = config.loads(SMALL.replace("epochs = 2", "epochs = 1"))
    with pytest.raises(config.ConfigError, match="learning.epochs is 1 but the checkpoint"):
        execute(one, progress=False, resume=ckpt.load(two))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (3, "epochs")),
        ("3e", (3, "epochs")),
        ("50b", (50, "batches")),
        ("2.5m", (2.5, "minutes")),
    ],
)
def test_checkpoint_every_parses(text, expected):
    assert ckpt.Policy.parse_every(text) == expected


@pytest.mark.parametrize("text", ["0", "x", "1.5b", "-2", "3 epochs", ""])
def test_checkpoint_every_rejects_nonsense_on_one_line(text, tmp_path, capsys):
    assert (
        main(["run", "--checkpoint-every", text, "--quiet", "--checkpoint", str(tmp_path / "c.h5")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--checkpoint-every" in err[0], err


def test_failed_results_write_keeps_the_old_file_and_is_one_line(tmp_path, monkeypatch, capsys):
    """A full disk while writing results: one line, the previous file is untouched."""
    out = tmp_path / "r.h5"
    out.write_bytes(b"previous results")
    cfg = tmp_path / "run.toml"
    cfg.write_text(SMALL.replace("epochs = 2", "epochs = 1"))

    def full(g, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results, "_write_group", full)
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert out.read_bytes() == b"previous results"
    assert [f.name for f in tmp_path.iterdir()] and not any(
        f.name.endswith(".tmp") for f in tmp_path.iterdir()
    )


def test_a_failing_periodic_checkpoint_warns_and_training_goes_on(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = config.loads(SMALL.replace("epochs = 2", "epochs = 1"))
    res = execute(cfg, progress=False, checkpoint=ckpt.Policy(blocker / "c.h5", 1, "batches"))
    assert res.summary["epochs"] == 1
    err = capsys.readouterr().err
    assert "warning" in err and "cannot write checkpoint" in err


def test_no_pickle_or_eval_in_the_package():
    pattern = re.compile(r"pickle|\beval\(")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for pkg in ("pcsim", "hardware_models")
        for p in sorted((ROOT / pkg).rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, hits
