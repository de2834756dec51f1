"""UniformQuantiser: the levels of a ``bits``-bit crossbar and converter, applied at every read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hardware_models.converters import quantise
from hardware_models.quantisers import UniformQuantiser


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_levels_are_the_symmetric_converters(bits):
    """Away from the half-way points (where rounding half up and half to even differ) a read is
    the symmetric converter's level, and there are ``2^bits - 1`` of them."""
    q = UniformQuantiser(bits=bits, w_max=0.7)
    w = np.random.default_rng(bits).uniform(-1.0, 1.0, 4001)
    frac = np.abs(w / q.delta - np.floor(w / q.delta) - 0.5)
    w = w[frac > 1e-9]
    r = q.read(w)
    np.testing.assert_allclose(r, quantise(w, bits, -0.7, 0.7), rtol=0, atol=1e-12)
    assert len(np.unique(r)) == 2**bits - 1
    assert np.array_equal(q.read(r), r)  # a level reads as itself


def test_rounds_half_up_and_clips():
    q = UniformQuantiser(bits=3, w_max=0.9)  # delta 0.3, levels -0.9 .. 0.9
    assert q.k_max == 3 and q.delta == pytest.approx(0.3)
    half = np.array([-0.45, -0.15, 0.15, 0.45])  # half-way points: up, whatever the sign
    assert np.allclose(q.read(half), [-0.3, 0.0, 0.3, 0.6])
    assert np.allclose(q.read(np.array([-5.0, 5.0])), [-0.9, 0.9])


@pytest.mark.parametrize("bits, w_max", [(1, 1.0), (4, 0.0), (4, float("inf")), (4, -1.0)])
def test_bad_parameters_name_the_field(bits, w_max):
    with pytest.raises(ValueError, match="quantiser (bits|w_max)"):
        UniformQuantiser(bits=bits, w_max=w_max)


def test_substrate_module_does_not_import_pcsim():
    code = (
        "import sys, hardware_models.quantisers\n"
        "assert not any(m.split('.')[0] == 'pcsim' for m in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert proc.returncode == 0, proc.stderr
