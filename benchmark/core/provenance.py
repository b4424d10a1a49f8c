"""Where a cell's numbers came from, and whether a reused cell is stale.

Every finished cell records its provenance: the versions of every package in
:data:`benchmark.core.environment.PACKAGES`, the project's commit (and whether the
tree was dirty), the device, the numeric precision, and the code versions of
the method and of the suite's scoring (``Method.version``,
``Suite.scoring_version``, bumped by hand when results change).

Code versions enter the cell key, so a bump recomputes the affected cells. A
package version does not: a cell whose recorded versions of the packages its
method and suite depend on differ from the installed ones is *stale*, and is
reused only with a warning and a mark in the leaderboard, until
``--recompute-stale`` recomputes exactly those cells. A cell computed before
provenance was recorded is stale too ("provenance not recorded").
"""

from __future__ import annotations

from typing import Any

from benchmark.core.environment import (
    describe_device,
    git_state,
    library_versions,
    package_versions,
)

NOT_RECORDED = "provenance not recorded (computed before this benchmark recorded package versions)"


def dependencies(method_cls: type, suite: Any) -> tuple[str, ...]:
    """Packages whose versions can change a cell's numbers: the method's and the suite's."""
    return tuple(sorted({*getattr(method_cls, "dependencies", ()), *getattr(suite, "dependencies", ())}))


def precision(method_params: dict[str, Any], device: str) -> str:
    """``"bf16-autocast"`` for networks with ``amp`` on CUDA, ``"bf16-autocast (CPU AMX)"`` for
    ``cpu_bf16`` on an AMX-BF16 CPU, else ``"fp32"``."""
    from methods.nn.device import precision_label

    return precision_label(device, bool(method_params.get("amp")), bool(method_params.get("cpu_bf16")))


def cell_provenance(method_cls: type, suite: Any, params: dict[str, Any], device: str) -> dict[str, Any]:
    """The provenance block of a cell computed now, in this process."""
    return {
        "packages": package_versions(),
        "depends_on": list(dependencies(method_cls, suite)),
        "git": git_state(),
        "device": describe_device(device),
        "precision": precision(params, device),
        "code": {"method": getattr(method_cls, "version", 1), "suite_scoring": getattr(suite, "scoring_version", 1)},
        **({"cuda_libraries": library_versions(device)} if device.startswith("cuda") else {}),
    }


def stale_reasons(record: dict[str, Any], current: dict[str, str] | None = None) -> list[str]:
    """Why a finished cell no longer matches this environment (empty when it does).

    Only the packages the cell ``depends_on`` are compared.
    """
    provenance = record.get("provenance")
    if not provenance:
        return [NOT_RECORDED]
    current = current if current is not None else package_versions()
    recorded = provenance.get("packages", {})
    return [
        f"{name} {recorded.get(name, 'not recorded')} -> {current.get(name, 'not installed')}"
        for name in provenance.get("depends_on", [])
        if recorded.get(name) != current.get(name)
    ]


def summarize(records: list[dict[str, Any]], stale: dict[str, list[str]]) -> dict[str, Any]:
    """The manifest's provenance block: versions seen across cells, commits, stale cells."""
    versions: dict[str, set[str]] = {}
    commits: set[str] = set()
    devices: set[str] = set()
    for record in records:
        provenance = record.get("provenance") or {}
        for name, version in provenance.get("packages", {}).items():
            versions.setdefault(name, set()).add(version)
        git = provenance.get("git") or {}
        if git.get("commit"):
            commits.add(f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}")
        if provenance.get("device"):
            devices.add(provenance["device"])
    return {
        "package_versions_in_cells": {k: sorted(v) for k, v in sorted(versions.items())},
        "cells_differ": any(len(v) > 1 for v in versions.values()) or len(commits) > 1,
        "commits": sorted(commits),
        "devices": sorted(devices),
        "cells_without_provenance": sorted(r["cell_id"] for r in records if not r.get("provenance")),
        "stale_cells": stale,
    }
