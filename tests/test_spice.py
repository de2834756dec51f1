"""Circuit-level truth: the exported ngspice netlist against pcsim's adaptive engine.

The tests that run ngspice skip with one line when it is not installed; the netlist structure,
the conductance mapping and the raw-file parser are checked without it. Budget: ~15 s.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess

import numpy as np
import pytest

from hardware_models import Chip, load_preset
from pcsim import config, network, spice
from pcsim.circuit import Circuit

needs_ngspice = pytest.mark.skipif(spice.ngspice_path() is None, reason=spice.INSTALL_HINT)

# the rram preset with every noise source off (the comparison is deterministic); mismatch,
# leak, offsets, gain errors, programming noise, stuck devices and 8-bit levels stay
DETERMINISTIC = {
    "value_units.thermal_noise": False,
    "synapses.read_noise_std": 0.0,
    "error_units.noise_std": 0.0,
    # the transients below are sized to settle within their presentation on weights mapped
    # with 1.25x headroom; the rram preset's 2.5x (a learning choice) makes these random
    # networks' slowest modes slower than the presentations
    "synapses.w_max_headroom": 1.25,
}


def rram(**extra) -> Chip:
    return load_preset("rram", {**DETERMINISTIC, **extra})


def make(
    act="tanh", chip=None, sizes=(4, 8, 8, 3), P=2, top=True, seed=1
) -> tuple[Circuit, np.ndarray, np.ndarray | None]:
    net = network.build(sizes, act, rng=seed)
    circ = Circuit(net, chip=chip, rng=np.random.default_rng(seed + 1))
    rng = np.random.default_rng(seed + 2)
    x = rng.uniform(-1.0, 1.0, (P, sizes[0]))
    y = 0.8 * np.eye(sizes[-1])[rng.integers(0, sizes[-1], P)] if top else None
    return circ, x, y


def parse_resistors(text: str, layer: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """(G+, G-) of crossbar ``layer`` read back from the netlist's forward resistors."""
    g = {"p": np.zeros(shape), "m": np.zeros(shape)}
    pat = re.compile(rf"^RW{layer}([pm])_(\d+)_(\d+) \S+ \S+ (\S+)$", re.MULTILINE)
    for sgn, i, j, r in pat.findall(text):
        g[sgn][int(i), int(j)] = 1.0 / float(r)
    return g["p"], g["m"]


# ---------------------------------------------------------------------------------------------
# without ngspice
# ---------------------------------------------------------------------------------------------
def test_netlist_is_readable():
    circ, x, y = make(chip=rram())
    text = spice.export(circ, x, y, presentation_time=4.0, source="unit test").text
    first = text.splitlines()[0]
    assert first.startswith("* pcsim") and "4-8-8-3" in first and "'rram'" in first
    assert "* from: unit test" in text
    assert "tau_x = C/g = 1e-07 s" in text and "1 activity unit = 0.5 V" in text
    for kind in ("value_unit", "error_unit", "act_tanh", "tia", "buffer"):
        assert re.search(rf"^\.subckt {kind}\b", text, re.MULTILINE), kind
    # layer and index in every name
    assert re.search(r"^Xx1_3 x1_3 e1_3 bk1_3 d1_3 0 value_unit c=", text, re.MULTILINE)
    assert re.search(r"^Xe2_0 e2_0 x2_0 mu2_0 error_unit gain=", text, re.MULTILINE)
    assert re.search(r"^Xp1_3 p1_3 d1_3 x1_3 act_tanh vs=0.5$", text, re.MULTILINE)
    assert re.search(r"^RW2[pm]_0_5 p1_5 sf2[pm]_0 ", text, re.MULTILINE)
    assert re.search(r"^RB2[pm]_0_5 e2_0 sb1[pm]_5 ", text, re.MULTILINE)
    assert re.search(r"^Vx0_2 x0_2 0 PWL\(0 ", text, re.MULTILINE)  # the clamped input
    assert "synapse" not in text  # fixed weights: no learning circuits
    # rails of the chip (+-2 activity units at 0.5 V per unit)
    assert "lo=-1 hi=1" in text
    learn = spice.export(circ, x, y, presentation_time=4.0, tau_w=10.0).text
    assert re.search(
        r"^XW2_0_5 w2_0_5 p1_5 e2_0 sf2p_0 sf2m_0 sb1p_5 sb1m_5 synapse ", learn, re.MULTILINE
    )
    assert re.search(r"^XW1_0_3 w1_0_3 p0_3 e1_0 sf1p_0 sf1m_0 synapse_fwd ", learn, re.MULTILINE)


def test_conductances_are_the_chips_differential_pairs_of_the_read_weights():
    chip = rram(**{"synapses.bits": 4})
    circ, x, y = make(chip=chip)
    nl = spice.export(circ, x, y)
    syn = chip.synapses
    for k, (W, cb) in enumerate(zip(circ.read_weights(), circ.crossbars, strict=True)):
        gp, gm = parse_resistors(nl.text, k + 1, W.shape)
        gp[gp == 0], gm[gm == 0] = 0.0, 0.0
        w_rec = (gp - gm) * cb.w_max / (syn.g_max_s - syn.g_min_s)
        np.testing.assert_allclose(w_rec, W, rtol=1e-9, atol=1e-12 * cb.w_max)
        assert len(np.unique(np.round(W / cb.lsb))) <= 15  # 4-bit levels
        # the programmed pair (Crossbar.conductances) times the device gain the read sees
        cp, cm = cb.conductances()
        np.testing.assert_allclose(nl.conductances[k][0], cb.gain * cp, rtol=1e-12)
        np.testing.assert_allclose(nl.conductances[k][1], cb.gain * cm, rtol=1e-12)
        np.testing.assert_allclose(gp[gp > 0], (cb.gain * cp)[gp > 0], rtol=1e-9)
        # the read-out gain: mu = a W phi in volts needs R_f = a w_max / (g_max - g_min)
        rf = float(re.search(rf"^Xmu{k + 1}_0 .* tia rf=(\S+)$", nl.text, re.MULTILINE)[1])
        assert rf == pytest.approx(circ.net.scales[k] * cb.w_max / (syn.g_max_s - syn.g_min_s))


def test_export_is_the_rendered_model():
    """``export`` is ``render(netlist_model(...))``; the model carries the physical numbers."""
    circ, x, y = make(chip=rram(), P=2)
    kw = dict(presentation_time=4.0, tau_w=10.0, source="unit test")
    model = spice.netlist_model(circ, x, y, **kw)
    assert spice.render(model) == spice.export(circ, x, y, **kw).text
    vu = circ.chip.value_units
    assert model.tau_x_s == pytest.approx(vu.capacitance_f / vu.conductance_s)
    assert model.stop_s == pytest.approx(2 * 4.0 * model.tau_x_s)
    assert model.weight_gw_s == pytest.approx(vu.capacitance_f / (10.0 * model.tau_x_s))
    for k, cb in enumerate(model.crossbars):  # the pairs encode the weights the chip reads
        W = (cb.g_plus_s - cb.g_minus_s) * cb.w_map / cb.span_s
        assert np.allclose(W, circ.read_weights()[k], rtol=1e-9, atol=1e-12)


@needs_ngspice
def test_the_renderer_reads_only_the_model():
    """Conductances changed in the model (not in the circuit) set the settled prediction: a
    one-layer linear net with its top free relaxes as ``x(t) = mu (1 - exp(-t / tau))`` from
    rest, ``mu = a (G+ - G-) x0 / k``, ``k = (g_max - g_min) / w_map``, ``tau = C / g``."""
    circ, x, _ = make(act="linear", sizes=(2, 1), P=1, top=False)
    model = spice.netlist_model(circ, x, None, presentation_time=6.0, x_init="rest")
    cb = model.crossbars[0]
    gp, gm = np.array([[10e-6, 0.0]]), np.array([[0.0, 5e-6]])
    model = dataclasses.replace(
        model, crossbars=[dataclasses.replace(cb, g_plus_s=gp, g_minus_s=gm)]
    )
    res = spice.run(spice.render(model))
    mu = cb.scale * float((((gp - gm) * cb.w_map / cb.span_s) @ model.bottom[0])[0])
    mu_circ = cb.scale * float((circ.read_weights()[0] @ model.bottom[0])[0])
    assert abs(mu - mu_circ) > 0.1  # the circuit alone would settle elsewhere
    expect = mu * (1.0 - np.exp(-res.time_s / model.tau_x_s))
    assert np.max(np.abs(res["x1_0"] - expect)) < 1e-4 * abs(mu)


def test_run_without_ngspice_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PCSIM_NGSPICE", str(tmp_path / "no-such-ngspice"))
    assert spice.ngspice_path() is None
    with pytest.raises(spice.SpiceNotFound, match="apt-get install ngspice"):
        spice.run("* empty\n.end\n")


def _write_raw(path, names, values, binary):
    head = (
        "Title: t\nDate: today\nPlotname: Transient Analysis\nFlags: real\n"
        f"No. Variables: {len(names)}\nNo. Points: {len(values)}\nVariables:\n"
    )
    head += "".join(f"\t{i}\t{n}\t{'time' if i == 0 else 'voltage'}\n" for i, n in enumerate(names))
    if binary:
        path.write_bytes((head + "Binary:\n").encode() + values.astype("<f8").tobytes())
    else:
        body = "".join(
            f" {k}\t" + "\n\t".join(f"{v:.16e}" for v in row) + "\n\n"
            for k, row in enumerate(values)
        )
        path.write_text(head + "Values:\n" + body)


@pytest.mark.parametrize("binary", [True, False])
def test_raw_parser_reads_binary_and_ascii(tmp_path, binary):
    vals = np.random.default_rng(0).standard_normal((7, 3))
    p = tmp_path / "x.raw"
    _write_raw(p, ["time", "v(x1_0)", "i(v.xx1_0.vc)"], vals, binary)
    raw = spice.read_raw(p)
    assert raw.names == ["time", "v(x1_0)", "i(v.xx1_0.vc)"]
    assert raw.plotname == "Transient Analysis"
    np.testing.assert_array_equal(raw.values, vals)


def test_export_from_config_writes_the_configured_network(tmp_path):
    cfg = config.loads(
        'seed = 3\n[data]\nname = "digits"\nlimit_train = 10\n'
        '[network]\nsizes = [64, 6, 10]\nactivation = "tanh"\n'
        '[algorithm]\nname = "ipc"\npresentation_time = 1.0\n'
    )
    out = spice.export_spice_from_config(
        cfg, tmp_path / "net.cir", n_presentations=2, learning=False, source="cfg.toml"
    )
    text = out.read_text()
    assert out == tmp_path / "net.cir"
    assert "64-6-10 (tanh" in text.splitlines()[0] and "'rram'" in text.splitlines()[0]
    assert "* from: configuration cfg.toml (seed 3, data digits, chip rram" in text
    assert "write net.raw" in text and "2 presentation(s) of 1 tau_x" in text
    # learning follows the algorithm by default (iPC), with the run's weight flow tau_w
    out2 = spice.export_spice_from_config(cfg, tmp_path / "learn.cir")
    assert f"tau_w = {config.DEFAULT_TAU_W:g} tau_x" in out2.read_text()
    per_step = config.loads(cfg.source_text + "[learning]\nlr = 1e-3\n")
    out3 = spice.export_spice_from_config(per_step, tmp_path / "lr.cir")
    assert "tau_w = 250 tau_x" in out3.read_text()  # a per-step lr: tau_w = dt 0.25 / lr 1e-3


# ---------------------------------------------------------------------------------------------
# ngspice against pcsim
# ---------------------------------------------------------------------------------------------
def run_both(circ, x, y, **kw):
    nl = spice.export(circ, x, y, **kw)
    res = spice.run(nl)
    ref = spice.reference(nl, res.time_s)
    return nl, res, ref, spice.agreement(nl, res, ref)


def moved(nl, ref) -> float:
    """Largest swing of a free unit over the transient, relative to the full scale."""
    out = 0.0
    for l, f in enumerate(nl.free):
        if f:
            out = max(out, float(np.max(np.abs(ref.xs[l] - nl.x_init[l]))))
    return out * nl.signal_scale_v


CASES = {
    # name: (activation, chip, top clamped, initial state, presentations, T)
    "tanh-rram-train": ("tanh", lambda: rram(), True, "feedforward", 2, 20.0),
    "linear-ideal-infer": ("linear", lambda: Chip(), False, "rest", 1, 30.0),
    "tanh-4bit": ("tanh", lambda: rram(**{"synapses.bits": 4}), True, "feedforward", 2, 20.0),
    # phi' steps at 0 (smoothed over 1e-5 in the netlist); units cross 0 on the way
    "leaky-relu-crossings": ("leaky_relu", lambda: rram(), True, "feedforward", 2, 20.0),
    "tanh-tau-mismatch": (
        "tanh",
        lambda: rram(**{"value_units.tau_mismatch_std": 0.3}),
        False,
        "rest",
        1,
        30.0,
    ),
}


@needs_ngspice
@pytest.mark.parametrize("case", list(CASES))
def test_inference_transient_matches_pcsim(case):
    act, chip, top, init, P, T = CASES[case]
    circ, x, y = make(act, chip(), P=P, top=top)
    nl, res, ref, a = run_both(circ, x, y, presentation_time=T, x_init=init)
    assert a.n_times > 100 * P
    assert moved(nl, ref) > 0.2 * a.full_scale_v  # a real transient, not a resting state
    assert a.max_rel < 0.01, a  # every sampled time within 1 % of full scale
    assert a.final_rel < 1e-3, a  # the equilibria within 0.1 %
    # ... and they are equilibria: pcsim has settled over the last tau_x
    n_tau = int(np.searchsorted(res.time_s, res.time_s[-1] - nl.tau_x_s))
    for l, f in enumerate(nl.free):
        if f:
            assert np.max(np.abs(ref.xs[l][-1] - ref.xs[l][n_tau])) * nl.signal_scale_v < (
                1e-3 * a.full_scale_v
            )
    if case == "leaky-relu-crossings":
        crossings = sum(int(np.sum(np.diff(np.sign(ref.xs[l]), axis=0) != 0)) for l in (1, 2))
        assert crossings >= 2
    if case == "tanh-tau-mismatch":
        # the per-unit time constants matter: pcsim with matched units misses by far more
        nl.tau_scale = [np.ones_like(s) for s in nl.tau_scale]
        off = spice.agreement(nl, res, spice.reference(nl, res.time_s))
        assert off.max_rel > 10 * max(a.max_rel, 1e-3)


@needs_ngspice
def test_rails_saturate_as_the_clocked_engine_clips():
    from pcsim.engines.clocked import ClockedEngine

    circ, x, _ = make("tanh", rram(), P=1, top=False)
    circ.net.weights[0] *= 5  # drive the first hidden layer past the rails (+-2 units = +-1 V)
    nl = spice.export(circ, x, None, presentation_time=20.0, x_init="rest")
    res = spice.run(nl)
    rail_v = nl.rails[1] * nl.signal_scale_v
    peak = max(float(np.max(np.abs(res[n]))) for n in nl.free_nodes)
    assert rail_v < peak < 1.001 * rail_v  # saturated at the rail (clamp: 1/1000 overshoot)
    heun = ClockedEngine("heun", 0.02, backend="numpy")
    clipped = spice.reference(nl, res.time_s, engine=heun, step=heun.dt)
    assert spice.agreement(nl, res, clipped).max_rel < 0.01
    unclipped = spice.reference(nl, res.time_s)  # the adaptive engine has no rails
    assert spice.agreement(nl, res, unclipped).final_rel > 0.05


@needs_ngspice
def test_ipc_learning_matches_pcsim_weights():
    circ, x, y = make("tanh", rram(), P=3)
    nl, res, ref, a = run_both(circ, x, y, presentation_time=5.0, tau_w=3.0)
    assert a.weights_rel is not None and a.weights_rel < 0.01, a
    assert a.max_rel < 0.01, a
    for k, W0 in enumerate(nl.net.weights):
        end = ref.final_weights[k]
        np.testing.assert_allclose(ref.weights[k][-1], end)
        span = float(end.max() - end.min())
        assert np.max(np.abs(end - W0)) > 0.1 * span  # the weights did learn
        # the circuit's weight nodes hold the same weights (1 V = w_max)
        sp_end = nl.weights(res, k)[-1]
        assert np.max(np.abs(sp_end - end)) < 0.01 * span
        assert res.measures[f"w{k + 1}_0_0_end"] == pytest.approx(
            sp_end[0, 0] / nl.w_map[k], abs=1e-6
        )


@needs_ngspice
def test_residual_biased_mupc_net_learns_as_in_pcsim():
    net = network.build((4, 8, 8, 3), "tanh", parameterisation="mupc", bias=True, rng=1)
    assert net.residual == (False, True, False)
    circ = Circuit(net, chip=rram(), rng=np.random.default_rng(2))
    x = np.random.default_rng(3).uniform(-1.0, 1.0, (3, 4))
    nl, res, ref, a = run_both(circ, x, 0.5 * np.eye(3), presentation_time=5.0, tau_w=3.0)
    assert a.max_rel < 0.01 and a.weights_rel < 0.01, a  # weights and biases
    b0 = nl.net.biases[0]
    assert np.max(np.abs(ref.final_biases[0] - b0)) > 0.05 * (b0.max() - b0.min())


@needs_ngspice
def test_energy_crosscheck():
    circ, x, y = make("tanh", rram(), P=2)
    nl, res, ref, _ = run_both(circ, x, y, presentation_time=8.0)
    e = res.energy
    t = res.time_s
    # conserved: the energy delivered into the value capacitors is the change of 1/2 C V^2
    d_stored, delivered = 0.0, 0.0
    for node, C in nl.capacitances.items():
        v, i = res[node], res[f"i(v.x{node}.vc)"]
        d_stored += 0.5 * C * (v[-1] ** 2 - v[0] ** 2)
        delivered += np.trapezoid(v * i, t)
    assert abs(d_stored) > 0
    assert delivered == pytest.approx(d_stored, rel=2e-3)
    assert e["e_int"] == pytest.approx(d_stored, rel=2e-3)
    # the crossbar meters: sum over devices of (G+ + G-) V^2 from the saved node voltages
    Vs = nl.signal_scale_v
    joule = 0.0
    for k, (gp, gm) in enumerate(nl.conductances):
        if k == 0:
            V = np.stack([res[f"x0_{j}"] for j in range(gp.shape[1])], axis=1)
        else:
            V = Vs * np.tanh(np.stack([res[f"x{k}_{j}"] for j in range(gp.shape[1])], 1) / Vs)
        joule += np.trapezoid((V**2) @ (gp + gm).sum(axis=0), t)
        if nl.free[k]:
            E = np.stack([res[f"e{k + 1}_{i}"] for i in range(gp.shape[0])], axis=1)
            joule += np.trapezoid((E**2) @ (gp + gm).sum(axis=1), t)
    assert e["e_xbar"] == pytest.approx(joule, rel=2e-3)
    rows = {r.quantity: r for r in spice.energy_report(nl, res, ref)}
    for q in ("crossbar conduction", "unit dynamic"):
        assert rows[q].spice_j > 0 and rows[q].ledger_j > 0
    # the same charge counted two ways: V_s x integral |i_C| against C V_s^2 sum |dx|
    # (nominal C in the ledger, C x 2 % tau mismatch in the circuit)
    assert rows["unit dynamic"].spice_j == pytest.approx(rows["unit dynamic"].ledger_j, rel=0.05)
    assert rows["static bias"].spice_j is None and rows["static bias"].ledger_j > 0
    assert "crossbar conduction" in spice.format_energy_report(list(rows.values()))


@needs_ngspice
def test_exported_netlist_runs_in_plain_ngspice(tmp_path):
    cfg = config.loads(
        'seed = 5\n[data]\nname = "digits"\nlimit_train = 10\n'
        '[network]\nsizes = [64, 6, 10]\nactivation = "tanh"\n'
        '[algorithm]\nname = "ipc"\npresentation_time = 2.0\n'
    )
    path = spice.export_spice_from_config(cfg, tmp_path / "net.cir", n_presentations=2)
    # ngspice alone, in a bare environment: no Python, no pcsim
    proc = subprocess.run(
        [spice.ngspice_path(), "-b", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # ngspice 39 needs a HOME
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", proc.stdout, re.MULTILINE))
    for name in ("x1_0_p1", "x1_5_p2", "e_xbar", "q_int", "w2_9_5_end"):  # documented nodes
        assert name in printed, name
    assert (tmp_path / "net.raw").is_file()
    res = spice.run(path)  # the same netlist through pcsim: same numbers
    assert float(printed["x1_5_p2"]) == pytest.approx(res["x1_5"][-1], abs=1e-6)
    assert res.measures["e_xbar"] == pytest.approx(float(printed["e_xbar"]), rel=1e-5)


@needs_ngspice
def test_run_reads_ascii_raw_selects_nodes_and_reports_failures():
    text = (
        "* rc\nV1 a 0 PWL(0 0 1n 1)\nR1 a b 1k\nC1 b 0 1p\n.tran 10p 5n\n"
        ".control\nset filetype=ascii\nrun\nwrite rc.raw\nquit\n.endc\n.end\n"
    )
    res = spice.run(text, nodes=["b"])
    assert list(res.traces) == ["b"]
    after = res.time_s > 2e-9
    # RC = 1 ns: v(b) = 1 - exp(-(t - 1 ns)/RC) (plus the ramp), close to 1 - e^-(t/ns - 1.5)
    np.testing.assert_allclose(
        res["b"][after], 1 - (np.e - 1) * np.exp(-res.time_s[after] / 1e-9), atol=2e-3
    )
    with pytest.raises(KeyError, match="nosuch"):
        spice.run(text, nodes=["nosuch"])
    with pytest.raises(spice.SpiceError):
        spice.run("* broken\nB1 a 0 V = v(nonode\n.tran 1n 2n\n.end\n")
