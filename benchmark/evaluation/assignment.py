"""Matching a method's candidate outputs to the benchmark's sources.

An unsupervised method returns K candidates in an arbitrary order. The
permutation is solved once per trained model, on the validation split, with the
Hungarian algorithm on mean squared error, and the same mapping is then applied
to the test split for every metric (asteroid's "solve the permutation once").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Assignment:
    """Which candidate output serves which source.

    Attributes
    ----------
    source_names : tuple of str
        Sources in benchmark order.
    mapping : tuple of int
        Candidate index for each source, ``-1`` where no candidate was left.
    unused : tuple of int
        Candidates assigned to no source (dead or surplus outputs).
    cost : tuple of tuple of float
        Validation MSE of every (source, candidate) pair, ``S x K``.
    """

    source_names: tuple[str, ...]
    mapping: tuple[int, ...]
    unused: tuple[int, ...]
    cost: tuple[tuple[float, ...], ...]

    def apply(self, candidates: np.ndarray) -> np.ndarray:
        """Estimates in source order, ``(n, S, *shape)``; NaN for an unserved source."""
        n, _, *shape = candidates.shape
        out = np.full((n, len(self.mapping), *shape), np.nan, dtype=np.float32)
        for s, k in enumerate(self.mapping):
            if k >= 0:
                out[:, s] = candidates[:, k]
        return out

    def to_dict(self) -> dict:
        """JSON-friendly form, with the mapping by source name."""
        data = asdict(self)
        data["by_source"] = dict(zip(self.source_names, self.mapping, strict=True))
        return data


def pairwise_mse(candidates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean squared error of every (source, candidate) pair over all samples.

    Parameters
    ----------
    candidates : np.ndarray
        ``(n, K, *shape)``.
    targets : np.ndarray
        ``(n, S, *shape)``.

    Returns
    -------
    np.ndarray
        ``(S, K)``, computed as ``E[c^2] - 2 E[c t] + E[t^2]`` with one matrix
        product instead of materialising ``n x S x K`` differences.
    """
    n, k = candidates.shape[:2]
    s = targets.shape[1]
    c = np.asarray(candidates, dtype=np.float64).reshape(n, k, -1)
    t = np.asarray(targets, dtype=np.float64).reshape(n, s, -1)
    size = n * c.shape[2]
    cross = np.einsum("nkp,nsp->sk", c, t, optimize=True)
    cc = np.einsum("nkp,nkp->k", c, c)
    tt = np.einsum("nsp,nsp->s", t, t)
    return np.maximum((tt[:, None] - 2 * cross + cc[None, :]) / size, 0.0)


CostFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(candidates (n, K, ...), targets (n, S, ...)) -> (S, K)`` cost of serving each source with each candidate."""


def assign(
    candidates: np.ndarray, targets: np.ndarray, source_names: tuple[str, ...], cost: CostFunction = pairwise_mse,
) -> Assignment:
    """Hungarian assignment of candidates to sources minimising the total ``cost``.

    Non-finite costs (a candidate that shares no scorable item with a source) are treated
    as prohibitive, so such a pair is chosen only when nothing else is left.
    """
    matrix = np.asarray(cost(candidates, targets), dtype=np.float64)
    if matrix.shape != (len(source_names), candidates.shape[1]):
        raise ValueError(f"cost gave shape {matrix.shape}, expected {(len(source_names), candidates.shape[1])}")
    solvable = np.where(np.isfinite(matrix), matrix, 1e12)
    rows, cols = linear_sum_assignment(solvable)
    mapping = [-1] * len(source_names)
    for r, c in zip(rows, cols, strict=True):
        mapping[r] = int(c)
    unused = tuple(k for k in range(candidates.shape[1]) if k not in set(cols.tolist()))
    return Assignment(
        tuple(source_names), tuple(mapping), unused, tuple(tuple(map(float, row)) for row in solvable)
    )


def assign_by_mse(candidates: np.ndarray, targets: np.ndarray, source_names: tuple[str, ...]) -> Assignment:
    """Hungarian assignment of candidates to sources minimising total MSE."""
    return assign(candidates, targets, source_names, pairwise_mse)
