"""PCA baseline: each component's share of the reconstruction is one candidate source."""

import numpy as np
from sklearn.decomposition import PCA

from methods.base import Method, Split, register


@register
class PCAMethod(Method):
    """Dataset-level PCA: every training mixture is one row; candidate k is the
    mean plus component k's contribution (the others masked, like MEAE's encodings)."""

    name = "pca"
    description = "Dataset-level PCA, one candidate per component (classical floor)"
    modalities = ("1d", "2d")  # what it takes: signals and images, any input, no true sources

    def __init__(self, n_components: int = 3, max_rows: int = 5000, seed: int = 0):
        self.n_components = n_components
        self.max_rows = max_rows
        self.seed = seed

    def fit(self, train: Split, valid: Split | None = None) -> "PCAMethod":
        index = np.arange(len(train))
        if len(index) > self.max_rows:  # seeded subsample, taken before reading the data
            index = np.sort(np.random.default_rng(self.seed).choice(index, self.max_rows, replace=False))
        rows = np.asarray(train.mixtures[index], dtype=np.float32).reshape(len(index), -1)
        k = min(self.n_components, *rows.shape)  # PCA cannot find more components than rows
        self.pca_ = PCA(k, random_state=self.seed).fit(rows)
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        n, shape = len(mixtures), mixtures.shape[1:]
        codes = self.pca_.transform(np.asarray(mixtures, dtype=np.float32).reshape(n, -1))
        parts = codes[:, :, None] * self.pca_.components_[None]  # (n, K, features)
        k = self.pca_.n_components_
        estimates = parts + self.pca_.mean_ / k
        return estimates.reshape(n, k, *shape).astype(np.float32)
