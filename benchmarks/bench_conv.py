"""The conv fast path (pcsim.conv, vectorised im2col numpy) against a naive loop.

For the two convolutions of the MNIST-5k CNN (benchmarks/cnn_mnist5k.py: 8@5x5 s2 p2 on
1x28x28, 16@5x5 s2 p2 on 8x14x14) it times the three products a PC layer needs -- forward
``conv(x)``, backward ``conv^T(e)`` and the kernel gradient ``sum_p e_p^T patch_p`` -- with
``pcsim.conv`` and with a naive implementation that loops over output positions in Python
(one patch sliced, one small matrix product per position; the loop a first implementation
writes), at batch 1 (the chip's streaming default) and 32. Both agree to rounding (checked).
Prints microseconds per call and the ratio naive / im2col. float32, one BLAS thread.

    python benchmarks/bench_conv.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from hardware_models.conv_geometry import ConvGeometry
from pcsim import conv
from pcsim.blas import limit_threads

LAYERS = {
    "conv1 8@5x5 s2 (1x28x28)": ConvGeometry(1, 28, 28, 8, 5, 2, 2),
    "conv2 16@5x5 s2 (8x14x14)": ConvGeometry(8, 14, 14, 16, 5, 2, 2),
}


def _padded(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    img = x.reshape(x.shape[0], g.in_channels, g.height, g.width)
    p = g.padding
    return np.pad(img, ((0, 0), (0, 0), (p, p), (p, p)))


def naive_forward(x, W, g):
    img, k, s = _padded(x, g), g.kernel, g.stride
    out = np.empty((x.shape[0], g.out_channels, g.out_height, g.out_width), x.dtype)
    for oy in range(g.out_height):
        for ox in range(g.out_width):
            patch = img[:, :, oy * s : oy * s + k, ox * s : ox * s + k].reshape(x.shape[0], -1)
            out[:, :, oy, ox] = patch @ W.T
    return out.reshape(x.shape[0], -1)


def naive_backward(e, W, g):
    B, k, s, p = e.shape[0], g.kernel, g.stride, g.padding
    e4 = e.reshape(B, g.out_channels, g.out_height, g.out_width)
    img = np.zeros((B, g.in_channels, g.height + 2 * p, g.width + 2 * p), e.dtype)
    for oy in range(g.out_height):
        for ox in range(g.out_width):
            img[:, :, oy * s : oy * s + k, ox * s : ox * s + k] += (e4[:, :, oy, ox] @ W).reshape(
                B, g.in_channels, k, k
            )
    return img[:, :, p : p + g.height, p : p + g.width].reshape(B, -1)


def naive_weight_grad(e, x, g):
    img, k, s = _padded(x, g), g.kernel, g.stride
    e4 = e.reshape(e.shape[0], g.out_channels, g.out_height, g.out_width)
    G = np.zeros(g.weight_shape, x.dtype)
    for oy in range(g.out_height):
        for ox in range(g.out_width):
            patch = img[:, :, oy * s : oy * s + k, ox * s : ox * s + k].reshape(x.shape[0], -1)
            G += e4[:, :, oy, ox].T @ patch
    return G


def _time(f, repeats: int) -> float:
    f()  # warm
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            f()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"{'layer':28s} {'B':>3s} {'product':9s} {'im2col us':>10s} {'naive us':>10s} {'ratio':>6s}"
    )
    with limit_threads(1):
        for name, g in LAYERS.items():
            for B in (1, 32):
                x = rng.standard_normal((B, g.n_in)).astype(np.float32)
                e = rng.standard_normal((B, g.n_out)).astype(np.float32)
                W = rng.standard_normal(g.weight_shape).astype(np.float32)
                pairs = {
                    "forward": (partial(conv.forward, x, W, g), partial(naive_forward, x, W, g)),
                    "backward": (
                        partial(conv.backward, e, W, g),
                        partial(naive_backward, e, W, g),
                    ),
                    "gradient": (
                        partial(conv.weight_grad, e, x, g),
                        partial(naive_weight_grad, e, x, g),
                    ),
                }
                for prod, (fast, slow) in pairs.items():
                    np.testing.assert_allclose(fast(), slow(), rtol=1e-4, atol=1e-3)
                    tf, ts = _time(fast, args.repeats), _time(slow, args.repeats)
                    print(f"{name:28s} {B:3d} {prod:9s} {tf:10.1f} {ts:10.1f} {ts / tf:6.1f}")


if __name__ == "__main__":
    main()
