"""Stuck devices in a differential pair, and a mapping that lets the partner compensate.

A signed weight is held by a differential pair (:mod:`hardware_models.synapses`),
``w = (g_plus - g_minus) / (g_max - g_min) * w_max``: each device adds between 0 and ``w_max``
of its own sign. A stuck device ignores programming. Stuck at ``g_max`` (stuck-at-1, low
resistance) it adds its full ``side * w_max``; stuck at ``g_min`` (stuck-at-0) it adds nothing.
``side`` is ``+1`` for the plus device, ``-1`` for the minus device.

With one device of a pair stuck, the free partner (of sign ``-side``) still spans ``w_max``, so
the pair reaches every weight between 0 and the *reachable end* ``r``::

    plus stuck at g_max:   w = w_max - m,  m in [0, w_max]  ->  [0, w_max]    r = +w_max
    plus stuck at g_min:   w = -m                          ->  [-w_max, 0]   r = -w_max
    minus stuck at g_max:  w = p - w_max                   ->  [-w_max, 0]   r = -w_max
    minus stuck at g_min:  w = p                           ->  [0, w_max]    r = +w_max

that is ``r = side * w_max`` at ``g_max`` and ``r = -side * w_max`` at ``g_min``.

Two mappings of a target ``w`` (``|w| <= w_max``) onto such a pair:

- **unaware** (the standard mapping, which does not know the defect): the device of ``w``'s sign
  carries ``|w|``, the other sits at ``g_min``; the stuck device keeps its level, so the pair
  reads ``c + partner``, with ``c = side * w_max`` (stuck at ``g_max``) or 0, and ``partner =
  -side * max(-side * w, 0)`` (what the standard mapping asked of the free device).
- **aware** (the chip's stuck map, read out once after fabrication, is known to the mapper): the
  partner is programmed to ``w - c``, which it can hold exactly when ``w`` lies between 0 and
  ``r``; otherwise the nearest reachable weight. The pair reads ``clip(w, min(0, r), max(0,
  r))``: zero error where the partner can compensate, the clipped part otherwise.

Row or column permutation (moving a weight to a healthy pair) is not modelled.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "reachable_end",
    "stuck_contribution",
    "map_unaware",
    "map_aware",
    "readout_energy_j",
]


def reachable_end(side: np.ndarray, at_gmax: np.ndarray, w_max: np.ndarray | float) -> np.ndarray:
    """The end ``r`` of the interval ``[min(0, r), max(0, r)]`` a pair with one stuck device
    reaches (weight units): ``side * w_max`` at ``g_max``, ``-side * w_max`` at ``g_min``.

    ``side``: +1 (plus device stuck) or -1 (minus device stuck); ``at_gmax``: bool, stuck at
    ``g_max``; ``w_max``: the pair's full span (scalar, or per pair with a device gain)."""
    side = np.asarray(side, np.float64)
    return np.where(np.asarray(at_gmax, bool), side, -side) * w_max


def stuck_contribution(
    side: np.ndarray, at_gmax: np.ndarray, w_max: np.ndarray | float
) -> np.ndarray:
    """What the stuck device adds to the pair's weight: ``side * w_max`` at ``g_max``, else 0."""
    side = np.asarray(side, np.float64)
    return np.where(np.asarray(at_gmax, bool), side * w_max, 0.0)


def map_unaware(
    w: np.ndarray, side: np.ndarray, at_gmax: np.ndarray, w_max: np.ndarray | float
) -> np.ndarray:
    """The weight a pair with one stuck device presents after the standard mapping of ``w``.

    ``stuck_contribution + partner``, the partner holding ``-side * max(-side * w, 0)`` as
    the standard mapping asks of it (module docstring). All arrays broadcast together."""
    w = np.asarray(w, np.float64)
    s = np.asarray(side, np.float64)
    return stuck_contribution(s, at_gmax, w_max) - s * np.maximum(-s * w, 0.0)


def map_aware(
    w: np.ndarray, side: np.ndarray, at_gmax: np.ndarray, w_max: np.ndarray | float
) -> np.ndarray:
    """The weight a pair with one stuck device presents when its partner compensates:
    ``clip(w, min(0, r), max(0, r))`` with ``r`` the :func:`reachable_end`."""
    r = reachable_end(side, at_gmax, w_max)
    return np.clip(np.asarray(w, np.float64), np.minimum(r, 0.0), np.maximum(r, 0.0))


def readout_energy_j(n_weights: int, devices_per_weight: int, read_energy_j: float) -> float:
    """One-time energy (J) of reading every device of ``n_weights`` pairs once to build the
    stuck map: ``n_weights * devices_per_weight`` reads of ``read_energy_j`` each (a preset's
    ``read_energy_per_mac_j``, which includes its share of the conversion)."""
    return float(n_weights) * float(devices_per_weight) * float(read_energy_j)
