"""Sweep throughput on a local Dask cluster: the same CPU-bound sweep with 1 and with 2 workers.

    python benchmarks/bench_sweep.py [--points 8] [--workers 1 2] [--epochs 4]

Every point is the same amount of work (a digits run; the axes change the learning rate and the
activation, not the cost), so N single-threaded worker processes should give close to N times the
points per second on N free cores. Workers are started and warmed up (imports, numba cache) before
the clock starts; the time is from submitting the points to the last result written to the
results file (HDF5, rewritten atomically after every finished point), so it includes Dask's
scheduling and the per-point file writes. Target: 2 workers >= 1.6x the throughput of 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

RUN = """\
[data]
name = "digits"
limit_train = {limit}

[network]
sizes = [64, 128, 10]

[learning]
epochs = {epochs}
batch_size = 16

[baseline]
bp = false
"""

LRS = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3, 7e-3, 8e-3]


def sweep_text(points: int) -> str:
    per = max(1, points // 2)
    lrs = ", ".join(f"{x:g}" for x in (LRS * (per // len(LRS) + 1))[:per])
    return (
        'base = "run.toml"\n[sweep]\nmode = "grid"\nseed = 0\n[axes]\n'
        f'"learning.lr" = [{lrs}]\n"network.activation" = ["tanh", "leaky_relu"]\n'
    )


def _warm() -> int:
    """Import pcsim and load the numba kernels on a worker (not timed)."""
    from pcsim import config
    from pcsim.run import execute

    cfg = config.from_dict(
        {"data": {"limit_train": 64}, "network": {"sizes": [64, 8, 10]}, "learning": {"epochs": 1}}
    )
    execute(cfg, progress=False)
    return os.getpid()


def measure(sweep_file: Path, workers: int, workdir: Path) -> tuple[float, int]:
    from distributed import Client, LocalCluster

    from pcsim import sweep as sw

    s = sw.load_sweep_file(sweep_file)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    client = Client(cluster)
    try:
        client.run(_warm)
        out = workdir / f"bench_{workers}.h5"
        t0 = time.perf_counter()
        res = sw.run_sweep(s, out, client=client, progress=False)
        elapsed = time.perf_counter() - t0
        assert res.ok == len(s.points), f"{res.failed} points failed"
        return elapsed, len(s.points)
    finally:
        client.close()
        cluster.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit-train", type=int, default=1000)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "run.toml").write_text(RUN.format(limit=a.limit_train, epochs=a.epochs))
        (d / "sweep.toml").write_text(sweep_text(a.points))
        rows = []
        for n in a.workers:
            elapsed, points = measure(d / "sweep.toml", n, d)
            rows.append((n, points, elapsed, points / elapsed))
            rate = points / elapsed
            print(f"{n} worker(s): {points} points in {elapsed:.2f} s = {rate:.3f} points/s")
    base = rows[0][3]
    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"1-min load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f} "
        "(other work on the machine skews the ratio: run it on an idle machine)"
    )
    print("| workers | points | time (s) | points/s | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for n, points, elapsed, rate in rows:
        print(f"| {n} | {points} | {elapsed:.2f} | {rate:.3f} | {rate / base:.2f}x |")


if __name__ == "__main__":  # the guard Dask's worker processes need
    main()
