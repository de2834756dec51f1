"""Convolutional layers (pcsim.conv, and the field's dispatch to them), float64: the im2col
products against an independent loop convolution and scipy.signal.correlate, the field's
gradients against finite differences, the linear equilibrium against its closed form, a
whole-input kernel against the dense field, PC and iPC against BP in the small-T limit, and the
ideal chip against the pure algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from hardware_models import load_preset
from hardware_models.conv_geometry import ConvGeometry
from pcsim import conv, field, network, theory
from pcsim.algorithms import IPC, PC
from pcsim.alignment import layer_cosines
from pcsim.circuit import Circuit
from pcsim.engines.clocked import ClockedEngine
from pcsim.optim import SGD, Adam

GEOMS = [
    ConvGeometry(in_channels=2, height=6, width=5, out_channels=3, kernel=3),
    ConvGeometry(in_channels=2, height=7, width=7, out_channels=3, kernel=3, stride=2, padding=1),
    ConvGeometry(in_channels=1, height=8, width=8, out_channels=4, kernel=5, stride=2, padding=2),
    ConvGeometry(in_channels=3, height=5, width=6, out_channels=2, kernel=2, stride=3, padding=2),
]


def loop_conv(x: np.ndarray, W: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """The textbook definition, one multiply at a time (independent of im2col)."""
    B = x.shape[0]
    img = x.reshape(B, g.in_channels, g.height, g.width)
    K = W.reshape(g.out_channels, g.in_channels, g.kernel, g.kernel)
    out = np.zeros((B, g.out_channels, g.out_height, g.out_width))
    for b in range(B):
        for o in range(g.out_channels):
            for oy in range(g.out_height):
                for ox in range(g.out_width):
                    acc = 0.0
                    for c in range(g.in_channels):
                        for ky in range(g.kernel):
                            for kx in range(g.kernel):
                                iy = oy * g.stride - g.padding + ky
                                ix = ox * g.stride - g.padding + kx
                                if 0 <= iy < g.height and 0 <= ix < g.width:
                                    acc += K[o, c, ky, kx] * img[b, c, iy, ix]
                    out[b, o, oy, ox] = acc
    return out.reshape(B, g.n_out)


def _rand(g: ConvGeometry, B: int, seed: int):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((B, g.n_in)),
        rng.standard_normal(g.weight_shape),
        rng.standard_normal((B, g.n_out)),
    )


@pytest.mark.parametrize("g", GEOMS)
def test_forward_equals_the_loop_convolution(g):
    x, W, _ = _rand(g, 2, 0)
    np.testing.assert_allclose(conv.forward(x, W, g), loop_conv(x, W, g), rtol=1e-12, atol=1e-12)


def test_stride_one_forward_equals_scipy_correlate():
    g = ConvGeometry(in_channels=2, height=7, width=6, out_channels=3, kernel=3, padding=1)
    x, W, _ = _rand(g, 2, 1)
    K = W.reshape(3, 2, 3, 3)
    img = np.pad(x.reshape(2, 2, 7, 6), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.stack(
        [
            [
                sum(scipy.signal.correlate(img[b, c], K[o, c], mode="valid") for c in range(2))
                for o in range(3)
            ]
            for b in range(2)
        ]
    ).reshape(2, -1)
    np.testing.assert_allclose(conv.forward(x, W, g), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", GEOMS)
def test_backward_is_the_transpose_and_weight_grad_the_kernel_gradient(g):
    """<conv(x), e> = <x, conv^T(e)>, and dW of <conv(x), e> (linear in W: the loop
    convolution of x with each unit kernel) is weight_grad."""
    x, W, e = _rand(g, 3, 2)
    lhs = np.vdot(conv.forward(x, W, g), e)
    np.testing.assert_allclose(np.vdot(x, conv.backward(e, W, g)), lhs, rtol=1e-12)
    # the dense matrix of the loop convolution: its transpose applied to e
    M = loop_conv(np.eye(g.n_in), W, g).T  # (n_out, n_in)
    np.testing.assert_allclose(conv.backward(e, W, g), e @ M, rtol=1e-12, atol=1e-12)
    G = conv.weight_grad(e, x, g)
    for o, r in [(0, 0), (g.out_channels - 1, g.rows - 1), (1, g.rows // 2)]:
        unit = np.zeros(g.weight_shape)
        unit[o, r] = 1.0
        assert G[o, r] == pytest.approx(np.vdot(loop_conv(x, unit, g), e), rel=1e-12, abs=1e-12)


def test_read_noise_norms_are_the_patch_sums():
    """patch_sum / transpose_sum: sums over what one read of an output (input) unit sees."""
    g = GEOMS[1]
    x, W, e = _rand(g, 2, 3)
    ones = np.ones(g.weight_shape)
    # a read of output (o, p) sums its patch: with all-ones weights, conv(x^2) is that sum
    np.testing.assert_allclose(conv.patch_sum(x * x, g), loop_conv(x * x, ones, g), rtol=1e-12)
    np.testing.assert_allclose(conv.transpose_sum(e * e, g), conv.backward(e * e, ones, g))


def _conv_net(act: str, parameterisation: str = "sp", bias: bool = False, seed: int = 3):
    """conv 2@3x3 s2 p1 on 1x6x6 -> conv 3@2x2 on 2x3x3 -> dense 4."""
    g1, g2 = network.conv_stack(
        (1, 6, 6),
        [{"channels": 2, "kernel": 3, "stride": 2, "padding": 1}, {"channels": 3, "kernel": 2}],
    )
    sizes = (g1.n_in, g1.n_out, g2.n_out, 4)
    return network.build(
        sizes,
        act,
        parameterisation=parameterisation,
        bias=bias,
        rng=seed,
        convs=(g1, g2, None),
    )


def test_conv_stack_shapes_and_one_line_errors():
    g1, g2 = network.conv_stack(
        (1, 28, 28),
        [
            {"channels": 8, "kernel": 5, "stride": 2, "padding": 2},
            {"channels": 16, "kernel": 5, "stride": 2, "padding": 2},
        ],
    )
    assert (g1.out_height, g1.n_out, g1.rows) == (14, 8 * 14 * 14, 25)
    assert (g2.out_height, g2.n_out, g2.rows, g2.positions) == (7, 784, 200, 49)
    with pytest.raises(ValueError, match="conv layer 2 .*does not fit"):
        network.conv_stack((1, 8, 8), [{"channels": 2, "kernel": 5}, {"channels": 2, "kernel": 5}])


@pytest.mark.parametrize("parameterisation", ["sp", "mupc"])
def test_scales_and_init_use_the_kernel_fan_in(parameterisation):
    net = _conv_net("tanh", parameterisation)
    rows = [net.conv(0).rows, net.conv(1).rows, net.sizes[2]]
    assert [net.fan_in(i) for i in range(3)] == rows
    if parameterisation == "mupc":
        assert net.scales == pytest.approx((rows[0] ** -0.5, rows[1] ** -0.5, 1 / rows[2]))
    else:
        assert net.scales == (1.0, 1.0, 1.0)
        for W, k in zip(net.weights, rows, strict=True):
            assert np.abs(W).max() <= k**-0.5
    assert net.weights[0].shape == (2, 9) and net.weights[1].shape == (3, 8)
    assert net.n_macs == net.conv(0).macs_per_sample + net.conv(1).macs_per_sample + 4 * 12


@pytest.mark.parametrize("act", ["tanh", "leaky_relu"])
@pytest.mark.parametrize("parameterisation", ["sp", "mupc"])
def test_conv_field_gradients_equal_finite_differences(act, parameterisation):
    net = _conv_net(act, parameterisation, bias=True)
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((3, n)) for n in net.sizes]
    B, h = 3, 1e-6
    drift = field.activity_drift(net, xs, field.errors(net, xs))
    for l in range(len(xs)):
        for idx in [(0, 0), (2, net.sizes[l] - 1), (1, net.sizes[l] // 2)]:
            xp, xm = [x.copy() for x in xs], [x.copy() for x in xs]
            xp[l][idx] += h
            xm[l][idx] -= h
            fd = (field.energy(net, xp) - field.energy(net, xm)) / (2 * h)
            assert drift[l][idx] == pytest.approx(-B * fd, abs=1e-7)
    dW, _ = field.weight_drift(net, xs, field.errors(net, xs))
    for i, W in enumerate(net.weights):
        for r, c in [(0, 0), (W.shape[0] - 1, W.shape[1] - 1)]:
            W[r, c] += h
            fp = field.energy(net, xs)
            W[r, c] -= 2 * h
            fm = field.energy(net, xs)
            W[r, c] += h
            assert dW[i][r, c] == pytest.approx(-(fp - fm) / (2 * h), abs=1e-7)


def test_conv_backprop_equals_finite_differences_of_the_loss():
    net = _conv_net("tanh", "sp")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, net.sizes[0])), rng.standard_normal((4, 4))
    _, dW, _ = field.backprop_gradients(net, x, y)
    h = 1e-6
    for i, W in enumerate(net.weights):
        W[1, 2] += h
        lp = field.backprop_gradients(net, x, y)[0]
        W[1, 2] -= 2 * h
        lm = field.backprop_gradients(net, x, y)[0]
        W[1, 2] += h
        assert dW[i][1, 2] == pytest.approx(-(lp - lm) / (2 * h), abs=1e-7)


@pytest.mark.parametrize("parameterisation", ["sp", "mupc"])
def test_linear_conv_equilibrium_is_the_closed_form(parameterisation):
    """Settled with the clocked engine (numpy path), a linear conv PCN sits at the linear
    Gaussian solution of pcsim.theory (built from the convolutions' dense matrices)."""
    net = _conv_net("linear", parameterisation)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((3, net.sizes[0])), rng.standard_normal((3, 4))
    circ = Circuit(net)
    xs = circ.initial_activities(x, y)
    eng = ClockedEngine(dt=0.2)
    assert not eng._numba_path(circ) and not eng.fusable(circ)  # conv: the numpy path
    eng.run(circ, xs, [False, True, True, False], duration=400.0)
    want = theory.equilibrium_activities(net, x, y)
    for a, b in zip(xs, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    assert field.energy(net, xs) == pytest.approx(theory.equilibrium_energy(net, x, y), rel=1e-10)


def test_a_whole_input_kernel_is_the_dense_layer():
    """kernel = height = width, no padding: one position, the conv is x @ W.T with W's rows in
    (c, ky, kx) order = the flattened input: every field product equals the dense network's."""
    rng = np.random.default_rng(7)
    g = ConvGeometry(in_channels=2, height=3, width=3, out_channels=5, kernel=3)
    dense = network.build((18, 5, 4), "tanh", bias=True, rng=8)
    as_conv = network.from_weights(dense.weights, "tanh", biases=dense.biases, convs=(g, None))
    assert as_conv.has_conv and as_conv.sizes == dense.sizes
    xs = [rng.standard_normal((3, n)) for n in dense.sizes]
    for f in (field.errors, field.predictions):
        for a, b in zip(f(dense, xs), f(as_conv, xs), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)
    eps = field.errors(dense, xs)
    for a, b in zip(
        field.activity_drift(dense, xs, eps), field.activity_drift(as_conv, xs, eps), strict=True
    ):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)
    for a, b in zip(
        field.weight_drift(dense, xs, eps)[0], field.weight_drift(as_conv, xs, eps)[0], strict=True
    ):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)
    y = rng.standard_normal((3, 4))
    for a, b in zip(
        field.backprop_gradients(dense, xs[0], y)[1],
        field.backprop_gradients(as_conv, xs[0], y)[1],
        strict=True,
    ):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)


def _pc_update(net, x, y, T, dt, algorithm):
    """The weight change one presentation of (x, y) writes, with plain SGD lr = 1."""
    before = [W.copy() for W in net.weights]
    circ = Circuit(net)
    lr = 1e-6 if algorithm == "ipc" else 1.0  # iPC: a slow flow (weights barely move)
    alg = PC(T=T) if algorithm == "pc" else IPC(T=T)
    alg.train_batch(circ, ClockedEngine(dt=dt), SGD(lr), x, y)
    return [(W - b) / lr for W, b in zip(net.weights, before, strict=True)]


@pytest.mark.parametrize("algorithm", ["pc", "ipc"])
def test_small_T_pc_and_ipc_point_along_bp_layer_by_layer(algorithm):
    """From the feedforward start the output error descends one layer per step; after a short
    presentation T each layer's error is ~ T^k/k! of BP's delta there, so each layer's weight
    change points along BP's gradient, to within an angle O(T): 1 - cos = O(T^2)."""
    net = _conv_net("tanh", "sp", seed=9)
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((4, net.sizes[0])), rng.standard_normal((4, 4))
    _, bp, _ = field.backprop_gradients(net, x, y)
    gaps = []
    for dt in (4e-3, 2e-3):
        d = _pc_update(net.copy(), x, y, T=4 * dt, dt=dt, algorithm=algorithm)
        gaps.append(1.0 - layer_cosines(d, bp))
    assert np.all(gaps[1] < 1e-2)
    np.testing.assert_allclose(gaps[0] / gaps[1], 4.0, rtol=0.1)  # the angle is O(T)


@pytest.mark.parametrize("algorithm", [IPC(T=1.0), PC(T=1.0)])
def test_ideal_chip_is_the_pure_algorithm_for_a_conv_net(algorithm):
    net = _conv_net("tanh", "sp", bias=True)
    pure, on_chip = net.copy(), net.copy()
    rng_data = np.random.default_rng(11)
    batches = [
        (rng_data.random((2, net.sizes[0])), np.eye(4)[rng_data.integers(0, 4, 2)])
        for _ in range(3)
    ]
    circs = [
        Circuit(pure, rng=np.random.default_rng(5)),
        Circuit(on_chip, chip=load_preset("ideal"), rng=np.random.default_rng(5)),
    ]
    for circ in circs:
        opt = Adam(1e-2)
        for x, y in batches:
            algorithm.train_batch(circ, ClockedEngine(dt=0.25), opt, x, y)
    for a, b in zip(pure.parameters(), on_chip.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the ledger reads one MAC per kernel weight and patch, both directions, per tau_x:
    # 3 presentations of T = 1 tau_x on 2 samples
    macs = circs[1].ledger.counts()["crossbar_read"]
    per_read = 9 * 9 * 2 + 4 * 8 * 3 + 4 * 12  # positions * rows * channels; dense 4 x 12
    assert net.n_macs == per_read
    assert macs == pytest.approx(2 * per_read * 1.0 * 2 * 3)
    # patches streamed through one crossbar: one read of the first layer takes 9 reads
    assert circs[1].read_period_s() == pytest.approx(9 * circs[1].chip.tau_x_s)


def _cfg(conv_toml: str, extra: str = ""):
    from pcsim import config

    return config.loads(f'[data]\nname = "digits"\n[network]\nconv = {conv_toml}\n{extra}')


def test_config_builds_the_conv_network_on_the_data_set_images():
    from pcsim.run import build_network

    cfg = _cfg("[{channels = 4, kernel = 3, stride = 2, padding = 1}]", "sizes = [64, 20, 10]")
    assert cfg.network.conv == ({"channels": 4, "kernel": 3, "stride": 2, "padding": 1},)

    class Digits:  # what build_network reads of a Dataset
        x_train, n_classes = np.zeros((2, 64)), 10

    net = build_network(cfg, Digits(), np.random.SeedSequence(0))
    g = net.conv(0)
    assert (g.in_channels, g.height, g.out_height, g.n_out) == (1, 8, 4, 64)
    assert net.sizes == (64, 64, 20, 10) and net.conv(1) is None and net.conv(2) is None


@pytest.mark.parametrize(
    "conv_toml, extra, message",
    [
        ("[{channels = 4, kernel = 9}]", "", r"network.conv: conv layer 1 .*does not fit"),
        ("[{channels = 4, kernel = 3, strides = 2}]", "", r"unknown key network.conv\[0\].strides"),
        ("[{kernel = 3}]", "", r"network.conv\[0\].channels is missing"),
        ("[{channels = 0, kernel = 3}]", "", r"network.conv\[0\].channels must be a positive"),
        ("[{channels = 4, kernel = 3, padding = -1}]", "", r"network.conv\[0\].padding"),
        ("[]", "", r"network.conv must be a list of tables"),
        ("[{channels = 1000000000, kernel = 1}]", "", r"network.conv\[0\] has .* output units"),
        ("[{channels = 4, kernel = 3}]", "sizes = [100, 10]", r"sizes\[0\] is 100 .* 144 output"),
        ("[{channels = 4, kernel = 3}]", '[engine]\nkind = "events"', r"clocked"),
    ],
)
def test_bad_conv_configs_are_one_line_errors(conv_toml, extra, message):
    from pcsim.config import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        _cfg(conv_toml, extra)
    assert "\n" not in str(err.value)


def test_rram_conv_net_trains_on_the_numpy_path_with_read_noise():
    """On rram (read noise, pulsed writes) a conv net takes the numpy reference step, and the
    numba and numpy backends agree (both choose it)."""
    finals = []
    for backend in ("numpy", "numba"):
        net = _conv_net("tanh", "sp", seed=12)
        circ = Circuit(net, chip=load_preset("rram"), rng=np.random.default_rng(13))
        assert circ.has_read_noise and circ.numpy_products
        rng = np.random.default_rng(14)
        x, y = rng.random((3, net.sizes[0])), np.eye(4)[[0, 1, 2]]
        IPC(T=1.0).train_batch(circ, ClockedEngine(dt=0.25, backend=backend), SGD(0.05), x, y)
        finals.append([W.copy() for W in net.weights])
        assert circ.ledger.counts()["crossbar_read"] == pytest.approx(2 * net.n_macs * 3 * 1.0)
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_digital_update_and_accumulators_count_the_shared_kernel():
    """Adam on a conv net keeps state per stored weight and forms the gradient from
    ``batch * n_macs`` products (each kernel weight sums one product per patch); pulse
    accumulators add one patch contribution per MAC (dense: per weight, as before)."""
    from pcsim import learning_rule
    from pcsim.engines.protocol import _update_shape
    from pcsim.periphery import accumulator_adds_per_sample

    net = _conv_net("tanh")
    n_w, macs, B = sum(W.size for W in net.weights), net.n_macs, 4
    ops = learning_rule.update_ops(Adam(1e-3), *_update_shape(net, B, None))
    assert ops.multiplies == 8.0 * n_w + B * macs + n_w
    assert ops.adds == 3.0 * n_w + B * macs
    assert ops.words == 4.0 * n_w
    assert ops.conversions == B * (sum(net.sizes[1:]) + sum(net.sizes[:-1]))
    dense = network.build((5, 6, 3), "tanh")
    assert _update_shape(dense, B, None) == ((5, 6, 3), B, False)
    assert accumulator_adds_per_sample("ipc", net.sizes, 2.0, macs) == 2.0 * macs
    assert accumulator_adds_per_sample("pc", (5, 6, 3), 2.0) == 48.0


def test_cli_names_the_conv_layers():
    from pcsim.cli import _convs_text

    layers = [{"out_channels": 8, "kernel": 5, "stride": 2}, None]
    assert _convs_text({"conv_layers": layers}) == " (conv 8@5x5/2, dense)"
    assert _convs_text({}) == ""
