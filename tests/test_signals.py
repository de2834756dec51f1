"""SIGTERM / SIGINT are honoured within a second or two everywhere: at a safe point with a
checkpoint, or, when none comes in time, without one and without leaving a temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pcsim import network
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.inference import StopRequested, measure_inference

ROOT = Path(__file__).resolve().parents[1]


def test_measure_inference_polls_should_stop_and_restores_the_circuit():
    net = network.build((4, 6, 3), "leaky_relu", dtype=np.float32, rng=np.random.default_rng(0))
    circ = Circuit(net)
    circ.t = 7.0
    ledger = circ.ledger
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(StopRequested):
        measure_inference(circ, np.ones((2, 4), net.dtype), ClockedEngine(dt=0.1), should_stop=stop)
    assert len(calls) == 3  # polled after every chunk of 1 tau_x, stopped at the third
    assert circ.t == 7.0 and circ.ledger is ledger


WATCHDOG = """
import sys, time
from pcsim import cli, results
cli.WRITE_WAIT_S = {write_wait}
stop = cli._StopOnSignal(grace_s=0.5)
stop.install()
if {writing}:
    open("fake.tmp", "w").write("half a checkpoint")
    results._WRITING.add("fake.tmp")
print("ready", flush=True)
t0 = time.time()
while time.time() - t0 < 60:  # a long computation that never reaches a safe point
    sum(range(10000))
print("no exit", flush=True)
"""


@pytest.mark.parametrize("writing", [False, True])
def test_no_safe_point_in_time_stops_without_a_checkpoint(tmp_path, writing):
    script = textwrap.dedent(WATCHDOG.format(writing=writing, write_wait=1.0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    elapsed = time.perf_counter() - t0
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "no exit" not in out and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("pcsim: error: no safe point within 0.5 s")
    # 0.5 s of grace; a write under way gets up to WRITE_WAIT_S = 1 s, then its file goes
    assert elapsed < (3.0 if writing else 2.5)
    assert not (tmp_path / "fake.tmp").exists()
