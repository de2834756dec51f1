"""Shared fixtures: small networks and states in float64."""

from __future__ import annotations

import numpy as np
import pytest

from pcsim import network
from pcsim.blas import limit_threads


def random_state(net: network.Network, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random activities for every layer, shape (batch, n_l), in the network's dtype."""
    return [rng.standard_normal((batch, n)).astype(net.dtype) for n in net.sizes]


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """The suite is a run: one BLAS thread (pcsim.blas), as the CLI sets; importing pcsim
    leaves the thread count alone."""
    with limit_threads():
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
