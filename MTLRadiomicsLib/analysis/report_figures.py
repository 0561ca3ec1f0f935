"""Pictures of the one-page report: coronal MIP with the analysed lesion and the other candidates,
axial / coronal / sagittal slices through the lesion's hottest voxel with the MTV contour, and the
Grad-CAM heatmap of every network scale fused over the PET, centred on the network's field.

Views follow the radiological convention: patient right on the viewer's left, head at the top,
anterior at the top of axial slices and on the left of sagittal slices. Pixels keep the physical
aspect ratio of the voxels. Everything is drawn in voxel-index coordinates of the volume
re-oriented to LPS.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

from MTLRadiomicsLib.analysis.result import AnalysisResult  # noqa: E402
from MTLRadiomicsLib.mtv.pet_metrics import lesion_hottest_voxel  # noqa: E402
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402

SCALE_ORDER = ("enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1")
SCALE_DOWNSAMPLING = {"enc1": 1, "enc2": 2, "enc3": 4, "enc4": 8, "enc5": 16,
                      "dec4": 8, "dec3": 4, "dec2": 2, "dec1": 1}
FIELD_MM = 120.0                 # side of the zoomed field around the lesion
FIELD_MARGIN_MM = 12.0           # room around the network's field in the heatmap panels
SAME_LESION_MM = 15.0            # a candidate this close to the analysed centre is that lesion
MTV_COLOUR = "#d7191c"
CANDIDATE_COLOUR = "#1f5fbf"
HEAT_CMAP = "jet"
SMALL = 7.0                      # smallest font size used (pt)
HEATMAP_GUIDE = (
    "Warm colours mark the regions that raised the target score most at that scale.",
    "Encoder scales enc1 (fine) to enc5 (coarse) read the PET; decoder scales dec4 (coarse) to dec1 "
    "(fine) rebuild the MTV.",
    "A heatmap away from the MTV means the score relied on tissue outside the tumour.",
)
HEATMAP_GUIDE_SHORT = ("How to read: warm colours mark what raised the target score most. enc1 to enc5: "
                       "encoder, fine to coarse; dec4 to dec1: decoder, coarse to fine. Heat away from the "
                       "MTV: the score relied on tissue outside the tumour.")
NO_GRADIENT = "no gradient at this scale"
NO_HEAT_HERE = "no heat in this slice"
LESION_MARK = "+"


@dataclass
class Views:
    """The volumes re-oriented to LPS (arrays (z, y, x): +x = L, +y = P, +z = S) and the lesion."""

    suv: np.ndarray
    mask: np.ndarray
    heatmaps: dict[str, np.ndarray]
    spacing: tuple[float, float, float]          # (x, y, z) mm
    image: sitk.Image                            # oriented geometry, for physical points
    peak: tuple[int, int, int]                   # (k, j, i) of the lesion's hottest voxel
    lesion_suv_max: float                        # its SUV (0 when the MTV is empty)
    window: float                                # displayed SUV range 0..window
    mask_box: Optional[tuple[tuple[int, ...], tuple[int, ...]]] = None   # MTV's (k, j, i) min and max
    net_field_center: Optional[tuple[float, float, float]] = None   # (i, j, k) of the network's field centre
    net_field_mm: Optional[tuple[float, float, float]] = None       # its size (x, y, z) mm

    def index_of(self, point_lps: Sequence[float]) -> tuple[float, float, float]:
        """Continuous index (i, j, k) = (x, y, z) of a physical LPS point in the oriented arrays."""
        return tuple(self.image.TransformPhysicalPointToContinuousIndex([float(p) for p in point_lps]))

    def field(self) -> float:
        """Side (mm) of the zoomed field: 12 cm, more when the MTV is larger."""
        if self.mask_box is None:
            return FIELD_MM
        lo, hi = self.mask_box
        extent = (np.asarray(hi) - np.asarray(lo) + 1) * np.asarray(self.spacing[::-1])
        return float(max(FIELD_MM, extent.max() + 30.0))

    def field_centre(self) -> tuple[float, float, float]:
        """(k, j, i) the zoomed views centre on: the MTV's bounding-box centre, else the peak."""
        if self.mask_box is None:
            return tuple(float(p) for p in self.peak)  # type: ignore[return-value]
        lo, hi = self.mask_box
        return tuple((a + b) / 2.0 for a, b in zip(lo, hi))  # type: ignore[return-value]

    def peak_lps(self) -> tuple[float, float, float]:
        """LPS position (mm) of the lesion's hottest voxel."""
        k, j, i = self.peak
        point = self.image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])
        return tuple(float(v) for v in point)  # type: ignore[return-value]

    def heat_field(self) -> float:
        """Side (mm) of the heatmap panels: the slices' field, larger where the network's field
        and a margin around it would not fit."""
        if self.net_field_mm is None:
            return self.field()
        return max(self.field(), max(self.net_field_mm[:2]) + 2 * FIELD_MARGIN_MM)


def ordered_scales(names: Sequence[str]) -> list[str]:
    """Scale names in network order (enc1..enc5, dec4..dec1), unknown names last."""
    known = [s for s in SCALE_ORDER if s in names]
    return known + sorted(s for s in names if s not in SCALE_ORDER)


def display_window(lesion_suv_max: float) -> float:
    """SUV display range 0..window: 0-10 for a lesion SUVmax of 5 to 10, up to the lesion's SUVmax
    (rounded up) above 10 so that a hot lesion is not one black blot, narrowed for faint lesions
    (SUVmax < 5) so that they stay visible."""
    if lesion_suv_max > 10.0:
        return float(np.ceil(lesion_suv_max))
    if lesion_suv_max >= 5.0 or lesion_suv_max <= 0.0:
        return 10.0
    return float(max(4.0, np.ceil(lesion_suv_max * 1.2)))


def _is_lps(pet: PetVolume) -> bool:
    """Whether the volume's axes already run L, P, S (then re-orienting to LPS changes nothing)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(pet.direction) == "LPS"


def _orient(pet: PetVolume, array: np.ndarray, dtype: Any) -> np.ndarray:
    if _is_lps(pet):
        return np.array(array, dtype=dtype, order="C")            # a copy, as re-orienting gives
    image = pet.copy_geometry_to(sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=dtype)))
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))


def prepare_views(pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray],
                  center_lps: Optional[Sequence[float]] = None,
                  field_center_lps: Optional[Sequence[float]] = None,
                  field_mm: Optional[Sequence[float]] = None) -> Views:
    """Re-orient PET, mask and heatmaps to LPS and find the lesion's hottest voxel (the MTV and the
    voxels touching it; for an empty mask the voxel at ``center_lps``, else the volume's maximum).
    ``field_center_lps`` and ``field_mm`` (x, y, z): where the network's field was, for the heatmaps."""
    mask = np.asarray(mask)
    if mask.shape != pet.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the PET shape {pet.shape}")
    for name, heat in heatmaps.items():
        if np.shape(heat) != pet.shape:
            raise ValueError(f"heatmap {name} shape {np.shape(heat)} differs from the PET shape {pet.shape}")
    image = pet.to_sitk() if _is_lps(pet) else sitk.DICOMOrient(pet.to_sitk(), "LPS")
    suv = sitk.GetArrayFromImage(image)
    oriented_mask = _orient(pet, mask > 0, np.uint8)
    heat = {}
    for name in ordered_scales(list(heatmaps)):
        oriented = _orient(pet, heatmaps[name], np.float32)            # a fresh array: changed in place
        heat[name] = np.clip(np.nan_to_num(oriented, copy=False), 0.0, 1.0, out=oriented)
    box = None
    if oriented_mask.any():
        where = np.argwhere(oriented_mask > 0)
        box = (tuple(int(v) for v in where.min(axis=0)), tuple(int(v) for v in where.max(axis=0)))
        peak, lesion_max = lesion_hottest_voxel(suv, oriented_mask)  # type: ignore[misc]
    else:
        peak = np.unravel_index(int(np.argmax(suv)), suv.shape)
        if center_lps is not None:
            i, j, k = image.TransformPhysicalPointToIndex([float(p) for p in center_lps])
            if all(0 <= a < n for a, n in zip((k, j, i), suv.shape)):
                peak = (k, j, i)
        lesion_max = 0.0
    net_centre = None
    if field_center_lps is not None:
        net_centre = tuple(image.TransformPhysicalPointToContinuousIndex([float(p) for p in field_center_lps]))
    return Views(suv=suv, mask=oriented_mask, heatmaps=heat, spacing=tuple(image.GetSpacing()),
                 image=image, peak=tuple(int(p) for p in peak), lesion_suv_max=lesion_max,
                 window=display_window(lesion_max), mask_box=box, net_field_center=net_centre,
                 net_field_mm=tuple(float(v) for v in field_mm) if field_mm else None)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#888888")
        spine.set_linewidth(0.6)


def _letters(ax, left: str, right: str, top: str, bottom: str, colour: str) -> None:
    """Orientation letters at the middle of each edge, inside the view."""
    style = dict(fontsize=SMALL, color=colour, fontweight="bold", transform=ax.transAxes)
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _scale_bar(ax, voxel_mm: float, colour: str) -> None:
    bar = AnchoredSizeBar(ax.transData, 50.0 / voxel_mm, "5 cm", loc="lower right", frameon=False,
                          color=colour, size_vertical=0, pad=0.3, sep=2,
                          fontproperties=FontProperties(size=SMALL))
    ax.add_artist(bar)


# --- planes through the lesion: (array, mask, origin, aspect, horizontal / vertical centre) ---

def _plane(views: Views, which: str, volume: np.ndarray):
    k, j, i = views.peak
    ck, cj, ci = views.field_centre()
    sx, sy, sz = views.spacing
    if which == "axial":        # rows y (A at the top), columns x (R on the left)
        return volume[k], views.mask[k], "upper", sy / sx, (ci, cj), (sx, sy), ("R", "L", "A", "P")
    if which == "coronal":      # rows z (S at the top), columns x
        return (volume[:, j, :], views.mask[:, j, :], "lower", sz / sx, (ci, ck), (sx, sz),
                ("R", "L", "S", "I"))
    # sagittal: rows z, columns y (A on the left)
    return volume[:, :, i], views.mask[:, :, i], "lower", sz / sy, (cj, ck), (sy, sz), ("A", "P", "S", "I")


def _peak_in_plane(views: Views, which: str) -> tuple[int, int]:
    """(column, row) of the lesion's hottest voxel in the plane ``which``."""
    k, j, i = views.peak
    return {"axial": (i, j), "coronal": (i, k)}.get(which, (j, k))


def _zoom(ax, centre: tuple[float, float], voxel: tuple[float, float], field_mm: float, origin: str) -> None:
    hx, hy = field_mm / 2.0 / voxel[0], field_mm / 2.0 / voxel[1]
    ax.set_xlim(centre[0] - hx, centre[0] + hx)
    if origin == "upper":
        ax.set_ylim(centre[1] + hy, centre[1] - hy)
    else:
        ax.set_ylim(centre[1] - hy, centre[1] + hy)


def draw_slice(ax, views: Views, which: str, title: str) -> None:
    """One zoomed slice through the lesion's hottest voxel (a "+"), inverted grey, with the MTV contour."""
    plane, contour, origin, aspect, centre, voxel, letters = _plane(views, which, views.suv)
    ax.set_facecolor("white")
    ax.imshow(plane, cmap="gray_r", vmin=0, vmax=views.window, origin=origin, aspect=aspect,
              interpolation="bilinear")
    if contour.any():
        ax.contour(contour.astype(float), levels=[0.5], colors=[MTV_COLOUR], linewidths=1.0)
    if views.mask_box is not None:                 # the lesion's hottest voxel
        ax.plot(*_peak_in_plane(views, which), marker="+", markersize=7, color="#00a0c0", markeredgewidth=1.1)
    _zoom(ax, centre, voxel, views.field(), origin)
    _bare(ax)
    _letters(ax, *letters, colour="#404040")
    _scale_bar(ax, voxel[0], "#202020")
    ax.set_title(title, fontsize=8, pad=3)


def draw_mip(ax, views: Views, result: AnalysisResult) -> int:
    """Coronal MIP of the body with the analysed lesion boxed and the other candidates circled;
    returns the number of other candidates drawn."""
    sx, _, sz = views.spacing
    mip = views.suv.max(axis=1)                                   # (z, x)
    ax.set_facecolor("white")
    ax.imshow(mip, cmap="gray_r", vmin=0, vmax=views.window, origin="lower", aspect=sz / sx,
              interpolation="bilinear")
    body_columns = np.nonzero((mip > 0.3).any(axis=0))[0]
    if body_columns.size:
        margin = 15.0 / sx
        ax.set_xlim(max(body_columns.min() - margin, -0.5), min(body_columns.max() + margin, mip.shape[1] - 0.5))
    ax.set_ylim(-0.5, mip.shape[0] - 0.5)
    _bare(ax)
    _letters(ax, "R", "L", "S", "I", "#404040")
    loc = result.location
    if views.mask_box is not None:
        (z0, _, x0), (z1, _, x1) = views.mask_box
        pad_x, pad_z = 8.0 / sx, 8.0 / sz
        ax.add_patch(plt.Rectangle((x0 - pad_x, z0 - pad_z), x1 - x0 + 2 * pad_x, z1 - z0 + 2 * pad_z,
                                   fill=False, edgecolor=MTV_COLOUR, linewidth=1.3))
    else:
        i, _, k = views.index_of(loc.center_lps)
        ax.plot([i], [k], marker="s", markersize=10, markerfacecolor="none", markeredgecolor=MTV_COLOUR,
                markeredgewidth=1.3)
    others = other_candidates(result)
    points = []
    for cand in others:
        i, _, k = views.index_of(cand["center_lps"])
        ax.plot([i], [k], marker="o", markersize=6, markerfacecolor="none", markeredgecolor=CANDIDATE_COLOUR,
                markeredgewidth=1.0)
        if cand.get("rank") is not None:
            points.append(((i, k), str(cand["rank"])))
    _rank_labels(ax, points)
    ax.set_title(f"Coronal MIP (SUV 0–{views.window:g})", fontsize=8, pad=3)
    return len(others)


LABEL_OFFSETS = [(dx, dy) for r in (5.0, 9.0, 14.0, 20.0, 27.0)
                 for dx, dy in ((r, 0.0), (r, r * 0.6), (r, -r * 0.6), (-r, 0.0), (-r, r * 0.6), (-r, -r * 0.6),
                                (0.0, r), (0.0, -r))]                 # points from the marker, near first


def _rank_labels(ax, points: list[tuple[tuple[float, float], str]]) -> None:
    """Candidate ranks beside their markers: each label takes the nearest offset where it lies inside
    the view and clear of the other labels, the markers and the orientation letters (with a point
    to spare); a label set apart gets a thin leader line."""
    if not points:
        return
    fig = ax.figure
    ax.apply_aspect()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    scale = fig.dpi / 72.0                                          # display pixels per point
    marker_r, pad = 3.5 * scale, 1.0 * scale
    markers = [ax.transData.transform(xy) for xy, _ in points]
    taken: list[tuple[float, float, float, float]] = [(x - marker_r, y - marker_r, x + marker_r, y + marker_r)
                                                      for x, y in markers]
    for letter in ax.texts:                                         # R, L, S, I
        box = letter.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    for ((xy, label), (mx, my)) in zip(points, markers):
        probe = ax.text(0, 0, label, fontsize=SMALL)
        box = probe.get_window_extent(renderer)
        probe.remove()
        w, h = box.width, box.height
        best, best_cost, best_rect = (5.0, 0.0), None, (0.0, 0.0, 0.0, 0.0)
        for dx, dy in LABEL_OFFSETS:
            cx, cy = mx + dx * scale, my + dy * scale
            x0 = cx if dx > 0 else (cx - w if dx < 0 else cx - w / 2)
            y0 = cy - h / 2
            rect = (x0, y0, x0 + w, y0 + h)
            outside = (rect[0] < frame.x0 + 1 or rect[2] > frame.x1 - 1
                       or rect[1] < frame.y0 + 1 or rect[3] > frame.y1 - 1)
            overlaps = sum(1 for t in taken if rect[0] - pad < t[2] and t[0] < rect[2] + pad
                           and rect[1] - pad < t[3] and t[1] < rect[3] + pad)
            cost = (1000 if outside else 0) + 100 * overlaps
            if best_cost is None or cost < best_cost:
                best, best_cost, best_rect = (dx, dy), cost, rect
            if cost == 0:
                break
        dx, dy = best
        taken.append(best_rect)
        far = abs(dx) > 9.0 or abs(dy) > 9.0
        ax.annotate(label, xy, xytext=(dx, dy), textcoords="offset points", fontsize=SMALL, color=CANDIDATE_COLOUR,
                    ha="left" if dx > 0 else ("right" if dx < 0 else "center"), va="center", annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", color=CANDIDATE_COLOUR, linewidth=0.5, shrinkA=1, shrinkB=3)
                    if far else None)


def other_candidates(result: AnalysisResult) -> list[dict]:
    """Candidates other than the analysed lesion (farther than 15 mm from its centre)."""
    centre = np.asarray(result.location.center_lps, dtype=float)
    out = []
    for cand in result.location.candidates or []:
        try:
            where = np.asarray(cand["center_lps"], dtype=float)
        except (KeyError, TypeError, ValueError):
            continue
        if where.shape == (3,) and np.linalg.norm(where - centre) > SAME_LESION_MM:
            out.append(cand)
    return out


def scale_resolution(name: str, result: AnalysisResult) -> str:
    """Voxel size of a scale's feature map, e.g. '8 mm', from the explanation or the model card."""
    info = (result.explanation or {}).get("scales")
    if isinstance(info, dict) and isinstance(info.get(name), dict):
        for key in ("voxel_mm", "spacing_mm", "resolution_mm"):
            value = info[name].get(key)
            if value is not None:
                value = value[0] if isinstance(value, (list, tuple)) else value
                return f"{float(value):g} mm"
    factor = SCALE_DOWNSAMPLING.get(name)
    if factor is None:
        return ""
    spacing = ((result.model or {}).get("preprocessing") or {}).get("spacing_mm")
    if spacing:
        return f"{float(min(spacing)) * factor:g} mm"
    return "full" if factor == 1 else f"1/{factor}"


def draw_heatmap(ax, views: Views, name: str, title: str) -> None:
    """The axial PET slice through the lesion's hottest voxel (grey) with the scale's heatmap fused
    over it, centred on the network's field (a dashed square) where it is known. A map without any
    gradient, or without heat in this slice, says so on the panel."""
    plane, contour, origin, aspect, centre, voxel, letters = _plane(views, "axial", views.suv)
    volume = views.heatmaps[name]
    heat = volume[views.peak[0]]
    ax.set_facecolor("black")
    ax.imshow(plane, cmap="gray", vmin=0, vmax=views.window, origin=origin, aspect=aspect,
              interpolation="bilinear")
    rgba = plt.get_cmap(HEAT_CMAP)(heat)
    rgba[..., 3] = 0.75 * np.clip(heat / 0.25, 0.0, 1.0)
    ax.imshow(rgba, origin=origin, aspect=aspect, interpolation="bilinear")
    if contour.any():
        ax.contour(contour.astype(float), levels=[0.5], colors=["white"], linewidths=0.7)
    if views.net_field_center is not None:
        i, j, _ = views.net_field_center
        centre = (i, j)
        if views.net_field_mm is not None:
            hx, hy = views.net_field_mm[0] / 2.0 / voxel[0], views.net_field_mm[1] / 2.0 / voxel[1]
            ax.add_patch(plt.Rectangle((i - hx, j - hy), 2 * hx, 2 * hy, fill=False, edgecolor="#dddddd",
                                       linestyle="--", linewidth=0.6))
    _zoom(ax, centre, voxel, views.heat_field(), origin)
    _bare(ax)
    note = NO_GRADIENT if not np.any(volume) else (NO_HEAT_HERE if not np.any(heat) else "")
    if note:
        first, rest = note.split(" ", 2)[:2], note.split(" ", 2)[2]
        ax.text(0.5, 0.5, " ".join(first) + "\n" + rest, transform=ax.transAxes, ha="center", va="center",
                fontsize=SMALL - 0.5, color="white", linespacing=1.2,
                bbox=dict(boxstyle="round,pad=0.25", facecolor="black", edgecolor="none", alpha=0.6))
    _fitted_title(ax, title, SMALL + 0.5)


def _fitted_title(ax, title: str, size: float) -> None:
    """The panel's title at ``size`` pt, smaller where it would be wider than the panel."""
    label = ax.set_title(title, fontsize=size, pad=2)
    renderer = ax.figure.canvas.get_renderer()
    wide, room = label.get_window_extent(renderer).width, 0.98 * ax.get_window_extent(renderer).width
    if wide > room > 0:
        label.set_fontsize(size * room / wide)


def heat_colourbar(cax, orientation: str = "vertical") -> None:
    mappable = plt.cm.ScalarMappable(cmap=HEAT_CMAP, norm=matplotlib.colors.Normalize(0, 1))
    bar = plt.colorbar(mappable, cax=cax, orientation=orientation, ticks=[0, 0.5, 1])
    bar.ax.tick_params(labelsize=SMALL, length=2)
    bar.set_label("Grad-CAM", fontsize=SMALL)


# --- stand-alone figures for the HTML report ---

def mip_figure(views: Views, result: AnalysisResult) -> plt.Figure:
    """The coronal MIP alone, sized for a narrow column."""
    fig = plt.figure(figsize=(2.2, 4.6), dpi=160)
    ax = fig.add_axes([0.01, 0.01, 0.98, 0.98])
    ax.set_anchor("N")                  # before drawing: the rank labels are placed in the final frame
    draw_mip(ax, views, result)
    ax.set_title("")
    return fig


def slices_figure(views: Views) -> plt.Figure:
    """Axial, coronal and sagittal slices through the lesion's hottest voxel in one row."""
    fig = plt.figure(figsize=(5.6, 2.0), dpi=160)
    grid = fig.add_gridspec(1, 3, wspace=0.05, left=0.005, right=0.995, bottom=0.01, top=0.89)
    for n, which in enumerate(("axial", "coronal", "sagittal")):
        draw_slice(fig.add_subplot(grid[0, n]), views, which, which.capitalize())
    return fig


def gradcam_figure(views: Views, result: AnalysisResult) -> plt.Figure:
    """One heatmap panel per scale: encoder scales on the first row, decoder scales on the second."""
    names = list(views.heatmaps)
    rows = [[n for n in names if not n.startswith("dec")], [n for n in names if n.startswith("dec")]]
    rows = [r for r in rows if r]
    columns = max(len(r) for r in rows)
    fig = plt.figure(figsize=(1.42 * columns + 0.7, 1.62 * len(rows)), dpi=160)
    grid = fig.add_gridspec(len(rows), columns + 1, width_ratios=[1.0] * columns + [0.08],
                            wspace=0.06, hspace=0.18, left=0.01, right=0.93, bottom=0.02, top=0.92)
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            draw_heatmap(fig.add_subplot(grid[r, c]), views, name,
                         f"{name} · {scale_resolution(name, result)}".rstrip(" ·"))
    heat_colourbar(fig.add_subplot(grid[:, columns]))
    return fig


def png_base64(fig: plt.Figure) -> str:
    """The figure as a base64 PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white", pil_kwargs={"compress_level": 3})   # same pixels, faster
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
