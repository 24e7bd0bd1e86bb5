"""Shared fixtures: where the shared films live, and skipping when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared")).resolve()
SHARED_DATA = SHARED / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"shared data not found at {path} (set CXR_SHARED or place ../shared beside the repo)"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; skips the test when it is absent."""
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def samples_dir(shared_data: Path) -> Path:
    """../shared/data/samples: NIH PNGs, a JPEG-compressed CR DICOM and its MONOCHROME1 twin."""
    return _need(shared_data / "samples")


@pytest.fixture(scope="session")
def kermany_dir(shared_data: Path) -> Path:
    return _need(shared_data / "kermany_pneumonia")


@pytest.fixture(scope="session")
def nih_dir(shared_data: Path) -> Path:
    return _need(shared_data / "nih1000")


@pytest.fixture(scope="session")
def lungmask_dir(shared_data: Path) -> Path:
    return _need(shared_data / "covid_lungmasks")


@pytest.fixture(scope="session")
def site_dir(shared_data: Path) -> Path:
    """../shared/data/kermany_site: 100 labelled films of a new site (the site tools' set)."""
    return _need(shared_data / "kermany_site")


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return _need(SHARED / "weights")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: the tiny U-Nets run faster than with oversubscribed
    threads on the 2-core box. Use with `pytestmark = pytest.mark.usefixtures(...)`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
