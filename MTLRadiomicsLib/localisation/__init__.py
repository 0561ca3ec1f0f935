"""Automatic lesion localisation in whole-body or cropped FDG-PET.

The PET is re-oriented to LPS axes and lightly smoothed (2 mm Gaussian); the body is the tissue
above a quarter of the typical tissue SUV, and its median SUV is the background. FDG-avid regions
are the connected voxels above max(2.5, 3.5 x background) SUV; very large merged regions are
re-thresholded higher until they fall apart. Physiological uptake is recognised by where it lies
in the body and how big it is: the brain reaches the cranial end inside a head-sized body part,
the kidneys are a posterior left/right pair at one height, the bladder is the hottest large
midline region low in the trunk below them (urinary activity between the two goes with the
kidneys), and the heart is the large region of the left anterior chest reaching the midline,
above the kidneys and bladder. A distinctly hotter blob attached to the heart (a tumour touching
it) is freed from it before the heart is left out. The other regions are ranked by contrast to a
shell of tissue 6-16 mm around them, SUVmax above the threshold and, weakly, size; a large region
whose SUVmax hardly exceeds the threshold is diffuse organ uptake (liver, stomach) and goes last.
"""

from MTLRadiomicsLib.localisation.geometry import (box_center_and_size, lps_to_ras,
                                                   point_in_volume, ras_to_lps)
from MTLRadiomicsLib.localisation.physiology import ORGANS
from MTLRadiomicsLib.localisation.results import CandidateSearch, ExcludedRegion, LesionCandidate
from MTLRadiomicsLib.localisation.search import find_candidates
from MTLRadiomicsLib.localisation.body_region import BODY_REGIONS, BodyRegion, body_region

__all__ = ["find_candidates", "CandidateSearch", "LesionCandidate", "ExcludedRegion", "ORGANS",
           "ras_to_lps", "lps_to_ras", "point_in_volume", "box_center_and_size",
           "body_region", "BodyRegion", "BODY_REGIONS"]
