"""Options of an analysis, as the command line and the Slicer module give them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from MTLRadiomicsLib.pet_input.suv import SuvOverrides


@dataclass
class AnalysisOptions:
    """point: lesion point in mm, in ``point_system`` ('RAS' as Slicer shows, or 'LPS');
    box: two opposite corners in mm in ``point_system``; neither: automatic localisation.
    explain: Grad-CAM target, 'outcome' or 'segmentation'. samples: passes for the uncertainty.
    device: 'auto', 'cpu' or 'cuda'. model: model folder or installed model name (default: the
    default model). mtv_method: the MTV the scores use ('network' or a classical method of
    ``MTLRadiomicsLib.mtv.lesion.MTV_METHODS``); fill_holes: fill enclosed holes of every MTV.
    seed: the random seed of the uncertainty samples; None derives it from the input's SHA-256, so
    the same input with the same options always gives the same numbers. mask_segment: the segment
    or label of an edited mask file that holds several (``--segment``)."""

    point: Optional[tuple[float, float, float]] = None
    box: Optional[tuple[tuple[float, float, float], tuple[float, float, float]]] = None
    point_system: str = "RAS"
    explain: str = "outcome"
    samples: int = 10
    uncertainty: str = "mc-dropout"
    device: str = "auto"
    model: Optional[Path | str] = None
    overrides: SuvOverrides = field(default_factory=SuvOverrides)
    input_units: Optional[str] = None
    series_uid: Optional[str] = None
    report: bool = True
    threshold: float = 0.5
    mtv_method: str = "network"
    fill_holes: bool = False
    seed: Optional[int] = None
    mask_segment: Optional[str] = None
