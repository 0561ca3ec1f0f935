"""Figures of a PET volume: coronal MIP and orthogonal slices through a lesion with its contour.

Views follow the radiological convention: patient right on the viewer's left, head at the top,
anterior at the top of axial slices. Pixels keep the physical aspect ratio of the voxels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from MTLRadiomicsLib.pet_volume import PetVolume  # noqa: E402


def as_lps(pet: PetVolume, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray], tuple]:
    """SUV (and mask) arrays (z, y, x) re-oriented so that +x = L, +y = P, +z = S; with spacing (x, y, z)."""
    image = sitk.DICOMOrient(pet.to_sitk(), "LPS")
    suv = sitk.GetArrayFromImage(image)
    out_mask = None
    if mask is not None:
        mask_image = pet.copy_geometry_to(sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8)))
        out_mask = sitk.GetArrayFromImage(sitk.DICOMOrient(mask_image, "LPS"))
    return suv, out_mask, image.GetSpacing()


def _show(ax, plane: np.ndarray, aspect: float, vmax: float, cmap: str, title: str,
          contour: Optional[np.ndarray] = None) -> None:
    ax.imshow(plane, cmap=cmap, vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
    if contour is not None and contour.any():
        ax.contour(contour.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=1.2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def overview_figure(pet: PetVolume, mask: Optional[np.ndarray], out_png: str | Path, title: str,
                    text_lines: Sequence[str] = (), mip_vmax: float = 10.0) -> Path:
    """Write a PNG: coronal MIP (lesion box marked), axial / coronal / sagittal slices through the
    mask's SUVmax voxel (or the volume's) with the mask contour, and a text panel."""
    suv, m, (sx, sy, sz) = as_lps(pet, mask)
    if m is not None and m.any():
        masked = np.where(m > 0, suv, -np.inf)
        k, j, i = np.unravel_index(int(np.argmax(masked)), suv.shape)
    else:
        k, j, i = np.unravel_index(int(np.argmax(suv)), suv.shape)
    peak = float(suv[k, j, i])
    slice_vmax = max(peak, 1.0)

    fig = plt.figure(figsize=(11, 6.2), dpi=110)
    grid = fig.add_gridspec(2, 4, width_ratios=[1.15, 1, 1, 1.1], hspace=0.18, wspace=0.08)
    ax_mip = fig.add_subplot(grid[:, 0])
    mip = suv.max(axis=1)[::-1]                              # coronal MIP, head at the top
    _show(ax_mip, mip, sz / sx, mip_vmax, "gray_r", "Coronal MIP (SUV 0-%g)" % mip_vmax)
    if m is not None and m.any():
        zs, _, xs = np.nonzero(m)
        z0, z1 = suv.shape[0] - 1 - zs.max(), suv.shape[0] - 1 - zs.min()
        ax_mip.add_patch(plt.Rectangle((xs.min() - 3, z0 - 3), xs.max() - xs.min() + 6, z1 - z0 + 6,
                                       fill=False, edgecolor="#ff3b30", linewidth=1.5))
    panels = [
        (grid[0, 1], suv[k], None if m is None else m[k], sy / sx, "Axial"),
        (grid[0, 2], suv[:, j, :][::-1], None if m is None else m[:, j, :][::-1], sz / sx, "Coronal"),
        (grid[1, 1], suv[:, :, i][::-1], None if m is None else m[:, :, i][::-1], sz / sy, "Sagittal"),
    ]
    for cell, plane, contour, aspect, name in panels:
        _show(fig.add_subplot(cell), plane, aspect, slice_vmax, "hot", f"{name} through SUVmax", contour)
    ax_text = fig.add_subplot(grid[:, 3])
    ax_text.axis("off")
    ax_text.text(0.0, 1.0, "\n".join(text_lines), va="top", ha="left", fontsize=8.5, family="monospace",
                 transform=ax_text.transAxes)
    ax_hist = fig.add_subplot(grid[1, 2])
    body = suv[suv > 0.1]
    ax_hist.hist(np.clip(body, 0, 15), bins=75, color="#555555", log=True)
    ax_hist.set_title("SUV histogram (body)", fontsize=9)
    ax_hist.tick_params(labelsize=7)
    ax_hist.set_xlabel("SUV (g/ml)", fontsize=8)
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    out = Path(out_png)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
