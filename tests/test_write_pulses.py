"""Write pulses on a chip converge as the simulator's step shrinks (accumulate-and-fire)."""

from __future__ import annotations

import pytest

from pcsim import config
from pcsim.run import execute

RUN = """seed = 1
[learning]
epochs = 1
optimizer = "sgd"
tau_w = 20.0
batch_size = 1
[engine]
dt = {dt}
[data]
limit_train = 40
[algorithm]
inference_samples = 4  # the pulses are what is compared; inference priced on 4 test images
"""


def test_rram_write_pulses_do_not_depend_on_dt():
    """The default rram chip (soft bounds, dw_min_std = 3.75, asymmetric pulses) learning on the
    weight flow tau_w: halving dt halves each step's requested change, and the devices fire the
    same pulses (before accumulate-and-fire, stochastic rounding per step fired ~1/dt pulses)."""
    writes = {}
    for dt in (0.1, 0.05):
        s = execute(config.loads(RUN.format(dt=dt)), progress=False).summary
        assert s["chip"] == "rram"
        writes[dt] = s["energy_breakdown_j"]["synapse_write"]
    assert writes[0.1] > 0
    assert writes[0.05] == pytest.approx(writes[0.1], rel=0.05)
