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
    assert "Held-out performance (test split; data not stated in the model card): Dice 0.81" in html


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


# --- what the physician reads: the lesion's SUVmax, wrapped texts, heatmap panels, honest footer ---

HASH_ABBREVIATION = re.compile(r"\b[0-9a-f]{16}…")          # a fingerprint shortened on purpose


def drawn_report(result, pet, mask, heatmaps):
    """The report page, drawn once so that every text has its extent (close it with plt.close)."""
    from MTLRadiomicsLib.analysis.report import report_figure

    fig = report_figure(result, pet, mask, heatmaps)
    fig.canvas.draw()
    return fig


def figure_strings(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def flat(strings: list[str]) -> str:
    """All texts joined by spaces, line breaks and runs of spaces as one space."""
    return " ".join(" ".join(strings).split())


def without_hottest_voxel(case):
    mask = case.mask > 0
    hottest = np.unravel_index(int(np.argmax(np.where(mask, case.pet.suv, -np.inf))), mask.shape)
    edited = mask.copy()
    edited[hottest] = False
    return edited.astype(np.uint8), tuple(int(v) for v in hottest)


def test_the_lesion_suv_max_its_position_and_slices_through_it(case, heatmaps):
    import matplotlib.pyplot as plt

    from MTLRadiomicsLib.analysis.report_figures import prepare_views

    mask, hottest = without_hottest_voxel(case)
    result = build_result(case)
    result.metrics = compute_metrics(case.pet.suv, mask, case.pet.spacing).to_dict()
    lesion = float(case.pet.suv[hottest])
    assert result.metrics["suv_max"] < lesion
    views = prepare_views(case.pet, mask, heatmaps)
    assert views.peak == hottest and views.lesion_suv_max == pytest.approx(lesion)
    fig = drawn_report(result, case.pet, mask, heatmaps)
    text = flat(figure_strings(fig))
    plt.close(fig)
    x, y, z = case.pet.index_to_physical(tuple(float(v) for v in hottest[::-1]))
    assert f"SUVmax (MTV) {result.metrics['suv_max']:.2f}" in text
    assert f"Lesion SUVmax {lesion:.2f}" in text
    assert f"({-x:.1f}, {-y:.1f}, {z:.1f}) mm" in text
    assert "hottest voxel of the MTV and the voxels touching it" in text
    assert "Slices through the lesion's hottest voxel" in text


LONG_WARNING = ("the MTV reaches the superior end of the scan: the tumour may continue beyond it, so MTV and "
                "TLG are lower bounds, and the scores may not describe the whole lesion (last word: zebra)")
LONG_SUV = ("SUVbw from Bq/ml, dose decayed from injection to the series time (DecayCorrection START), "
            "weight 71 kg, dose 388.8 MBq (last word: yak)")
LONG_NOTE = ("Regions above SUV 2.57 (the larger of 2.5 and 3.5 x the body's median uptake), brain, heart, "
             "kidneys, ureters and bladder excluded by their position and shape (last word: walrus)")


def test_key_texts_are_wrapped_never_cut_and_stay_on_the_page(case, heatmaps):
    import matplotlib.pyplot as plt

    result = build_result(case)
    result.warnings = [LONG_WARNING, "a second warning that is short", LONG_WARNING.replace("zebra", "okapi")]
    result.pet["suv_conversion"] = {"method": LONG_SUV}
    result.location.note = LONG_NOTE
    result.scores.pathology_note = ""
    result.model["held_out_metrics"]["test"] |= {"c_index": 0.71, "box_centre_error": 4.2,
                                                 "data": "synthetic phantoms, locked test split", "n": 80}
    fig = drawn_report(result, case.pet, case.mask, heatmaps)
    try:
        strings = figure_strings(fig)
        for s in strings:
            assert "…" not in HASH_ABBREVIATION.sub("", s), s
        text = flat(strings)
        for word in ("(last word: zebra)", "(last word: okapi)", "(last word: yak)", "(last word: walrus)",
                     "box centre error 4.20 mm", "mm: voxel size of the scale's feature map"):
            assert word in text, word
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        boxes = []
        for t in fig.texts:
            if not t.get_text().strip():
                continue
            box = t.get_window_extent(renderer)
            assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, t.get_text()
            assert box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1, t.get_text()
            boxes.append((t.get_text(), box))
        for n, (a, box_a) in enumerate(boxes):         # no two texts of the page drawn over each other
            for b, box_b in boxes[n + 1:]:
                overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
                overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
                assert overlap_x <= 1 or overlap_y <= 1, (a, b)
    finally:
        plt.close(fig)


def test_candidate_labels_on_the_mip_do_not_overlap_and_stay_inside(case, heatmaps):
    """Six candidates within 2 cm of each other, two of them at the top of the scan."""
    import matplotlib.pyplot as plt

    result = build_result(case)
    pet = case.pet
    top = pet.origin[2] + pet.spacing[2] * (pet.size[2] - 1)
    x0, y0 = result.location.center_lps[0] + 80.0, result.location.center_lps[1]
    z0 = result.location.center_lps[2]
    spots = [(x0, y0, z0), (x0 + 8, y0, z0 + 4), (x0 - 6, y0, z0 - 8), (x0 + 4, y0, z0 + 12),
             (x0 + 40, y0, top), (x0 + 46, y0, top - 3)]
    result.location.candidates = [{"center_lps": list(p), "suv_max": 5.0, "rank": r}
                                  for r, p in enumerate(spots, start=2)]
    fig = drawn_report(result, pet, case.mask, heatmaps)
    try:
        renderer = fig.canvas.get_renderer()
        labelled = [ax for ax in fig.axes if any(t.get_text() == "7" for t in ax.texts)]
        assert len(labelled) == 1
        ax = labelled[0]
        labels = [t for t in ax.texts if t.get_text().isdigit()]
        assert sorted(int(t.get_text()) for t in labels) == [2, 3, 4, 5, 6, 7]
        frame = ax.get_window_extent(renderer)
        boxes = [t.get_window_extent(renderer) for t in labels]
        for box in boxes:
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        for n, a in enumerate(boxes):
            for b in boxes[n + 1:]:
                assert not a.overlaps(b)
    finally:
        plt.close(fig)


def panels(fig, name):
    return [ax for ax in fig.axes if ax.get_title().startswith(f"{name} ")]


def test_an_all_zero_heatmap_says_so(case, heatmaps):
    import matplotlib.pyplot as plt

    maps = dict(heatmaps)
    maps["enc4"] = np.zeros_like(maps["enc4"])
    off_slice = np.zeros_like(maps["enc3"])
    off_slice[0] = 1.0                               # heat, but not on the slice through the lesion
    maps["enc3"] = off_slice
    fig = drawn_report(build_result(case), case.pet, case.mask, maps)
    try:
        (zero,), (elsewhere,), (warm,) = panels(fig, "enc4"), panels(fig, "enc3"), panels(fig, "enc1")
        assert "no gradient at this scale" in [" ".join(t.get_text().split()) for t in zero.texts]
        assert "no heat in this slice" in [" ".join(t.get_text().split()) for t in elsewhere.texts]
        assert not [t for t in warm.texts if t.get_text().startswith("no ")]
    finally:
        plt.close(fig)


def test_heatmap_panels_are_centred_on_the_networks_field(case, tmp_path):
    """The field is placed 24 mm away from the MTV's centre (as for a mask with a larger part
    elsewhere): the panels centre on the field, show all of it and outline it; the caption says
    how large it is and why heat can sit at its edge."""
    import matplotlib.pyplot as plt

    from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet
    from MTLRadiomicsLib.analysis.report_figures import prepare_views
    from MTLRadiomicsLib.model.preprocessing import crop_reference

    result = build_result(case)
    centre = np.asarray(result.location.center_lps, dtype=float) + np.array([24.0, -12.0, 0.0])
    result.location.field_center_lps = tuple(float(c) for c in centre)
    reference = crop_reference(centre, (3.0, 3.0, 3.0), (32, 32, 32))
    heat = {name: crop_to_pet(np.ones((32, 32, 32), np.float32), reference, case.pet) for name in SCALES}
    views = prepare_views(case.pet, case.mask, heat)
    i, j, _ = views.index_of(centre)
    fig = drawn_report(result, case.pet, case.mask, heat)
    try:
        for name in SCALES:
            (ax,) = panels(fig, name)
            (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
            assert (x0 + x1) / 2 == pytest.approx(i, abs=0.5) and (y0 + y1) / 2 == pytest.approx(j, abs=0.5)
            support = np.argwhere(views.heatmaps[name][views.peak[0]] > 0)
            assert x0 <= support[:, 1].min() and support[:, 1].max() <= x1
            assert y0 <= support[:, 0].min() and support[:, 0].max() <= y1
            assert any(getattr(p, "get_linestyle", lambda: "")() in ("--", "dashed") for p in ax.patches)
        text = flat(figure_strings(fig))
        assert "9.6 × 9.6 × 9.6 cm" in text and "edge" in text
    finally:
        plt.close(fig)


def test_held_out_line_says_on_what_data(case):
    from MTLRadiomicsLib.analysis.report import held_out_summary

    synthetic = {"held_out_metrics": {"test": {"dice": 0.88, "outcome_auc": 0.79}},
                 "training_data": {"source": "synthetic FDG-PET lesion crops from `mtl-radiomics synth`"}}
    assert "synthetic" in held_out_summary(synthetic)
    real = {"held_out_metrics": {"cross_validation": {"data": "five-fold cross-validation on the 35 real "
                                                              "sarcoma crops", "dice": 0.63, "n": 35}}}
    line = held_out_summary(real)
    assert "five-fold cross-validation on the 35 real sarcoma crops" in line and "n = 35" in line
    unknown = held_out_summary({"held_out_metrics": {"test": {"dice": 0.88}}})
    assert "not stated" in unknown and "(test)" not in unknown


def test_footer_of_a_report_names_the_data(case, heatmaps):
    import matplotlib.pyplot as plt

    result = build_result(case)
    result.model["training_data"] = {"source": "synthetic FDG-PET lesion crops (no patient data)"}
    fig = drawn_report(result, case.pet, case.mask, heatmaps)
    text = flat(figure_strings(fig))
    plt.close(fig)
    assert "Held-out performance (test)" not in text
    assert "measured on synthetic data" in text


@pytest.mark.parametrize("factor,window", [(1.0, 10), (3.0, None)])
def test_the_suv_window_follows_the_lesion(case, heatmaps, factor, window):
    import matplotlib.pyplot as plt

    from MTLRadiomicsLib.analysis.report_figures import prepare_views

    pet = dataclasses.replace(case.pet, suv=case.pet.suv * factor)
    lesion = float(pet.suv[case.mask > 0].max())
    expected = window or int(np.ceil(lesion))
    assert factor == 1.0 or lesion > 20.0
    views = prepare_views(pet, case.mask, heatmaps)
    assert views.window == expected
    result = build_result(case)
    fig = drawn_report(result, pet, case.mask, heatmaps)
    try:
        text = flat(figure_strings(fig))
        assert f"SUV 0–{expected}" in text
        (axial,) = [ax for ax in fig.axes if ax.get_title() == "Axial"]
        assert axial.images[0].get_clim() == (0, expected)
    finally:
        plt.close(fig)


def test_field_labels_have_one_decimal_and_no_negative_zero(case, heatmaps, tmp_path):
    import matplotlib.pyplot as plt

    result = build_result(case, outcome_kind="survival")
    result.location.center_ras = (-0.01, -0.04, 0.03)
    result.location.crop_size_mm = (90.309, 90.309, 90.309)
    result.scores.outcome = Estimate(-0.001, 0.0004, 20)
    big = np.zeros_like(case.mask)
    big[case.mask > 0] = 1
    lesion = np.argwhere(case.mask > 0).mean(axis=0).astype(int)
    big[lesion[0] - 14:lesion[0] + 14, lesion[1] - 8:lesion[1] + 8, lesion[2] - 8:lesion[2] + 8] = 1
    fig = drawn_report(result, case.pet, big, heatmaps)
    _, html_path = write_report(result, case.pet, big, heatmaps, tmp_path)
    try:
        for text in (flat(figure_strings(fig)), html_path.read_text(encoding="utf-8")):
            assert not re.search(r"[-−]0\.0+(?![0-9]*[1-9])", text)
            assert "9.0 × 9.0 × 9.0 cm" in text
            fields = re.findall(r"field of view ([0-9.]+) × ([0-9.]+) cm", text)
            assert fields and all(re.fullmatch(r"\d+\.\d", v) for f in fields for v in f)
    finally:
        plt.close(fig)


def test_the_outcome_row_says_what_the_score_means(case, heatmaps):
    """A lung-metastasis model's score is not a "response probability"."""
    import matplotlib.pyplot as plt

    from MTLRadiomicsLib.analysis.result import outcome_label

    assert outcome_label("binary", "probability of lung metastasis") == "Probability of lung metastasis"
    assert outcome_label("binary", "probability of response to treatment") == "Response probability"
    assert outcome_label("survival", "anything") == "Risk (log relative hazard)"
    result = build_result(case)
    result.scores.outcome_meaning = "probability of lung metastasis"
    fig = drawn_report(result, case.pet, case.mask, heatmaps)
    text = flat(figure_strings(fig))
    plt.close(fig)
    assert "Probability of lung metastasis" in text and "Response probability" not in text
