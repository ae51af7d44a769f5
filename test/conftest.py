"""Shared pytest fixtures and options.

Markers (declared in setup.cfg): ``data`` needs ../shared/data, ``gpu`` needs CUDA, ``weights`` needs real
checkpoints, ``slow`` is left out of CI's fast run. ``--device cuda`` runs device-parametrised tests on the GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("C4D_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--device", action="store", default="cpu", help="torch device for device-aware tests")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test with a clear reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set C4D_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def device(request):
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA requested but not available")
    return torch.device(name)


@pytest.fixture
def rng():
    """A seeded numpy Generator."""
    import numpy as np

    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing entirely
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
