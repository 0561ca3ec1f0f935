"""The PET scanner model: Gaussian point-spread blur and signal-dependent, spatially correlated noise.

The noise standard deviation follows the count statistics of PET, sd = cov * sqrt(signal * ref),
so the coefficient of variation in the liver (signal = ref) equals ``noise_cov``. The noise grain
has a fixed physical correlation length, as in a reconstructed and resampled PET, so the same
patient looks alike at 4 x 4 x 3 mm and at 2 mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
TRUNCATE = 3.0


@dataclass
class Scanner:
    """Resolution and noise of one (synthetic) scan.

    Attributes:
        fwhm_mm: full width at half maximum of the point-spread function (mm).
        noise_cov: coefficient of variation of the noise in the liver.
        noise_ref_suv: SUV at which the CoV equals ``noise_cov`` (the patient's liver uptake).
        grain_fwhm_mm: FWHM of the noise correlation (mm).
    """

    fwhm_mm: float
    noise_cov: float
    noise_ref_suv: float
    grain_fwhm_mm: float = 4.5

    def sigma_voxels(self, fwhm_mm: float, spacing_xyz: tuple[float, float, float]
                     ) -> tuple[float, float, float]:
        """Gaussian sigma in voxels, array order (z, y, x)."""
        sigma_mm = fwhm_mm * FWHM_TO_SIGMA
        return (sigma_mm / spacing_xyz[2], sigma_mm / spacing_xyz[1], sigma_mm / spacing_xyz[0])

    def margin_voxels(self, spacing_xyz: tuple[float, float, float]) -> tuple[int, int, int]:
        """Padding (x, y, z) voxels that keeps blur and noise exact inside a sub-volume."""
        sigma = np.add(self.sigma_voxels(self.fwhm_mm, spacing_xyz),
                       self.sigma_voxels(self.grain_fwhm_mm, spacing_xyz))[::-1]
        return tuple(int(np.ceil(TRUNCATE * s)) + 1 for s in sigma)  # type: ignore[return-value]

    def blur(self, activity: np.ndarray, spacing_xyz: tuple[float, float, float]) -> np.ndarray:
        """Activity (SUV, float32 (z, y, x)) seen through the point-spread function."""
        return ndimage.gaussian_filter(activity, self.sigma_voxels(self.fwhm_mm, spacing_xyz),
                                       mode="nearest", truncate=TRUNCATE)

    def add_noise(self, image: np.ndarray, spacing_xyz: tuple[float, float, float],
                  rng: np.random.Generator) -> np.ndarray:
        """Blurred image (SUV) plus correlated noise, clipped at 0; float32, same shape."""
        sigma = self.sigma_voxels(self.grain_fwhm_mm, spacing_xyz)
        white = rng.standard_normal(image.shape, dtype=np.float32)
        grain = ndimage.gaussian_filter(white, sigma, mode="wrap", truncate=TRUNCATE)
        grain *= np.float32(1.0 / np.sqrt(_kernel_energy(sigma)))
        sd = np.sqrt(np.maximum(image, 0.0) * np.float32(self.noise_ref_suv))
        sd *= np.float32(self.noise_cov)
        noisy = image + sd * grain
        return np.maximum(noisy, 0.0, out=noisy)

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def _kernel_energy(sigma_zyx: tuple[float, float, float]) -> float:
    """Variance of unit white noise after ``gaussian_filter`` with these sigmas (sum of squared
    kernel weights, one factor per axis)."""
    energy = 1.0
    for s in sigma_zyx:
        radius = int(TRUNCATE * s + 0.5)
        impulse = np.zeros(2 * radius + 1)
        impulse[radius] = 1.0
        kernel = ndimage.gaussian_filter1d(impulse, s, mode="constant", truncate=TRUNCATE)
        energy *= float(np.sum(kernel ** 2))
    return energy


def sample_scanner(rng: np.random.Generator, liver_suv: float,
                   fwhm_range_mm: tuple[float, float] = (6.0, 7.0),
                   grain_range_mm: Optional[tuple[float, float]] = None,
                   noise_range: tuple[float, float] = (0.10, 0.15)) -> Scanner:
    """A scan with FWHM in ``fwhm_range_mm`` (default 6-7 mm), a liver CoV in ``noise_range``
    (default 10-15 %) and a noise grain FWHM drawn from ``grain_range_mm`` (default: fixed
    4.5 mm)."""
    scanner = Scanner(fwhm_mm=float(rng.uniform(*fwhm_range_mm)),
                      noise_cov=float(rng.uniform(*noise_range)), noise_ref_suv=float(liver_suv))
    if grain_range_mm is not None:
        scanner.grain_fwhm_mm = float(rng.uniform(*grain_range_mm))
    return scanner
