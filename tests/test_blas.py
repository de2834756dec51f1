"""BLAS threads: importing pcsim leaves them alone; a run (the CLI, ``limit_threads``) sets one.

Each check runs in a fresh interpreter that starts with two threads per OpenBLAS library
(``OPENBLAS_NUM_THREADS=2``, read when the library loads), so a limit set on import would show.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pcsim.blas import ENV_VAR, default_threads

ROOT = Path(__file__).resolve().parents[1]

_THREADS = (
    "import json, scipy.linalg.cython_blas\n"
    "from threadpoolctl import threadpool_info\n"
    "def threads():\n"
    "    return sorted(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')\n"
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    full.update(OPENBLAS_NUM_THREADS="2", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", _THREADS + code],
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_importing_pcsim_leaves_the_thread_count_alone():
    code = (
        "before = threads()\n"
        "import pcsim.config, pcsim.kernels, pcsim.run, pcsim.engines.events\n"
        "print(json.dumps([before, threads()]))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    before, after = json.loads(proc.stdout.splitlines()[-1])
    assert before and all(n == 2 for n in before), before  # the check can see a change
    assert after == before


def test_limit_threads_reaches_numpy_and_scipy_and_restores():
    code = (
        "from pcsim.blas import limit_threads\n"
        "with limit_threads():\n"
        "    inside = threads()\n"
        "after = threads()\n"
        "limit_threads(3)\n"
        "print(json.dumps([inside, after, threads()]))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    inside, after, three = json.loads(proc.stdout.splitlines()[-1])
    assert inside and all(n == 1 for n in inside), inside
    assert all(n == 2 for n in after) and all(n == 3 for n in three), (after, three)


def test_the_first_circuit_sets_the_default_unless_a_limit_was_chosen():
    code = (
        "import numpy as np\n"
        "from pcsim import network\n"
        "from pcsim.circuit import Circuit\n"
        "before = threads()\n"
        "Circuit(network.build((3, 4, 2), 'tanh', rng=0))\n"
        "first = threads()\n"
        "from pcsim.blas import limit_threads\n"
        "limit_threads(3)\n"
        "Circuit(network.build((3, 4, 2), 'tanh', rng=0))\n"
        "print(json.dumps([before, first, threads()]))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    before, first, chosen = json.loads(proc.stdout.splitlines()[-1])
    assert all(n == 2 for n in before) and all(n == 1 for n in first), (before, first)
    assert all(n == 3 for n in chosen), chosen


def test_the_cli_sets_the_environments_count():
    code = "from pcsim.cli import main\nassert main(['info']) == 0\nprint(json.dumps(threads()))\n"
    proc = _python(code, **{ENV_VAR: "3"})
    assert proc.returncode == 0, proc.stderr
    assert all(n == 3 for n in json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_environment_value_is_one_line_naming_it(raw, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, raw)
    message = f"{ENV_VAR} must be an integer from 1 to 1024, got '{raw}'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        default_threads()
    from pcsim.cli import main

    assert main(["info"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pcsim: error: {message}"]


def test_default_is_one_thread(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_threads() == 1
    monkeypatch.setenv(ENV_VAR, "4")
    assert default_threads() == 4
