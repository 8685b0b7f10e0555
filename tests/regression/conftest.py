"""Fixtures for the convergence gate: real Fashion-MNIST, the baseline folder, the update flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprops import baselines
from netprops.data import Data, load_dataset
from netprops.plugin.reporting import record_result


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


@pytest.fixture(scope="session")
def stored(baselines_root):
    """``stored(name)``: the recorded CPU baseline of a scenario."""

    def read(name: str) -> baselines.Baseline:
        return baselines.read_baseline(baselines.baseline_path(name, "cpu", baselines_root))

    return read


@pytest.fixture
def in_ledger(request):
    """Count this test in the netprops ledger's "convergence gate" row, so a skip (an
    environment that changed) is listed there with its reason, also under pytest-xdist."""
    record_result(request.node, property="convergence gate", device="cpu")
    return request.node
