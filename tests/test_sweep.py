"""Sweeps: sweep files, seeds, the results file, and runs on Dask (local, killed worker, external).

Budget: about 100 s of CPU (three small Dask clusters and two external processes; the grid
file's 12 points are parsed, and a 6-point grid, each point a full run of a few seconds,
is run four times).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pcsim import integrity
from pcsim import sweep as sw
from pcsim.results import ResultsError

RUN_TOML = """\
[data]
name = "digits"
limit_train = 300

[network]
sizes = [64, 32, 10]

[learning]
epochs = 2
lr = 0.003

[baseline]
bp = false

[algorithm]
inference_samples = 8  # inference priced on 8 test images (the default 64 costs 3x the run)
"""

SWEEP_TOML = """\
base = "run.toml"

[sweep]
mode = "grid"
seed = 7

[axes]
"learning.batch_size" = [8, 16, 32]
"algorithm.presentation_time" = [1.0, 2.0, 3.0, 4.0]
"""

# the sweep that runs (through Dask, four times): 6 of the grid's points, each a full run
RUN_SWEEP_TOML = SWEEP_TOML.replace("[8, 16, 32]", "[8, 32]").replace(
    "[1.0, 2.0, 3.0, 4.0]", "[1.0, 2.0, 4.0]"
)

# columns that must be identical whoever runs a point (wall time and summary_json, which holds
# train_seconds, legitimately differ)
SAME = [
    "learning.batch_size",
    "algorithm.presentation_time",
    "seed",
    "status",
    "error",
    "test_accuracy",
    "train_accuracy",
]


def write_sweep(d: Path, sweep_text: str = SWEEP_TOML, run_text: str = RUN_TOML) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.toml").write_text(run_text)
    (d / "sweep.toml").write_text(sweep_text)
    return d / "sweep.toml"


def assert_same_results(a, b) -> None:
    assert list(a.index) == list(b.index)
    for c in SAME:
        assert a[c].tolist() == b[c].tolist(), c


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"))


# --- sweep files (no Dask) ----------------------------------------------------------------------
def test_grid_points_seeds_and_configs(sweep_file):
    s = sw.load_sweep_file(sweep_file)
    assert s.mode == "grid" and s.fields == ["learning.batch_size", "algorithm.presentation_time"]
    assert len(s.points) == 12
    # first axis slowest
    assert [p.values["learning.batch_size"] for p in s.points[:5]] == [8, 8, 8, 8, 16]
    assert s.points[5].values == {"learning.batch_size": 16, "algorithm.presentation_time": 2.0}
    for p in s.points:
        ss = np.random.SeedSequence(7, spawn_key=(p.index,))
        assert p.seed == int(ss.generate_state(1)[0])
        assert p.config["seed"] == p.seed and p.config["blas_threads"] == 1
        assert p.config["learning"]["batch_size"] == p.values["learning.batch_size"]
        assert p.config["data"]["limit_train"] == 300  # from the base file
    assert len({p.seed for p in s.points}) == 12
    # a point's seed depends only on the sweep seed and its index
    other = sw.parse_sweep(SWEEP_TOML.replace("[8, 16, 32]", "[8, 16]"), sweep_file.parent)
    assert [p.seed for p in other.points] == [p.seed for p in s.points[:8]]


def test_sweep_from_python_values_and_shared_seed():
    base = {"learning": {"epochs": 1}, "chip": {"preset": "rram"}}
    axes = {"chip.synapses.bits": [2, 4], "chip.converters.adc_bits": [4, 8]}
    s = sw.sweep_from(base, axes, seed=7)
    t = sw.parse_sweep(
        '[base.learning]\nepochs = 1\n[base.chip]\npreset = "rram"\n[sweep]\nseed = 7\n'
        '[axes]\n"chip.synapses.bits" = [2, 4]\n"chip.converters.adc_bits" = [4, 8]\n'
    )
    assert [(p.values, p.seed, p.config) for p in s.points] == [
        (p.values, p.seed, p.config) for p in t.points
    ]
    shared = sw.sweep_from(base, axes, seed=7, shared_seed=True)
    assert {p.seed for p in shared.points} == {s.points[0].seed}  # common random numbers
    assert [p.values for p in shared.points] == [p.values for p in s.points]
    with pytest.raises(sw.SweepError, match="sweep.shared_seed must be true or false"):
        sw.parse_sweep('[sweep]\nshared_seed = 1\n[axes]\n"learning.lr" = [0.1]\n')


def test_random_mode_is_reproducible_and_in_range(tmp_path):
    text = """
[learning]
epochs = 1
[sweep]
mode = "random"
samples = 20
seed = 3
[axes]
"learning.lr" = { low = 1e-4, high = 1e-2, log = true }
"learning.batch_size" = { low = 4, high = 64, integer = true }
"network.activation" = ["tanh", "relu"]
"""
    a = sw.parse_sweep(text)
    b = sw.parse_sweep(text)
    assert len(a.points) == 20
    assert [p.values for p in a.points] == [p.values for p in b.points]
    lrs = [p.values["learning.lr"] for p in a.points]
    assert all(1e-4 <= v <= 1e-2 for v in lrs) and len(set(lrs)) == 20
    assert all(isinstance(p.values["learning.batch_size"], int) for p in a.points)
    assert all(4 <= p.values["learning.batch_size"] <= 64 for p in a.points)
    assert {p.values["network.activation"] for p in a.points} == {"tanh", "relu"}
    c = sw.parse_sweep(text.replace("seed = 3", "seed = 4"))
    assert [p.values for p in c.points] != [p.values for p in a.points]
    # log-uniform: about half the samples below the geometric midpoint 1e-3
    assert 4 <= sum(v < 1e-3 for v in lrs) <= 16


def test_inline_base_and_top_level_tables_merge():
    s = sw.parse_sweep(
        """
[base.learning]
epochs = 2
batch_size = 8
[learning]
batch_size = 16
[axes]
"engine.dt" = [0.25, 0.5]
"""
    )
    cfg = s.points[1].config
    assert cfg["learning"]["epochs"] == 2 and cfg["learning"]["batch_size"] == 16
    assert cfg["engine"]["dt"] == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[axes]\n"learning.batch_size" = []', "at least one value"),
        ('[sweep]\nmode = "grid"\n', "[axes] must name at least one field"),
        ('[sweep]\nfoo = 1\n[axes]\n"engine.dt" = [0.5]', "unknown key sweep.foo"),
        ('[sweep]\nmode = "random"\n[axes]\n"engine.dt" = [0.5]', "sweep.samples"),
        ('[axes]\n"engine.dt" = {low = 0.1, high = 0.5}', "ranges need"),
        ('[axes]\n"seed" = [1, 2]', "set per point"),
        ('[axes]\n"engine.dt" = [0.5, 0.5]', "twice"),
        ('base = "missing.toml"\n[axes]\n"engine.dt" = [0.5]', "does not exist"),
        ('[axes]\n"learning.nope" = [1]', "point 0 (learning.nope = 1): unknown key learning.nope"),
    ],
)
def test_sweep_file_errors_are_one_line(tmp_path, text, message):
    with pytest.raises(sw.SweepError) as e:
        sw.parse_sweep(text, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_axis_value_stops_before_anything_runs(tmp_path, capsys):
    f = write_sweep(tmp_path, SWEEP_TOML.replace("[8, 16, 32]", "[8, 0, 32]"))
    out = tmp_path / "out.h5"
    assert sw.sweep_main([str(f), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("pcsim: error: sweep.toml: point 4 (learning.batch_size = 0, ")
    assert "learning.batch_size must be a positive integer, got 0" in err
    assert not out.exists()


def test_cli_usage_errors(tmp_path, capsys, sweep_file):
    assert sw.sweep_main([str(sweep_file), "--workers", "0"]) == 2
    assert sw.sweep_main([str(sweep_file), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert sw.sweep_main([str(tmp_path / "nope.toml")]) == 2
    assert sw.sweep_main(["--bogus"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("pcsim: error: ") for line in lines)


# --- one point, in process ----------------------------------------------------------------------
def test_run_point_ok_and_failed_rows(sweep_file):
    from pcsim import config
    from pcsim.run import execute

    p = sw.load_sweep_file(sweep_file).points[5]
    row = sw.run_point(p.config)
    ref = execute(config.from_dict(p.config), progress=False).summary
    assert row["status"] == "ok" and row["error"] == ""
    assert row["test_accuracy"] == ref["test_accuracy"]
    assert json.loads(row["summary_json"])["seed"] == p.seed
    assert row["wall_time_s"] > 0
    for c in ("energy_per_sample_j", "latency_per_sample_s", "baseline_energy_ratio"):
        assert c in row  # NaN until the run reports it
    assert row["area_mm2"] == ref["area_mm2"]  # the chip's area travels with the row
    bad = dict(p.config, network=dict(p.config["network"], sizes=[32, 16, 10]))
    row = sw.run_point(bad)  # found only at run time: recorded, not raised
    assert row["status"] == "failed"
    assert "network.sizes[0] is 32" in row["error"] and "\n" not in row["error"]


# --- the results file ---------------------------------------------------------------------------
def _synthetic(tmp_path, sweep_file) -> tuple[sw.Sweep, Path]:
    s = sw.load_sweep_file(sweep_file)
    rows = {
        i: {"status": "ok", "error": "", "test_accuracy": 0.5 + i / 100, "wall_time_s": 1.0}
        for i in (0, 3, 4, 11)
    }
    rows[6] = {"status": "failed", "error": "DivergenceError: boom"}
    out = tmp_path / "syn.h5"
    sw.write_results(out, s, rows)
    return s, out


def test_results_layout_readable_with_h5py_alone(tmp_path, sweep_file):
    s, out = _synthetic(tmp_path, sweep_file)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "pcsim-sweep" and f.attrs["format_version"] == 1
        assert json.loads(f.attrs["axes"]) == s.fields and f.attrs["n_points"] == 12
        assert f["sweep_toml"].asstr()[()] == SWEEP_TOML
        assert f["base_toml"].asstr()[()] == RUN_TOML
        assert f["axes/learning.batch_size"][()].tolist() == [8, 16, 32]
        assert f["plan/seed"][()].tolist() == [p.seed for p in s.points]
        pts = f["points"]
        assert pts["index"][()].tolist() == [0, 3, 4, 6, 11]
        assert pts["algorithm.presentation_time"][()].tolist() == [1.0, 4.0, 1.0, 3.0, 4.0]
        assert pts["status"].asstr()[()].tolist() == ["ok"] * 3 + ["failed", "ok"]
        assert pts["test_accuracy"][()][0] == 0.5 and math.isnan(pts["test_accuracy"][()][3])
        assert json.loads(f["plan/config_json"].asstr()[2]) == s.points[2].config


def test_load_sweep_dataframe_and_xarray(tmp_path, sweep_file):
    s, out = _synthetic(tmp_path, sweep_file)
    df = sw.load_sweep(out)
    assert list(df.index) == [0, 3, 4, 6, 11] and df.index.name == "point"
    assert df.loc[11, "learning.batch_size"] == 32 and df.loc[11, "test_accuracy"] == 0.61
    assert df.loc[6, "error"] == "DivergenceError: boom"
    assert df.attrs["axes"] == s.fields and df.attrs["mode"] == "grid"
    pytest.importorskip("xarray")
    ds = sw.load_sweep(out, as_xarray=True)
    assert dict(ds.sizes) == {"learning.batch_size": 3, "algorithm.presentation_time": 4}
    assert (
        float(
            ds["test_accuracy"].sel({"learning.batch_size": 16, "algorithm.presentation_time": 1.0})
        )
        == 0.54
    )
    assert ds["status"].values[0, 1] == "pending" and ds["status"].values[1, 2] == "failed"
    assert np.isnan(ds["test_accuracy"].values[0, 1])
    assert ds["seed"].values.ravel().tolist() == [p.seed for p in s.points]


def test_load_sweep_rejects_foreign_truncated_and_random_xarray(tmp_path, sweep_file):
    _, out = _synthetic(tmp_path, sweep_file)
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(out.read_bytes())
    with h5py.File(damaged, "a") as f:
        del f["points/status"]
    integrity.seal(damaged)  # a deliberate edit: sealed again
    for p, msg in [
        (trunc, "truncated or extended"),
        (foreign, "not a pcsim-sweep file"),
        (text, "not a readable HDF5"),
        (damaged, "missing column /points/status"),
        (tmp_path / "none.h5", "does not exist"),
    ]:
        with pytest.raises(ResultsError, match=msg):
            sw.load_sweep(p)
    rnd = sw.parse_sweep('[sweep]\nmode = "random"\nsamples = 2\n[axes]\n"engine.dt" = [0.5]')
    sw.write_results(tmp_path / "rnd.h5", rnd, {})
    assert len(sw.load_sweep(tmp_path / "rnd.h5")) == 0
    pytest.importorskip("xarray")
    with pytest.raises(ValueError, match="grid sweep"):
        sw.load_sweep(tmp_path / "rnd.h5", as_xarray=True)


def test_resume_refuses_a_different_sweep(tmp_path, sweep_file, capsys):
    s, out = _synthetic(tmp_path, sweep_file)
    other = write_sweep(tmp_path / "other", SWEEP_TOML.replace("seed = 7", "seed = 8"))
    assert sw.sweep_main([str(other), "--out", str(out), "--quiet"]) == 2
    assert "holds results of a different sweep" in capsys.readouterr().err
    assert len(sw.load_sweep(out)) == 5  # untouched


# --- on Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_sweep_file(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("run_sweep"), RUN_SWEEP_TOML)


@pytest.fixture(scope="module")
def reference(run_sweep_file, tmp_path_factory):
    """The 6-point sweep run through the CLI on a local cluster of ONE worker process."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    args = [str(run_sweep_file), "--out", str(out), "--workers", "1", "--quiet"]
    assert sw.sweep_main(args) == 0
    return sw.load_sweep(out)


@pytest.fixture(scope="module")
def client2():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_two_workers_give_the_same_numbers_as_one(run_sweep_file, reference, client2, tmp_path):
    assert len(reference) == 6 and set(reference["status"]) == {"ok"}
    assert reference["test_accuracy"].nunique() > 3  # the axes matter
    out = tmp_path / "two.h5"
    res = sw.run_sweep(sw.load_sweep_file(run_sweep_file), out, client=client2, progress=False)
    assert res.ran == list(range(6)) and res.ok == 6 and res.failed == 0
    assert_same_results(sw.load_sweep(out), reference)


def test_failed_points_are_recorded_and_rerun(tmp_path, client2, capsys):
    text = SWEEP_TOML.replace(
        '"learning.batch_size" = [8, 16, 32]', '"network.sizes" = [[64, 16, 10], [32, 16, 10]]'
    ).replace("[1.0, 2.0, 3.0, 4.0]", "[1.0, 2.0]")
    f = write_sweep(tmp_path, text)
    out = tmp_path / "f.h5"
    addr = client2.scheduler.address
    assert sw.sweep_main([str(f), "--out", str(out), "--scheduler", addr, "--quiet"]) == 1
    df = sw.load_sweep(out)
    assert df["status"].tolist() == ["ok", "ok", "failed", "failed"]
    assert df.loc[2, "error"].startswith("ConfigError: network.sizes[0] is 32 but digits has 64")
    assert math.isnan(df.loc[2, "test_accuracy"])
    assert df.loc[0, "test_accuracy"] > 0.2  # chance: 0.1
    assert df.loc[0, "network.sizes"] == "[64, 16, 10]"  # list values: JSON text
    res = sw.run_sweep(sw.load_sweep_file(f), out, client=client2, progress=False)
    assert res.ran == [2, 3] and res.skipped == 2 and res.failed == 2
    assert "2 points failed" in capsys.readouterr().out


def _drop_rows(path: Path, drop: set[int]) -> None:
    with h5py.File(path, "a") as f:
        keep = ~np.isin(f["points/index"][()], list(drop))
        for name in list(f["points"]):
            ds = f["points"][name]
            data, attrs, dtype = ds[()][keep], dict(ds.attrs), ds.dtype
            del f["points"][name]
            new = f["points"].create_dataset(name, data=data, dtype=dtype)
            new.attrs.update(attrs)
    integrity.seal(path)  # a deliberate edit: sealed again


def _mark_failed(path: Path, index: int) -> None:
    with h5py.File(path, "a") as f:
        k = int(np.flatnonzero(f["points/index"][()] == index)[0])
        f["points/status"][k] = "failed"
        f["points/error"][k] = "marked failed by the test"
    integrity.seal(path)  # a deliberate edit: sealed again


def test_killed_worker_then_resume(run_sweep_file, reference, tmp_path):
    from distributed import Client, LocalCluster

    s = sw.load_sweep_file(run_sweep_file)
    out = tmp_path / "kill.h5"
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    )
    client = Client(cluster)
    try:
        killed: dict[str, object] = {}
        seen: list[int] = []

        def kill_one(index: int, row: dict) -> None:
            seen.append(index)
            if killed:
                return
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if not busy:
                return  # try again at the next result
            addr = sorted(busy)[0]  # a worker with a point in flight
            pid = client.run(os.getpid, workers=[addr])[addr]
            os.kill(pid, signal.SIGKILL)
            killed.update(addr=addr, pid=pid, keys=list(busy[addr]))

        res = sw.run_sweep(s, out, client=client, progress=False, on_result=kill_one)
        assert killed and killed["keys"], "no worker was killed mid-point"
        assert sorted(seen) == list(range(6)) and res.ran == list(range(6))
        df = sw.load_sweep(out)
        assert len(df) == 6 and df.index.is_unique and set(df["status"]) == {"ok"}
        assert_same_results(df, reference)
        pids = set(client.run(os.getpid).values())
        assert killed["pid"] not in pids  # the nanny replaced the killed process

        again = sw.run_sweep(s, out, client=client, progress=False)
        assert again.ran == [] and again.skipped == 6
        _drop_rows(out, {1, 4})
        _mark_failed(out, 3)
        assert len(sw.load_sweep(out)) == 4
        third = sw.run_sweep(s, out, client=client, progress=False)
        assert third.ran == [1, 3, 4] and third.skipped == 3
        df = sw.load_sweep(out)
        assert len(df) == 6 and df.index.is_unique
        assert_same_results(df, reference)
    finally:
        client.close()
        cluster.close()


def _stop(*procs: subprocess.Popen) -> None:
    """SIGTERM all (dask closes its workers gracefully), then SIGKILL what is left after 15 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


@pytest.mark.slow
def test_separately_started_scheduler(run_sweep_file, reference, tmp_path, capsys):
    """`dask scheduler` + `dask worker` processes on localhost, reached through --scheduler."""
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    dask = [sys.executable, "-m", "dask"]
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    *dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                    "--idle-timeout",
                    "300s",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "the dask scheduler did not start"
        time.sleep(0.2)  # the file is written in one go, but give the writer a moment
        addr = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [
                    *dask,
                    "worker",
                    addr,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--death-timeout",
                    "60",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        )
        with Client(addr, timeout="30s") as c:
            c.wait_for_workers(2, timeout=90)
        out = tmp_path / "ext.h5"
        args = [str(run_sweep_file), "--out", str(out), "--scheduler", addr, "--quiet"]
        code = sw.sweep_main(args)
        assert code == 0
        assert "Dask scheduler at tcp://127.0.0.1" in capsys.readouterr().out
        assert_same_results(sw.load_sweep(out), reference)
    finally:
        _stop(*reversed(procs))
        log.close()


def test_unreachable_scheduler_is_one_line(sweep_file, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = sw.load_sweep_file(sweep_file)
    addr = f"tcp://127.0.0.1:{port}"
    with pytest.raises(sw.SweepError) as e:
        sw.run_sweep(s, tmp_path / "x.h5", scheduler=addr, connect_timeout="1s", progress=False)
    assert str(e.value).startswith(f"cannot reach the Dask scheduler at {addr}")
    assert "\n" not in str(e.value)


def test_worker_deaths_and_dask_errors_become_failed_rows():
    from types import SimpleNamespace

    from distributed import KilledWorker

    kw = KilledWorker("pcsim-point-3-x", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)
    msg = sw._infrastructure_error(kw)
    assert msg.startswith("the worker processes running this point kept dying")
    assert "pcsim-point-3-x" in msg and "\n" not in msg
    msg = sw._infrastructure_error(ModuleNotFoundError("No module named 'pcsim'"))
    assert msg == "could not run on a Dask worker: ModuleNotFoundError: No module named 'pcsim'"
