"""Small synthetic PET DICOM series for tests: written by the engine's own DICOM writer, then edited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.synth.dicom_writer import write_pet_dicom

INJECTION = dt.datetime(2024, 3, 5, 10, 0, 0)
SERIES_START = dt.datetime(2024, 3, 5, 11, 0, 0)


def small_pet(shape: tuple[int, int, int] = (6, 12, 12)) -> PetVolume:
    """A tiny SUV volume (z, y, x) with a warm background and one hot spot."""
    suv = np.full(shape, 1.0, np.float32)
    suv[2:4, 5:8, 5:8] = 9.0
    return PetVolume(suv=suv, spacing=(4.0, 4.0, 4.0), origin=(-20.0, -20.0, 0.0),
                     direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))


def write_series(folder: Path, **writer_options) -> list[Path]:
    """Write a small F-18 FDG BQML/START series (70 kg, 370 MBq, injection 1 h before the series)."""
    options = {"weight_kg": 70.0, "injected_dose_bq": 3.7e8, "injection_datetime": INJECTION,
               "series_datetime": SERIES_START} | writer_options
    return write_pet_dicom(small_pet(), folder, **options)


def edit_headers(files: list[Path], change: Callable[[Dataset, int], None]) -> None:
    """Apply ``change(dataset, slice_index)`` to every file and save it in place."""
    for index, path in enumerate(files):
        ds = pydicom.dcmread(path)
        change(ds, index)
        ds.save_as(path)


def radiopharmaceutical(ds: Dataset) -> Dataset:
    """The first RadiopharmaceuticalInformationSequence item of ``ds``."""
    return ds.RadiopharmaceuticalInformationSequence[0]


def make_lu177_xspect(ds: Dataset, _index: int = 0) -> None:
    """Turn a slice into a Siemens xSPECT Lu-177 reconstruction that still says Modality PT."""
    ds.Manufacturer = "SIEMENS NM"
    ds.ManufacturerModelName = "NM Encore2"
    rp = radiopharmaceutical(ds)
    rp.RadionuclideHalfLife = "574560"
    rp.RadionuclideTotalDose = "7210000000"
    for keyword in ("Radiopharmaceutical", "RadionuclideCodeSequence"):
        if keyword in rp:
            delattr(rp, keyword)


def write_seg(path: Path, sources: list[Path], segments: dict[str, np.ndarray]) -> Path:
    """A binary DICOM SEG (written by highdicom) over the slices ``sources``, one segment per entry of
    ``segments`` (label -> uint8 array of shape (len(sources), rows, columns)), numbered from 1."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    datasets = [pydicom.dcmread(f) for f in sources]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number, label in enumerate(segments, start=1)]
    pixels = np.stack([np.asarray(m, np.uint8) for m in segments.values()], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=300,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="1", device_serial_number="0")
    seg.save_as(str(path))
    return Path(path)
