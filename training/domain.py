"""What a model was trained on, for its card: ``python -m training.domain --model DIR --manifest M``.

From the training cases (a manifest) and the model itself: tracer, tumour types (the manifest's
pathology names, or its ``mskcc_type`` column), body regions (from a ``site`` column, or from the
pathology: lung and oesophageal tumours lie in the thorax), the ranges of the reference masks'
volumes and SUVmax, the voxel sizes, and the statistics of the features the outcome head sees on
these cases through the engine's own path (``training.heldout_scores``). The engine checks every
analysed lesion against them (``MTLRadiomicsLib.analysis.domain``). The card is updated in place
(the weights are not touched).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from MTLRadiomicsLib.analysis.domain import feature_distance

SITE_REGIONS = (("thigh", "lower_limb"), ("quadricep", "lower_limb"), ("calf", "lower_limb"),
                ("poplit", "lower_limb"), ("adduct", "lower_limb"), ("knee", "lower_limb"), ("leg", "lower_limb"),
                ("foot", "lower_limb"), ("buttock", "abdomen_pelvis"), ("pelvi", "abdomen_pelvis"),
                ("groin", "abdomen_pelvis"), ("abdom", "abdomen_pelvis"), ("arm", "upper_limb"),
                ("bicep", "upper_limb"), ("hand", "upper_limb"), ("shoulder", "upper_limb"),
                ("elbow", "upper_limb"), ("chest", "thorax"), ("lung", "thorax"), ("oesophag", "thorax"),
                ("back", "thorax"), ("neck", "head_neck"), ("head", "head_neck"))
PATHOLOGY_REGIONS = {"lung": "thorax", "oesophageal": "thorax", "head_and_neck": "head_neck"}


def site_region(site: str) -> Optional[str]:
    """The body region of a free-text site ("left thigh", "right buttock", ...), None if unknown."""
    text = site.lower()
    for word, region in SITE_REGIONS:
        if word in text:
            return region
    return None


def describe_domain(model, records, extra_columns: dict[str, dict], device: torch.device = torch.device("cpu"),
                    log: Optional[Callable[[str], None]] = None) -> dict:
    """The ``domain`` of a card from the training ``records`` (``extra_columns``: case_id -> the raw
    manifest row, for ``site`` and ``mskcc_type``)."""
    from training.heldout_mtv import load_case
    from training.heldout_scores import score_cases

    volumes, suv_max, in_plane, slices, regions, types = [], [], [], [], set(), set()
    for record in records:
        pet, reference = load_case(record)
        if reference.any():
            volumes.append(float(reference.sum()) * pet.voxel_volume_ml)
            suv_max.append(float(pet.suv[reference].max()))
        in_plane.append(float(max(pet.spacing[0], pet.spacing[1])))
        slices.append(float(pet.spacing[2]))
        row = extra_columns.get(record.case_id, {})
        name = row.get("mskcc_type") or row.get("pathology") or ""
        if name:
            types.add(name)
        region = site_region(row.get("site", "")) if row.get("site") else PATHOLOGY_REGIONS.get(row.get("pathology", ""))
        if region:
            regions.add(region)
    domain = {"tracer": "FDG", "n_cases": len(records), "tumour_types": sorted(types),
              "body_regions": sorted(regions),
              "volume_ml": [round(min(volumes), 2), round(max(volumes), 2)] if volumes else None,
              "suv_max": [round(min(suv_max), 2), round(max(suv_max), 2)] if suv_max else None,
              "voxel_mm": {"in_plane": [round(min(in_plane), 3), round(max(in_plane), 3)],
                           "slice": [round(min(slices), 3), round(max(slices), 3)]}}
    if model.network.outcome is not None:
        rows = score_cases(model, records, device, log)
        features = np.array([r["features"] for r in rows if "features" in r], float)
        mean, sd = features.mean(axis=0), features.std(axis=0)
        distances = [feature_distance(f, mean, sd) for f in features]
        domain["features"] = {"what": "the outcome head's input vector on the training cases (engine path)",
                              "mean": [round(float(v), 6) for v in mean], "sd": [round(float(v), 6) for v in sd],
                              "max_distance": round(float(max(distances)), 4),
                              "median_distance": round(float(np.median(distances)), 4)}
    return domain


def update_card_domain(model_dir: str | Path, manifest: str | Path, device: str = "cpu",
                       log: Optional[Callable[[str], None]] = print) -> dict:
    """Compute the domain of the model in ``model_dir`` from ``manifest`` and write it into its card."""
    import csv

    from MTLRadiomicsLib.model.model_file import CARD_FILE, load_model
    from training.manifest import read_manifest

    model = load_model(model_dir, device=device)
    records, _ = read_manifest(manifest)
    with open(manifest, newline="") as handle:
        raw = {row["case_id"]: row for row in csv.DictReader(handle)}
    domain = describe_domain(model, records, raw, torch.device(device), log)
    domain["manifest"] = str(manifest)
    path = Path(model_dir) / CARD_FILE
    card = json.loads(path.read_text())
    card["domain"] = domain
    path.write_text(json.dumps(card, indent=2))
    return domain


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.domain", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (its model.json is updated)")
    parser.add_argument("--manifest", required=True, help="the manifest of the cases the model was trained on")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    try:
        domain = update_card_domain(args.model, args.manifest, args.device, log=None)
    except (ValueError, FileNotFoundError) as error:
        print(f"domain: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in domain.items() if k != "features"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
