"""Move voxels between MRML nodes and files with their exact geometry.

MRML describes a volume by its IJK-to-RAS matrix; files and SimpleITK use LPS (origin, spacing,
direction cosines). The two differ by the sign of the first two world axes: RAS = diag(-1, -1, 1) LPS.
Arrays are (z, y, x) as in SimpleITK and slicer.util.arrayFromVolume.

Everything here works on a plain vtkMRMLScene (headless, from the slicer-core wheel) as well as in
the Slicer application. No Qt import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- geometry
def ijk_to_ras_from_lps(origin: tuple, spacing: tuple, direction: tuple) -> np.ndarray:
    """4x4 IJK-to-RAS matrix from an LPS origin, spacing (x, y, z) and row-major direction."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing, dtype=float)
    matrix[:3, 3] = np.asarray(origin, dtype=float)
    return LPS_TO_RAS @ matrix


def lps_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) in LPS from a 4x4 IJK-to-RAS matrix."""
    lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    return (tuple(float(v) for v in lps[:3, 3]), tuple(float(s) for s in spacing),
            tuple(float(d) for d in direction.ravel()))


def vtk_matrix(array: np.ndarray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def numpy_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def get_ijk_to_ras(volume_node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return numpy_matrix(matrix)


def same_geometry(node_a, node_b, tolerance_mm: float = 1e-3) -> bool:
    """Same voxel grid: dimensions and IJK-to-RAS within ``tolerance_mm``."""
    a, b = node_a.GetImageData(), node_b.GetImageData()
    if a is None or b is None or tuple(a.GetDimensions()) != tuple(b.GetDimensions()):
        return False
    return bool(np.allclose(get_ijk_to_ras(node_a), get_ijk_to_ras(node_b), atol=tolerance_mm))


# --------------------------------------------------------------------------- volume nodes
def array_from_volume(volume_node) -> np.ndarray:
    """A (z, y, x) view of the node's voxels (not a copy)."""
    from vtk.util import numpy_support

    image = volume_node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"volume {volume_node.GetName()} holds no voxels")
    dims = image.GetDimensions()
    components = image.GetNumberOfScalarComponents()
    shape = tuple(reversed(dims)) + ((components,) if components > 1 else ())
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape)


def set_volume_array(volume_node, array: np.ndarray, ijk_to_ras: Optional[np.ndarray] = None) -> None:
    """Replace the node's voxels with a deep copy of the (z, y, x) ``array`` (and its geometry)."""
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array)
    if array.ndim != 3:
        raise ValueError(f"a 3-D array is needed, not shape {array.shape}")
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True,
                                         array_type=numpy_support.get_vtk_array_type(array.dtype))
    image.GetPointData().SetScalars(scalars)
    if ijk_to_ras is not None:
        volume_node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras))
    volume_node.SetAndObserveImageData(image)


def image_from_volume(volume_node):
    """The node as a SimpleITK image in LPS, voxels copied."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.array(array_from_volume(volume_node)))
    origin, spacing, direction = lps_from_ijk_to_ras(get_ijk_to_ras(volume_node))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def update_volume_from_image(volume_node, image) -> None:
    """Give the node the voxels and geometry of a SimpleITK image."""
    import SimpleITK as sitk

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("a 3-D scalar image is needed")
    ijk_to_ras = ijk_to_ras_from_lps(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    set_volume_array(volume_node, sitk.GetArrayFromImage(image), ijk_to_ras)


def write_volume(volume_node, path: str | Path, compress: bool = True) -> Path:
    """Write the node (NRRD, NIfTI, MHA by extension) with its LPS geometry."""
    import SimpleITK as sitk

    path = Path(path)
    sitk.WriteImage(image_from_volume(volume_node), str(path), useCompression=compress)
    return path


def write_array_like(array: np.ndarray, reference_node, path: str | Path, compress: bool = True) -> Path:
    """Write a (z, y, x) array with the geometry of ``reference_node``."""
    import SimpleITK as sitk

    dims = reference_node.GetImageData().GetDimensions()
    if tuple(reversed(dims)) != tuple(array.shape):
        raise ValueError(f"array shape {array.shape} differs from the volume {tuple(reversed(dims))}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    origin, spacing, direction = lps_from_ijk_to_ras(get_ijk_to_ras(reference_node))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return Path(path)


def read_volume(path: str | Path, volume_node) -> None:
    """Load a volume file into ``volume_node`` (voxels and geometry)."""
    import SimpleITK as sitk

    update_volume_from_image(volume_node, sitk.ReadImage(str(path)))


def add_volume_node(scene, array: np.ndarray, ijk_to_ras: np.ndarray, name: str,
                    class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node in ``scene`` with default display nodes."""
    node = scene.AddNewNodeByClass(class_name, name)
    set_volume_array(node, array, ijk_to_ras)
    node.CreateDefaultDisplayNodes()
    return node


def add_pet_volume_node(scene, pet, name: str = "PET", values: Optional[np.ndarray] = None):
    """A scalar volume node from an engine PetVolume (SUV, or ``values`` on its grid)."""
    array = pet.suv if values is None else values
    return add_volume_node(scene, np.asarray(array, dtype=np.float32),
                           ijk_to_ras_from_lps(pet.origin, pet.spacing, pet.direction), name)


# --------------------------------------------------------------------------- scene queries
def nodes_by_class(scene, class_name: str) -> list:
    """The nodes of ``class_name`` in ``scene`` as a list.

    vtkMRMLScene::GetNodesByClass returns a new collection that the caller owns; the Python
    wrapper adds its own reference, so the collection (and with it a reference to every node in
    it) would outlive the call. The caller's reference is released here. (slicer.util.getNodesByClass
    does the same but always queries slicer.mrmlScene, whatever scene it is given.)"""
    collection = scene.GetNodesByClass(class_name)
    if collection is None:
        return []
    if collection.GetReferenceCount() > 1:        # the caller's reference, besides Python's own
        collection.UnRegister(None)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


# --------------------------------------------------------------------------- segmentations
def ensure_segmentation_converters() -> None:
    """Register the labelmap/surface conversion rules when nothing did (a bare MRML library).

    Slicer registers them when its Segmentations module starts; a headless scene needs them for
    segmentations to hold binary labelmaps."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if len(factory.GetConverterRules()) > 0:
        return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def reference_image(volume_node):
    """An empty vtkOrientedImageData with the voxel grid of ``volume_node``."""
    import slicer

    image = slicer.vtkOrientedImageData()
    dims = volume_node.GetImageData().GetDimensions()
    image.SetExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    image.SetImageToWorldMatrix(vtk_matrix(get_ijk_to_ras(volume_node)))
    return image


def segment_id_by_name(segmentation_node, name: str = "MTV") -> str:
    """The ID of the segment called ``name``; the only segment when there is no such name."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(name)
    if segment_id:
        return segment_id
    if segmentation.GetNumberOfSegments() == 1:
        return segmentation.GetNthSegmentID(0)
    raise ValueError(f"the segmentation {segmentation_node.GetName()} has no segment named {name}")


def segment_array(segmentation_node, segment_id: str, reference_node) -> np.ndarray:
    """The segment as a uint8 (z, y, x) mask (0/1) on the voxel grid of ``reference_node``.

    Works on the segment's own labelmap (which may share a layer with other segments) without
    adding any node to the scene."""
    import slicer
    from vtk.util import numpy_support

    dims = reference_node.GetImageData().GetDimensions()
    shape = tuple(reversed(dims))
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise ValueError(f"no segment {segment_id} in {segmentation_node.GetName()}")
    labelmap = slicer.vtkOrientedImageData()
    # the segment in the segmentation's own frame, which it shares with the reference volume
    ok = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
        segmentation_node, segment_id, labelmap, False)
    extent = labelmap.GetExtent()
    if not ok or extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]:
        return np.zeros(shape, np.uint8)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference_image(reference_node), resampled, False, False):
        raise RuntimeError(f"the segment {segment.GetName()} could not be put on the grid of "
                           f"{reference_node.GetName()}")
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(shape)
    return (values == segment.GetLabelValue()).astype(np.uint8)


def update_segment_from_array(array: np.ndarray, segmentation_node, segment_id: str, reference_node) -> None:
    """Replace the segment's voxels with a (z, y, x) mask on the grid of ``reference_node``
    (what slicer.util.updateSegmentBinaryLabelmapFromArray does, without temporary scene nodes)."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    dims = reference_node.GetImageData().GetDimensions()
    if tuple(array.shape) != tuple(reversed(dims)):
        raise ValueError(f"mask shape {array.shape} differs from the volume {tuple(reversed(dims))}")
    image = reference_image(reference_node)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = (np.asarray(array) > 0).astype(np.uint8).ravel()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(image, segmentation_node, segment_id, logic.MODE_REPLACE):
        raise RuntimeError(f"could not update segment {segment_id}")


def read_segmentation(path: str | Path, segmentation_node) -> None:
    """Load a .seg.nrrd into ``segmentation_node`` (node in a scene); no storage node is left."""
    import slicer

    scene = segmentation_node.GetScene()
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    try:
        storage.SetFileName(str(path))
        if not storage.ReadData(segmentation_node):
            raise RuntimeError(f"could not read the segmentation {path}")
    finally:
        scene.RemoveNode(storage)


def write_segmentation(segmentation_node, path: str | Path) -> Path:
    """Write a segmentation node as .seg.nrrd (Slicer's own format); no storage node is left."""
    import slicer

    scene = segmentation_node.GetScene()
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    try:
        storage.SetFileName(str(path))
        if not storage.WriteData(segmentation_node):
            raise RuntimeError(f"could not write the segmentation to {path}")
    finally:
        scene.RemoveNode(storage)
    return Path(path)


# --------------------------------------------------------------------------- markups
def world_to_node_matrix(node) -> np.ndarray:
    """4x4 matrix from world RAS to the coordinates of ``node`` (identity without transforms)."""
    import slicer
    import vtk

    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise ValueError(f"{node.GetName()} is under a non-linear transform; harden it first")
    matrix = vtk.vtkMatrix4x4()
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(None, transform_node, matrix)
    return numpy_matrix(matrix)


def to_node_coordinates(point_world: tuple, node) -> tuple[float, float, float]:
    p = world_to_node_matrix(node) @ np.array([*point_world, 1.0])
    return tuple(float(v) for v in p[:3])
