"""`mtl-radiomics info PET`: what the engine read, as text or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from MTLRadiomicsLib.commands.pet_options import add_pet_options, load_pet_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "info", help="show what the engine reads from a PET volume",
        description="Print size, spacing, orientation, units, the SUV factor and how it was derived, "
                    "SUV statistics and series facts of a PET volume.")
    add_pet_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    pet = load_pet_from_args(args)
    summary = pet.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable lines for a PetVolume summary."""
    series, conv, stats = s["series"], s["suv_conversion"], s["statistics"]
    lines = [f"PET          {s['source']} ({s['format'].upper()})"]
    if series:
        scanner = " ".join(filter(None, [series.get("Manufacturer"), series.get("ManufacturerModelName")]))
        what = " | ".join(filter(None, [series.get("Modality"), series.get("SeriesDescription"), scanner,
                                        series.get("SeriesDate")]))
        if what:
            lines.append(f"Series       {what}")
        patient = ", ".join(filter(None, [series.get("PatientID"), series.get("PatientSex"),
                                          series.get("PatientAge")]))
        if patient:
            lines.append(f"Patient      {patient}")
        for other in series.get("OtherSeriesInFolder", []):
            lines.append(f"Also found   {other} (not read)")
    tracer = s.get("tracer") or {}
    if tracer:
        lines.append(f"Tracer       {tracer['description']}")
        if tracer.get("refusal"):
            lines.append(f"Tracer check refused for analysis: {tracer['refusal']}")
    x, y, z = s["size_xyz"]
    sx, sy, sz = s["spacing_mm"]
    ex, ey, ez = s["extent_mm"]
    lines += [
        f"Size         {x} x {y} x {z} voxels",
        f"Spacing      {sx:.4g} x {sy:.4g} x {sz:.4g} mm (extent {ex:.0f} x {ey:.0f} x {ez:.0f} mm)",
        f"Orientation  {s['orientation']}, origin ({', '.join(f'{o:.2f}' for o in s['origin_lps_mm'])}) mm LPS",
        f"Units        {conv['units_in_file']} -> SUVbw: {conv['method']}",
        f"SUV factor   {conv['factor']:.6g} (SUV = stored value x factor)",
    ]
    facts = [("weight", "weight_kg", "{:g} kg"), ("dose", "injected_dose_bq", "{:.1f} MBq"),
             ("half_life", "half_life_s", "{:g} s"), ("injection_time", "injection_datetime", "{}"),
             ("reference_time", "reference_datetime", "{}")]
    for source_key, key, fmt in facts:
        value = conv.get(key)
        if value is None:
            continue
        if key == "injected_dose_bq":
            value = value / 1e6
        where = conv["sources"].get(source_key, "")
        lines.append(f"  {source_key.replace('_', ' '):<12} {fmt.format(value)}  [{where}]")
    decay_source = conv["sources"].get("decay")
    if conv.get("decay_factor") not in (None, 1.0):
        lines.append(f"  decay        x{conv['decay_factor']:.4f} over {conv['elapsed_s'] / 60:.1f} min "
                     f"[{decay_source or ''}]")
    elif conv.get("decay_factor") == 1.0 and decay_source:
        lines.append(f"  decay        none: values refer to the injection time  [{decay_source}]")
    lines.append(f"SUV          max {stats['suv_max']:.2f}, mean {stats['suv_mean']:.3f} "
                 f"(body, SUV > 0.1: {stats['suv_mean_body']:.3f}), min {stats['suv_min']:.2f}")
    return "\n".join(lines)
