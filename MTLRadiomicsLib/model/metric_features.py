"""The classical PET metrics of an MTV as network input: what a physician already trusts.

The outcome heads can take, beside the deep features, the MTV's SUVmax, SUVpeak, MTV and TLG
(``config.metric_features``). They enter as log(1 + value): SUVs of 1-40 and volumes of 1 ml-2.5 l
then span a few units, like the other features.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

METRIC_NAMES = ("suv_max", "suv_peak", "mtv_ml", "tlg")
N_METRIC_FEATURES = len(METRIC_NAMES)


def metric_vector(metrics: Mapping[str, float]) -> np.ndarray:
    """(4,) float32: log(1 + SUVmax, SUVpeak, MTV in ml, TLG in g) from a metrics dict
    (``MTLRadiomicsLib.mtv.pet_metrics.PetMetrics.to_dict()``); negative values count as 0."""
    return np.log1p(np.maximum([float(metrics[k]) for k in METRIC_NAMES], 0.0)).astype(np.float32)
