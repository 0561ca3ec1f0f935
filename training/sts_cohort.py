"""The real soft-tissue-sarcoma cohort as a training manifest.

``python -m training.sts_cohort --out runs/sts/manifest.csv`` reads the TCIA Soft-tissue-Sarcoma crops
(``../shared/data/real/sts_crops``: SUV crops, the clinicians' GTVs and ``outcomes.csv``) in place and
writes a manifest (the format of ``mtl-radiomics synth``) with absolute paths to them:
pet, mask (GTV), pathology (sarcoma type, rare types merged into "other"), response (lung
metastasis, 0/1), time (days from diagnosis to last follow-up), event (death) and fold (0..k-1,
stratified by lung metastasis and death, fixed seed). Nothing is copied.

Data: Vallières et al. 2015, TCIA Soft-tissue-Sarcoma collection (DOI 10.7937/K9/TCIA.2015.7GO2GSKS),
CC BY 3.0, as redistributed by the MIRP and IBSI validation data.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "sts_crops"
CITATION = ("TCIA Soft-tissue-Sarcoma collection (Vallières et al. 2015, Phys Med Biol 60(14):5471, "
            "DOI 10.7937/K9/TCIA.2015.7GO2GSKS), CC BY 3.0, as redistributed by the MIRP and IBSI validation data")
MAIN_TYPES = ("MFH", "Liposarcoma", "Leiomyosarcoma")     # the others (1-4 patients each) become "other"
COLUMNS = ["case_id", "pet", "mask", "pathology", "response", "time", "event", "fold", "site", "mskcc_type"]


def sarcoma_class(mskcc_type: str) -> str:
    """The pathology class of an MSKCC sarcoma type: the three common types, else 'other'."""
    return mskcc_type if mskcc_type in MAIN_TYPES else "other"


def stratified_folds(keys: Sequence[str], n_folds: int, seed: int) -> list[int]:
    """Fold per case: cases of each stratum key shuffled (fixed seed) and dealt round-robin, continuing
    the deal across strata so fold sizes differ by at most one."""
    rng = np.random.default_rng(seed)
    folds = [0] * len(keys)
    position = 0
    for key in sorted(set(keys)):
        members = [i for i, k in enumerate(keys) if k == key]
        for i in rng.permutation(members):
            folds[int(i)] = position % n_folds
            position += 1
    return folds


def read_outcomes(data_dir: Path) -> list[dict]:
    path = data_dir / "outcomes.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the real sarcoma crops are expected in {data_dir}")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_sts_manifest(out: str | Path, data_dir: str | Path = DEFAULT_DATA, n_folds: int = 5,
                       seed: int = 0) -> Path:
    """Write the manifest of every patient with a PET crop and a GTV; returns its path."""
    data_dir = Path(data_dir).resolve()
    rows = []
    for row in read_outcomes(data_dir):
        case = row["patient_id"]
        pet, mask = data_dir / case / "PET_image.nii.gz", data_dir / case / "PET_mask.nii.gz"
        if not pet.exists() or not mask.exists():
            continue
        rows.append({"case_id": case, "pet": str(pet), "mask": str(mask),
                     "pathology": sarcoma_class(row["mskcc_type"]), "response": row["lung_mets"],
                     "time": row["days_dx_to_last_fu"], "event": row["death"], "site": row["site"],
                     "mskcc_type": row["mskcc_type"]})
    if not rows:
        raise FileNotFoundError(f"no patient of {data_dir / 'outcomes.csv'} has PET_image.nii.gz and PET_mask.nii.gz")
    strata = [f"{r['response']}-{r['event']}" for r in rows]
    for row, fold in zip(rows, stratified_folds(strata, n_folds, seed)):
        row["fold"] = str(fold)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sts_cohort", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="manifest CSV to write")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help=f"the sts_crops folder (default {DEFAULT_DATA})")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    args = parser.parse_args(argv)
    try:
        path = write_sts_manifest(args.out, args.data, args.folds, args.seed)
    except FileNotFoundError as error:
        print(f"sts_cohort: error: {error}", file=sys.stderr)
        return 2
    print(f"manifest: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
