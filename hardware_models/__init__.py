"""hardware_models: modelled analog / neuromorphic substrates (devices, circuits, costs).

Knows nothing of predictive coding: it models arrays of synapses (:class:`Crossbar`), units
(:class:`UnitArray`), converters and costs (:class:`EnergyLedger`), composed into a
:class:`Chip`. Named substrates are TOML presets::

    from hardware_models import load_preset
    chip = load_preset("pcm", {"synapses.bits": 4})
    chip.tau_x_s, chip.describe()
"""

from hardware_models._config import ChipConfigError
from hardware_models.architecture import ArchitectureConfig, LayerMap
from hardware_models.chip import Chip, list_presets, load_preset, preset_path
from hardware_models.converters import ConverterConfig, quantise
from hardware_models.costs import (
    CostConfig,
    DigitalConfig,
    DigitalCost,
    EnergyLedger,
    digital_baseline,
)
from hardware_models.synapses import Crossbar, SynapseConfig
from hardware_models.units import (
    ErrorUnitConfig,
    UnitArray,
    ValueUnitConfig,
    thermal_noise_sigma,
)

__all__ = [
    "Chip",
    "ChipConfigError",
    "load_preset",
    "list_presets",
    "preset_path",
    "SynapseConfig",
    "Crossbar",
    "ValueUnitConfig",
    "ErrorUnitConfig",
    "UnitArray",
    "thermal_noise_sigma",
    "ConverterConfig",
    "quantise",
    "ArchitectureConfig",
    "LayerMap",
    "CostConfig",
    "DigitalConfig",
    "DigitalCost",
    "EnergyLedger",
    "digital_baseline",
]
