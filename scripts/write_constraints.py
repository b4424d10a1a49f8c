"""Write constraints.txt: the installed versions of everything bss-bench[test] needs, recursively.

    python scripts/write_constraints.py            # rewrites constraints.txt from this environment

Run it in the environment that computed the committed results; ``pip install -c constraints.txt``
then reproduces that environment (the plain install keeps accepting newer versions).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Installed name -> version of every distribution ``root[extras]`` requires, recursively."""
    found: dict[str, str] = {}
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker_ok = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            )
            if not marker_ok:
                continue
            key = re.sub(r"[-_.]+", "-", requirement.name).lower()
            if key in found:
                continue
            try:
                found[key] = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                continue
            todo.append((requirement.name, set(requirement.extras)))
    return found


def main() -> int:
    pins = closure("bss-bench", ("test",))
    lines = [
        "# Versions the committed results were computed with (scripts/write_constraints.py).",
        "# Reproduce them exactly: pip install torch==2.13.0 -c constraints.txt -e \".[test]\"",
        f"# Python {sys.version.split()[0]}; torch is the CPU build here (the +cpu local label is dropped).",
    ]
    for name, version in sorted(pins.items()):
        lines.append(f"{name}=={version.split('+')[0]}")
    (ROOT / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"constraints.txt: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
