"""Write a binary mask on a DICOM PET grid as a DICOM SEG object that references the PET series."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def write_dicom_seg(mask: np.ndarray, pet: PetVolume, path: str | Path, label: str = "MTV",
                    description: str = "Metabolic tumour volume") -> Path:
    """Write ``mask`` (uint8, shape (z, y, x) of ``pet``) as a one-segment binary DICOM SEG.

    The PET must have been read from DICOM: the SEG references its slices and frame of reference.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not pet.dicom_files:
        raise MaskInputError("a DICOM SEG can only be written for a PET read from a DICOM series")
    if mask.shape != pet.shape:
        raise MaskInputError(f"mask shape {mask.shape} differs from the PET {pet.shape}")
    sources = (pet.dicom_headers if len(pet.dicom_headers) == len(pet.dicom_files)
               else [pydicom.dcmread(f, stop_before_pixels=True) for f in pet.dicom_files])
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="MTLRadiomics", version=__version__, family=codes.DCM.ArtificialIntelligence),
        tracking_id=description,
        tracking_uid=hd.UID(),
    )
    with warnings.catch_warnings():
        # Anonymised PatientName values such as "STS_001" are valid but draw a style warning.
        warnings.filterwarnings("ignore", message=".*person name.*")
        seg = _segmentation(hd, sources, mask, segment, label)
    out = Path(path)
    seg.save_as(str(out))
    return out


def _segmentation(hd, sources, mask, segment, label):
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=(np.asarray(mask) > 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="MTLRadiomics",
        manufacturer_model_name="mtl-radiomics",
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"{label} (MTLRadiomics)",
        omit_empty_frames=True,
    )
