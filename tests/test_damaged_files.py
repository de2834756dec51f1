"""Damaged copies of a results file, a checkpoint and a sweep file: each loads with content
identical to the original, or is refused with one line (ResultsError), quickly; never a raw
exception, never a hang, never altered content (the seals of :mod:`pcsim.integrity`)."""

from __future__ import annotations

import faulthandler
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcsim import checkpoint as ckpt
from pcsim import config, integrity, results
from pcsim import sweep as sw
from pcsim.results import ResultsError
from pcsim.run import execute

RUN = """
seed = 2
[network]
sizes = [64, 8, 10]
[data]
limit_train = 40
[learning]
epochs = 1
batch_size = 20
optimizer = "adam"  # a checkpoint with per-weight optimiser state to damage
[baseline]
bp = false
[chip]
preset = "ideal"
"""

SWEEP = """
[base]
seed = 0
[base.data]
limit_train = 40
[sweep]
mode = "grid"
[axes]
"engine.dt" = [0.25, 0.5]
"learning.batch_size" = [8, 16]
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("orig")
    cfg = config.loads(RUN)
    res = execute(cfg, progress=False, checkpoint=ckpt.Policy(d / "run.ckpt.h5", 1, "epochs"))
    results.save(d / "run.h5", res)
    s = sw.parse_sweep(SWEEP)
    rows = {0: {"status": "ok", "error": "", "test_accuracy": 0.5, "wall_time_s": 1.0}}
    rows[2] = {"status": "failed", "error": "DivergenceError: boom"}
    sw.write_results(d / "sweep.h5", s, rows)
    return {"results": d / "run.h5", "checkpoint": d / "run.ckpt.h5", "sweep": d / "sweep.h5"}


def _fingerprint(kind: str, path: Path):
    """Everything the loader returns, as comparable values."""
    if kind == "results":
        r = results.load(path)
        arrays = {**r.metrics, **r.parameters, **r.extra}
        return (
            r.config_text,
            repr(r.summary),
            r.ledger,
            {k: v.tobytes() for k, v in arrays.items()},
        )
    if kind == "checkpoint":
        c = ckpt.load(path)
        flat = [c.config_text, repr(c.state)]
        flat += [v.tobytes() for v in c.parameters.values()]
        flat += [a.tobytes() for arrays in c.optimizer.values() for a in arrays]
        flat += [v.tobytes() for v in c.metrics.values()]
        return flat
    df = sw.load_sweep(path)
    return df.to_json(), repr(df.attrs)


def _damage(data: bytes, how: str, offset: int, value: int) -> bytes:
    b = bytearray(data)
    offset %= len(b)
    if how == "flip":
        b[offset] ^= 1 << (value % 8)
    elif how == "zero512":
        b[offset : offset + 512] = bytes(len(b[offset : offset + 512]))
    elif how == "byte":
        b[offset] = value % 256
    elif how == "truncate":
        del b[offset:]
    elif how == "append":
        b += bytes([value % 256]) * (1 + value % 700)
    return bytes(b)


@pytest.mark.parametrize("kind", ["results", "checkpoint", "sweep"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    how=st.sampled_from(["flip", "zero512", "byte", "truncate", "append"]),
    offset=st.integers(0, 1 << 20),
    value=st.integers(0, 1 << 16),
)
def test_damaged_copy_loads_identical_or_is_refused_in_one_line(
    files, tmp_path, kind, how, offset, value
):
    original = files[kind]
    want = _fingerprint(kind, original)
    bad = tmp_path / f"bad-{kind}.h5"
    bad.write_bytes(_damage(original.read_bytes(), how, offset, value))
    faulthandler.dump_traceback_later(60, exit=True)  # a hang fails the run, loudly
    t0 = time.perf_counter()
    try:
        got = _fingerprint(kind, bad)
    except ResultsError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("bad-"), str(exc)
    else:
        assert got == want, f"{how} at {offset}: loaded with altered content"
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert time.perf_counter() - t0 < 5.0


def test_every_single_bit_region_is_covered(files, tmp_path):
    """Deterministic: one flipped bit in each 512-byte block of each file is refused (the
    seal covers the user block's digest text and every byte after it)."""
    for kind, original in files.items():
        data = original.read_bytes()
        for off in range(0, len(data), 512):
            bad = tmp_path / f"bad-{kind}-{off}.h5"
            bad.write_bytes(_damage(data, "flip", off + 3, 0))
            with pytest.raises(ResultsError):
                _fingerprint(kind, bad)


def test_seal_is_in_the_user_block_and_h5py_reads_the_file(files):
    for original in files.values():
        head = original.read_bytes()[: integrity.USERBLOCK]
        assert head.startswith(integrity.MAGIC)
        with h5py.File(original, "r") as f:
            assert f.userblock_size == integrity.USERBLOCK and "format" in f.attrs


def test_unsealed_file_loads_with_a_warning(files, tmp_path):
    """A results file as pcsim wrote it before seals (plain HDF5, no user block): read, with
    an UnsealedFileWarning, to the same content."""
    src = files["results"]
    old = tmp_path / "old.h5"
    with h5py.File(src, "r") as f, h5py.File(old, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for k in f:
            f.copy(f[k], g, name=k)
    with pytest.warns(integrity.UnsealedFileWarning, match="no checksum"):
        got = _fingerprint("results", old)
    assert got == _fingerprint("results", src)


def test_array_valued_format_attribute_is_one_line(files, tmp_path):
    bad = tmp_path / "arr.h5"
    bad.write_bytes(files["results"].read_bytes())
    with h5py.File(bad, "r+") as f:
        f.attrs["format"] = np.arange(100)
    integrity.seal(bad)
    with pytest.raises(ResultsError, match=r"^arr.h5: not a pcsim-results file") as e:
        results.load(bad)
    assert "\n" not in str(e.value)


def _edited(src: Path, dst: Path, edit) -> Path:
    """A copy of ``src`` edited with h5py and sealed again (a crafted, well-formed file)."""
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    integrity.seal(dst)
    return dst


def _scale_first(f, key, value):
    a = f[key][()]
    a.flat[0] = value
    f[key][...] = a


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("optimizer/v/0", -7e7, "Adam's second moments are never negative"),
        ("parameters/W1", 1.8e28, "beyond any state a run keeps"),
        ("parameters/W2", np.nan, "non-finite values"),
        ("optimizer/m/1", np.inf, "non-finite values"),
    ],
)
def test_checkpoint_values_are_range_checked_before_resume(files, tmp_path, key, value, expected):
    bad = _edited(files["checkpoint"], tmp_path / "v.h5", lambda f: _scale_first(f, key, value))
    with pytest.raises(ResultsError, match=expected) as e:
        ckpt.load(bad)
    assert "\n" not in str(e.value) and key.split("/")[0] in str(e.value)


def _set(f, key, value):
    del f[key]
    f[key] = value


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda f: _set(f, "metrics/epoch", np.array([np.nan])), "/metrics/epoch must count"),
        (lambda f: _set(f, "summary_json", '{"sizes": 5}'), "sizes must be a list"),
        (
            lambda f: _set(f, "summary_json", '{"energy_breakdown_j": {"a": "x"}}'),
            "energy_breakdown_j must map names to numbers",
        ),
    ],
)
def test_report_validates_what_it_draws(files, tmp_path, capsys, edit, expected):
    from pcsim.report import report_main

    bad = _edited(files["results"], tmp_path / "rep.h5", edit)
    assert report_main([str(bad), "--plots", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "plots").exists()
