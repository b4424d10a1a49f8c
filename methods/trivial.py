"""Trivial estimates: what doing no separation scores, beside every method of every table.

A number means something only next to what an estimate that separates nothing scores on the
same data and metric. These methods are ``kind = "trivial"``: tables show them in a block of
their own, and a method is said to *separate* a source only where it beats the best of them
(:mod:`benchmark.evaluation.verdicts`). The mixture itself (:mod:`methods.mixture`) is one of them.

* ``zeros``: an all-zero estimate of every source (on dark-background images it scores a
  high SSIM; its SI-SDR sits at the documented floor);
* ``half_mixture``: the mixture divided by the number of sources, for every source (the
  estimate a method converges to when it splits the mixture evenly);
* ``median_rate``: for rate-scored suites (respiration), a sine at the median breathing rate
  of the training references, the same for every segment: a constant rate. It reads the
  training references, so it is supervised, like the supervised rows.
"""

from __future__ import annotations

import numpy as np

from methods.base import Method, Split, register


@register
class ScaledMixture(Method):
    """The mixture times ``scale`` for every source; ``scale=None`` divides by the number of sources."""

    name = "half_mixture"
    description = "Trivial: the mixture / K (K sources) as the estimate of every source"
    kind = "trivial"
    learns = False
    target_kinds = ("waveform",)

    def __init__(self, scale: float | None = None) -> None:
        self.scale = scale

    def fit(self, train: Split, valid: Split | None = None) -> ScaledMixture:
        self.n_outputs_ = len(train.source_names)
        self.scale_ = 1.0 / self.n_outputs_ if self.scale is None else float(self.scale)
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        scaled = np.asarray(mixtures, dtype=np.float32) * np.float32(self.scale_)
        return np.repeat(scaled[:, None], self.n_outputs_, axis=1)


@register
class ZeroEstimate(ScaledMixture):
    """An all-zero estimate of every source (the mixture times 0)."""

    name = "zeros"
    description = "Trivial: an all-zero estimate of every source"
    scale = 0.0  # fixed: not a parameter

    def __init__(self) -> None:
        pass


@register
class MedianRate(Method):
    """A sine at the median respiratory rate of the training references: one constant rate.

    Parameters
    ----------
    crop : int
        Samples cut from each edge of a training reference before its rate is read (the
        suites' own rate protocol: :func:`benchmark.evaluation.respiration.rates`).
    """

    name = "median_rate"
    description = "Trivial: a constant breathing rate, the median of the training references (uses labels)"
    kind = "trivial"
    supervised = True
    modalities = ("1d",)
    target_kinds = ("rate",)
    dependencies = ("numpy", "scipy", "neurokit2")

    def __init__(self, crop: int = 512) -> None:
        self.crop = crop

    def fit(self, train: Split, valid: Split | None = None) -> MedianRate:
        from benchmark.evaluation.respiration import rates

        if train.targets is None or train.sampling_rate is None:
            raise ValueError("median_rate needs training references and their sampling rate")
        reference = np.concatenate([np.asarray(train.targets[i : i + 256])[:, 0] for i in range(0, len(train), 256)])
        found = rates(reference, train.sampling_rate, self.crop, n_jobs=max(1, self.context.n_threads))
        found = found[np.isfinite(found)]
        if not found.size:
            raise ValueError("median_rate: no training reference has a respiratory rate")
        self.rate_bpm_ = float(np.median(found))
        self.sampling_rate_ = float(train.sampling_rate)
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        n, length = np.shape(mixtures)[0], np.shape(mixtures)[-1]
        t = np.arange(length) / self.sampling_rate_
        wave = (0.5 + 0.5 * np.sin(2 * np.pi * self.rate_bpm_ / 60.0 * t)).astype(np.float32)
        return np.broadcast_to(wave, (n, 1, length)).copy()

    def _save_state(self, directory) -> None:
        (directory / "rate.txt").write_text(f"{self.rate_bpm_!r} {self.sampling_rate_!r}\n")

    def _load_state(self, directory) -> None:
        rate, sampling_rate = (directory / "rate.txt").read_text().split()
        self.rate_bpm_, self.sampling_rate_ = float(rate), float(sampling_rate)
