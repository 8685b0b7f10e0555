"""Fixtures for the convergence gate: real Fashion-MNIST, the baseline folder, the update flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprops.data import Data, load_dataset


@pytest.fixture(scope="session")
def baselines_root(pytestconfig: pytest.Config) -> Path:
    option = pytestconfig.getoption("netprops_baselines")
    return Path(option) if option else Path(pytestconfig.rootpath) / "baselines"


@pytest.fixture(scope="session")
def update_baselines(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("netprops_update_baselines"))


@pytest.fixture(scope="session")
def fashion_cpu() -> Data:
    """Fashion-MNIST on the CPU; a missing dataset is an error naming the fix, never a skip."""
    return load_dataset("fashion-mnist", device="cpu")
