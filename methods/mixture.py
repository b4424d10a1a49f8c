"""The mixture-as-estimate floor: every source is estimated by the mixture itself."""

from __future__ import annotations

import numpy as np

from methods.base import Method, Split, register


@register
class MixtureAsEstimate(Method):
    """Returns the mixture once per source, so every metric has a floor beside each method."""

    name = "mixture"
    description = "Trivial floor: the mixture itself as the estimate of every source"
    modalities = ("1d", "2d")
    learns = False
    kind = "trivial"

    def __init__(self) -> None:
        pass

    def fit(self, train: Split, valid: Split | None = None) -> MixtureAsEstimate:
        self.n_outputs_ = len(train.source_names)
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        mixtures = np.asarray(mixtures, dtype=np.float32)
        return np.repeat(mixtures[:, None], self.n_outputs_, axis=1)
