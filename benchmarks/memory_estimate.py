"""The memory preflight's estimate (``pcsim.run.memory_estimate``) against the measured peak
(resident high-water mark) of real runs on networks [64, h, 10], rram, Adam, batch 32.

    python benchmarks/memory_estimate.py

A benchmark rather than a test: each run compiles every kernel of an rram/Adam run from cold
in a fresh process (about 3 minutes of the suite's 10 on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pcsim import config
from pcsim.data import load_dataset
from pcsim.run import memory_estimate

ROOT = Path(__file__).resolve().parents[1]  # the repository

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


def main() -> int:
    """The peak's growth from 500 to 10000 hidden units must lie between 60 % and 100 % of
    the estimate's growth (the estimate is built from the same measurement at larger sizes);
    exit 1 otherwise."""
    data = load_dataset("digits", test_fraction=0.01, seed=0)
    data.x_train, data.y_train = data.x_train[:32], data.y_train[:32]
    small, large = (memory_estimate(config.loads(RUN.format(h=h)), data) for h in (500, 10000))
    peak_small, peak_large = _peaks(500, 10000)
    measured, estimated = peak_large - peak_small, large - small
    ratio = measured / estimated
    print(
        f"growth of the peak from h = 500 to 10000: measured {measured / 2**20:.1f} MiB, "
        f"estimated {estimated / 2**20:.1f} MiB (ratio {ratio:.3f}; required 0.6-1.0)"
    )
    return 0 if 0.6 <= ratio <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
