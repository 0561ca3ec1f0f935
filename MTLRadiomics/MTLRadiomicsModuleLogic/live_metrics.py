"""PET metrics of the MTV recomputed whenever the segment is edited.

The SUV volume is read once per result with the engine's own reader (``MTLRadiomicsLib.load_pet``
on the file the engine analysed), so the numbers are the engine's: the same SUV conversion, the same
grid and the same ``compute_metrics`` (SUVpeak as the highest mean in a 1 ml sphere). The segment
is taken on that grid without adding nodes to the scene. No Qt import.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from MTLRadiomicsModuleLogic import results as results_module


def _load_suv(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    from MTLRadiomicsLib import load_pet

    pet = load_pet(path)
    return pet.suv, pet.spacing


class LiveMetrics:
    """Metrics of a result's current MTV; keeps the SUV of the last few inputs in memory."""

    CACHE_SIZE = 2

    def __init__(self, suv_loader: Callable[[Path], tuple[np.ndarray, tuple]] = _load_suv):
        self._load = suv_loader
        self._cache: "OrderedDict[str, tuple[np.ndarray, tuple]]" = OrderedDict()

    def suv(self, result: results_module.ResultNodes) -> tuple[np.ndarray, tuple]:
        key = str(result.input_path)
        if key not in self._cache:
            if not result.input_path.exists():
                raise FileNotFoundError(f"the analysed PET {result.input_path} is gone; run Analyze again")
            self._cache[key] = self._load(result.input_path)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def compute(self, result: results_module.ResultNodes, mask: Optional[np.ndarray] = None) -> dict[str, float]:
        from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

        suv, spacing = self.suv(result)
        if mask is None:
            mask = results_module.current_mask(result)
        if mask.shape != suv.shape:
            raise ValueError(f"the MTV grid {mask.shape} differs from the PET {suv.shape}")
        return compute_metrics(suv, mask, spacing).to_dict()

    def update(self, result: results_module.ResultNodes) -> dict[str, float]:
        """Recompute and write into the result's metrics table (marked 'live')."""
        metrics = self.compute(result)
        if result.metrics_table is not None:
            results_module.fill_metrics_table(result.metrics_table, metrics, source="live")
        return metrics

    def forget(self) -> None:
        self._cache.clear()
