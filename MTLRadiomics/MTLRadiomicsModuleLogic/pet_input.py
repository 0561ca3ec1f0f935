"""What the engine is given: the PET (its DICOM files, or the volume written to NRRD), whether the
voxels are SUV, and the lesion location from a markups point list or ROI.

No Qt import. DICOM files are found through a ``lookup`` callable (SOP instance UID -> file path)
so that this works with Slicer's DICOM database and with plain files in tests.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from MTLRadiomicsModuleLogic import scene_io

DicomLookup = Callable[[str], Optional[str]]

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
MAX_PLAUSIBLE_SUV = 500.0        # the engine refuses larger values as Bq/ml or counts
HIGH_SUV_NOTE = 100.0            # above this, SUV is possible but the units deserve a look
CT_AIR = -500.0


@dataclass
class SuvCheck:
    """Whether the volume can be analysed as SUV, and a sentence for the user.

    kind: 'suv' (units say SUV), 'dicom' (the engine computes SUV from the DICOM tags),
    'assumed' (no units; the values look like SUV), 'not-suv' (cannot be analysed as it is)."""

    usable: bool
    kind: str
    message: str


# --------------------------------------------------------------------------- DICOM
def dicom_files(volume_node, lookup: Optional[DicomLookup]) -> Optional[list[str]]:
    """The files of the DICOM series the volume was loaded from, when all of them can be found."""
    uids = (volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids or lookup is None:
        return None
    files = []
    for uid in uids:
        path = lookup(uid)
        if not path or not os.path.isfile(path):
            return None
        files.append(path)
    return files


def dicom_units(files: Sequence[str]) -> tuple[str, str]:
    """(Modality, Units (0054,1001)) of the first file of a series."""
    import pydicom

    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    return str(header.get("Modality", "")), str(header.get("Units", "")).strip().upper()


# --------------------------------------------------------------------------- SUV
def check_suv(volume_node, files: Optional[Sequence[str]] = None) -> SuvCheck:
    """Decide whether the volume is in SUV, from its DICOM Units, its voxel-value units, or its
    value range (FDG SUVs stay well below a few hundred; Bq/ml are thousands)."""
    if volume_node is None or volume_node.GetImageData() is None:
        return SuvCheck(False, "not-suv", "Select a PET volume.")
    if files:
        modality, units = dicom_units(files)
        if modality and modality != "PT":
            return SuvCheck(False, "not-suv", f"This DICOM series is {modality}, not PET (PT). "
                            "Select the PET series.")
        known = {"BQML": "Bq/ml", "GML": "g/ml (SUVbw)", "CNTS": "counts (Philips SUV factor)"}
        if units in known:
            return SuvCheck(True, "dicom", f"DICOM PET in {known[units]} (Units {units}): the engine "
                            "computes body-weight SUV from the DICOM tags.")
        return SuvCheck(True, "dicom", f"DICOM PET with Units '{units or 'missing'}': the engine "
                        "reads the DICOM tags and says what is missing if SUV cannot be computed.")
    unit = _voxel_units(volume_node)
    if unit and "SUV" in unit.upper():
        return SuvCheck(True, "suv", f"Voxel values are SUV ({unit}).")
    values = scene_io.array_from_volume(volume_node)
    vmax, vmin = float(np.max(values)), float(np.min(values))
    if float(np.mean(values < CT_AIR)) > 0.05:
        return SuvCheck(False, "not-suv", "This looks like CT (Hounsfield units), not PET.")
    if vmax <= 0:
        return SuvCheck(False, "not-suv", "The volume holds no positive uptake.")
    if unit and unit.lower().replace(" ", "") in ("bq/ml", "bqml", "{bq}/ml"):
        return SuvCheck(False, "not-suv", f"Voxel values are {unit}, not SUV. Load the PET from DICOM "
                        "(the engine then computes SUV from the tags) or convert it to SUV first.")
    if vmax > MAX_PLAUSIBLE_SUV:
        return SuvCheck(False, "not-suv", f"Values reach {vmax:.4g}, far above any FDG SUV: they look "
                        "like Bq/ml or counts. Load the PET from DICOM (the engine then computes SUV "
                        "from the tags) or convert it to SUV first.")
    if vmax > HIGH_SUV_NOTE:
        return SuvCheck(True, "assumed", f"No units recorded; values up to {vmax:.4g} are taken as SUV. "
                        "That is unusually high for FDG: check that the volume is in SUV.")
    return SuvCheck(True, "assumed", f"No units recorded; values (maximum {vmax:.3g}, minimum "
                    f"{vmin:.3g}) are taken as SUV.")


def _voxel_units(volume_node) -> str:
    getter = getattr(volume_node, "GetVoxelValueUnits", None)
    entry = getter() if getter else None
    if entry is None:
        return ""
    return entry.GetCodeValue() or ""


# --------------------------------------------------------------------------- engine input
def prepare_engine_input(volume_node, work_dir: str | Path, files: Optional[Sequence[str]] = None) -> Path:
    """Put the PET where the engine reads it: the DICOM series in its own folder (SUV from the tags,
    DICOM SEG output), else the volume as NRRD with its exact geometry. Never touches the scene."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if files:
        folder = work_dir / "pet_dicom"
        folder.mkdir(exist_ok=True)
        for index, source in enumerate(files):
            target = folder / f"{index:05d}.dcm"
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return folder
    return scene_io.write_volume(volume_node, work_dir / "pet.nrrd", compress=False)


# --------------------------------------------------------------------------- lesion location
def lesion_arguments(lesion_node, pet_node) -> list[str]:
    """``--point X Y Z`` for a point list, ``--box ...`` for an ROI, nothing for automatic.
    Coordinates are RAS in the PET's own frame (the engine's default)."""
    if lesion_node is None:
        return []
    if lesion_node.IsA("vtkMRMLMarkupsROINode"):
        bounds = [0.0] * 6
        lesion_node.GetRASBounds(bounds)
        corners = [(x, y, z) for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]]
        local = np.array([scene_io.to_node_coordinates(c, pet_node) for c in corners])
        low, high = local.min(axis=0), local.max(axis=0)
        return ["--box", *[f"{v:.4f}" for v in (*low, *high)]]
    if lesion_node.IsA("vtkMRMLMarkupsFiducialNode") or lesion_node.IsA("vtkMRMLMarkupsNode"):
        count = lesion_node.GetNumberOfControlPoints()
        defined = [i for i in range(count) if _point_defined(lesion_node, i)]
        if not defined:
            raise ValueError(f"the point list {lesion_node.GetName()} has no point; place one in the "
                             "lesion or clear the selection for automatic localisation")
        position = [0.0, 0.0, 0.0]
        lesion_node.GetNthControlPointPositionWorld(defined[0], position)
        point = scene_io.to_node_coordinates(position, pet_node)
        return ["--point", *[f"{v:.4f}" for v in point]]
    raise ValueError(f"{lesion_node.GetName()} is neither a point list nor an ROI")


def _point_defined(node, index: int) -> bool:
    status = getattr(node, "GetNthControlPointPositionStatus", None)
    if status is None:
        return True
    return status(index) == node.PositionDefined
