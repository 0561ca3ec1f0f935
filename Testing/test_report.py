"""The one-page report: an A4 PDF of exactly one page and a self-contained HTML page."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from MTLRadiomicsLib.analysis.report import write_report
from MTLRadiomicsLib.analysis.result import AnalysisResult, Estimate, Location, Scores
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
from MTLRadiomicsLib.synth.cases import wholebody_case

SCALES = ("enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1")
FACTOR = {"enc1": 1, "enc2": 2, "enc3": 4, "enc4": 8, "enc5": 16, "dec4": 8, "dec3": 4, "dec2": 2, "dec1": 1}
INTENDED_USE = "Trained on synthetic data only. Research use only; not for clinical use."
CROP_MM = 96.0


def physical_grid(pet):
    """LPS coordinates (mm) of every voxel, each (z, y, x); the synthetic PET has identity direction."""
    axes = [o + s * np.arange(n) for o, s, n in zip(pet.origin, pet.spacing, pet.size)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def gaussian_heatmaps(pet, centre):
    """Per scale a Gaussian blob near the lesion, wider at coarser scales, zero outside the crop."""
    lo = np.maximum(np.floor((np.asarray(centre) - CROP_MM / 2 - np.asarray(pet.origin)) / pet.spacing), 0)
    hi = np.minimum(np.ceil((np.asarray(centre) + CROP_MM / 2 - np.asarray(pet.origin)) / pet.spacing) + 1,
                    pet.size)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))      # (z, y, x)
    x, y, z = (g[box] for g in physical_grid(pet))
    heatmaps = {}
    for n, name in enumerate(SCALES):
        sigma = 5.0 * FACTOR[name]
        shift = 4.0 * (n % 3 - 1)
        d2 = (x - centre[0] - shift) ** 2 + (y - centre[1] + shift) ** 2 + (z - centre[2]) ** 2
        heat = np.zeros(pet.shape, dtype=np.float32)
        heat[box] = np.exp(-d2 / (2 * sigma ** 2))
        heatmaps[name] = heat / heat.max()
    return heatmaps


def hot_spots(pet, mask, count=3, apart_mm=60.0):
    """The hottest voxels outside the MTV, at least ``apart_mm`` from each other and the MTV."""
    x, y, z = physical_grid(pet)
    suv = np.where(mask > 0, -np.inf, pet.suv).astype(np.float64)
    taken = [np.array([x[mask > 0].mean(), y[mask > 0].mean(), z[mask > 0].mean()])]
    spots = []
    for rank in range(2, 2 + count):
        for point in taken:
            suv[(x - point[0]) ** 2 + (y - point[1]) ** 2 + (z - point[2]) ** 2 < apart_mm ** 2] = -np.inf
        k, j, i = np.unravel_index(int(np.argmax(suv)), suv.shape)
        point = np.array([x[k, j, i], y[k, j, i], z[k, j, i]])
        taken.append(point)
        spots.append({"center_lps": [float(p) for p in point], "suv_max": float(pet.suv[k, j, i]), "rank": rank})
    return spots


def build_result(case, *, outcome_kind="binary", mask_source="predicted", series=None) -> AnalysisResult:
    pet, mask = case.pet, case.mask
    centre = tuple(float(c) for c in case.lesion_center_lps)
    candidates = [{"center_lps": list(centre), "suv_max": float(pet.suv[mask > 0].max()), "rank": 1}]
    candidates += hot_spots(pet, mask)
    summary = pet.summary()
    summary.pop("statistics")
    summary["series"] = dict(series if series is not None else pet.series)
    if outcome_kind == "binary":
        outcome = Estimate(0.72, 0.05, 20)
        meaning = "probability of response to treatment"
    else:
        outcome = Estimate(0.31, 0.10, 20)
        meaning = "log relative hazard (higher = shorter survival)"
    return AnalysisResult(
        engine_version="0.1.0", command="rescore" if mask_source == "edited" else "analyze",
        created="2024-03-12T10:41:07+00:00",
        input={"path": "/data/pet/synth-7_wholebody.nii.gz", "format": "nifti",
               "sha256": "3f9a0c7d5e2b41a8c6d0e9f7b3a2c1d4e5f60718293a4b5c6d7e8f90a1b2c3d4"},
        pet=summary,
        model={"name": "mtl-small-synthetic", "intended_use": INTENDED_USE,
               "preprocessing": {"spacing_mm": [3.0, 3.0, 3.0], "crop_size": [32, 32, 32]},
               "held_out_metrics": {"validation": {"dice": 0.79, "outcome_auc": 0.7},
                                    "test": {"dice": 0.81, "outcome_auc": 0.74, "class_auc": 0.97,
                                             "class_accuracy": 0.93}}},
        location=Location(method="automatic", center_lps=centre,
                          center_ras=(-centre[0], -centre[1], centre[2]),
                          crop_size_mm=(CROP_MM, CROP_MM, CROP_MM), candidates=candidates,
                          excluded=[{"name": "brain"}, {"name": "bladder"}]),
        scores=Scores(outcome_kind=outcome_kind, outcome_meaning=meaning, outcome=outcome,
                      pathology={"lung": Estimate(0.18, 0.04, 20), "oesophageal": Estimate(0.82, 0.04, 20)},
                      uncertainty="mc_dropout", mask_source=mask_source),
        metrics=compute_metrics(pet.suv, mask, pet.spacing).to_dict(),
        explanation={"target": "outcome (response probability)" if outcome_kind == "binary" else "outcome (risk)",
                     "scales": list(SCALES), "files": {}},
    )


DICOM_SERIES = {"PatientID": "SYN-0007", "PatientSex": "F", "PatientAge": "063Y", "StudyDate": "20240312",
                "SeriesDescription": "WB FDG 3D AC", "Manufacturer": "Synthetic",
                "ManufacturerModelName": "Phantom PET", "Radiopharmaceutical": "Fludeoxyglucose"}


@pytest.fixture(scope="module")
def case():
    return wholebody_case(7)


@pytest.fixture(scope="module")
def heatmaps(case):
    return gaussian_heatmaps(case.pet, case.lesion_center_lps)


@pytest.fixture(scope="module")
def report(case, heatmaps, tmp_path_factory):
    result = build_result(case, series=DICOM_SERIES)
    out = tmp_path_factory.mktemp("report")
    pdf, html = write_report(result, case.pet, case.mask, heatmaps, out)
    return result, pdf, html


def page_count(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def shown(value: float, key: str) -> str:
    if key.startswith("suv"):
        return f"{value:.2f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def test_files_written_and_non_trivial(report):
    _, pdf, html = report
    assert pdf.name == "report.pdf" and html.name == "report.html"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000
    assert html.stat().st_size > 20_000


def test_pdf_has_exactly_one_page(report):
    assert page_count(report[1]) == 1


def test_html_content(report):
    result, _, html_path = report
    html = html_path.read_text(encoding="utf-8")
    for key in ("suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg"):
        assert shown(result.metrics[key], key) in html, key
    assert INTENDED_USE in html
    for name in SCALES:
        assert name in html
    assert "Response probability" in html and "0.72 ± 0.05" in html
    assert "0.82 ± 0.04" in html and "oesophageal" in html
    assert "Monte-Carlo dropout, 20 samples" in html
    assert html.count("data:image/png;base64,") >= 2
    assert "<table>" in html and "<th>Patient ID</th><td>SYN-0007</td>" in html
    assert "2024-03-12" in html and "63 y" in html and "Fludeoxyglucose" in html
    assert "3f9a0c7d5e2b41a8…" in html
    assert "Research use only" in html
    assert "MTV edited by the user" not in html
    assert "automatic" in html and "brain, bladder" in html
    ras = ", ".join(f"{c:.1f}" for c in result.location.center_ras)
    assert f"({ras}) mm" in html
    assert "<td>3 (blue circles on the MIP)</td>" in html
    assert "Held-out performance (test): Dice 0.81" in html


def test_edited_mask_and_missing_series_facts(case, heatmaps, tmp_path):
    result = build_result(case, mask_source="edited", series={})
    result.input = {"path": "/data/pet/anonymous.nrrd", "format": "nrrd"}
    pet = dataclasses.replace(case.pet, series={})
    pdf, html_path = write_report(result, pet, case.mask, heatmaps, tmp_path, basename="edited")
    html = html_path.read_text(encoding="utf-8")
    assert pdf.name == "edited.pdf" and page_count(pdf) == 1
    assert "MTV edited by the user; scores re-computed" in html
    for label in ("Patient ID", "Sex", "Age", "Study date", "Tracer", "Scanner", "SHA-256"):
        assert f"<th>{label}</th><td>—</td>" in html, label


MASK_SHA = "9e1b7c55d0a4f3e2b8c6a1d7e4f0b3a5c2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5"


def pdf_texts(result, case, heatmaps) -> str:
    """Every text drawn on the PDF page, joined by spaces."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from MTLRadiomicsLib.analysis.report import report_figure

    fig = report_figure(result, case.pet, case.mask, heatmaps)
    try:
        return " ".join(t.get_text() for t in fig.findobj(Text))
    finally:
        plt.close(fig)


def test_rescore_report_names_the_mask_and_its_sha256(case, heatmaps, tmp_path):
    result = build_result(case, mask_source="edited")
    result.input |= {"edited_mask": "/work/edits/edited-mtv-20240312.nrrd",
                     "edited_mask_name": "edited-mtv-20240312.nrrd", "edited_mask_sha256": MASK_SHA}
    pdf, html_path = write_report(result, case.pet, case.mask, heatmaps, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert page_count(pdf) == 1
    for text in (html, pdf_texts(result, case, heatmaps)):
        assert "edited-mtv-20240312.nrrd" in text and MASK_SHA in text
        assert "/work/edits" not in text


def test_rescore_report_from_an_older_result_without_the_mask_hash(case, heatmaps, tmp_path):
    result = build_result(case, mask_source="edited")
    result.input |= {"edited_mask": "/work/edits/old-edit.nii.gz"}     # result.json before the mask hash
    _, html_path = write_report(result, case.pet, case.mask, heatmaps, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "old-edit.nii.gz" in html and "SHA-256 not recorded" in html


def test_survival_wording_and_empty_heatmaps(case, tmp_path):
    result = build_result(case, outcome_kind="survival")
    result.scores.uncertainty = "mean ± sd over 20 samples, test-time augmentation (flips, shifts)"
    result.scores.pathology = {}
    result.explanation["target"] = "outcome"
    result.location.excluded = [{"organ": "brain"}, {"organ": "kidney"}, {"organ": "kidney"}]
    pdf, html_path = write_report(result, case.pet, case.mask, {}, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "Risk (log relative hazard)" in html and "0.31 ± 0.10" in html
    assert "(higher = shorter survival)" in html
    assert "Response probability" not in html
    assert "Uncertainty: mean ± sd over 20 samples, test-time augmentation (flips, shifts)<" in html
    assert "not predicted by this model" in html and "brain, kidney (2)" in html
    assert "No heatmaps were computed." in html and page_count(pdf) == 1


def test_shape_mismatch_is_refused(case, tmp_path):
    result = build_result(case)
    with pytest.raises(ValueError, match="mask shape"):
        write_report(result, case.pet, case.mask[:-1], {}, tmp_path)


def test_views_follow_lps_whatever_the_storage_order(case):
    """A PET stored right-to-left and anterior-to-posterior shows the same views as the LPS one."""
    import SimpleITK as sitk

    from MTLRadiomicsLib.analysis.report_figures import prepare_views
    from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

    def flipped(array):
        image = case.pet.copy_geometry_to(sitk.GetImageFromArray(array))
        return sitk.Flip(image, [True, True, False])

    pet_ras = PetVolume.from_sitk(flipped(case.pet.suv))
    mask_ras = sitk.GetArrayFromImage(flipped(case.mask))
    assert pet_ras.orientation == "RAS"
    lps = prepare_views(case.pet, case.mask, {})
    ras = prepare_views(pet_ras, mask_ras, {})
    np.testing.assert_array_equal(lps.suv, ras.suv)
    np.testing.assert_array_equal(lps.mask, ras.mask)
    assert lps.peak == ras.peak and lps.mask_box == ras.mask_box
    i, j, k = lps.index_of(case.lesion_center_lps)
    assert abs(k - lps.peak[0]) < 4 and abs(j - lps.peak[1]) < 4 and abs(i - lps.peak[2]) < 4
