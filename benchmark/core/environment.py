"""What machine and software produced a result (for manifests)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

PACKAGES = (
    "torch", "numpy", "scipy", "scikit-learn", "scikit-image", "neurokit2", "pandas",
    "matplotlib", "seaborn", "pyedflib", "joblib", "tqdm", "pillow",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages results depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state(root: Path | None = None) -> dict[str, object]:
    """Commit hash and whether the work tree had uncommitted changes (outside ``results/``).

    ``$BSS_BENCH_COMMIT``, when set, is recorded instead (marked as declared):
    a copy of the tree sent to a GPU machine may carry no ``.git`` or a stale
    one, whose HEAD is not the code that runs.
    """
    root = root or Path(__file__).resolve().parents[2]
    if os.environ.get("BSS_BENCH_COMMIT"):
        return {"commit": os.environ["BSS_BENCH_COMMIT"], "dirty": None, "declared_by": "BSS_BENCH_COMMIT"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        # results/ is what runs write, not code: its changes do not make the code dirty
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", None
    if not commit:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """CPU model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_device(device: str) -> str:
    """Human-readable device, e.g. ``cpu (2 cores, AMD EPYC ...)`` or ``cuda:0 (NVIDIA H100)``."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return f"{device} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({os.cpu_count()} cores, {cpu_name()})"


def library_versions(device: str) -> dict[str, object]:
    """The libraries that choose a device's kernels: cuDNN (version, autotuning, determinism,
    TF32) and the CUDA runtime on CUDA; oneDNN's availability on a CPU."""
    import torch

    if device.startswith("cuda"):
        return {
            "cudnn_version": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cuda_runtime": torch.version.cuda,
            "tf32_convolutions": torch.backends.cudnn.allow_tf32,
        }
    return {"cudnn_version": None, "onednn": torch.backends.mkldnn.is_available()}


def environment_info() -> dict[str, object]:
    """Packages, git state and machine for the manifest."""
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count()},
    }
