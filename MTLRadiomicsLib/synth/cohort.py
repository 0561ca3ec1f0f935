"""A synthetic cohort on disk: NIfTI images and masks, a manifest with outcomes and folds, facts."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.synth import outcomes as outcome_model
from MTLRadiomicsLib.synth.cases import (CROP_MARGIN_MM, NATIVE_IN_PLANE_MM, NATIVE_SLICE_MM,
                                         SyntheticCase, lesion_crop_case, wholebody_case)
from MTLRadiomicsLib.synth.dicom_writer import default_datetimes, series_uids, write_pet_dicom
from MTLRadiomicsLib.synth.lesions import PATHOLOGIES
from MTLRadiomicsLib.synth.outcomes import concordance_index, roc_auc
from MTLRadiomicsLib.synth.patient import (GENERATOR_VERSION, GTV_SAMPLERS, draw_pathology,
                                           normalise_pathologies)

MANIFEST_COLUMNS = ["case_id", "pet", "mask", "pathology", "response", "time", "event",
                    "oracle_risk", "fold"]
FOLD_STREAM = 1_000_003      # stream id of the split, next to the cohort seed
FIRST_SCAN_DAY = dt.date(2024, 1, 8)
GROUND_TRUTH = {
    "lung": "MTV: the 40 % SUVmax region of the primary tumour's own signal",
    "oesophageal": "MTV: the 40 % SUVmax region of the primary tumour's own signal",
    "sarcoma": "GTV: the whole tumour (viable rim and necrotic core), voxels whose centre lies in "
               "it; facts mtv40_ml is its 40 % SUVmax region",
    "head_and_neck": "GTV: the whole primary tumour (viable and necrotic, not the cervical "
                     "nodes), voxels whose centre lies in it; facts mtv40_ml is its 40 % SUVmax "
                     "region",
}


def case_seed(cohort_seed: int, index: int) -> int:
    """The patient seed of case ``index`` of a cohort (SeedSequence([cohort_seed, index]))."""
    return int(np.random.SeedSequence([int(cohort_seed), int(index)]).generate_state(1)[0])


def assign_folds(pathologies: list[str], n_folds: int, test_fraction: float, seed: int) -> list[str]:
    """'test' for the locked test split, else '0'..'n_folds-1'; both stratified by pathology."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), FOLD_STREAM]))
    folds = [""] * len(pathologies)
    counter = 0
    for pathology in sorted(set(pathologies)):
        members = rng.permutation([i for i, p in enumerate(pathologies) if p == pathology])
        n_test = int(round(test_fraction * len(members)))
        for i in members[:n_test]:
            folds[int(i)] = "test"
        for i in members[n_test:]:
            folds[int(i)] = str(counter % n_folds)
            counter += 1
    return folds


def _write_image(array: np.ndarray, case: SyntheticCase, path: Path) -> None:
    image = case.pet.copy_geometry_to(sitk.GetImageFromArray(array))
    sitk.WriteImage(image, str(path), useCompression=True)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _oracle(rows: list[dict[str, Any]]) -> dict[str, float]:
    risk = np.array([float(r["oracle_risk"]) for r in rows])
    return {"n": len(rows),
            "auc_response": roc_auc(-risk, np.array([r["response"] for r in rows])),
            "c_index": concordance_index(np.array([float(r["time"]) for r in rows]),
                                         np.array([r["event"] for r in rows]), risk)}


def _validate(n_cases: int, kind: str, n_folds: int, test_fraction: float) -> None:
    if int(n_cases) < 1:
        raise MTLRadiomicsError(f"n_cases must be at least 1, not {n_cases}")
    if kind not in ("crop", "wholebody"):
        raise MTLRadiomicsError(f"kind must be 'crop' or 'wholebody', not {kind!r}")
    if int(n_folds) < 1:
        raise MTLRadiomicsError(f"n_folds must be at least 1, not {n_folds}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise MTLRadiomicsError(f"test_fraction must be in [0, 1), not {test_fraction}")


def generate_cohort(out_dir: str | Path, n_cases: int, seed: int = 0, kind: str = "crop",
                    n_folds: int = 5, test_fraction: float = 0.2, dicom: bool = False,
                    progress: bool = True,
                    pathologies: Optional[Sequence[str] | str] = None) -> Path:
    """Write ``n_cases`` synthetic cases to ``out_dir`` and return the manifest path.

    Layout: images/<case>_pet.nii.gz (SUV), masks/<case>_mask.nii.gz (uint8 MTV), optionally
    dicom/<case>/ (PET series in Bq/ml, START decay correction), manifest.csv (columns
    ``MANIFEST_COLUMNS`` plus ``dicom`` when written; paths relative to the manifest), facts.jsonl
    (one JSON object of facts per case) and cohort.json (settings, oracle AUC and C-index).
    Case i is the patient ``case_seed(seed, i)``; its pathology is drawn from that seed among
    ``pathologies`` (a list or comma-separated names; default lung and oesophageal, which gives
    the same cohorts as before the other pathologies existed). Ground truth per pathology:
    ``GROUND_TRUTH`` (also in cohort.json); sarcoma and head-and-neck crops are sized to the
    lesion at native voxels.
    """
    _validate(n_cases, kind, n_folds, test_fraction)
    choices = normalise_pathologies(pathologies)
    out = Path(out_dir)
    for sub in ("images", "masks") + (("dicom",) if dicom else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    make = lesion_crop_case if kind == "crop" else wholebody_case
    rows: list[dict[str, Any]] = []
    facts_lines: list[str] = []
    for index in tqdm(range(int(n_cases)), desc=f"synthetic {kind} cases", unit="case",
                      disable=not progress):
        seed_i = case_seed(seed, index)
        case_id = f"syn{int(seed)}_{index:04d}"
        case = make(seed_i, draw_pathology(seed_i, choices), case_id=case_id)
        pet_rel, mask_rel = f"images/{case_id}_pet.nii.gz", f"masks/{case_id}_mask.nii.gz"
        _write_image(case.pet.suv, case, out / pet_rel)
        _write_image(case.mask.astype(np.uint8), case, out / mask_rel)
        row = {"case_id": case_id, "pet": pet_rel, "mask": mask_rel, "pathology": case.pathology,
               "response": case.response, "time": f"{case.time:.4f}", "event": case.event,
               "oracle_risk": f"{case.oracle_risk:.6f}"}
        if dicom:
            acq = case.facts["acquisition"]
            injection, series = default_datetimes(FIRST_SCAN_DAY + dt.timedelta(days=index),
                                                  acq["injection_clock_s"], acq["uptake_time_s"])
            study_uid, series_uid = series_uids("mtlradiomics-synth", seed, index, seed_i)
            write_pet_dicom(case.pet, out / "dicom" / case_id, weight_kg=acq["weight_kg"],
                            injected_dose_bq=acq["injected_dose_bq"], injection_datetime=injection,
                            series_datetime=series, patient_id=case_id,
                            patient_name=f"Synthetic^{case_id}", study_uid=study_uid,
                            series_uid=series_uid)
            row["dicom"] = f"dicom/{case_id}"
        rows.append(row)
        facts_lines.append(json.dumps({"case_id": case_id, "seed": seed_i, **case.facts}))

    folds = assign_folds([r["pathology"] for r in rows], int(n_folds), float(test_fraction), seed)
    for row, fold in zip(rows, folds):
        row["fold"] = fold
    columns = MANIFEST_COLUMNS + (["dicom"] if dicom else [])
    _atomic_text(out / "facts.jsonl", "\n".join(facts_lines) + "\n")
    _atomic_text(out / "cohort.json", json.dumps(_summary(rows, seed, kind, n_folds, test_fraction,
                                                          dicom, choices), indent=2))
    manifest = out / "manifest.csv"
    tmp = manifest.with_name("manifest.csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, manifest)
    return manifest


def _grids(kind: str, choices: tuple[str, ...]) -> dict[str, Any]:
    """Voxel sizes and crop sizes: the fixed ones for lung/oesophageal-only cohorts (as before),
    else None with a description per pathology."""
    legacy = {"spacing_mm": [2.0, 2.0, 2.0] if kind == "crop" else [4.0, 4.0, 3.0],
              "crop_size": [64, 64, 64] if kind == "crop" else None}
    if not any(p in GTV_SAMPLERS for p in choices):
        return legacy
    native = {"spacing_mm": {"in_plane_choices": list(NATIVE_IN_PLANE_MM),
                             "slice": NATIVE_SLICE_MM},
              "crop_size": ("the lesion (primary and nodes) plus a margin drawn per side from "
                            f"{CROP_MARGIN_MM[0]:g}-{CROP_MARGIN_MM[1]:g} mm") if kind == "crop"
              else None}
    return {"spacing_mm": None, "crop_size": None,
            "grid_by_pathology": {p: native if p in GTV_SAMPLERS else legacy for p in choices}}


def _summary(rows: list[dict[str, Any]], seed: int, kind: str, n_folds: int,
             test_fraction: float, dicom: bool, choices: tuple[str, ...] = PATHOLOGIES
             ) -> dict[str, Any]:
    oracle = _oracle(rows)
    dev = [r for r in rows if r["fold"] != "test"]
    test = [r for r in rows if r["fold"] == "test"]
    events = np.array([r["event"] for r in rows])
    return {
        "generator": "MTLRadiomics synthetic FDG-PET cohort",
        "generator_version": GENERATOR_VERSION,
        "engine_version": __version__,
        "seed": int(seed), "kind": kind, "n_cases": len(rows), "n_folds": int(n_folds),
        "test_fraction": float(test_fraction), "dicom": bool(dicom),
        **_grids(kind, choices),
        "oracle_auc_response": oracle["auc_response"],
        "oracle_c_index": oracle["c_index"],
        "oracle_by_split": {"development": _oracle(dev) if dev else None,
                            "test": _oracle(test) if test else None},
        "pathology_counts": {p: sum(r["pathology"] == p for r in rows) for p in choices},
        "response_rate": float(np.mean([r["response"] for r in rows])),
        "censored_fraction": float(1.0 - events.mean()),
        "fold_sizes": {f: sum(r["fold"] == f for r in rows)
                       for f in [str(i) for i in range(int(n_folds))] + ["test"]},
        "outcome_model": {"risk_weights": outcome_model.RISK_WEIGHTS,
                          "feature_norms": {k: list(v) for k, v in outcome_model.FEATURE_NORMS.items()},
                          **_pathology_norms(choices),
                          "pathology_offset": {p: outcome_model.PATHOLOGY_OFFSET[p]
                                               for p in choices},
                          "case_noise_sd": outcome_model.CASE_NOISE_SD,
                          "response_slope": outcome_model.RESPONSE_SLOPE,
                          "weibull_shape": outcome_model.WEIBULL_SHAPE,
                          "weibull_scale_months": outcome_model.WEIBULL_SCALE_MONTHS,
                          "follow_up_months": outcome_model.FOLLOW_UP_MONTHS,
                          "dropout_mean_months": outcome_model.DROPOUT_MEAN_MONTHS},
        "cases": [{"case_id": r["case_id"], "seed": case_seed(seed, i)} for i, r in enumerate(rows)],
        **({} if choices == PATHOLOGIES else {"pathologies": list(choices)}),
        "ground_truth": {p: GROUND_TRUTH[p] for p in choices},
    }


def _pathology_norms(choices: tuple[str, ...]) -> dict[str, Any]:
    """Feature norms of the pathologies standardised on their own population (none by default)."""
    own = {p: {k: list(v) for k, v in outcome_model.PATHOLOGY_FEATURE_NORMS[p].items()}
           for p in choices if p in outcome_model.PATHOLOGY_FEATURE_NORMS}
    return {"feature_norms_by_pathology": own} if own else {}
