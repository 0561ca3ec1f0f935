"""The engine's scores of held-out cases: what `analyze` would say, without writing files.

For each case the MTV is grown from the hottest voxel of its reference mask: the model's own network
MTV (sliding windows over a growing region) when it segments, else the SUV >= 2.5 region (the best
classical method on the real sarcomas). The network's field is placed on that MTV, the PET metrics of
that MTV are its metric features, and one deterministic pass (dropout off) gives the raw outcome
logit, survival log hazard, class logits and the outcome head's feature vector, with the labels.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from MTLRadiomicsLib.analysis.inference import mask_to_crop, prepare_input
from MTLRadiomicsLib.model.metric_features import metric_vector
from MTLRadiomicsLib.model.model_file import LoadedModel
from MTLRadiomicsLib.model.preprocessing import mask_center_lps
from MTLRadiomicsLib.mtv.classical import segment_classical
from MTLRadiomicsLib.mtv.network_mtv import segment_network_mtv
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
from training.heldout_mtv import dice, hottest_seed, load_case
from training.manifest import CaseRecord

FALLBACK_MTV = "suv2.5"


@torch.no_grad()
def score_case(model: LoadedModel, record: CaseRecord, device: torch.device) -> dict:
    """One case: labels, the MTV used (Dice with the reference), its metrics and the raw outputs."""
    pet, reference = load_case(record)
    seed_zyx, seed_lps = hottest_seed(pet, reference)
    network = model.network
    if network.segmentation is not None:
        mask = segment_network_mtv(network, model.card, pet, seed_lps, device).mask > 0
        source = "network"
    else:
        mask = segment_classical(pet.suv, pet.spacing, seed_zyx, FALLBACK_MTV).mask > 0
        source = FALLBACK_MTV
    if not mask.any():                       # nothing segmented: score the classical region instead
        mask = segment_classical(pet.suv, pet.spacing, seed_zyx, FALLBACK_MTV).mask > 0
        source = f"{FALLBACK_MTV} (network MTV empty)"
    metrics = compute_metrics(pet.suv, mask, pet.spacing).to_dict()
    crop = prepare_input(pet, mask_center_lps(mask, pet.to_sitk()), model.card)
    mask_crop = torch.as_tensor(mask_to_crop(mask, pet, crop)[None, None], device=device)
    features = torch.as_tensor(metric_vector(metrics)[None], device=device) if network.config.metric_features else None
    network.eval()
    out = network(crop.tensor(device), mask=mask_crop, metrics=features)
    row = {"case_id": record.case_id, "mtv_source": source, "dice": dice(mask, reference),
           "mtv_ml": metrics["mtv_ml"], "suv_max": metrics["suv_max"], "suv_peak": metrics["suv_peak"],
           "tlg": metrics["tlg"], "response": record.response, "time": record.time, "event": record.event,
           "pathology": record.pathology}
    if "outcome" in out:
        row["outcome_logit"] = float(out["outcome"][0])
        row["features"] = out["outcome_features"][0].float().cpu().numpy().tolist()
    if "survival" in out:
        row["survival_risk"] = float(out["survival"][0])
    if "classification" in out:
        row["class_logits"] = out["classification"][0].float().cpu().numpy().tolist()
    return row


def score_cases(model: LoadedModel, records: Sequence[CaseRecord], device: torch.device = torch.device("cpu"),
                log: Optional[Callable[[str], None]] = None) -> list[dict]:
    rows = []
    for record in records:
        rows.append(score_case(model, record, device))
        if log is not None:
            r = rows[-1]
            shown = [f"{k} {r[k]:.2f}" for k in ("outcome_logit", "survival_risk") if k in r]
            log(f"  {record.case_id}: {', '.join(shown) or 'no scores'} (MTV {r['mtv_source']}, Dice {r['dice']:.2f})")
    return rows


def class_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, K) probabilities from (N, 1) binary or (N, K) multi-class logits."""
    logits = np.asarray(logits, float) / temperature
    if logits.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1 - p, p], axis=1)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
