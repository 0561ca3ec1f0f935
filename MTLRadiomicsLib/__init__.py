"""MTLRadiomics engine: PET input, SUV, synthetic cohorts, multi-task network and analysis.

The engine is pure Python (numpy, SimpleITK, pydicom, torch, ...) and never imports Slicer or Qt.
"""

__version__ = "0.1.0"

from MTLRadiomicsLib.errors import MTLRadiomicsError, PetInputError  # noqa: E402
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402

from MTLRadiomicsLib.pet_input.reading import load_pet  # noqa: E402

__all__ = ["__version__", "MTLRadiomicsError", "PetInputError", "PetVolume", "load_pet"]
