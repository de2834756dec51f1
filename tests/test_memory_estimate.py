"""The memory preflight's estimate against a measured peak (ru_maxrss) of real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcsim import config
from pcsim.data import load_dataset
from pcsim.run import memory_estimate

ROOT = Path(__file__).resolve().parents[1]

RUN = """
[network]
sizes = [64, {h}, 10]
[data]
limit_train = 32
test_fraction = 0.01
[learning]
epochs = 1
optimizer = "adam"  # the estimate covers the largest per-weight state (Adam's m and v)
lr = 1e-3
batch_size = 32
[baseline]
bp = false
[chip]
preset = "rram"
"""

# A tiny run first compiles every kernel (numba's compiler can peak above the run itself);
# then the peak resident size is reset (Linux: 5 > /proc/self/clear_refs) and read back after
# the measured run (VmHWM, less the resident size at the reset), so the peak is the run's own.
SCRIPT = """
import sys
from pcsim import config
from pcsim.run import execute
texts = sys.stdin.read().split("# next run\\n")
execute(config.loads(texts[0].replace("sizes = [64, ", "sizes = [64, 8, 10] #")), progress=False)
def status(key):
    line = [l for l in open("/proc/self/status") if l.startswith(key + ":")][0]
    return int(line.split()[1]) * 1024
for text in texts:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rest = status("VmRSS")
    execute(config.loads(text), progress=False)
    print(status("VmHWM") - rest)
"""


def _peaks(*hs: int) -> list[int]:
    """The peak of each run, measured one after the other in one process (compiled once)."""
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input="# next run\n".join(RUN.format(h=h) for h in hs),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return [int(v) for v in p.stdout.split()[-len(hs) :]]


@pytest.mark.slow
def test_estimate_covers_the_measured_peak_and_is_close_to_it():
    """The peak's growth from 500 to 10000 hidden units lies between 60 % and 100 % of the
    estimate's growth (the estimate is built from the same measurement at larger sizes)."""
    data = load_dataset("digits", test_fraction=0.01, seed=0)
    data.x_train, data.y_train = data.x_train[:32], data.y_train[:32]
    small, large = (memory_estimate(config.loads(RUN.format(h=h)), data) for h in (500, 10000))
    peak_small, peak_large = _peaks(500, 10000)
    measured = peak_large - peak_small
    assert 0.6 * (large - small) <= measured <= large - small, (measured, large - small)
