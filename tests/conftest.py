"""Shared fixtures. ``FERLAB_TEST_DEVICE`` (default ``cpu``) runs the same tests on a GPU."""
import os
from pathlib import Path

import pytest
import torch

from ferlab.data.registry import find_data_root

TEST_DEVICE = os.environ.get("FERLAB_TEST_DEVICE", "cpu")


@pytest.fixture
def device():
    if TEST_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("FERLAB_TEST_DEVICE asks for CUDA but none is available")
    return TEST_DEVICE


@pytest.fixture(scope="session")
def ferplus_root() -> Path:
    root = find_data_root("ferplus")
    if root is None:
        pytest.skip("FERPlus data not found: set FERLAB_DATA or place ../shared/data/ferplus beside the checkout")
    return root


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
