"""What the physician sees: a result drawn by Slicer's own slice pipeline, headless.

Each view is a vtkMRMLSliceLogic of its own (a slice node and a slice composite node added to the
scene for the time of the drawing): the PET as background volume with its window, the heatmap as
foreground with the module's colour map, threshold and opacity (results.setup_heatmap_display),
blended by the slice logic as in Slicer's slice views. The MTV outline is drawn by Slicer's
segmentation displayable manager (vtkMRMLSegmentationsDisplayableManager2D) in an off-screen
render window, the way a slice view draws it; where no OpenGL context can be made (``outline=
"labelmap"``, or "auto" without OpenGL), the scored MTV labelmap is the slice logic's label layer
drawn as an outline instead (the slice node's label outline mode), with no render window.

The views come back as RGB arrays (rows top to bottom) and can be written as PNG. The nodes'
display settings that a view changes (PET window and colours, segmentation fill) are put back and
the nodes a view adds are removed. On a bare scene (headless) the default colour tables, the slice
orientation presets and the application's singleton nodes are added once, as Slicer's application
does at start. No Qt import.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from MTLRadiomicsModuleLogic import results, scene_io

ORIENTATIONS = ("Axial", "Coronal", "Sagittal")
GREY = "vtkMRMLColorTableNodeGrey"


@dataclass
class ViewSettings:
    """How the views are drawn.

    size: (width, height) in pixels of each view. pet_window: SUV shown from black to white.
    heatmap_scale: the Grad-CAM scale shown (None: the finest encoder scale there is; no heatmap when
    the result has none). field_of_view_mm: the height of the view in mm (None: the whole PET).
    center_ras: the point the three views go through (None: the centre of the MTV, else of the PET).
    outline: "segmentation" (Slicer's segmentation display), "labelmap" (the label layer's outline)
    or "auto" (the segmentation display when an OpenGL context can be made)."""

    size: tuple[int, int] = (360, 360)
    pet_window: tuple[float, float] = (0.0, 10.0)
    pet_color_node_id: str = GREY
    heatmap_scale: Optional[str] = None
    heatmap_opacity: float = results.DEFAULT_OPACITY
    field_of_view_mm: Optional[float] = None
    center_ras: Optional[tuple[float, float, float]] = None
    outline: str = "auto"
    outline_thickness: int = 2


# --------------------------------------------------------------------------- scene preparation
def ensure_view_defaults(scene) -> None:
    """What Slicer's application sets up before any slice view exists: the default colour tables
    and the slice orientation presets (Axial, Coronal, Sagittal). Only added when missing."""
    import slicer

    if scene.GetNodeByID(GREY) is None:
        colors = slicer.vtkMRMLColorLogic()
        colors.SetMRMLScene(scene)
        colors.SetMRMLScene(None)               # the colour nodes stay; the logic is not needed further
    default = scene.GetDefaultNodeByClass("vtkMRMLSliceNode")
    if default is None or not default.HasSliceOrientationPreset("Axial"):
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)


def opengl_available() -> bool:
    """Whether an off-screen OpenGL render window can be made here (EGL, OSMesa or a display)."""
    import vtk

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    try:
        return bool(window.SupportsOpenGL())
    except Exception:
        return False
    finally:
        window.Finalize()


def mtv_center(result: results.ResultNodes) -> tuple[float, float, float]:
    """The RAS centre of the scored MTV (of the PET when the MTV is empty)."""
    reference = result.labelmap if result.labelmap is not None and result.labelmap.GetImageData() is not None \
        else result.pet
    mask = results.scored_mask(result)
    if mask is None or not mask.any():
        mask = results.current_mask(result) if result.segmentation is not None else None
    ijk_to_ras = scene_io.get_ijk_to_ras(reference)
    if mask is not None and mask.any():
        z, y, x = np.argwhere(mask > 0).mean(axis=0)
    else:
        dims = reference.GetImageData().GetDimensions()
        x, y, z = (dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, (dims[2] - 1) / 2.0
    return tuple(float(v) for v in (ijk_to_ras @ np.array([x, y, z, 1.0]))[:3])


@contextlib.contextmanager
def _display_for_views(pet, segmentation, settings: ViewSettings) -> Iterator[None]:
    """The PET window and colours and an outline-only MTV while drawing; the user's settings after."""
    pet_display = pet.GetDisplayNode()
    saved_pet = (pet_display.GetAutoWindowLevel(), pet_display.GetWindow(), pet_display.GetLevel(),
                 pet_display.GetColorNodeID(), pet_display.GetInterpolate())
    seg_display = segmentation.GetDisplayNode() if segmentation is not None else None
    saved_seg = None
    if seg_display is not None:
        saved_seg = (seg_display.GetVisibility(), seg_display.GetVisibility2DFill(),
                     seg_display.GetVisibility2DOutline(), seg_display.GetSliceIntersectionThickness())
    try:
        pet_display.AutoWindowLevelOff()
        pet_display.SetWindowLevelMinMax(*settings.pet_window)
        pet_display.SetAndObserveColorNodeID(settings.pet_color_node_id)
        pet_display.SetInterpolate(False)                 # voxels as they are, as the test reads them
        if seg_display is not None:
            seg_display.SetVisibility(True)
            seg_display.SetVisibility2DFill(False)
            seg_display.SetVisibility2DOutline(True)
            seg_display.SetSliceIntersectionThickness(settings.outline_thickness)
        yield
    finally:
        auto, window, level, color_id, interpolate = saved_pet
        pet_display.SetAndObserveColorNodeID(color_id)
        pet_display.SetWindow(window)
        pet_display.SetLevel(level)
        pet_display.SetAutoWindowLevel(auto)
        pet_display.SetInterpolate(interpolate)
        if seg_display is not None:
            visible, fill, outline, thickness = saved_seg
            seg_display.SetVisibility(visible)
            seg_display.SetVisibility2DFill(fill)
            seg_display.SetVisibility2DOutline(outline)
            seg_display.SetSliceIntersectionThickness(thickness)


# --------------------------------------------------------------------------- one view
class _SliceView:
    """One slice view: a slice logic with its slice and composite nodes in ``scene``."""

    def __init__(self, scene, application_logic, name: str, orientation: str, size: tuple[int, int]):
        import slicer

        self.scene = scene
        self.logic = slicer.vtkMRMLSliceLogic()
        self.logic.SetMRMLApplicationLogic(application_logic)
        self.logic.SetMRMLScene(scene)
        self.slice_node = self.logic.AddSliceNode(name)
        self.composite = self.logic.GetSliceCompositeNode()
        self.slice_node.SetOrientation(orientation)
        self.slice_node.SetDimensions(int(size[0]), int(size[1]), 1)

    def show(self, pet, heatmap, opacity: float, labelmap) -> None:
        self.composite.SetBackgroundVolumeID(pet.GetID())
        self.composite.SetForegroundVolumeID(heatmap.GetID() if heatmap is not None else None)
        self.composite.SetForegroundOpacity(float(min(max(opacity, 0.0), 1.0)))
        self.composite.SetLabelVolumeID(labelmap.GetID() if labelmap is not None else None)
        self.composite.SetLabelOpacity(1.0)
        self.slice_node.SetUseLabelOutline(labelmap is not None)

    def frame(self, center_ras, field_of_view_mm: Optional[float]) -> None:
        self.logic.FitSliceToAll()
        if field_of_view_mm:
            width, height, _ = self.slice_node.GetDimensions()
            fov = self.slice_node.GetFieldOfView()
            self.slice_node.SetFieldOfView(field_of_view_mm * width / height, field_of_view_mm, fov[2])
        self.slice_node.JumpSliceByCentering(*center_ras)
        self.slice_node.UpdateMatrices()

    def blended(self) -> np.ndarray:
        """The slice logic's blended layers (what a slice view shows below the displayable
        managers' actors), RGB, rows top to bottom."""
        from vtk.util import numpy_support

        producer = self.logic.GetImageDataConnection().GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(0)
        width, height, _ = image.GetDimensions()
        pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def rendered(self, application_logic) -> np.ndarray:
        """The slice as a slice view renders it: the blended layers as the 2-D image, Slicer's
        segmentation displayable manager on top, in an off-screen render window."""
        import slicer
        import vtk
        from vtk.util import numpy_support

        width, height, _ = self.slice_node.GetDimensions()
        window = vtk.vtkRenderWindow()
        window.SetOffScreenRendering(1)
        window.SetSize(width, height)
        renderer = vtk.vtkRenderer()
        renderer.SetBackground(0.0, 0.0, 0.0)
        window.AddRenderer(renderer)
        interactor = vtk.vtkRenderWindowInteractor()      # the displayable managers need one
        interactor.SetRenderWindow(window)
        mapper = vtk.vtkImageMapper()
        mapper.SetInputConnection(self.logic.GetImageDataConnection())
        mapper.SetColorWindow(255.0)
        mapper.SetColorLevel(127.5)
        image_actor = vtk.vtkActor2D()
        image_actor.SetMapper(mapper)
        renderer.AddViewProp(image_actor)
        manager = slicer.vtkMRMLSegmentationsDisplayableManager2D()
        manager.SetMRMLApplicationLogic(application_logic)
        group = slicer.vtkMRMLDisplayableManagerGroup()
        group.SetRenderer(renderer)
        group.AddDisplayableManager(manager)
        group.SetMRMLDisplayableNode(self.slice_node)
        try:
            window.Render()
            capture = vtk.vtkWindowToImageFilter()
            capture.SetInput(window)
            capture.SetInputBufferTypeToRGB()
            capture.ReadFrontBufferOff()
            capture.Update()
            image = capture.GetOutput()
            pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
            return np.ascontiguousarray(pixels[::-1, :, :3])
        finally:
            group.SetMRMLDisplayableNode(None)
            renderer.RemoveAllViewProps()
            window.Finalize()

    def remove(self, keep: set[str]) -> None:
        """Remove the nodes the view added (slice, composite, slice model nodes): every node whose
        ID is not in ``keep``."""
        self.logic.SetMRMLScene(None)
        added = [n for n in (self.scene.GetNthNode(i) for i in range(self.scene.GetNumberOfNodes()))
                 if n is not None and n.GetID() not in keep]
        for node in reversed(added):
            if node.GetScene() is self.scene:
                self.scene.RemoveNode(node)


# --------------------------------------------------------------------------- the views
def render_views(scene, result: results.ResultNodes, settings: Optional[ViewSettings] = None,
                 orientations: Sequence[str] = ORIENTATIONS) -> dict[str, np.ndarray]:
    """The result in the slice views ``orientations``: {orientation: RGB uint8 array (height, width, 3)}."""
    import slicer

    settings = settings or ViewSettings()
    if settings.outline not in ("auto", "segmentation", "labelmap"):
        raise ValueError(f"unknown outline {settings.outline!r}: auto, segmentation or labelmap")
    outline = settings.outline
    if outline == "auto":
        outline = "segmentation" if opengl_available() else "labelmap"
    ensure_view_defaults(scene)
    heatmap = _heatmap(result, settings.heatmap_scale)
    center = settings.center_ras or mtv_center(result)
    application_logic = slicer.vtkMRMLApplicationLogic()
    application_logic.SetMRMLScene(scene)
    segmentation = result.segmentation if outline == "segmentation" else None
    views: dict[str, np.ndarray] = {}
    with _display_for_views(result.pet, segmentation, settings):
        keep = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
        for orientation in orientations:
            view = _SliceView(scene, application_logic, f"MTLRadiomicsView{orientation}", orientation,
                              settings.size)
            try:
                view.show(result.pet, heatmap, settings.heatmap_opacity,
                          result.labelmap if outline == "labelmap" else None)
                view.frame(center, settings.field_of_view_mm)
                views[orientation] = (view.rendered(application_logic) if outline == "segmentation"
                                      else view.blended())
            finally:
                view.remove(keep)
    application_logic.SetMRMLScene(None)
    return views


def _heatmap(result: results.ResultNodes, scale: Optional[str]):
    if not result.heatmaps:
        return None
    if scale is None:
        scale = next(s for s in results.SCALES if s in result.heatmaps)
    if scale not in result.heatmaps:
        raise ValueError(f"this result has no heatmap for the scale {scale}")
    return result.heatmaps[scale]


def montage(views: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Views side by side (the same height), separated by ``gap`` black columns."""
    height = max(v.shape[0] for v in views)
    parts = []
    for index, view in enumerate(views):
        if index:
            parts.append(np.zeros((height, gap, 3), np.uint8))
        padded = np.zeros((height, view.shape[1], 3), np.uint8)
        padded[:view.shape[0]] = view
        parts.append(padded)
    return np.concatenate(parts, axis=1)


def write_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 array (rows top to bottom) as a PNG."""
    import vtk
    from vtk.util import numpy_support

    pixels = np.ascontiguousarray(np.asarray(pixels, np.uint8)[::-1, :, :3])
    height, width, _ = pixels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(pixels.reshape(-1, 3), deep=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path


def read_png(path: str | Path) -> np.ndarray:
    """A PNG as an RGB uint8 array (rows top to bottom)."""
    import vtk
    from vtk.util import numpy_support

    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])
