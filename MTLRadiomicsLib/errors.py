"""Errors the engine raises for problems a user can fix.

Every message is one line: what is wrong and what to do. Front ends print it without a traceback.
"""


class MTLRadiomicsError(Exception):
    """Base class for user-facing errors (bad input, bad option, unusable model)."""


class PetInputError(MTLRadiomicsError):
    """The input is not a usable PET volume, or facts needed for SUV are missing."""


class MaskInputError(MTLRadiomicsError):
    """A mask (image, RTSTRUCT, DICOM SEG) cannot be read or does not fit the PET grid."""


class ModelFileError(MTLRadiomicsError):
    """A model folder (safetensors weights + JSON model card) is missing, unreadable or inconsistent."""


class LocalisationError(MTLRadiomicsError):
    """No lesion could be found automatically; the user has to point at it."""
