"""Metrics as a registry: per-item functions with a direction and a display precision.

A :class:`Metric` turns ``(estimates, targets)`` of ``n`` test items into ``n`` per-item
values (NaN where an item cannot be scored) and summarises them into the leaderboard value.
Suites declare the names of the metrics they score (:attr:`benchmark.suites.base.Suite.metrics`);
the shared scoring loop (:mod:`benchmark.evaluation.scoring`) computes every declared metric, and the
markdown columns are generated from the same declaration. A new metric is one
:func:`register_metric` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def psnr(estimates: np.ndarray, targets: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per item (``inf`` for a perfect estimate)."""
    errors = mse(estimates, targets)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / errors)


SI_SDR_FLOOR_DB = -50.0
"""Lowest SI-SDR a test item can score, in dB: an empty (constant) estimate scores it, and so
does any estimate below it, so an output that is not there never ranks above a real one."""


def si_sdr(estimates: np.ndarray, targets: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale-invariant signal-to-distortion ratio in dB per item (Le Roux et al., 2019).

    Both signals are made zero-mean; the target is scaled by the projection of the estimate
    on it, ``alpha = <e, t> / <t, t>``, and ``SI-SDR = 10 log10(|alpha t|^2 / |e - alpha t|^2)``.
    Values are bounded below by :data:`SI_SDR_FLOOR_DB`, which is also the score of a constant
    (empty) estimate; NaN where the target is constant (no scale can be fitted).
    """
    e = np.asarray(estimates, dtype=np.float64).reshape(len(estimates), -1)
    t = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    e = e - e.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    energy = (t**2).sum(axis=1)
    alpha = np.divide((e * t).sum(axis=1), energy, out=np.full(len(t), np.nan), where=energy > eps)
    projection = alpha[:, None] * t
    signal = (projection**2).sum(axis=1)
    noise = ((e - projection) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = 10.0 * np.log10((signal + eps) / (noise + eps))
    empty = (e**2).sum(axis=1) <= eps
    values = np.where(empty & np.isfinite(alpha), SI_SDR_FLOOR_DB, values)
    return np.where(np.isnan(values), values, np.maximum(values, SI_SDR_FLOOR_DB))


def si_sdr_improvement(estimates: np.ndarray, references: np.ndarray) -> np.ndarray:
    """SI-SDR improvement in dB per item: SI-SDR(estimate, target) - SI-SDR(mixture, target).

    ``references`` is ``(n, 2, *shape)``: the target, then the mixture. Suites compute the same
    difference from the stored per-item SI-SDR values (:func:`benchmark.evaluation.scoring.si_sdri_rows`).
    """
    references = np.asarray(references)
    return si_sdr(estimates, references[:, 0]) - si_sdr(references[:, 1], references[:, 0])


def abs_rate_error(estimated_rates: np.ndarray, reference_rates: np.ndarray) -> np.ndarray:
    """``|estimate - reference|`` per segment in breaths/min; NaN where either has no rate."""
    estimate = np.asarray(estimated_rates, dtype=np.float64)
    reference = np.asarray(reference_rates, dtype=np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: estimate {estimate.shape}, reference {reference.shape}")
    return np.abs(estimate - reference)


def filled_rate_error(differences: np.ndarray, reference_rates: np.ndarray, fill_rate: float) -> np.ndarray:
    """``|estimate - reference|`` per segment with every abstention scored as ``fill_rate``.

    Parameters
    ----------
    differences : np.ndarray
        ``estimate - reference`` per segment (:func:`rate_difference`), NaN where either has no rate.
    reference_rates : np.ndarray
        The reference's rate per segment, NaN where it has none.
    fill_rate : float
        The rate an abstention is scored as (the training median: the constant baseline).

    Returns
    -------
    np.ndarray
        ``|difference|`` where the estimate has a rate, ``|fill_rate - reference|`` where only the
        reference has one, NaN where the reference has none: a method that abstains is scored on
        every segment with a reference, as if it had said the constant rate there.
    """
    difference = np.asarray(differences, dtype=np.float64)
    reference = np.asarray(reference_rates, dtype=np.float64)
    if difference.shape != reference.shape:
        raise ValueError(f"shapes differ: differences {difference.shape}, reference {reference.shape}")
    abstained = ~np.isfinite(difference) & np.isfinite(reference)
    return np.where(abstained, np.abs(fill_rate - reference), np.abs(difference))


def rate_difference(estimated_rates: np.ndarray, reference_rates: np.ndarray) -> np.ndarray:
    """``estimate - reference`` per segment in breaths/min (Bland-Altman differences); NaN where either has no rate."""
    estimate = np.asarray(estimated_rates, dtype=np.float64)
    reference = np.asarray(reference_rates, dtype=np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: estimate {estimate.shape}, reference {reference.shape}")
    return estimate - reference


def squared_rate_error(estimated_rates: np.ndarray, reference_rates: np.ndarray) -> np.ndarray:
    """``(estimate - reference)^2`` per segment; its mean's square root is the RMSE."""
    return rate_difference(estimated_rates, reference_rates) ** 2


def within_2_bpm(estimated_rates: np.ndarray, reference_rates: np.ndarray) -> np.ndarray:
    """100 where ``|estimate - reference| <= 2`` breaths/min, 0 where not, NaN where either has no rate."""
    error = abs_rate_error(estimated_rates, reference_rates)
    return np.where(np.isfinite(error), 100.0 * (error <= 2.0), np.nan)


def has_rate(estimated_rates: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """1.0 where a segment got a rate, 0.0 where not (coverage per segment)."""
    return np.isfinite(np.asarray(estimated_rates, dtype=np.float64)).astype(np.float64)


def abs_correlation(estimates: np.ndarray, targets: np.ndarray, crop: int = 512) -> np.ndarray:
    """``|Pearson r|`` per row after cropping ``crop`` samples per edge; NaN where undefined.

    The absolute value, because a blind source's sign is not identifiable.
    """
    e = np.asarray(estimates, dtype=np.float64)[:, crop:-crop]
    t = np.asarray(targets, dtype=np.float64)[:, crop:-crop]
    e = e - e.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    denominator = np.sqrt((e**2).sum(axis=1) * (t**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs((e * t).sum(axis=1) / denominator)


# ------------------------------------------------------------------- registry
def finite_mean(values: np.ndarray) -> tuple[float, int]:
    """Mean over the finite items and their count; ``(nan, 0)`` when there is none."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = int(finite.sum())
    return (float(np.mean(values[finite])), count) if count else (float("nan"), 0)


def all_mean(values: np.ndarray) -> tuple[float, int]:
    """Mean over every item (for 0/1 indicators such as coverage); ``(nan, 0)`` when empty."""
    values = np.asarray(values, dtype=np.float64)
    return (float(values.mean()), int(values.size)) if values.size else (float("nan"), 0)


def root_finite_mean(values: np.ndarray) -> tuple[float, int]:
    """Square root of the finite-item mean (RMSE from squared errors)."""
    value, count = finite_mean(values)
    return float(np.sqrt(value)) if count else value, count


def limit_of_agreement(sign: float) -> Callable[[np.ndarray], tuple[float, int]]:
    """Bland-Altman limit: mean difference ``+ sign * 1.96`` standard deviations (ddof 1)."""

    def summary(values: np.ndarray) -> tuple[float, int]:
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size < 2:
            return float("nan"), int(finite.size)
        return float(finite.mean() + sign * 1.96 * finite.std(ddof=1)), int(finite.size)

    summary.__name__ = f"limit_of_agreement_{'upper' if sign > 0 else 'lower'}"
    return summary


def nan_mean(values: np.ndarray) -> tuple[float, int]:
    """``np.nanmean`` and the count of finite items; ``(nan, 0)`` when there is none."""
    values = np.asarray(values, dtype=np.float64)
    count = int(np.isfinite(values).sum())
    return (float(np.nanmean(values)), count) if count else (float("nan"), 0)


@dataclass(frozen=True)
class Metric:
    """A named metric.

    Parameters
    ----------
    name : str
        Registry name, used in score rows and ``leaderboard.csv`` (``metric`` column).
    per_item : callable
        ``(estimates, targets) -> (n,)`` values, NaN where an item cannot be scored.
    higher_is_better : bool
        Direction (the column title gets ↑ or ↓).
    digits : int
        Decimals shown in markdown tables.
    label : str
        Short column label (``"MSE"``).
    summary : callable
        ``values -> (value, n)``: how per-item values become the leaderboard value.
    unit : str
        Unit of the values, for documentation.
    per_group_of : str
        For a per-recording metric: the per-item metric whose values, averaged per group of
        items (recording) over the finite ones, give this metric's per-group values (their
        absolute value). Reports derive it from the stored per-item values
        (:func:`benchmark.evaluation.scoring.derive_per_group`), so every cell is scored by the same code.
    interval : str
        How a bootstrap interval is formed: ``"mean"`` (the summary is a mean over items),
        ``"root_mean"`` (the square root of one, RMSE), or ``""`` (no interval: a spread-based
        summary such as a limit of agreement).
    """

    name: str
    per_item: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_better: bool
    digits: int
    label: str
    summary: Callable[[np.ndarray], tuple[float, int]] = finite_mean
    unit: str = ""
    interval: str = "mean"
    best_at_zero: bool = False
    per_group_of: str = ""

    @property
    def arrow(self) -> str:
        """``↑`` when higher is better, ``↓`` when lower is, ``→0`` for a bias-like metric."""
        if self.best_at_zero:
            return "→0"
        return "↑" if self.higher_is_better else "↓"

    def score(self, estimates: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Per-item values, their summary value and the number of items it used."""
        values = np.asarray(self.per_item(estimates, targets), dtype=np.float64)
        value, count = self.summary(values)
        return values, value, count


_METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (a second metric with the same name is an error)."""
    existing = _METRICS.get(metric.name)
    if existing is not None and existing != metric:
        raise ValueError(f"metric name '{metric.name}' is already registered")
    _METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; ``KeyError`` naming the known metrics otherwise."""
    if name not in _METRICS:
        raise KeyError(f"unknown metric '{name}' (registered: {', '.join(sorted(_METRICS))})")
    return _METRICS[name]


def metrics() -> dict[str, Metric]:
    """Every registered metric by name."""
    return dict(_METRICS)


register_metric(Metric("mse", mse, False, 5, "MSE"))
register_metric(Metric("ssim", ssim, True, 4, "SSIM"))
register_metric(Metric("psnr", psnr, True, 2, "PSNR", unit="dB"))
register_metric(Metric("si_sdr", si_sdr, True, 2, "SI-SDR", unit="dB"))
register_metric(Metric("si_sdri", si_sdr_improvement, True, 2, "SI-SDRi", unit="dB"))
register_metric(Metric("mae_bpm", abs_rate_error, False, 2, "MAE", unit="breaths/min"))
register_metric(Metric("bias_bpm", rate_difference, False, 2, "Bias", unit="breaths/min", best_at_zero=True))
register_metric(Metric("loa_low_bpm", rate_difference, True, 2, "LoA low", summary=limit_of_agreement(-1.0), unit="breaths/min", interval="", best_at_zero=True))
register_metric(Metric("loa_high_bpm", rate_difference, False, 2, "LoA high", summary=limit_of_agreement(1.0), unit="breaths/min", interval="", best_at_zero=True))
register_metric(Metric("rmse_bpm", squared_rate_error, False, 2, "RMSE", summary=root_finite_mean, unit="breaths/min", interval="root_mean"))
register_metric(Metric("within2_pct", within_2_bpm, True, 1, "Within 2 bpm (%)", unit="%"))
register_metric(Metric("mae_bpm_recording", abs_rate_error, False, 2, "MAE per recording", unit="breaths/min",
                       per_group_of="bias_bpm"))
register_metric(Metric("mae_bpm_filled", abs_rate_error, False, 2, "MAE, abstentions filled", unit="breaths/min"))
register_metric(Metric("coverage", has_rate, True, 3, "Coverage", summary=all_mean))
register_metric(Metric("waveform_corr", abs_correlation, True, 3, "Corr. (abs r)", summary=nan_mean))
