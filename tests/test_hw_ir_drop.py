"""IR drop: the tile's nodal solution against ngspice on the same resistor network."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from hardware_models import load_preset
from hardware_models.ir_drop import column_currents, effective_conductance
from pcsim.spice import read_raw

NGSPICE = shutil.which("ngspice")


def _edges(G: np.ndarray, r_row: float, r_col: float) -> list[tuple[str, str, str, float]]:
    """The tile as a list of resistors ``(name, node_a, node_b, ohms)``, written independently
    of hardware_models: row drivers from ``in<i>``, row and column wire segments, devices, and
    the last column segment into ``s<j>`` (held at 0 V: the virtual ground)."""
    R, C = G.shape
    out = []
    for i in range(R):
        out.append((f"RD{i}", f"in{i}", f"r{i}_0", r_row))
        for j in range(C):
            if j + 1 < C:
                out.append((f"RR{i}_{j}", f"r{i}_{j}", f"r{i}_{j + 1}", r_row))
            out.append((f"RG{i}_{j}", f"r{i}_{j}", f"c{i}_{j}", 1.0 / G[i, j]))
            nxt = f"c{i + 1}_{j}" if i + 1 < R else f"s{j}"
            out.append((f"RC{i}_{j}", f"c{i}_{j}", nxt, r_col))
    return out


def _netlist(G: np.ndarray, v: np.ndarray, r_row: float, r_col: float) -> str:
    """Sources on the row inputs, the resistors, a 0 V ammeter source at each column end."""
    out = ["* crossbar tile with wire resistance"]
    out += [f"VIN{i} in{i} 0 DC {x:.12g}" for i, x in enumerate(v)]
    out += [f"{n} {a} {b} {r:.12g}" for n, a, b, r in _edges(G, r_row, r_col)]
    out += [f"VS{j} s{j} 0 DC 0" for j in range(G.shape[1])]
    out += [".options noacct", ".op", ".end"]
    return "\n".join(out) + "\n"


def _generic_column_currents(G, v, r_row, r_col) -> np.ndarray:
    """Any resistor network by nodal analysis from its edge list (fixed-voltage nodes
    eliminated): an independent check of hardware_models' own assembly at sizes ngspice
    cannot order in reasonable time."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    edges = _edges(G, r_row, r_col)
    fixed = {f"in{i}": x for i, x in enumerate(v)} | {f"s{j}": 0.0 for j in range(G.shape[1])}
    names = sorted({n for _, a, b, _ in edges for n in (a, b)} - set(fixed))
    index = {n: k for k, n in enumerate(names)}
    rows, cols, vals = [], [], []
    rhs = np.zeros(len(names))
    for _, a, b, r in edges:
        g = 1.0 / r
        for p, q in ((a, b), (b, a)):
            if p in index:
                rows.append(index[p])
                cols.append(index[p])
                vals.append(g)
                if q in index:
                    rows.append(index[p])
                    cols.append(index[q])
                    vals.append(-g)
                else:
                    rhs[index[p]] += g * fixed[q]
    A = sp.csc_matrix((vals, (rows, cols)), shape=(len(names),) * 2)
    x = spla.spsolve(A, rhs)
    R = G.shape[0]
    return np.array([x[index[f"c{R - 1}_{j}"]] / r_col for j in range(G.shape[1])])


def _ngspice_column_currents(tmp_path, G, v, r_row, r_col) -> np.ndarray:
    cir = tmp_path / "tile.cir"
    cir.write_text(_netlist(G, v, r_row, r_col))
    proc = subprocess.run(
        [NGSPICE, "-b", "-r", "tile.raw", "tile.cir"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    raw = read_raw(tmp_path / "tile.raw")
    names = [n.lower() for n in raw.names]
    # the current through a 0 V source flows from its + node (the column) into it
    return np.array([raw.values[0, names.index(f"i(vs{j})")] for j in range(G.shape[1])])


# ngspice-39 as packaged here is built without KLU (`.options klu` is ignored), so Sparse 1.3
# orders the 2 R C-node tile with its conventional Markowitz search, whose cost grows faster
# than nodes^2 (fill-in). CPU time of ngspice on one core: 0.6 s at 64 x 64, 2.5 s at 96 x 96,
# 9.5 s at 128 x 128, and about half an hour at 256 x 256 (131k nodes; 24-33 CPU minutes, 57 min
# of wall time on the shared machine, 2026-12-07: passed within 1 %). The same tile numbered in
# a minimum-degree order, with Norton sources and no ammeters, took 10 % longer at 128 x 128;
# wall times on the shared 2-core machine were 5-30 times the CPU times. The 128 and 256
# comparisons run when PCSIM_LONG_SPICE=1 (too long for the suite); the default suite checks
# 256 x 256 against the independent nodal solver below instead.
LONG = os.environ.get("PCSIM_LONG_SPICE") == "1"


@pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed (apt-get install ngspice)")
@pytest.mark.parametrize(
    "n",
    [
        64,
        pytest.param(128, marks=pytest.mark.skipif(not LONG, reason="PCSIM_LONG_SPICE=1: 10 s")),
        pytest.param(
            256, marks=pytest.mark.skipif(not LONG, reason="PCSIM_LONG_SPICE=1: ~30 CPU min")
        ),
    ],
)
def test_column_currents_match_ngspice_within_one_percent(n, tmp_path):
    chip = load_preset("rram")
    r = chip.architecture.wire_segment_ohm  # NeuroSim 22 nm wire per 1T1R cell pitch
    rng = np.random.default_rng(n)
    G = rng.uniform(chip.synapses.g_min_s, chip.synapses.g_max_s, (n, n))
    v = rng.uniform(0.0, 0.5, n)  # read voltages up to NeuroSim's 0.5 V
    ours = column_currents(G, v, r, r)
    spice = _ngspice_column_currents(tmp_path, G, v, r, r)
    np.testing.assert_allclose(ours, spice, rtol=0.01)
    # and the wires matter at this size: the ideal G^T v is off by more than the tolerance
    assert np.max(np.abs(G.T @ v / spice - 1)) > 0.01


@pytest.mark.parametrize("n", [64, 256])
def test_column_currents_match_an_independent_nodal_solver(n):
    chip = load_preset("pcm")
    r = chip.architecture.wire_segment_ohm
    rng = np.random.default_rng(n + 1)
    G = rng.uniform(0.0, chip.synapses.g_max_s, (n, n)) + 1e-9
    v = rng.uniform(0.0, 0.5, n)
    ours = column_currents(G, v, r, 0.5 * r)
    np.testing.assert_allclose(ours, _generic_column_currents(G, v, r, 0.5 * r), rtol=1e-8)
    assert np.max(np.abs(G.T @ v / ours - 1)) > 0.01  # the wires matter at this size


def test_ideal_wires_and_superposition():
    rng = np.random.default_rng(1)
    G = rng.uniform(1e-6, 1e-5, (12, 7))
    v = rng.uniform(0, 0.5, 12)
    np.testing.assert_allclose(column_currents(G, v, 0.0, 0.0), G.T @ v, rtol=1e-12)
    # tiny wires: first order, the reading approaches G^T v from below
    near = column_currents(G, v, 1e-6, 1e-6)
    np.testing.assert_allclose(near, G.T @ v, rtol=1e-6)
    assert np.all(near < G.T @ v)
    # linear in v: the effective matrix reproduces every solve
    M = effective_conductance(G, 20.0, 20.0)
    assert M.shape == (7, 12)
    for _ in range(3):
        u = rng.uniform(0, 0.5, 12)
        np.testing.assert_allclose(M @ u, column_currents(G, u, 20.0, 20.0), rtol=1e-10)


def test_one_device_one_wire_closed_form():
    """A 1 x 1 tile is three resistors in series: I = v / (r_row + 1/g + r_col)."""
    g, v, r1, r2 = 1e-4, 0.3, 150.0, 250.0
    i = column_currents(np.array([[g]]), np.array([v]), r1, r2)
    assert i[0] == pytest.approx(v / (r1 + 1 / g + r2), rel=1e-12)


def test_crossbar_reads_through_its_wires_when_ir_drop_is_on():
    """rram with architecture.ir_drop: a matrix-vector product with the read weights equals
    the differential column currents of the two device arrays, solved per input vector."""
    chip = load_preset(
        "rram",
        {
            "architecture.ir_drop": True,
            "architecture.tile_rows": 48,
            "architecture.tile_cols": 32,
            "synapses.read_noise_std": 0.0,
            "synapses.bits": None,
            "synapses.prog_noise_std": 0.0,
            "synapses.stuck_fraction": 0.0,
            "synapses.d2d_std": 0.0,
        },
    )
    rng = np.random.default_rng(5)
    W = rng.uniform(-1, 1, (40, 60))  # 2 x 2 tiles, the edge tiles partly used
    xb = chip.crossbar(W.shape)
    assert xb.ir_drop == (48, 32, chip.architecture.wire_segment_ohm)
    xb.program(W, rng)
    read = xb.read_mean(0.0)
    syn, r = chip.synapses, chip.architecture.wire_segment_ohm
    k = (syn.g_max_s - syn.g_min_s) / xb.w_max
    v = rng.uniform(0, 0.5, 60)
    expected = np.zeros(40)
    for o0 in (0, 32):
        for i0 in (0, 48):
            blk = xb.weights[o0 : o0 + 32, i0 : i0 + 48]
            vb = v[i0 : i0 + 48]
            ip = column_currents((syn.g_min_s + np.maximum(blk, 0) * k).T, vb, r, r)
            im = column_currents((syn.g_min_s + np.maximum(-blk, 0) * k).T, vb, r, r)
            expected[o0 : o0 + 32] += (ip - im) / k
    np.testing.assert_allclose(read @ v, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(read, xb.weights, rtol=1e-3)  # the wires change what is read
    assert xb.read_mean(0.0) is read  # cached until the weights change
    xb.update(np.full(W.shape, 0.01), rng)
    assert xb.read_mean(0.0) is not read
    # off by default: the preset reads the stored weights
    plain = load_preset("rram").crossbar(W.shape)
    assert plain.ir_drop is None
