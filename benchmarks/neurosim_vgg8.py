"""VGG8 on CIFAR-10 on the neurosim-rram-22nm preset, beside NeuroSim V1.4's published figures.

The shapes are NeuroSim's ``Inference_pytorch/NeuroSIM/NetWork_VGG8.csv`` (DNN_NeuroSim_V1.4):
32x32x3 -> 128C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-1024FC-10FC, 3x3 kernels with padding 1,
max pooling after layers 2, 4 and 6. Each layer is mapped by
:func:`hardware_models.conv_mapping.conv_layer_cost` as a feedforward inference chip (forward
reads only, no predictive-coding units); the fully connected layers are the one-position case.
pcsim's cost model prices every read at the mean conductance and a full-scale input, so it
needs no weights or inputs: the numbers below hold for any (random or trained) VGG8 of these
shapes, where NeuroSim's depend on its traces (input toggle rate, column resistances).

Three mappings of the same preset:

- ``pcsim analog``: pcsim's own design, one read per patch: 8-bit DAC inputs, 8-bit weights as
  a differential pair of analog cells, 128 rows at once, a 4-bit conversion per column.
- ``NeuroSim, 64 rows`` / ``32 rows``: NeuroSim's dataflow (Param.cpp ``cellBit = 1``,
  bit-serial inputs, partial parallel read): 8 one-bit cells per weight, 8 input pulses per
  read, 64 (32) rows on at once, each 1-bit cell read priced at half the preset's pair
  (one device), with NeuroSim's weight duplication ``speedUpDegree = 8`` (8 replicas of
  every layer with 8 or more positions).
- ``..., 1 ns``: the same, with the cells conducting only while NeuroSim's sense amplifier
  samples the column (its column latency, 1 ns at 22 nm) instead of the whole 10 ns pulse:
  NeuroSim's convention for the array's read energy.

Pooling is digital in NeuroSim (``MaxPooling``): priced here as 3 comparisons per 2x2 window
and channel, each an 8-bit add at the node (Horowitz ISSCC 2014, scaled). Left out, as
counted by NeuroSim but not by pcsim: buffers, the global interconnect (XY bus), activation
units, leakage, and NeuroSim's post-layout factor ``zeta = 1.22`` (benchmarks/RESULTS.md).

Run: ``python benchmarks/neurosim_vgg8.py [--json out.json]`` (a second, no simulation).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

from hardware_models import load_preset
from hardware_models.baselines import energy_scale
from hardware_models.chip import Chip
from hardware_models.conv_geometry import ConvGeometry
from hardware_models.conv_mapping import ConvLayerCost, conv_layer_cost

# NetWork_VGG8.csv (DNN_NeuroSim_V1.4): IFM H, W, C, kernel H, W, OFM C, max pool after, stride
VGG8_CSV = [
    (32, 32, 3, 3, 3, 128, 0, 1),
    (32, 32, 128, 3, 3, 128, 1, 1),
    (16, 16, 128, 3, 3, 256, 0, 1),
    (16, 16, 256, 3, 3, 256, 1, 1),
    (8, 8, 256, 3, 3, 512, 0, 1),
    (8, 8, 512, 3, 3, 512, 1, 1),
    (1, 1, 8192, 1, 1, 1024, 0, 1),
    (1, 1, 1024, 1, 1, 10, 0, 1),
]
# DNN NeuroSim V1.4 manual (User Manual of DNN simulator V1.4, v3 2023-12-29), Table VII:
# RRAM 22 nm, on/off 17, 4-bit ADC, 1 bit/cell, 128x128 subarrays, 8b x 8b, XY bus
PUBLISHED = {
    32: {"area_mm2": 381.90, "tops": 6.25, "tops_per_w": 11.25, "accuracy": 0.71},
    64: {"area_mm2": 378.06, "tops": 8.16, "tops_per_w": 19.88, "accuracy": 0.43},
}
SPEED_UP = 8  # NeuroSim Param.cpp:108 speedUpDegree = 8 (weight duplication)
POOL_COMPARES = 3  # a 2x2 max: 3 comparisons


def vgg8() -> list[tuple[ConvGeometry, bool]]:
    """VGG8's layers as geometries (padding 1 keeps the 3x3 convolutions' size, as NeuroSim's
    IFM sizes say) and whether a 2x2 max pool follows."""
    out = []
    for h, w, c, kh, _kw, k, pool, stride in VGG8_CSV:
        pad = (kh - 1) // 2
        out.append((ConvGeometry(c, h, w, k, kh, stride, pad), bool(pool)))
    return out


def neurosim_ops(layers: list[tuple[ConvGeometry, bool]]) -> int:
    """NeuroSim's operation count (main.cpp:225): ``2 H W C_in k^2 C_out`` per layer."""
    return sum(
        2 * g.height * g.width * g.in_channels * g.kernel**2 * g.out_channels for g, _ in layers
    )


@dataclass(frozen=True)
class Mapping:
    name: str
    input_cycles: int = 1
    weight_slices: int = 1
    parallel_rows: int | None = None
    speed_up: int = 1
    one_bit_cells: bool = False
    sense_s: float | None = None


# NeuroSim's column sensing time at 22 nm (MultilevelSenseAmp.cpp, ColumnLatency_Table, current
# mode): 8.0e-15 R + 0.85 ns above 4.8 kOhm, -1.32e-10 ln R + 1.76 ns below, floored at 1 ns
# (CalculatePower); a column of 32 or 64 cells at the mean conductance (3-6 kOhm) gets the floor
NEUROSIM_SENSE_S = 1e-9

MAPPINGS = [
    Mapping("pcsim analog"),
    Mapping("NeuroSim, 64 rows", 8, 8, 64, SPEED_UP, True),
    Mapping("NeuroSim, 32 rows", 8, 8, 32, SPEED_UP, True),
    Mapping("NeuroSim, 64 rows, 1 ns", 8, 8, 64, SPEED_UP, True, NEUROSIM_SENSE_S),
    Mapping("NeuroSim, 32 rows, 1 ns", 8, 8, 32, SPEED_UP, True, NEUROSIM_SENSE_S),
]


def chip_for(base: Chip, m: Mapping) -> Chip:
    """The preset; with ``one_bit_cells`` one device per cell column at the one-device read
    energy, and with ``sense_s`` cells conducting only for that time instead of the read
    pulse (the read energy scaled by ``sense_s / synapses.read_time_s``)."""
    if not m.one_bit_cells:
        return base
    per_device = base.costs.read_energy_per_mac_j / base.architecture.devices_per_weight
    if m.sense_s is not None:
        per_device *= m.sense_s / base.synapses.read_time_s
    return base.with_overrides(
        {"architecture.devices_per_weight": 1, "costs.read_energy_per_mac_j": per_device}
    )


def evaluate(m: Mapping, base: Chip) -> dict[str, object]:
    """Energy, latency and area of one VGG8 image under mapping ``m``."""
    chip = chip_for(base, m)
    layers = vgg8()
    costs: list[ConvLayerCost] = [
        conv_layer_cost(
            g,
            chip,
            replicas=min(m.speed_up, g.positions),
            backward=False,
            units=False,
            settle_s=chip.synapses.read_time_s,
            input_cycles=m.input_cycles,
            weight_slices=m.weight_slices,
            parallel_rows=m.parallel_rows,
        )
        for g, _ in layers
    ]
    energy: dict[str, float] = {}
    area: dict[str, float] = {}
    for c in costs:
        for k, v in c.energy_j.items():
            energy[k] = energy.get(k, 0.0) + v
        for k, v in c.area_mm2.items():
            area[k] = area.get(k, 0.0) + v
    compare_j = chip.architecture.accumulator_add_8bit_j * energy_scale(chip.node_nm)
    pooled = sum(g.n_out // 4 for g, pool in layers if pool)  # outputs of the 2x2 pools
    energy["max_pooling"] = POOL_COMPARES * pooled * compare_j
    ops = neurosim_ops(layers)
    total_j = math.fsum(energy.values())
    latencies = [c.map.latency_s for c in costs]
    pipeline_s = max(latencies)  # NeuroSim's pipelined throughput: the slowest layer
    return {
        "mapping": m.name,
        "ops_per_image": ops,
        "macs_per_image": sum(g.macs_per_sample for g, _ in layers),
        "energy_per_image_j": total_j,
        "energy_by_component_j": energy,
        "tops_per_w": ops / total_j / 1e12,
        "latency_per_image_s": math.fsum(latencies),
        "pipeline_period_s": pipeline_s,
        "tops": ops / pipeline_s / 1e12,
        "area_mm2": math.fsum(area.values()),
        "area_by_component_mm2": area,
        "tiles": sum(c.map.tiles for c in costs),
        "adc_conversions": sum(c.map.adc_conversions for c in costs),
        "layers": [c.to_dict() for c in costs],
    }


def published(rows: int, ops: int) -> dict[str, float]:
    """NeuroSim's Table VII row for ``rows`` read in parallel, with per-image figures derived
    from its own operation count: energy = ops / (TOPS/W), pipeline period = ops / TOPS."""
    p = PUBLISHED[rows]
    return {
        **p,
        "energy_per_image_j": ops / (p["tops_per_w"] * 1e12),
        "pipeline_period_s": ops / (p["tops"] * 1e12),
    }


def table(results: list[dict[str, object]], ops: int) -> str:
    head = f"{'':24s} {'uJ/image':>9s} {'TOPS/W':>7s} {'latency us':>10s} {'period us':>9s} "
    head += f"{'TOPS':>6s} {'mm^2':>7s}"
    lines = [head]
    for r in results:
        lines.append(
            f"{r['mapping']:24s} {r['energy_per_image_j'] * 1e6:9.2f} {r['tops_per_w']:7.2f} "
            f"{r['latency_per_image_s'] * 1e6:10.1f} {r['pipeline_period_s'] * 1e6:9.1f} "
            f"{r['tops']:6.2f} {r['area_mm2']:7.2f}"
        )
    for rows in (64, 32):
        p = published(rows, ops)
        lines.append(
            f"{f'NeuroSim V1.4, {rows} rows':24s} {p['energy_per_image_j'] * 1e6:9.2f} "
            f"{p['tops_per_w']:7.2f} {'-':>10s} {p['pipeline_period_s'] * 1e6:9.1f} "
            f"{p['tops']:6.2f} {p['area_mm2']:7.2f}"
        )
    lines.append("")
    comps = sorted({k for r in results for k in r["energy_by_component_j"]})
    lines.append(f"{'energy uJ/image':24s} " + " ".join(f"{k[:14]:>14s}" for k in comps))
    for r in results:
        e = r["energy_by_component_j"]
        lines.append(f"{r['mapping']:24s} " + " ".join(f"{e.get(k, 0) * 1e6:14.3f}" for k in comps))
    comps = sorted({k for r in results for k in r["area_by_component_mm2"]})
    lines.append(f"{'area mm^2':24s} " + " ".join(f"{k[:14]:>14s}" for k in comps))
    for r in results:
        a = r["area_by_component_mm2"]
        lines.append(f"{r['mapping']:24s} " + " ".join(f"{a.get(k, 0):14.3f}" for k in comps))
    return "\n".join(lines)


def predictive_coding(base: Chip) -> dict[str, object]:
    """VGG8 as a predictive-coding chip on the same preset (pcsim's analog mapping, no
    replicas): both read directions, a value and an error unit per output position, reads
    settling in ``tau_x``. Per sweep (every position read once in both directions) and the
    effective time constant of each layer's units (``hardware_models/conv_mapping.py``)."""
    costs = [conv_layer_cost(g, base) for g, _ in vgg8()]
    energy: dict[str, float] = {}
    area: dict[str, float] = {}
    for c in costs:
        for k, v in c.energy_j.items():
            energy[k] = energy.get(k, 0.0) + v
        for k, v in c.area_mm2.items():
            area[k] = area.get(k, 0.0) + v
    return {
        "energy_per_sweep_j": math.fsum(energy.values()),
        "energy_by_component_j": energy,
        "sweep_s": max(c.map.latency_s for c in costs),
        "area_mm2": math.fsum(area.values()),
        "area_by_component_mm2": area,
        "effective_tau_s": [c.map.effective_tau_s for c in costs],
        "tau_x_s": base.tau_x_s,
    }


def pc_text(pc: dict[str, object]) -> str:
    taus = ", ".join(f"{t * 1e6:.2f}" for t in pc["effective_tau_s"])
    area = ", ".join(f"{k} {v:.1f}" for k, v in pc["area_by_component_mm2"].items())
    return (
        f"as a predictive-coding chip (tau_x {pc['tau_x_s'] * 1e9:.0f} ns, both directions, units"
        f" per position): {pc['energy_per_sweep_j'] * 1e6:.2f} uJ and "
        f"{pc['sweep_s'] * 1e6:.1f} us per sweep of all positions;\n"
        f"  effective tau of each layer's units, us: {taus}\n"
        f"  area {pc['area_mm2']:.1f} mm^2: {area}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    base = load_preset("neurosim-rram-22nm")
    results = [evaluate(m, base) for m in MAPPINGS]
    ops = int(results[0]["ops_per_image"])
    print(f"VGG8 / CIFAR-10 on {base.name}: {ops / 1e9:.4f} G ops per image (NeuroSim's count)")
    print(table(results, ops))
    pc = predictive_coding(base)
    print(pc_text(pc))
    if args.json:
        out = {
            "results": results,
            "published": {r: published(r, ops) for r in PUBLISHED},
            "predictive_coding": pc,
        }
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
        except OSError as e:
            print(f"--json: cannot write {args.json!r}: {e.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
