"""Write noise (aihwkit's ``write_noise_std``): a written device reads its persistent state
plus fresh noise; updates act on the persistent state."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_models.synapses import Crossbar, SynapseConfig

DW = 0.01  # dw_min, fraction of w_max
SIGMA = 0.7  # write_noise_std, in dw_min


def _crossbar(write_noise_std: float, shape=(200, 200)) -> Crossbar:
    cfg = SynapseConfig(w_max=1.0, dw_min=DW, update_bound="hard", write_noise_std=write_noise_std)
    cb = Crossbar(cfg, shape, np.float64)
    cb.program(np.full(shape, 0.3), np.random.default_rng(0))
    return cb


def test_read_weights_are_the_persistent_state_plus_fresh_noise():
    """5.5 pulses requested: 5 fire on every device (hard bounds, no cycle noise), so the
    persistent state is 0.35 exactly and a read weight is 0.35 + N(0, (0.7 dw_min)^2)."""
    cb = _crossbar(SIGMA)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(cb.weights, 0.3)  # programming adds no write noise
    cb.update(np.full(cb.shape, 5.5 * DW), rng)
    np.testing.assert_allclose(cb.persistent_weights, 0.35, rtol=0, atol=1e-12)
    noise1 = cb.weights - cb.persistent_weights
    n = noise1.size
    sd = SIGMA * DW
    assert abs(noise1.mean()) < 4 * sd / np.sqrt(n)  # the mean is unchanged
    assert abs(noise1.var() / sd**2 - 1) < 4 * np.sqrt(2 / n)  # variance (sigma dw_min)^2
    # the next update acts on the persistent state (0.35 - 5 pulses = 0.30 exactly, the
    # accumulator holds 0.5 - 6 = -5.5 pulses: 5 fire), and the noise is drawn anew
    cb.update(np.full(cb.shape, -6.0 * DW), rng)
    np.testing.assert_allclose(cb.persistent_weights, 0.30, rtol=0, atol=1e-12)
    noise2 = cb.weights - cb.persistent_weights
    assert abs(noise2.var() / sd**2 - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.corrcoef(noise1.ravel(), noise2.ravel())[0, 1]) < 4 / np.sqrt(n)


def test_devices_not_written_keep_what_they_read():
    cb = _crossbar(SIGMA, shape=(4, 6))
    rng = np.random.default_rng(2)
    cb.update(np.full(cb.shape, 2.0 * DW), rng)
    before = cb.weights.copy()
    dW = np.zeros(cb.shape)
    dW[1] = 3.0 * DW  # one row written
    cb.update(dW, rng)
    np.testing.assert_array_equal(np.delete(cb.weights, 1, 0), np.delete(before, 1, 0))
    assert np.all(cb.weights[1] != before[1])
    np.testing.assert_allclose(cb.persistent_weights[1], 0.3 + 5 * DW, atol=1e-12)


def test_zero_write_noise_draws_nothing_and_changes_nothing():
    """Default 0: the same weights and the same random stream as before the option."""
    a, b = _crossbar(0.0), _crossbar(0.0)
    assert a.persistent_weights is a.weights
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    a.update(np.full(a.shape, 2.5 * DW), ra)
    b.update(np.full(b.shape, 2.5 * DW), rb)
    np.testing.assert_array_equal(a.weights, 0.3 + 2 * DW)
    assert ra.bit_generator.state == rb.bit_generator.state


def test_checkpoint_state_keeps_the_persistent_weights():
    cb = _crossbar(SIGMA, shape=(3, 3))
    cb.update(np.full(cb.shape, 2.0 * DW), np.random.default_rng(4))
    other = _crossbar(SIGMA, shape=(3, 3))
    other.set_state(cb.get_state())
    np.testing.assert_array_equal(other.persistent_weights, cb.persistent_weights)


@pytest.mark.parametrize(
    "fields", [{}, {"dw_min": DW, "unit_cell": "one_sided", "refresh_upper": 0.75}]
)
def test_write_noise_needs_a_pulsed_signed_device(fields):
    with pytest.raises(ValueError, match="write_noise_std"):
        SynapseConfig(w_max=1.0, write_noise_std=1.0, **fields)


def test_a_run_with_write_noise_reads_noisy_weights():
    """``chip.synapses.write_noise_std`` reaches the crossbars of a run: after training the
    weights the engines read differ from the persistent states by about 1 dw_min."""
    from pcsim import config
    from pcsim.run import prepare

    cfg = config.from_dict(
        {
            "data": {"limit_train": 8},
            "baseline": {"bp": False},
            "chip": {"preset": "rram", "synapses": {"write_noise_std": 1.0}},
        }
    )
    run = prepare(cfg, progress=False)
    run.trainer.train_epoch()
    for cb, W in zip(run.circ.crossbars, run.net.weights, strict=True):
        assert W is cb.weights
        diff = (cb.weights - cb.persistent_weights)[cb.weights != cb.persistent_weights]
        dw = cb.config.relative_dw_min() * cb.w_max
        assert diff.size > 0 and 0.8 < diff.std() / dw < 1.2
