"""This repository's own pytest set-up, on top of the netprops plugin.

The plugin itself only adds ``--netprops-*`` options and ``netprops*`` names;
what is specific to this repository lives here:

* ``--device cpu|cuda|all``: a short alias of ``--netprops-device`` (same
  destination), which tox and CI use, and a ``device`` fixture that is the
  plugin's ``netprops_device`` (one test per selected device kind);
* the ``cuda`` marker: a test marked ``cuda`` runs on the CUDA device (the plugin
  skips it with a reason where CUDA is not available, and counts it in the ledger);
* the convergence gate's options ``--netprops-update-baselines`` and
  ``--netprops-baselines`` (read by ``tests/regression/conftest.py``);
* a fixture that fails any test touching torch's global CPU RNG.

Markers ``slow``, ``convergence``, ``benchmark`` and ``cuda`` are declared in
``pyproject.toml``.
"""

from __future__ import annotations

import pytest
import torch

from netprops.plugin.options import DEVICE_CHOICES

pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netprops")
    group.addoption(
        "--device",
        dest="netprops_device",
        action="store",
        default="cpu",
        choices=DEVICE_CHOICES,
        help="this repository's short form of --netprops-device (cpu, cuda or all)",
    )
    group.addoption(
        "--netprops-update-baselines",
        action="store_true",
        default=False,
        help="convergence tests re-record their baselines instead of comparing against them",
    )
    group.addoption(
        "--netprops-baselines",
        action="store",
        default=None,
        metavar="DIR",
        help="folder of the convergence baselines (default: <rootdir>/baselines)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(pytest.mark.netprops_device("cuda"))


@pytest.fixture(scope="session")
def device(netprops_device: str) -> str:
    """The device kind a test runs on: each test is repeated per ``--device`` selection."""
    return netprops_device


@pytest.fixture(autouse=True)
def _no_global_rng_leak():
    """Fail a test that draws from (or reseeds) torch's global CPU RNG.

    Library code must draw through explicit generators; a leak would make
    results depend on test order.
    """
    before = torch.random.get_rng_state()
    yield
    after = torch.random.get_rng_state()
    assert torch.equal(before, after), (
        "test changed torch's global CPU RNG state: draw through a torch.Generator "
        "(netprops.make_generator) or wrap the draw in netprops.seeded_global_rng"
    )
