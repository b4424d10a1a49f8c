"""Per-sample image metrics: MSE and SSIM (scikit-image)."""

from __future__ import annotations

import numpy as np
from joblib import Parallel, cpu_count, delayed
from skimage.metrics import structural_similarity

SSIM_SETTINGS: dict[str, object] = {
    "implementation": "skimage.metrics.structural_similarity",
    "data_range": 1.0,
    "win_size": 7,
    "gaussian_weights": False,
    "K1": 0.01,
    "K2": 0.03,
    "use_sample_covariance": True,
}
"""Settings of every SSIM in the benchmark (recorded in each manifest)."""


def mse(estimates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean squared error per sample: ``(n, *shape)`` pairs -> ``(n,)``."""
    diff = np.asarray(estimates, dtype=np.float64) - np.asarray(targets, dtype=np.float64)
    return (diff.reshape(diff.shape[0], -1) ** 2).mean(axis=1)


def _ssim_rows(estimates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    options = {k: v for k, v in SSIM_SETTINGS.items() if k != "implementation"}
    return np.array(
        [
            structural_similarity(e.astype(np.float64), t.astype(np.float64), **options)
            for e, t in zip(estimates, targets, strict=True)
        ]
    )


PARALLEL_SSIM_FROM = 4096


def ssim(estimates: np.ndarray, targets: np.ndarray, n_jobs: int | None = None, chunk: int = 512) -> np.ndarray:
    """Structural similarity per image pair, ``(n, H, W)`` -> ``(n,)``, settings :data:`SSIM_SETTINGS`.

    ``n_jobs=None`` uses one process below :data:`PARALLEL_SSIM_FROM` images and every core
    above (30,000 64x64 pairs take about 7 s on one core). The values do not depend on it.
    """
    estimates = np.asarray(estimates)
    targets = np.asarray(targets)
    if estimates.shape != targets.shape or estimates.ndim != 3:
        raise ValueError(f"ssim needs two (n, H, W) arrays, got {estimates.shape} and {targets.shape}")
    if n_jobs is None:
        n_jobs = 1 if len(estimates) < PARALLEL_SSIM_FROM else max(1, cpu_count())
    starts = range(0, len(estimates), chunk)
    if n_jobs == 1 or len(estimates) <= chunk:
        parts = [_ssim_rows(estimates[s : s + chunk], targets[s : s + chunk]) for s in starts]
    else:
        parts = Parallel(n_jobs=n_jobs)(
            delayed(_ssim_rows)(estimates[s : s + chunk], targets[s : s + chunk]) for s in starts
        )
    return np.concatenate(parts) if parts else np.zeros(0)
