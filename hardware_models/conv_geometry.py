"""The shape of a 2-D convolution as a crossbar sees it (shared by both packages).

A convolution with ``in_channels`` input maps of ``height x width``, ``out_channels`` kernels of
``kernel x kernel``, ``stride`` and zero ``padding`` is, on a crossbar, one weight matrix of
shape ``(out_channels, rows)`` with ``rows = kernel * kernel * in_channels`` (the kernel
unrolled into the rows, one column per output channel), read once per output position:
``positions = out_height * out_width`` input patches per sample. Activities are stored
channel-first and flattened, ``(C, H, W) -> C * H * W``, so a convolutional layer is a vector
of ``out_channels * positions`` units like any other layer.

Patch order: rows of the unrolled kernel run over ``(channel, ky, kx)`` in C order, which is
``W.reshape(out_channels, in_channels, kernel, kernel)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConvGeometry"]


@dataclass(frozen=True)
class ConvGeometry:
    """One 2-D convolution: input ``(in_channels, height, width)``, square kernels."""

    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        for name in ("in_channels", "height", "width", "out_channels", "kernel", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"conv {name} must be >= 1, got {getattr(self, name)}")
        if self.padding < 0:
            raise ValueError(f"conv padding must be >= 0, got {self.padding}")
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError(
                f"conv kernel {self.kernel} (padding {self.padding}) does not fit an input of "
                f"{self.height}x{self.width}"
            )

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def rows(self) -> int:
        """Crossbar rows of the unrolled kernel: ``kernel^2 * in_channels``."""
        return self.kernel * self.kernel * self.in_channels

    @property
    def positions(self) -> int:
        """Input patches per sample (output positions): one crossbar read each."""
        return self.out_height * self.out_width

    @property
    def weight_shape(self) -> tuple[int, int]:
        """``(out_channels, rows)``: the matrix the crossbar stores."""
        return (self.out_channels, self.rows)

    @property
    def n_in(self) -> int:
        """Units of the input layer, ``in_channels * height * width``."""
        return self.in_channels * self.height * self.width

    @property
    def n_out(self) -> int:
        """Units of the output layer, ``out_channels * positions``."""
        return self.out_channels * self.positions

    @property
    def macs_per_sample(self) -> int:
        """Multiply-accumulates of one forward pass of one sample."""
        return self.positions * self.rows * self.out_channels
