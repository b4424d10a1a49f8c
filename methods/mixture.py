"""The mixture-as-estimate floor: every source is estimated by the mixture itself."""

from __future__ import annotations

from methods.base import register
from methods.trivial import ScaledMixture


@register
class MixtureAsEstimate(ScaledMixture):
    """Returns the mixture once per source, so every metric has a floor beside each method."""

    name = "mixture"
    description = "Trivial floor: the mixture itself as the estimate of every source"
    target_kinds = ("waveform", "rate")
    scale = 1.0  # fixed: not a parameter

    def __init__(self) -> None:
        pass
