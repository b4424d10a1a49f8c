"""Profile names: the one place that says which profiles exist and what each is for.

Every suite defines its data sizes for each of these names (and only these), and methods
may give per-profile parameters (see :meth:`methods.base.Method.profile_params`).
"""

from __future__ import annotations

PROFILES: dict[str, str] = {
    "quick": "2-core CPU budget (the committed leaderboards; default)",
    "paper": "the paper's data sizes and configurations, meant for a GPU",
    "tiny": "smoke test and contract tests (seconds)",
}
"""Profile name -> what it is for, in ``--help`` order (the first is the default)."""

DEFAULT_PROFILE = next(iter(PROFILES))


def check_profile(profile: str) -> str:
    """``profile`` unchanged, or ``KeyError`` naming the known profiles."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile '{profile}' (available: {', '.join(PROFILES)})")
    return profile
