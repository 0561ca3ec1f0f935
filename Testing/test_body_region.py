"""Body region of a lesion point: synthetic whole-body phantoms (lesions of each kind, organ
points, re-oriented images) and the real STS_001 whole-body scan and sarcoma crops."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib.localisation import BODY_REGIONS, BodyRegion, body_region
from MTLRadiomicsLib.localisation.body import find_body, smooth
from MTLRadiomicsLib.localisation.geometry import OrientedPet
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS, sample_anatomy
from MTLRadiomicsLib.synth.cases import wholebody_case
from MTLRadiomicsLib.synth.patient import stream

from conftest import REAL_DATA

# (seed, pathology): lung and oesophageal primaries, sarcomas by site, a head-and-neck primary
CASES = {
    "lung": ((1, None), "thorax"),
    "oesophageal": ((0, None), "thorax"),
    "thigh": ((1, "sarcoma"), "lower_limb"),
    "calf": ((31, "sarcoma"), "lower_limb"),
    "upper_arm": ((24, "sarcoma"), "upper_limb"),
    "buttock": ((4, "sarcoma"), "abdomen_pelvis"),
    "trunk_wall": ((32, "sarcoma"), "abdomen_pelvis"),
    "head_and_neck": ((2, "head_and_neck"), "head_neck"),
}


@lru_cache(maxsize=None)
def _case(seed: int, pathology):
    return wholebody_case(seed, pathology=pathology)


@lru_cache(maxsize=None)
def _body(seed: int, pathology):
    """The body outline of the case's PET, as the engine finds it (to be reused)."""
    oriented = OrientedPet.from_pet(_case(seed, pathology).pet)
    return find_body(smooth(oriented.suv, oriented.spacing), oriented.spacing)


def _organ_point(anatomy, organ: str) -> tuple[float, float, float]:
    """An LPS point (mm) labelled ``organ`` in the phantom, near the centre of its largest layer
    (checked with the anatomy's own labels, the last layer painted wins)."""
    layers = [layer for layer in anatomy.layers if layer.organ == organ]
    lo, hi = max((layer.shape.bbox() for layer in layers),
                 key=lambda box: float(np.prod(np.asarray(box[1]) - np.asarray(box[0]))))
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 9) for a, b in zip(lo, hi)],
                                indexing="ij"), axis=-1).reshape(-1, 3)
    inside = grid[anatomy.labels_at(grid) == ORGAN_LABELS[organ]]
    centre = (lo + hi) / 2.0
    best = inside[int(np.argmin(np.linalg.norm(inside - centre, axis=1)))]
    return tuple(float(v) for v in best)  # type: ignore[return-value]


@pytest.mark.parametrize("kind", list(CASES))
def test_synthetic_lesion_lands_in_its_region(kind):
    (seed, pathology), expected = CASES[kind]
    case = _case(seed, pathology)
    if pathology == "sarcoma":
        assert case.facts["gtv"]["site"] == kind
    elif pathology is None:
        assert case.pathology == kind
    region = body_region(case.pet, case.lesion_center_lps, _body(seed, pathology))
    assert region.name == expected, region.reason
    assert region.name in BODY_REGIONS and region.reason.endswith(".")


@pytest.mark.parametrize("kind,code", [("upper_arm", "RAS"), ("head_and_neck", "RAI"),
                                       ("thigh", "LAI")])
def test_reoriented_phantom_gives_the_same_region(kind, code):
    """Superior comes from the direction matrix: a RAS or feet-first (I) array order changes
    nothing."""
    (seed, pathology), expected = CASES[kind]
    case = _case(seed, pathology)
    turned = PetVolume.from_sitk(sitk.DICOMOrient(case.pet.to_sitk(), code))
    assert turned.orientation == code
    assert body_region(turned, case.lesion_center_lps).name == expected


def test_organ_points_of_a_phantom():
    """Points in the liver, brain and a lung, and in the middle of a thigh and an upper arm,
    with the body outline given (reused)."""
    pet, body = _case(0, None).pet, _body(0, None)
    anatomy = sample_anatomy(stream(0, "anatomy"))
    thigh, arm = anatomy.limbs["left_thigh"], anatomy.limbs["right_upper_arm"]
    z = float(np.mean(thigh.z))
    points = {
        "liver": (_organ_point(anatomy, "liver"), "abdomen_pelvis"),
        "brain": (_organ_point(anatomy, "brain"), "head_neck"),
        "lung": (_organ_point(anatomy, "lung"), "thorax"),
        "thigh": ((float(np.interp(z, thigh.z, thigh.cx)), float(np.interp(z, thigh.z, thigh.cy)),
                   z), "lower_limb"),
        "upper arm": (tuple(float(v) for v in (np.asarray(arm.p0) + np.asarray(arm.p1)) / 2),
                      "upper_limb"),
    }
    for name, (point, expected) in points.items():
        region = body_region(pet, point, body)
        assert region.name == expected, f"{name} at {point}: {region.reason}"


def test_points_outside_and_a_wrong_body():
    case = _case(0, None)
    outside = body_region(case.pet, (0.0, 0.0, 5000.0))
    assert outside == BodyRegion("unknown", "The point lies outside the PET's field of view.")
    assert outside.to_dict() == {"name": "unknown", "reason": outside.reason}
    air = body_region(case.pet, (-290.0, -290.0, case.lesion_center_lps[2]), _body(0, None))
    assert air.name == "unknown" and "outside the body" in air.reason
    part = case.pet.suv[:40]
    with pytest.raises(ValueError):
        body_region(case.pet, case.lesion_center_lps,
                    find_body(smooth(part, case.pet.spacing), case.pet.spacing))


def test_the_outline_is_worked_out_once_per_scan_and_never_used_for_another(monkeypatch):
    """A warm engine asks about the scan it keeps again and again: its body outline is found once;
    a different scan (even one with the same voxels, turned) gets its own."""
    import importlib

    module = importlib.import_module("MTLRadiomicsLib.localisation.body_region")
    calls = []
    found = module.find_body
    monkeypatch.setattr(module, "find_body", lambda *a, **k: calls.append(1) or found(*a, **k))
    (seed, pathology), expected = CASES["thigh"]
    case = _case(seed, pathology)
    pet = PetVolume(suv=case.pet.suv.copy(), spacing=case.pet.spacing, origin=case.pet.origin,
                    direction=case.pet.direction)
    points = [case.lesion_center_lps, (0.0, 0.0, 5000.0), case.lesion_center_lps]
    answers = [body_region(pet, point) for point in points]
    assert len(calls) == 1
    assert answers[0] == answers[2] == body_region(pet, case.lesion_center_lps, _body(seed, pathology))
    assert answers[0].name == expected and answers[1].name == "unknown"
    turned = PetVolume.from_sitk(sitk.DICOMOrient(pet.to_sitk(), "LAI"))
    assert body_region(turned, case.lesion_center_lps).name == expected
    assert len(calls) == 2
    assert body_region(pet, case.lesion_center_lps) == answers[0] and len(calls) == 3   # only the last is kept


# -- real data -------------------------------------------------------------------------------
GTV_CENTRE_LPS = (70.14, 12.39, -791.26)      # centroid of STS_001's GTV_Mass (left thigh)


def _gtv_box(sts001_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sts001_dir / "GTV_Mass_mask.nii.gz")))
    index = np.argwhere(mask > 0)
    return index.min(axis=0), index.max(axis=0)


def test_real_wholebody_thigh_sarcoma_and_organs(sts001_pet, sts001_dir):
    lo, hi = _gtv_box(sts001_dir)
    centre = sts001_pet.index_to_physical(tuple(((lo + hi) / 2.0)[::-1]))
    oriented = OrientedPet.from_pet(sts001_pet)
    body = find_body(smooth(oriented.suv, oriented.spacing), oriented.spacing)
    assert body_region(sts001_pet, GTV_CENTRE_LPS, body).name == "lower_limb"
    assert body_region(sts001_pet, centre, body).name == "lower_limb"
    # checked by eye on coronal and axial views: liver, both lungs, brain, a raised arm
    for point, expected in (((-90.0, 20.0, -400.0), "abdomen_pelvis"),
                            ((-90.0, 10.0, -230.0), "thorax"), ((90.0, 10.0, -230.0), "thorax"),
                            ((0.0, 10.0, -15.0), "head_neck"), ((-220.0, -50.0, -60.0), "upper_limb"),
                            ((-90.0, 0.0, -860.0), "lower_limb")):
        region = body_region(sts001_pet, point, body)
        assert region.name == expected, f"{point}: {region.reason}"
    turned = PetVolume.from_sitk(sitk.DICOMOrient(sts001_pet.to_sitk(), "RAS"))
    assert body_region(turned, GTV_CENTRE_LPS).name == "lower_limb"


def test_real_tight_crop_is_never_a_trunk_region(sts001_pet, sts001_dir):
    """A crop around the real thigh sarcoma (GTV plus about 25 mm) cuts the body: unknown or
    lower_limb, never a trunk region."""
    lo, hi = _gtv_box(sts001_dir)
    image = sts001_pet.to_sitk()
    margin = np.array([8, 5, 5])      # voxels (z, y, x): 26, 23, 23 mm
    a = np.maximum(lo - margin, 0)
    b = np.minimum(hi + margin + 1, np.array(sts001_pet.shape))
    crop = PetVolume.from_sitk(image[int(a[2]):int(b[2]), int(a[1]):int(b[1]), int(a[0]):int(b[0])])
    region = body_region(crop, GTV_CENTRE_LPS)
    assert region.name in ("unknown", "lower_limb"), region.reason
    # the lower body (thighs and pelvis, no liver or lungs in view): still the thigh
    lower = PetVolume.from_sitk(image[:, :, :90])
    assert body_region(lower, GTV_CENTRE_LPS).name == "lower_limb"


def test_real_sarcoma_crops_are_unknown_or_their_limb():
    """Real crops around limb sarcomas: the crop cuts the body, so the answer is "unknown" (or
    the limb), never a trunk or head region."""
    folder = REAL_DATA / "sts_crops"
    if not folder.exists():
        pytest.skip(f"real sarcoma crops not found at {folder}")
    for name, limb in (("STS_001", "lower_limb"), ("STS_019", "upper_limb"),
                       ("STS_049", "lower_limb")):      # left thigh, right hand, right calf
        image = sitk.ReadImage(str(folder / name / "PET_image.nii.gz"))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name / "PET_mask.nii.gz")))
        centre = np.argwhere(mask > 0).mean(axis=0)
        point = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in centre[::-1]])
        region = body_region(PetVolume.from_sitk(image), point)
        assert region.name in ("unknown", limb), (name, region.reason)
