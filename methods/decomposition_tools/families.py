"""scikit-learn decomposition families shared by the classical decomposition baselines.

This module's one job is to build, fit and read out the four scikit-learn estimators
(FastICA, NMF, SparsePCA, KernelPCA) used by :mod:`methods.decompositions`: each
:class:`Family` says how its estimator is built and fed, :func:`input_scale` and
:func:`usable_components` adapt the inputs and the component count to the data,
:func:`fit_estimator` fits one estimator, and :func:`component_parts` turns a fitted
estimator into one reconstruction per component. It registers no method.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import NMF, PCA, FastICA, KernelPCA, SparsePCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline, make_pipeline

#: Rows used to estimate the median pairwise distance (KernelPCA input scale).
_SCALE_ROWS = 500


# --------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    """How one scikit-learn estimator is built and fed.

    Attributes
    ----------
    build : callable
        ``build(n_components, max_iter, seed)`` -> unfitted estimator (``max_iter``
        already resolved: the family default replaces ``None``).
    centered : bool
        The estimator removes a mean (its centred rows have rank ``rows - 1``).
    affine : bool
        ``transform`` and ``inverse_transform`` are affine around a mean (see
        :func:`component_parts` for how the mean is shared among the candidates).
    nonnegative : bool
        The estimator needs non-negative inputs.
    distance_scale : bool
        Scale inputs to unit median squared distance (RBF kernel with ``gamma=1``)
        instead of unit standard deviation.
    max_rows : int
        Default cap on training rows (dataset level).
    max_iter : int or None
        Default iteration cap (``None``: the estimator's own default).
    """

    build: Callable[[int, int | None, int], Any]
    centered: bool
    affine: bool
    nonnegative: bool
    distance_scale: bool
    max_rows: int
    max_iter: int | None


def _fastica(k: int, max_iter: int | None, seed: int) -> Pipeline:
    # FastICA whitens by projecting onto the top-k principal subspace with a full SVD
    # of features x rows (about a minute for 2,000 images on 2 cores). The same
    # projection by randomized PCA first, then FastICA (which whitens the k scores),
    # is the same model at a fraction of the cost.
    return make_pipeline(
        PCA(k, svd_solver="auto", random_state=seed),
        FastICA(k, whiten="unit-variance", max_iter=max_iter, tol=1e-4, random_state=seed),
    )


def _nmf(k: int, max_iter: int | None, seed: int) -> NMF:
    return NMF(k, init="nndsvda", solver="cd", max_iter=max_iter, random_state=seed)


def _sparsepca(k: int, max_iter: int | None, seed: int) -> SparsePCA:
    # 'cd' is much faster than the default 'lars' with many features.
    return SparsePCA(k, alpha=1.0, method="cd", max_iter=max_iter, tol=1e-6, random_state=seed)


def _kernelpca(k: int, max_iter: int | None, seed: int) -> KernelPCA:
    return KernelPCA(
        k, kernel="rbf", gamma=1.0, fit_inverse_transform=True, alpha=0.1,
        max_iter=max_iter, random_state=seed,
    )


FAMILIES: dict[str, Family] = {
    "fastica": Family(_fastica, centered=True, affine=True, nonnegative=False, distance_scale=False, max_rows=10000, max_iter=200),
    "nmf": Family(_nmf, centered=False, affine=False, nonnegative=True, distance_scale=False, max_rows=6000, max_iter=200),
    "sparsepca": Family(_sparsepca, centered=True, affine=True, nonnegative=False, distance_scale=False, max_rows=500, max_iter=20),
    "kernelpca": Family(_kernelpca, centered=True, affine=False, nonnegative=False, distance_scale=True, max_rows=1500, max_iter=None),
}


# --------------------------------------------------------------------------- helpers
def usable_components(family: Family, n_components: int, n_rows: int, n_features: int) -> int:
    """Components the data supports: at most rows (rows - 1 if centred) and features, at least 1."""
    return max(1, min(int(n_components), n_rows - int(family.centered), n_features))


def input_scale(family: Family, rows: np.ndarray) -> float:
    """Factor applied to the inputs before the decomposition (outputs are divided by it)."""
    x = np.asarray(rows, dtype=np.float64)
    if family.distance_scale:
        x = x[:_SCALE_ROWS]
        squared = np.sum(x**2, axis=1)
        d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
        d2 = d2[np.triu_indices(len(x), k=1)]
        d2 = d2[d2 > 0]
        median = float(np.median(d2)) if d2.size else 0.0
        return 1.0 / np.sqrt(median) if median > 0 else 1.0
    spread = float(np.std(x - x.mean(axis=0)))
    return 1.0 / spread if spread > 0 else 1.0


def fit_estimator(family: Family, rows: np.ndarray, n_components: int, max_iter: int | None, seed: int):
    """Fit a fresh estimator of ``family`` on ``rows`` (already scaled); returns it."""
    k = usable_components(family, n_components, *rows.shape)
    estimator = family.build(k, family.max_iter if max_iter is None else int(max_iter), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(rows)
    return estimator


def component_parts(family: Family, estimator, rows: np.ndarray) -> np.ndarray:
    """One reconstruction per component: ``(n, K, features)`` float64.

    Part ``k`` is ``inverse_transform`` of the codes with all but code ``k`` set to
    zero. For the affine estimators (``family.affine``: FastICA, SparsePCA, with
    ``code(x) = W (x - m)`` and ``inverse(c) = A c + m``) the codes are taken from
    the origin instead of the mean, ``u = W x = code(x) - code(0)``, so that each
    component carries its own share of the mean, and part ``k`` is
    ``A_k u_k + (m - A W m) / K``: the part of the mean outside the components'
    span is split evenly. The parts sum to the reconstruction; in a noiseless linear
    model ``x = sum_k a_k s_k`` part ``k`` is exactly ``a_k s_k``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # reshape: SparsePCA.transform of a single row returns a 1-D array (its ridge solve squeezes)
        codes = np.asarray(estimator.transform(rows)).reshape(len(rows), -1)
        origin = np.asarray(estimator.transform(np.zeros((1, rows.shape[1])))).reshape(1, -1) if family.affine else None
    n, k = codes.shape
    offset = np.zeros(rows.shape[1])
    if family.affine:
        codes = codes - origin
        mean, through_mean = np.asarray(
            estimator.inverse_transform(np.vstack([np.zeros_like(origin), -origin])), dtype=np.float64
        )
        # inverse(mask_k(u)) = A_k u_k + m; remove m, add the even share of m - A W m.
        offset = (2.0 * mean - through_mean) / k - mean
    parts = np.empty((n, k, rows.shape[1]), dtype=np.float64)
    masked = np.zeros_like(codes)
    for j in range(k):
        masked[:] = 0.0
        masked[:, j] = codes[:, j]
        parts[:, j] = np.asarray(estimator.inverse_transform(masked), dtype=np.float64) + offset
    return parts
