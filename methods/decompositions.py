"""Classical matrix decompositions as single-channel BSS baselines (paper Appendix C.4, D.2).

The paper reports that common BSS methods -- FastICA, NMF, SparsePCA, KernelPCA --
"failed to produce any meaningful respiratory signal" (D.2) and argues that the
triangles & circles task does not suit them (C.4). These classes measure that
claim. The four scikit-learn estimators need several observed channels, and every
task here has one, so each estimator gets two single-channel adaptations, each a
separate registered method:

1. **Dataset level** (``fastica``, ``nmf``, ``sparsepca``, ``kernelpca``; triangles
   and MESA). Each training mixture (flattened image or segment) is one row of
   a data matrix, as in :mod:`methods.pca`; the estimator learns ``K`` components
   shared by the dataset. Candidate ``k`` for a mixture keeps only its ``k``-th code
   (the other codes are set to zero, as MEAE masks encodings) and maps it back to
   signal space with the estimator's ``inverse_transform``:

   * FastICA / SparsePCA (affine: ``code(x) = W (x - m)``, ``inverse(c) = A c + m``):
     candidate ``k`` is ``A_k u_k + (m - A W m) / K`` with the codes measured from
     the origin, ``u = W x``. Each component thus carries its own share of the
     mean (the projection of ``m`` on its column of ``A``) and only the part of the
     mean outside the components' span is split evenly. The candidates sum to the
     reconstruction, and in a noiseless linear model ``x = sum_k a_k s_k`` candidate
     ``k`` is exactly ``a_k s_k`` (with ``code_k A_k + m / K``, the PCA baseline's
     choice, every candidate would also carry ``1/K`` of the other sources' mean
     images; with the full mean added, all of them). FastICA runs as randomized
     PCA to ``K`` dimensions followed by FastICA: the same model as FastICA's own
     whitening (a projection onto the top-``K`` principal subspace) without its full
     SVD of features x rows.
   * NMF (no mean): ``W_k H_k``; the inputs are clipped at 0 (mixtures are in
     ``[0, 1]``).
   * KernelPCA (RBF kernel, ``fit_inverse_transform=True``): the learned pre-image
     of the code vector with only component ``k`` kept. The mean is implicit in
     the pre-image (a zero code is the training mean in feature space), so nothing
     is added. Inputs are scaled so that the median squared distance between
     training rows is 1 and ``gamma=1``: scikit-learn reuses ``gamma`` for the
     pre-image kernel on the codes, whose squared distances are at most 2, and this
     scaling keeps both kernels informative.

   Inputs of FastICA, NMF and SparsePCA are divided by their overall standard
   deviation (the first two are scale-equivariant; SparsePCA's L1 penalty
   ``alpha=1`` thereby means the same on images and on ECG). All outputs are
   scaled back. Training rows are capped by a seeded subsample of ``max_rows``
   rows, read from memory maps row by row, never loaded whole. Non-finite
   mixtures are left out of the fit and get NaN candidates.

2. **Per-signal delay embedding** (``fastica_embed``, ``nmf_embed``,
   ``sparsepca_embed``, ``kernelpca_embed``; MESA only). Single-channel ICA /
   singular-spectrum style: each segment is decomposed on its own, with no
   training beyond storing the sampling rate. The segment is resampled with
   ``scipy.signal.resample_poly`` (anti-aliasing filter) from 200 Hz to
   ``target_rate`` (default 5 Hz: a breath of 2-8 s spans 10-40 samples and heart
   rates below 150 bpm stay under the 2.5 Hz Nyquist limit); its trajectory (Hankel)
   matrix with ``window_seconds`` of lags (default 10 s -> 50 lags, two or more
   breaths; 258 rows for a one-minute segment) is decomposed into ``K`` components,
   the estimator being fitted on the rows of that one matrix. Each component's
   trajectory matrix (as above: ``A_k u_k`` plus its mean share; ``W_k H_k``; the
   pre-image) is mapped back to a 1-D signal by anti-diagonal averaging and
   resampled (``resample_poly``) to the original rate and length. A segment's
   component order is arbitrary (FastICA, NMF) while the suite picks one candidate
   index for all segments, so each segment's candidates are ordered by variance,
   largest first, as SSA orders by eigenvalue. NMF sees the trajectory matrix minus
   its minimum; that offset is returned as ``offset / K`` per candidate. A segment
   that is flat or non-finite, or on which the estimator fails, gives NaN
   candidates for that segment instead of an exception. ``n_jobs > 1`` spreads
   segments over joblib workers.

The number of usable components is limited by the data: at most the number of
rows (rows - 1 for the estimators that remove a mean) and of features; with
fewer rows than ``n_components`` the methods return fewer candidates. scikit-learn
``ConvergenceWarning`` warnings are silenced: capped iterations are part of the budget.

This module holds the registered methods and their profiles; the estimators are built,
fitted and read out in :mod:`methods.decomposition_tools.families`, the delay embedding is
in :mod:`methods.decomposition_tools.embedding`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from methods.base import Method, Split, modality_profiles, register
from methods.decomposition_tools.embedding import embed_batch, rate_ratio
from methods.decomposition_tools.families import (
    FAMILIES,
    Family,
    component_parts,
    fit_estimator,
    input_scale,
    usable_components,
)

#: Rows handed to ``separate``'s decomposition at once (bounds float64 temporaries).
_CHUNK = 256


# --------------------------------------------------------------------------- profiles
# family -> (suite, profile) -> parameters on top of the defaults. "quick" fits the
# 2-core CPU budget (about a minute per method and suite input: 6,000 training
# images + 2,000 to separate; ~200 training + ~300 segments to separate per MESA
# input); "paper" allows larger caps; "tiny" is for the contract tests.
# triangles: K = 3 (the MEAE setting, the default); mesa: K = 6 (quick) or 8 (paper).
DATASET_PROFILES: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "fastica": {
        ("triangles", "quick"): dict(max_rows=6000, max_iter=200),
        ("triangles", "paper"): dict(max_rows=50_000, max_iter=400),
        ("triangles", "tiny"): dict(max_rows=200, max_iter=50),
        ("mesa", "quick"): dict(n_components=6, max_rows=2000, max_iter=200),
        ("mesa", "paper"): dict(n_components=8, max_rows=10_000, max_iter=400),
        ("mesa", "tiny"): dict(n_components=6, max_rows=100, max_iter=50),
    },
    "nmf": {
        ("triangles", "quick"): dict(max_rows=6000, max_iter=200),
        ("triangles", "paper"): dict(max_rows=30_000, max_iter=400),
        ("triangles", "tiny"): dict(max_rows=200, max_iter=30),
        ("mesa", "quick"): dict(n_components=6, max_rows=2000, max_iter=200),
        ("mesa", "paper"): dict(n_components=8, max_rows=10_000, max_iter=400),
        ("mesa", "tiny"): dict(n_components=6, max_rows=100, max_iter=30),
    },
    "sparsepca": {
        ("triangles", "quick"): dict(max_rows=1000, max_iter=20),
        ("triangles", "paper"): dict(max_rows=4000, max_iter=50),
        ("triangles", "tiny"): dict(max_rows=100, max_iter=3),
        ("mesa", "quick"): dict(n_components=6, max_rows=300, max_iter=25),
        ("mesa", "paper"): dict(n_components=8, max_rows=1000, max_iter=30),
        ("mesa", "tiny"): dict(n_components=6, max_rows=50, max_iter=3),
    },
    "kernelpca": {
        ("triangles", "quick"): dict(max_rows=2500),
        ("triangles", "paper"): dict(max_rows=6000),
        ("triangles", "tiny"): dict(max_rows=100),
        ("mesa", "quick"): dict(n_components=6, max_rows=1500),
        ("mesa", "paper"): dict(n_components=8, max_rows=5000),
        ("mesa", "tiny"): dict(n_components=6, max_rows=100),
    },
}
# Embedding variants: per segment, so the caps are per segment (iterations).
EMBED_PROFILES: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "fastica": {
        ("mesa", "quick"): dict(n_components=6, max_iter=200),
        ("mesa", "paper"): dict(n_components=8, max_iter=400),
        ("mesa", "tiny"): dict(n_components=4, max_iter=50),
    },
    "nmf": {
        ("mesa", "quick"): dict(n_components=6, max_iter=200),
        ("mesa", "paper"): dict(n_components=8, max_iter=400),
        ("mesa", "tiny"): dict(n_components=4, max_iter=30),
    },
    "sparsepca": {
        ("mesa", "quick"): dict(n_components=6, max_iter=20),
        ("mesa", "paper"): dict(n_components=8, max_iter=30),
        ("mesa", "tiny"): dict(n_components=4, max_iter=3),
    },
    "kernelpca": {
        ("mesa", "quick"): dict(n_components=6),
        ("mesa", "paper"): dict(n_components=8),
        ("mesa", "tiny"): dict(n_components=4),
    },
}

# Suites without their own entry: the triangles settings (dataset level, K = 3) and the
# MESA settings for the embedding variants (1-D only).
for _family, _entries in DATASET_PROFILES.items():
    _entries.update(modality_profiles(_entries["triangles", "tiny"], _entries["triangles", "quick"]))
for _family, _entries in EMBED_PROFILES.items():
    _entries.update(modality_profiles(_entries["mesa", "tiny"], _entries["mesa", "quick"], ("1d",)))
# MESA quick decomposes 2 x 1,200 test segments one by one: 8 iterations keep SparsePCA's share
# of the 20-minute budget near 80 s (20 took 197 s); other 1-D suites keep 20.
EMBED_PROFILES["sparsepca"]["mesa", "quick"] = dict(n_components=6, max_iter=8)


# --------------------------------------------------------------------------- methods
class _DatasetDecomposition(Method):
    """Dataset-level decomposition: mixtures are rows, one candidate per component."""

    family: ClassVar[str] = ""

    def __init__(
        self, n_components: int = 3, max_rows: int | None = None, max_iter: int | None = None,
        seed: int = 0,
    ):
        self.n_components = n_components
        self.max_rows = max_rows
        self.max_iter = max_iter
        self.seed = seed

    @property
    def _family(self) -> Family:
        return FAMILIES[self.family]

    def _rows(self, mixtures: np.ndarray) -> np.ndarray:
        rows = np.asarray(mixtures, dtype=np.float64).reshape(len(mixtures), -1)
        return np.maximum(rows, 0.0) if self._family.nonnegative else rows

    def fit(self, train: Split, valid: Split | None = None) -> _DatasetDecomposition:
        cap = self.max_rows if self.max_rows is not None else self._family.max_rows
        index = np.arange(len(train))
        if len(index) > cap:
            rng = np.random.default_rng(self.seed)
            index = np.sort(rng.choice(len(index), int(cap), replace=False))
        rows = self._rows(train.mixtures[index])
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        if len(rows) < 2:
            raise ValueError(f"{self.name} needs at least 2 finite training mixtures, got {len(rows)}")
        self.scale_ = input_scale(self._family, rows)
        self.estimator_ = fit_estimator(self._family, rows * self.scale_, self.n_components, self.max_iter, self.seed)
        self.n_candidates_ = usable_components(self._family, self.n_components, *rows.shape)
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        n, shape = len(mixtures), tuple(mixtures.shape[1:])
        out = np.full((n, self.n_candidates_, int(np.prod(shape))), np.nan, dtype=np.float32)
        for first in range(0, n, _CHUNK):
            rows = self._rows(mixtures[first : first + _CHUNK])
            finite = np.flatnonzero(np.all(np.isfinite(rows), axis=1))  # others stay NaN
            if len(finite):
                parts = component_parts(self._family, self.estimator_, rows[finite] * self.scale_)
                out[first + finite] = parts / self.scale_
        return out.reshape(n, self.n_candidates_, *shape)


class _EmbeddingDecomposition(Method):
    """Per-segment decomposition of the delay-embedded (Hankel) signal."""

    family: ClassVar[str] = ""
    modalities = ("1d",)
    learns = False  # each segment is decomposed on its own
    param_constraints = {"target_rate": ">0", "window_seconds": ">0"}

    def __init__(
        self, n_components: int = 6, max_iter: int | None = None, seed: int = 0,
        target_rate: float = 5.0, window_seconds: float = 10.0, n_jobs: int = 1,
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.seed = seed
        self.target_rate = target_rate
        self.window_seconds = window_seconds
        self.n_jobs = n_jobs

    def fit(self, train: Split, valid: Split | None = None) -> _EmbeddingDecomposition:
        if train.modality != "1d":
            raise ValueError(f"{self.name} separates 1-D segments, got shape {train.mixtures.shape}")
        if not train.sampling_rate:
            raise ValueError(f"{self.name} needs the sampling rate of the segments")
        self.sampling_rate_ = float(train.sampling_rate)
        return self

    def _geometry(self, length: int) -> tuple[int, int, int, int]:
        """``(window, up, down, K)`` for segments of ``length`` samples."""
        up, down = rate_ratio(self.sampling_rate_, self.target_rate)
        n_low = -(-length * up // down)
        window = int(round(self.window_seconds * self.target_rate))
        window = max(2, min(window, n_low // 2))
        k = usable_components(FAMILIES[self.family], self.n_components, n_low - window + 1, window)
        return window, up, down, k

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        if not hasattr(self, "sampling_rate_"):
            raise RuntimeError(f"{self.name}.separate called before fit")
        mixtures = np.asarray(mixtures, dtype=np.float32)
        if mixtures.ndim != 2:
            raise ValueError(f"{self.name} separates (n, L) segments, got shape {mixtures.shape}")
        window, up, down, k = self._geometry(mixtures.shape[1])
        args = (FAMILIES[self.family], self.n_components, window, up, down, self.max_iter, self.seed, k)
        workers = effective_n_jobs(self.n_jobs)
        if workers > 1 and len(mixtures) > 1:
            size = max(1, -(-len(mixtures) // (4 * workers)))
            parts = Parallel(n_jobs=self.n_jobs)(
                delayed(embed_batch)(mixtures[i : i + size], *args) for i in range(0, len(mixtures), size)
            )
            return np.concatenate(parts) if parts else np.empty((0, k, mixtures.shape[1]), np.float32)
        return embed_batch(mixtures, *args)


@register
class FastICADataset(_DatasetDecomposition):
    """FastICA over the dataset (randomized-PCA whitening): codes independent across
    mixtures, candidate ``k`` is ``A_k u_k`` plus its mean share (module docstring).
    Capped: training rows (``max_rows``, seeded subsample, default 10,000) and FastICA
    iterations (``max_iter``, default 200)."""

    name = "fastica"
    family = "fastica"
    profiles = DATASET_PROFILES["fastica"]
    description = "Dataset-level FastICA, one candidate per component (classical BSS, paper C.4/D.2)"


@register
class NMFDataset(_DatasetDecomposition):
    """NMF over the dataset (``nndsvda`` init, coordinate descent): candidate ``k`` is
    ``W_k H_k``. Capped: training rows (``max_rows``, seeded subsample, default 6,000)
    and iterations (``max_iter``, default 200)."""

    name = "nmf"
    family = "nmf"
    profiles = DATASET_PROFILES["nmf"]
    description = "Dataset-level NMF, one candidate per component (classical BSS, paper C.4/D.2)"


@register
class SparsePCADataset(_DatasetDecomposition):
    """SparsePCA over the dataset (``alpha=1`` on unit-variance inputs, ``cd`` solver):
    candidate ``k`` is ``A_k u_k`` plus its mean share (module docstring). Slow (one
    lasso per pixel/sample and iteration): capped training rows (``max_rows``, seeded
    subsample, default 500) and dictionary-learning iterations (``max_iter``, default 20)."""

    name = "sparsepca"
    family = "sparsepca"
    profiles = DATASET_PROFILES["sparsepca"]
    description = "Dataset-level SparsePCA, one candidate per component (classical BSS, paper C.4/D.2)"


@register
class KernelPCADataset(_DatasetDecomposition):
    """RBF KernelPCA over the dataset: candidate ``k`` is the learned pre-image of the
    codes with only component ``k`` kept. Memory and time grow with the square of the
    training rows: capped at ``max_rows`` (seeded subsample, default 1,500);
    ``max_iter`` caps ARPACK (default: scikit-learn's)."""

    name = "kernelpca"
    family = "kernelpca"
    profiles = DATASET_PROFILES["kernelpca"]
    description = "Dataset-level RBF KernelPCA with pre-images, one candidate per component (paper C.4/D.2)"


@register
class FastICAEmbedding(_EmbeddingDecomposition):
    """Single-channel ICA: FastICA on each segment's delay embedding. No training;
    capped: FastICA iterations per segment (``max_iter``, default 200)."""

    name = "fastica_embed"
    family = "fastica"
    profiles = EMBED_PROFILES["fastica"]
    description = "FastICA of each segment's delay embedding at 5 Hz (single-channel ICA, paper D.2)"


@register
class NMFEmbedding(_EmbeddingDecomposition):
    """NMF of each segment's delay embedding (minus its minimum). No training;
    capped: NMF iterations per segment (``max_iter``, default 200)."""

    name = "nmf_embed"
    family = "nmf"
    profiles = EMBED_PROFILES["nmf"]
    description = "NMF of each segment's delay embedding at 5 Hz (single-channel BSS, paper D.2)"


@register
class SparsePCAEmbedding(_EmbeddingDecomposition):
    """SparsePCA of each segment's delay embedding. No training; capped:
    dictionary-learning iterations per segment (``max_iter``, default 20)."""

    name = "sparsepca_embed"
    family = "sparsepca"
    profiles = EMBED_PROFILES["sparsepca"]
    description = "SparsePCA of each segment's delay embedding at 5 Hz (single-channel BSS, paper D.2)"


@register
class KernelPCAEmbedding(_EmbeddingDecomposition):
    """RBF KernelPCA of each segment's delay embedding, candidates from pre-images.
    No training; the kernel matrix is rows x rows of one trajectory matrix (258 x 258
    for one minute at 5 Hz with a 10 s window)."""

    name = "kernelpca_embed"
    family = "kernelpca"
    profiles = EMBED_PROFILES["kernelpca"]
    description = "RBF KernelPCA of each segment's delay embedding at 5 Hz (single-channel BSS, paper D.2)"
