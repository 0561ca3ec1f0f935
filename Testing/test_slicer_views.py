"""What the physician sees: a result drawn by Slicer's own slice pipeline (vtkMRMLSliceLogic) and
segmentation display (vtkMRMLSegmentationsDisplayableManager2D), headless, read pixel by pixel.

A synthetic PET (SUV 2, a 24 mm cube of SUV 8), a heatmap with the module's colour map (1.0 in the
cube's core, 0.1 in the rest of the cube: below the transparency threshold) and the cube as the MTV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLSliceLogic"):
    pytest.skip("the installed 'slicer' package has no slice logic", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import results, scene_io, slice_views  # noqa: E402

N = 60                       # voxels per side, 2 mm each
LESION = slice(24, 36)       # 12 voxels: 24 mm
CORE = slice(27, 33)         # 6 voxels: 12 mm
SIZE = 240                   # pixels per view side
FOV_MM = 120.0               # 2 pixels per mm: a voxel is 4 pixels
CENTRE = SIZE // 2
LESION_HALF_PX = 24
CORE_HALF_PX = 12
YELLOW = (255, 255, 0)
needs_opengl = pytest.mark.skipif(not slice_views.opengl_available(),
                                  reason="no off-screen OpenGL here: only the labelmap outline can be drawn")


@pytest.fixture(scope="module")
def case():
    scene_io.ensure_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    grid = scene_io.ijk_to_ras_from_lps((0.0, 0.0, 0.0), (2.0, 2.0, 2.0), tuple(np.eye(3).ravel()))
    suv = np.full((N, N, N), 2.0, np.float32)
    lesion = np.zeros((N, N, N), np.uint8)
    lesion[LESION, LESION, LESION] = 1
    suv[lesion > 0] = 8.0
    heat = np.zeros((N, N, N), np.float32)
    heat[lesion > 0] = 0.1
    heat[CORE, CORE, CORE] = 1.0
    pet = scene_io.add_volume_node(scene, suv, grid, "PET")
    heatmap = scene_io.add_volume_node(scene, heat, grid, "Grad-CAM enc1")
    results.setup_heatmap_display(heatmap, results.heatmap_color_node(scene))
    labelmap = scene_io.add_volume_node(scene, lesion, grid, "MTV labelmap", "vtkMRMLLabelMapVolumeNode")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "MTV")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(pet)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("MTV", "MTV")
    segmentation.GetSegmentation().GetSegment(segment_id).SetColor(1.0, 1.0, 0.0)
    scene_io.update_segment_from_array(lesion, segmentation, segment_id, pet)
    segmentation.CreateDefaultDisplayNodes()
    result = results.ResultNodes(segmentation=segmentation, segment_id=segment_id, pet=pet, labelmap=labelmap,
                                 heatmaps={"enc1": heatmap}, scores_table=None, metrics_table=None,
                                 run_folder=Path(), input_path=Path(), result_folder=Path())
    return scene, result


def settings(**changes) -> slice_views.ViewSettings:
    values = dict(size=(SIZE, SIZE), pet_window=(0.0, 10.0), heatmap_opacity=0.5, field_of_view_mm=FOV_MM,
                  outline="segmentation")
    values.update(changes)
    return slice_views.ViewSettings(**values)


def close(pixel, expected, tolerance=3) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, float) - np.asarray(expected, float)) <= tolerance))


def square_ring(view: np.ndarray, colour, tolerance=3) -> np.ndarray:
    """Chebyshev distance from the view centre of every pixel of ``colour``."""
    rows, cols = np.nonzero(np.all(np.abs(view.astype(int) - np.asarray(colour)) <= tolerance, axis=2))
    return np.maximum(np.abs(rows - CENTRE), np.abs(cols - CENTRE))


@pytest.fixture(scope="module")
def views(case):
    if not slice_views.opengl_available():
        pytest.skip("no off-screen OpenGL here: only the labelmap outline can be drawn")
    scene, result = case
    return slice_views.render_views(scene, result, settings())


def test_three_views_of_the_configured_size(views):
    assert list(views) == ["Axial", "Coronal", "Sagittal"]
    assert all(v.shape == (SIZE, SIZE, 3) and v.dtype == np.uint8 for v in views.values())


def test_the_pet_window_is_the_configured_one(case, views):
    for view in views.values():
        assert close(view[20, 20], (51, 51, 51), 1)                          # SUV 2 in 0-10: 20 % grey
        assert close(view[CENTRE, CENTRE + 20], (204, 204, 204), 1)          # SUV 8, heat 0.1: no heatmap
    scene, result = case
    narrow = slice_views.render_views(scene, result, settings(pet_window=(0.0, 4.0)), orientations=["Axial"])
    assert close(narrow["Axial"][20, 20], (128, 128, 128), 1)              # SUV 2 in 0-4: half grey
    assert close(narrow["Axial"][CENTRE, CENTRE + 20], (255, 255, 255), 1)


def test_the_heatmap_is_blended_in_the_modules_colours(case, views):
    # heat 1.0 is red in the module's colour map; opacity 0.5 over SUV 8 (grey 204)
    for view in views.values():
        assert close(view[CENTRE, CENTRE], (229.5, 102, 102), 3)
        colours = {tuple(int(c) for c in p) for p in view.reshape(-1, 3)}
        assert any(g > r + 40 and g > b for r, g, b in colours)               # the green-yellow of mid heat
    scene, result = case
    opaque = slice_views.render_views(scene, result, settings(heatmap_opacity=1.0), orientations=["Axial"])
    assert close(opaque["Axial"][CENTRE, CENTRE], (255, 0, 0), 2)


def test_the_mtv_outline_is_drawn_at_the_lesion_border(views):
    for name, view in views.items():
        distances = square_ring(view, YELLOW)
        assert len(distances) > 4 * 2 * LESION_HALF_PX, name                 # all four sides, a line's width
        assert np.all(np.abs(distances - LESION_HALF_PX) <= 3), name         # nowhere but the border
        assert not close(view[CENTRE, CENTRE], YELLOW, 30)


def test_the_labelmap_outline_where_segmentations_cannot_be_drawn(case):
    scene, result = case
    view = slice_views.render_views(scene, result, settings(outline="labelmap"), orientations=["Axial"])["Axial"]
    rgba = [0.0] * 4
    result.labelmap.GetDisplayNode().GetColorNode().GetColor(1, rgba)
    label = tuple(round(255 * c) for c in rgba[:3])
    distances = square_ring(view, label, 2)
    assert len(distances) > 4 * LESION_HALF_PX
    assert np.all(np.abs(distances - LESION_HALF_PX) <= 4)
    assert close(view[CENTRE, CENTRE], (229.5, 102, 102), 3)


@needs_opengl
def test_the_scene_and_the_display_are_left_as_they_were(case):
    scene, result = case
    slice_views.ensure_view_defaults(scene)
    display = result.pet.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(1.0, 3.0)
    segmentation_display = result.segmentation.GetDisplayNode()
    segmentation_display.SetVisibility2DFill(True)
    before = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
    slice_views.render_views(scene, result, settings())
    assert [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())] == before
    assert (display.GetWindow(), display.GetLevel(), display.GetAutoWindowLevel()) == (2.0, 2.0, 0)
    assert segmentation_display.GetVisibility2DFill()


def test_views_are_written_as_one_png(views, tmp_path):
    picture = slice_views.montage(list(views.values()), gap=4)
    assert picture.shape == (SIZE, 3 * SIZE + 8, 3)
    path = slice_views.write_png(picture, tmp_path / "views.png")
    np.testing.assert_array_equal(slice_views.read_png(path), picture)


def test_the_views_centre_on_the_mtv(case):
    scene, result = case
    centre = slice_views.mtv_center(result)
    ijk_to_ras = scene_io.get_ijk_to_ras(result.pet)
    expected = (ijk_to_ras @ np.array([29.5, 29.5, 29.5, 1.0]))[:3]
    np.testing.assert_allclose(centre, expected, atol=1e-6)
