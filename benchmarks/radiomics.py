"""The classical radiomics baseline: features of the 40 % SUVmax MTV and regularised linear models.

The MTV is found the way a reader finds it on a workstation: a box drawn around the lesion (here
the bounding box of the manifest's mask with a 10 mm margin), SUVmax of the lesion, every voxel of
the box at or above 40 % of it, and the 26-connected region that holds SUVmax. Its features:

- PET metrics from the engine (`MTLRadiomicsLib.mtv.pet_metrics`): SUVmax, SUVpeak, SUVmean, MTV, TLG;
- first-order statistics of the SUVs inside: standard deviation, coefficient of variation,
  skewness, kurtosis, histogram entropy (bins of 0.25 SUV);
- shape: surface area (marching cubes, scikit-image), sphericity, surface-to-volume ratio;
- 3-D grey-level co-occurrence texture: the SUVs inside quantised to 32 levels between their
  minimum and maximum, co-occurrences of neighbours at distance 1 along the 13 directions of 3-D
  (symmetric), properties from scikit-image's ``graycoprops`` (contrast, dissimilarity,
  homogeneity, energy, correlation, entropy), averaged over directions.

Models: L2-regularised logistic regression (scikit-learn) for response and for pathology, and an
L2-regularised Cox model (partial likelihood from torchsurv, fitted with L-BFGS) for survival; the
penalty is chosen on the validation fold, the model is fitted on the training folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage, stats

from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

MTV_FRACTION = 0.4
BOX_MARGIN_MM = 10.0
GLCM_LEVELS = 32
HISTOGRAM_BIN_SUV = 0.25
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
# The 13 unique neighbour offsets (z, y, x) of a 26-neighbourhood.
DIRECTIONS = [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
              if (dz, dy, dx) > (0, 0, 0)]
GLCM_PROPERTIES = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "entropy")
FEATURES = (("suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "log_mtv", "log_tlg",
             "suv_sd", "suv_cov", "suv_skewness", "suv_kurtosis", "histogram_entropy",
             "surface_mm2", "sphericity", "surface_to_volume")
            + tuple(f"glcm_{p}" for p in GLCM_PROPERTIES))
PENALTIES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)   # C of the logistic regression
COX_PENALTIES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)     # L2 weight per case of the Cox model


def threshold_mtv(suv: np.ndarray, reference_mask: np.ndarray, spacing_xyz: Sequence[float],
                  fraction: float = MTV_FRACTION, margin_mm: float = BOX_MARGIN_MM) -> np.ndarray:
    """The 40 % SUVmax region (bool (z, y, x)) in a box around ``reference_mask``."""
    where = np.argwhere(reference_mask > 0)
    if where.size == 0:
        raise ValueError("the reference mask is empty: no lesion to draw a box around")
    lesion = tuple(slice(a, b + 1) for a, b in zip(where.min(axis=0), where.max(axis=0)))
    seed_local = np.unravel_index(int(np.argmax(suv[lesion])), suv[lesion].shape)
    seed = tuple(int(s.start + k) for s, k in zip(lesion, seed_local))
    margin = [int(math.ceil(margin_mm / s)) for s in reversed(list(spacing_xyz))]
    box = tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(lesion, margin, suv.shape))
    candidate = np.zeros(suv.shape, dtype=bool)
    candidate[box] = suv[box] >= fraction * float(suv[seed])
    labels, _ = ndimage.label(candidate, structure=CONNECTIVITY)
    return labels == labels[seed]


def glcm(levels_image: np.ndarray, mask: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """Symmetric co-occurrence counts P[i, j, 0, direction] of voxel pairs inside ``mask``."""
    out = np.zeros((levels, levels, 1, len(DIRECTIONS)), dtype=np.float64)
    padded_levels = np.pad(levels_image, 1)
    padded_mask = np.pad(mask, 1)
    core = tuple(slice(1, -1) for _ in range(3))
    for k, (dz, dy, dx) in enumerate(DIRECTIONS):
        shifted = tuple(slice(1 + d, padded_mask.shape[a] - 1 + d) for a, d in enumerate((dz, dy, dx)))
        both = padded_mask[core] & padded_mask[shifted]
        i, j = padded_levels[core][both], padded_levels[shifted][both]
        counts = np.bincount(i * levels + j, minlength=levels * levels).reshape(levels, levels)
        out[:, :, 0, k] = counts + counts.T
    return out


def texture_features(suv: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """GLCM properties averaged over the 13 directions; zeros for a region without neighbours."""
    from skimage.feature import graycoprops

    values = suv[mask]
    lo, hi = float(values.min()), float(values.max())
    scaled = np.zeros(suv.shape, dtype=np.int64)
    if hi > lo:
        scaled[mask] = np.minimum(((values - lo) / (hi - lo) * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1)
    matrix = glcm(scaled, mask)
    used = matrix.sum(axis=(0, 1))[0] > 0
    if not used.any():
        return {f"glcm_{p}": 0.0 for p in GLCM_PROPERTIES}
    matrix = matrix[..., used]
    result = {}
    for prop in GLCM_PROPERTIES:
        value = np.nan_to_num(graycoprops(matrix, prop), nan=1.0 if prop == "correlation" else 0.0)
        result[f"glcm_{prop}"] = float(value.mean())
    return result


def shape_features(mask: np.ndarray, spacing_xyz: Sequence[float]) -> dict[str, float]:
    """Surface area (mm^2, marching cubes), sphericity and surface-to-volume ratio (1/mm)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    spacing_zyx = tuple(float(s) for s in reversed(list(spacing_xyz)))
    volume = float(mask.sum()) * float(np.prod(spacing_zyx))
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=spacing_zyx)
    area = float(mesh_surface_area(verts, faces))
    sphericity = (math.pi ** (1 / 3)) * (6 * volume) ** (2 / 3) / area if area > 0 else 0.0
    return {"surface_mm2": area, "sphericity": sphericity, "surface_to_volume": area / volume}


def first_order(values: np.ndarray) -> dict[str, float]:
    mean, sd = float(values.mean()), float(values.std())
    edges = np.arange(0.0, float(values.max()) + 2 * HISTOGRAM_BIN_SUV, HISTOGRAM_BIN_SUV)
    p = np.histogram(values, bins=edges)[0].astype(float)
    p = p[p > 0] / p.sum()
    flat = sd == 0 or len(values) < 3
    return {"suv_sd": sd, "suv_cov": sd / mean if mean > 0 else 0.0,
            "suv_skewness": 0.0 if flat else float(stats.skew(values)),
            "suv_kurtosis": 0.0 if flat else float(stats.kurtosis(values)),
            "histogram_entropy": float(-(p * np.log2(p)).sum())}


def case_features(pet_path: str, mask_path: str) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Features of one case's 40 % SUVmax MTV; also that MTV and the manifest's mask (z, y, x)."""
    image = sitk.ReadImage(str(pet_path), sitk.sitkFloat32)
    suv = sitk.GetArrayFromImage(image)
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) > 0
    spacing = image.GetSpacing()
    mtv = threshold_mtv(suv, reference, spacing)
    metrics = compute_metrics(suv, mtv, spacing)
    features = {"suv_max": metrics.suv_max, "suv_peak": metrics.suv_peak, "suv_mean": metrics.suv_mean,
                "mtv_ml": metrics.mtv_ml, "tlg": metrics.tlg, "log_mtv": math.log(metrics.mtv_ml),
                "log_tlg": math.log(metrics.tlg)}
    features |= first_order(suv[mtv].astype(np.float64))
    features |= shape_features(mtv, spacing)
    features |= texture_features(suv.astype(np.float64), mtv)
    return features, mtv, reference


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


@dataclass
class FeatureTable:
    """Features (N, F) of cases, the names of the columns and the Dice of each case's MTV."""

    case_ids: list[str]
    values: np.ndarray
    names: tuple[str, ...]
    dice: np.ndarray

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.case_ids)}
        return self.values[[index[c] for c in ids]]

    def dice_of(self, ids: Sequence[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.case_ids)}
        return self.dice[[index[c] for c in ids]]


def feature_table(records, progress: Callable[[str], None] | None = None) -> FeatureTable:
    """Features of every record (CaseRecord with pet and mask)."""
    ids, rows, dices = [], [], []
    for n, record in enumerate(records):
        features, mtv, reference = case_features(record.pet, record.mask)
        ids.append(record.case_id)
        rows.append([features[name] for name in FEATURES])
        dices.append(dice(mtv, reference))
        if progress and (n + 1) % 100 == 0:
            progress(f"radiomics features: {n + 1}/{len(records)} cases")
    return FeatureTable(ids, np.asarray(rows, dtype=np.float64), FEATURES, np.asarray(dices))


class Standardiser:
    def __init__(self, x: np.ndarray):
        self.mean = x.mean(axis=0)
        self.sd = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.sd


@dataclass
class FittedLogistic:
    penalty_c: float
    validation_auc: float
    model: object
    scale: Standardiser

    def probability(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.scale(x))[:, 1]


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 auc: Callable[[np.ndarray, np.ndarray], float]) -> FittedLogistic:
    """L2 logistic regression; C chosen by the validation AUC (ties: the stronger penalty)."""
    from sklearn.linear_model import LogisticRegression

    scale = Standardiser(x_train)
    best: FittedLogistic | None = None
    for c in PENALTIES:
        model = LogisticRegression(C=c, max_iter=5000).fit(scale(x_train), y_train)
        value = auc(model.predict_proba(scale(x_val))[:, 1], y_val)
        if best is None or value > best.validation_auc + 1e-9:
            best = FittedLogistic(c, value, model, scale)
    assert best is not None
    return best


@dataclass
class FittedCox:
    penalty: float
    validation_c_index: float
    coefficients: np.ndarray
    scale: Standardiser

    def risk(self, x: np.ndarray) -> np.ndarray:
        return self.scale(x) @ self.coefficients


def cox_coefficients(x: np.ndarray, time: np.ndarray, event: np.ndarray, penalty: float) -> np.ndarray:
    """Minimise the mean negative Cox partial log-likelihood per event (Efron ties, torchsurv)
    + penalty * |beta|^2 / 2."""
    from torchsurv.loss.cox import neg_partial_log_likelihood

    xt = torch.as_tensor(x, dtype=torch.float64)
    t = torch.as_tensor(time, dtype=torch.float64)
    e = torch.as_tensor(event).bool()
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([beta], lr=1.0, max_iter=200, tolerance_grad=1e-9,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = neg_partial_log_likelihood(xt @ beta, e, t, ties_method="efron", reduction="sum") / e.sum()
        loss = loss + 0.5 * penalty * (beta ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return beta.detach().numpy()


def fit_cox(x_train: np.ndarray, time_train: np.ndarray, event_train: np.ndarray, x_val: np.ndarray,
            time_val: np.ndarray, event_val: np.ndarray,
            c_index: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> FittedCox:
    """Ridge Cox model; the penalty chosen by the validation C-index (ties: the stronger penalty)."""
    scale = Standardiser(x_train)
    best: FittedCox | None = None
    for penalty in sorted(COX_PENALTIES, reverse=True):
        beta = cox_coefficients(scale(x_train), time_train, event_train, penalty)
        value = c_index(scale(x_val) @ beta, event_val, time_val)
        if best is None or value > best.validation_c_index + 1e-9:
            best = FittedCox(penalty, value, beta, scale)
    assert best is not None
    return best
