"""PET input: reading images and DICOM series, body-weight SUV, validation, and masks
(image masks, RTSTRUCT, DICOM SEG) put onto the PET grid."""

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.reading import load_pet

__all__ = ["PetVolume", "load_pet"]
