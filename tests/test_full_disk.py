"""A full disk, simulated with a file-size limit (RLIMIT_FSIZE; writes beyond it fail with
EFBIG as they would with ENOSPC): results -> one line, exit 2; checkpoints -> one warning line,
training goes on, exit 0; no temporary file left behind either way."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bytes: the results and checkpoints of this network (37k float32 weights, 148 kB) are larger;
# numba's cache files (up to ~1 MB) are not written under the limit: the fixture below
# compiles the run's kernels first, so the limited process only loads them
LIMIT = 1 << 16

RUN = """
[network]
sizes = [64, 500, 10]
[learning]
epochs = 1
[data]
limit_train = 64
[baseline]
bp = false
[chip]
preset = "ideal"
"""


@pytest.fixture(scope="module", autouse=True)
def _kernels_cached():
    """The run's kernels compiled and cached (the same types, a tiny hidden layer)."""
    from pcsim import config
    from pcsim.run import execute

    execute(config.loads(RUN.replace("[64, 500, 10]", "[64, 8, 10]")), progress=False)


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _pcsim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pcsim.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited,
    )


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_results_on_a_full_disk_one_line_exit_2(tmp_path):
    (tmp_path / "run.toml").write_text(RUN)
    (tmp_path / "r.h5").write_bytes(b"previous")
    p = _pcsim(tmp_path, "run", "run.toml", "--quiet", "--out", "r.h5")
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()
    assert err == [
        "pcsim: error: cannot write results 'r.h5': File too large (any previous file there "
        "is unchanged)"
    ], p.stderr
    assert (tmp_path / "r.h5").read_bytes() == b"previous"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.h5", "run.toml"]


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_checkpoints_on_a_full_disk_warn_once_and_training_goes_on(tmp_path):
    (tmp_path / "run.toml").write_text(RUN)
    p = _pcsim(
        tmp_path, "run", "run.toml", "--quiet", "--checkpoint", "c.h5", "--checkpoint-every", "1b"
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines() == [
        "pcsim: warning: cannot write checkpoint 'c.h5': File too large; training goes on (the "
        "previous checkpoint is intact; this warning is not repeated for the same reason)"
    ]
    assert "test accuracy" in p.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == ["run.toml"]
