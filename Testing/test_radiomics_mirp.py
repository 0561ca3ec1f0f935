"""The classical baselines of the real-outcome benchmark: MIRP radiomics and out-of-fold models.

- MIRP features of a sphere phantom (radius 20 mm, SUV 8 with a 12 SUV core, background 1, 4 mm
  voxels) come out as the geometry says; on a real crop without interpolation SUVmax and the
  voxel volume equal the engine's;
- no leakage: a held-out case's prediction does not move when the other held-out cases' features
  become noise and every held-out label is flipped; a textbook leaky pipeline (scaling and penalty
  chosen on all cases) fails the same check;
- SUVmax-alone AUC for lung metastasis on the 35 real sarcomas equals an independent computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import REAL_DATA

STS_CROPS = REAL_DATA / "sts_crops"


def _mirp():
    return pytest.importorskip("mirp", reason="mirp is not installed (pip install -e '.[bench]')")


def _need_models():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install -e '.[bench]')")
    pytest.importorskip("torchsurv", reason="torchsurv is not installed (pip install -e '.[train]')")


def _need_crops():
    if not (STS_CROPS / "outcomes.csv").exists():
        pytest.skip(f"real sarcoma crops not found at {STS_CROPS} (the shared data folder sits beside the project)")


# --------------------------------------------------------------------------- phantom

@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    """A 20 mm sphere of SUV 8 with an 8 mm core of SUV 12, in background 1, 4 mm voxels."""
    import SimpleITK as sitk

    n, spacing = 25, 4.0
    centre = (n - 1) / 2 * spacing
    z, y, x = np.meshgrid(*(np.arange(n) * spacing,) * 3, indexing="ij")
    r = np.sqrt((x - centre) ** 2 + (y - centre) ** 2 + (z - centre) ** 2)
    suv = np.ones((n, n, n), dtype=np.float32)
    suv[r <= 20.0] = 8.0
    suv[r <= 8.0] = 12.0
    mask = (r <= 20.0).astype(np.uint8)
    folder = tmp_path_factory.mktemp("sphere")
    for array, name in ((suv, "pet.nii.gz"), (mask, "mask.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((spacing,) * 3)
        sitk.WriteImage(image, str(folder / name))
    return folder / "pet.nii.gz", folder / "mask.nii.gz", suv, mask.astype(bool)


def test_sphere_phantom_features(sphere):
    _mirp()
    from benchmarks.radiomics_mirp import extract_radiomics

    pet, mask_path, suv, mask = sphere
    f = extract_radiomics(pet, mask_path)
    assert all(isinstance(v, float) and math.isfinite(v) for v in f.values())
    for prefix in ("morph_", "loc_", "stat_", "ih_", "ivh_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_"):
        assert any(k.startswith(prefix) for k in f), prefix
    assert "cm_contrast_d1_3d_v_mrg_fbs_w0.5" in f          # 3-D, merged directions, 0.5 SUV bins
    true_volume = 4.0 / 3.0 * math.pi * 20.0 ** 3             # 33510 mm^3
    assert f["morph_volume"] == pytest.approx(true_volume, rel=0.05)
    assert f["morph_vol_approx"] == pytest.approx(mask.sum() * 64.0, rel=1e-6)   # voxel count x 4^3
    assert f["stat_max"] == pytest.approx(12.0, rel=0.02)
    assert f["stat_min"] == pytest.approx(8.0, rel=0.02)
    assert f["stat_mean"] == pytest.approx(float(suv[mask].mean()), rel=0.01)
    assert f["loc_peak_glob"] == pytest.approx(12.0, rel=0.02)   # the 1 ml sphere fits in the core
    assert 0.8 < f["morph_sphericity"] <= 1.0
    assert f["ih_max_fbs_w0.5"] == 12.0 / 0.5 + 1                # bins of 0.5 SUV from 0: [12, 12.5) is bin 25


def test_real_crop_native_grid_matches_engine():
    """Without interpolation MIRP's SUVmax and voxel volume equal the engine's on a real GTV; at 4 mm
    they stay close (interpolation smooths a single hot voxel)."""
    _mirp()
    _need_crops()
    import SimpleITK as sitk

    from benchmarks.radiomics_mirp import extract_radiomics
    from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

    case = STS_CROPS / "STS_019"
    image = sitk.ReadImage(str(case / "PET_image.nii.gz"), sitk.sitkFloat32)
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "PET_mask.nii.gz"))) > 0
    engine = compute_metrics(sitk.GetArrayFromImage(image), gtv, image.GetSpacing())
    native = extract_radiomics(case / "PET_image.nii.gz", case / "PET_mask.nii.gz", voxel_mm=None)
    assert native["stat_max"] == pytest.approx(engine.suv_max, rel=1e-6)
    assert native["morph_vol_approx"] == pytest.approx(engine.mtv_ml * 1000.0, rel=1e-6)
    assert native["stat_mean"] == pytest.approx(engine.suv_mean, rel=1e-5)
    iso = extract_radiomics(case / "PET_image.nii.gz", case / "PET_mask.nii.gz")
    assert "image_voxel_size_x" not in iso and "sample_name" not in iso   # metadata is not a feature
    assert iso["stat_max"] == pytest.approx(engine.suv_max, rel=0.1)
    assert iso["morph_volume"] == pytest.approx(engine.mtv_ml * 1000.0, rel=0.1)


def test_radiomics_table_caches_and_reports_a_bad_case(sphere, tmp_path):
    _mirp()
    import pandas as pd

    from benchmarks.radiomics_mirp import radiomics_table

    pet, mask, _, _ = sphere
    manifest = pd.DataFrame({"case_id": ["good", "bad"], "pet": [str(pet), str(pet)],
                             "mask": [str(mask), str(tmp_path / "missing.nii.gz")]})
    cache = tmp_path / "features.csv"
    messages: list[str] = []
    table = radiomics_table(manifest, cache, progress=messages.append)
    assert list(table.index) == ["good"] and "bad" in table.attrs["failed"]
    assert any("bad failed" in m for m in messages)
    assert table.attrs["extraction_s"]["good"] > 0
    again = radiomics_table(manifest.iloc[:1], cache, progress=messages.append)   # read, not recomputed
    assert again.equals(table)
    assert sum("cases to extract" in m for m in messages) == 1


# --------------------------------------------------------------------------- no leakage

@pytest.fixture
def small_grids(monkeypatch):
    """Three penalties instead of ten-odd: the hygiene does not depend on the grid, the test time does."""
    _need_models()
    from benchmarks import classical_outcome

    monkeypatch.setattr(classical_outcome, "LOGISTIC_C", (0.01, 0.1, 1.0))
    monkeypatch.setattr(classical_outcome, "COX_L2", (0.1, 1.0, 10.0))


def _synthetic(task: str, n: int = 36, p: int = 24, seed: int = 0):
    """Features with signal in three columns, correlated copies, a constant column, and labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    x[:, 5] = x[:, 0] * 2.0 + 0.01 * rng.normal(size=n)       # a near-copy: the correlation filter drops it
    x[:, 6] = 3.0                                             # constant: dropped
    signal = x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2]
    folds = np.arange(n) % 3
    if task == "binary":
        labels = (signal + 0.5 * rng.normal(size=n) > 0).astype(int)
    elif task == "multiclass":
        labels = np.digitize(signal + 0.3 * rng.normal(size=n), [-0.8, 0.0, 0.8])
    else:
        time = np.exp(-signal + 0.3 * rng.normal(size=n)) * 100.0
        event = rng.random(n) < 0.7
        labels = (time, event)
    return x, labels, folds


def _perturb_held_out(x, labels, folds, task, fold=0, seed=1):
    """Fold ``fold``'s cases other than its first: features replaced by loud noise; every label of
    that fold flipped (binary), rotated (multiclass) or reversed in time with events flipped."""
    rng = np.random.default_rng(seed)
    held = np.flatnonzero(folds == fold)
    keep, others = held[0], held[1:]
    x2 = x.copy()
    x2[others] = rng.normal(50.0, 100.0, size=(len(others), x.shape[1]))
    if task == "binary":
        labels2 = labels.copy()
        labels2[held] = 1 - labels2[held]
    elif task == "multiclass":
        labels2 = labels.copy()
        labels2[held] = (labels2[held] + 1) % (labels.max() + 1)
    else:
        time, event = labels[0].copy(), labels[1].copy()
        time[held] = time[held][::-1] * 7.0
        event[held] = ~event[held]
        labels2 = (time, event)
    return x2, labels2, keep


def _moved(oof, x, labels, folds, task) -> float:
    """How far the first held-out case's out-of-fold prediction moves under ``_perturb_held_out``."""
    x2, labels2, keep = _perturb_held_out(x, labels, folds, task)
    return float(np.max(np.abs(np.asarray(oof(x, labels, folds))[keep] - np.asarray(oof(x2, labels2, folds))[keep])))


@pytest.mark.parametrize("task", ["binary", "multiclass", "survival"])
def test_out_of_fold_does_not_see_the_held_out_fold(task, small_grids):
    """The model that predicts fold 0 is a function of folds 1-2 only: replacing the other fold-0
    cases' features by noise and flipping every fold-0 label leaves a fold-0 prediction unchanged
    (anything fitted on all cases - scaler, filter, penalty, labels - would move it)."""
    _need_models()
    from benchmarks.classical_outcome import out_of_fold

    x, labels, folds = _synthetic(task)
    prediction = out_of_fold(x, labels, folds, task)
    assert np.isfinite(prediction).all()
    assert _moved(lambda a, b, c: out_of_fold(a, b, c, task), x, labels, folds, task) < 1e-9


def test_the_check_catches_a_leaky_pipeline(small_grids):
    """A textbook leak - features z-scored on every case and C chosen by a cross-validation over every
    case, then out-of-fold fits - fails the same check, and so does a z-scoring on every case alone
    (penalty chosen within the training folds: only the held-out features leak, no label)."""
    _need_models()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from benchmarks.classical_outcome import LOGISTIC_C, out_of_fold

    def leaky(x, y, folds):
        z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": list(LOGISTIC_C)}, scoring="neg_log_loss",
                              cv=StratifiedKFold(4, shuffle=True, random_state=0)).fit(z, y)
        out = np.zeros(len(y))
        for k in np.unique(folds):
            model = LogisticRegression(C=search.best_params_["C"], max_iter=5000).fit(z[folds != k], y[folds != k])
            out[folds == k] = model.predict_proba(z[folds == k])[:, 1]
        return out

    def leaky_scaling_only(x, y, folds):
        z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        out = np.zeros(len(y))
        for k in np.unique(folds):
            train = folds != k
            search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": list(LOGISTIC_C)}, scoring="neg_log_loss",
                                  cv=StratifiedKFold(4, shuffle=True, random_state=0)).fit(z[train], y[train])
            out[folds == k] = search.predict_proba(z[folds == k])[:, 1]
        return out

    x, y, folds = _synthetic("binary")
    assert _moved(leaky, x, y, folds, "binary") > 1e-4
    assert _moved(leaky_scaling_only, x, y, folds, "binary") > 1e-4
    assert _moved(lambda a, b, c: out_of_fold(a, b, c, "binary"), x, y, folds, "binary") < 1e-9


def test_out_of_fold_learns_real_signal(small_grids):
    """Not a null model: on the synthetic signal the out-of-fold AUC and C-index are high."""
    _need_models()
    from benchmarks.classical_outcome import auc_estimate, concordance_estimate, out_of_fold

    x, y, folds = _synthetic("binary", n=60)
    assert auc_estimate(out_of_fold(x, y, folds, "binary"), y, rounds=10).value > 0.8
    x, (time, event), folds = _synthetic("survival", n=60)
    risk = out_of_fold(x, (time, event), folds, "survival")
    assert concordance_estimate(risk, time, event, rounds=10).value > 0.7


def test_feature_filter_uses_training_rows_only():
    _need_models()
    from benchmarks.classical_outcome import FeatureFilter

    x, _, _ = _synthetic("binary")
    f = FeatureFilter().fit(x)
    assert 5 not in f.columns_ and 6 not in f.columns_ and 0 in f.columns_
    z = f.transform(x)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-12) and np.allclose(z.std(axis=0), 1.0)
    shifted = x.copy()
    shifted[:5] += 1000.0
    assert np.array_equal(f.transform(shifted)[5:], z[5:])          # rows are transformed one by one


# --------------------------------------------------------------------------- the real cohort

def test_suvmax_auc_on_the_real_cohort_matches_an_independent_computation(tmp_path):
    """The engine's SUVmax of each GTV, scored by classical_outcome's AUC helper (torchmetrics via
    training.metrics), against SimpleITK's label statistics and a Mann-Whitney pair count."""
    _need_models()
    _need_crops()
    import pandas as pd
    import SimpleITK as sitk

    from benchmarks.classical_outcome import auc_estimate, pet_metrics_table
    from training.sts_cohort import write_sts_manifest

    manifest = pd.read_csv(write_sts_manifest(tmp_path / "m.csv", STS_CROPS, seed=0), dtype={"case_id": str})
    assert len(manifest) == 35
    pet = pet_metrics_table(manifest).loc[manifest["case_id"]]
    y = manifest["response"].to_numpy(int)
    ours = auc_estimate(pet["suv_max"].to_numpy(), y, rounds=200)

    independent = []
    for record in manifest.itertuples():
        stats = sitk.LabelStatisticsImageFilter()
        stats.Execute(sitk.ReadImage(record.pet, sitk.sitkFloat64), sitk.ReadImage(record.mask, sitk.sitkUInt8))
        independent.append(stats.GetMaximum(1))
    independent = np.asarray(independent)
    assert np.allclose(independent, pet["suv_max"].to_numpy(), rtol=1e-6)
    positive, negative = independent[y == 1], independent[y == 0]
    pairs = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    expected = pairs / (len(positive) * len(negative))
    assert ours.value == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.825, abs=0.005)              # the "about 0.83"
    assert ours.low < ours.value < ours.high
