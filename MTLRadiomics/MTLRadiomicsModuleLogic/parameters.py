"""The module's parameter node: what the user chose, saved with the scene.

In Slicer, ``slicer.parameterNodeWrapper`` binds these fields to the widgets whose
``SlicerParameterName`` property names them in the .ui file. The slicer-core wheel used for headless
tests has no parameterNodeWrapper; the class then stays a plain annotated class so that this module
(and the enums the logic uses) still import. No Qt import.
"""

from __future__ import annotations

import enum
import pathlib
from typing import Annotated, Union

try:
    from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
    HAS_PARAMETER_NODE_WRAPPER = True
except ImportError:                                  # headless MRML without Slicer's Python library
    HAS_PARAMETER_NODE_WRAPPER = False

    def parameterNodeWrapper(cls):                   # noqa: N802 (Slicer's name)
        return cls

    class WithinRange:                               # annotation placeholders
        def __init__(self, minimum, maximum):
            self.minimum, self.maximum = minimum, maximum

    class Choice:
        def __init__(self, choices):
            self.choices = list(choices)

from slicer import (vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode,
                    vtkMRMLSegmentationNode)

SCALES = ("enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1")

# The engine's MTV methods (MTLRadiomicsLib.mtv.lesion.MTV_METHODS: name -> label), repeated here so
# that the module loads before the engine and PyTorch are installed; a test keeps them equal.
MTV_METHOD_LABELS = {
    "network": "network (sliding windows)",
    "suvmax40": "40 % of SUVmax",
    "suvmax41": "41 % of SUVmax (EANM)",
    "suvmax50": "50 % of SUVmax",
    "suv2.5": "SUV >= 2.5",
    "percist": "PERCIST: 1.5 x liver mean + 2 x liver SD",
}

# The value of the ``model`` parameter that means "the model folder chosen below" (any other value
# is an installed model's name; "" is the default model).
MODEL_FOLDER_CHOICE = "<model folder>"


class Device(enum.Enum):
    """Where the network runs."""

    AUTO = "auto"
    GPU = "cuda"
    CPU = "cpu"

    def label(self) -> str:                          # shown in the combo box
        return {"auto": "Automatic (GPU when available)", "cuda": "GPU (CUDA)", "cpu": "CPU"}[self.value]


class ExplanationTarget(enum.Enum):
    """What the Grad-CAM heatmaps explain."""

    OUTCOME = "outcome"
    SEGMENTATION = "segmentation"

    def label(self) -> str:
        return {"outcome": "Outcome score", "segmentation": "Tumour segmentation"}[self.value]


class MtvMethod(enum.Enum):
    """The MTV the scores use (every method's MTV is computed and listed)."""

    NETWORK = "network"
    SUVMAX40 = "suvmax40"
    SUVMAX41 = "suvmax41"
    SUVMAX50 = "suvmax50"
    SUV25 = "suv2.5"
    PERCIST = "percist"

    def label(self) -> str:
        return MTV_METHOD_LABELS[self.value]


@parameterNodeWrapper
class MTLRadiomicsParameterNode:
    """
    petVolume - the PET volume (SUV, or a DICOM series the engine converts to SUV).
    lesion - optional point list (a point in the lesion) or ROI (a box around it); none: automatic.
    mtvMethod - the MTV the scores use (network or a classical threshold); every method's MTV is listed.
    fillHoles - fill holes enclosed by the MTV (necrotic cores).
    model - an installed model by name ("" the default model), or MODEL_FOLDER_CHOICE for modelFolder.
      The widget fills its combo box from the installed models and keeps this in step itself.
    modelFolder - a model folder (model.json + model.safetensors) when model is MODEL_FOLDER_CHOICE.
    device - automatic, GPU or CPU.
    explanationTarget - what the Grad-CAM heatmaps explain.
    samples - Monte-Carlo samples for the score uncertainty.
    mtvSegmentation - the MTV segmentation of the result shown in the module.
    heatmapScale - the network scale whose Grad-CAM heatmap is shown.
    heatmapOpacity - opacity of the heatmap over the PET.
    exportFolder - where Export writes the report files.
    """

    petVolume: vtkMRMLScalarVolumeNode
    lesion: Union[vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, None] = None
    mtvMethod: MtvMethod = MtvMethod.NETWORK
    fillHoles: bool = False
    model: str = ""
    modelFolder: pathlib.Path
    device: Device = Device.AUTO
    explanationTarget: ExplanationTarget = ExplanationTarget.OUTCOME
    samples: Annotated[int, WithinRange(2, 100)] = 10
    mtvSegmentation: vtkMRMLSegmentationNode
    heatmapScale: Annotated[str, Choice(list(SCALES))] = "enc5"
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    exportFolder: pathlib.Path
