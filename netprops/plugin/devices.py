"""Devices: the ``netprops_device`` fixture, the ``netprops_device`` marker, torch threads.

* ``--netprops-device cpu|cuda|all`` selects the device kinds. ``cuda`` on a
  machine without CUDA stops the run at start-up (a GPU job must never pass by
  skipping everything).
* The session-scoped fixture ``netprops_device`` is parametrized by pytest over
  the selected kinds (ids ``cpu`` / ``cuda``); a test that parametrizes it
  directly keeps its own values.
* A test on a device carries the marker ``netprops_device(kind)``: the fixture's
  parameters and every spec-generated test have it, and a project may mark its
  own tests. A test marked ``netprops_device("cuda")`` is skipped with a reason
  when CUDA is not available (a skip mark added at collection, so the skip is
  reported at the test), and the ledger counts every marked test per device.
* ``--netprops-threads N`` sets ``torch.set_num_threads(N)`` for the session.

torch is imported only when one of these is used: ``--netprops-device cuda``,
``--netprops-threads``, or a test marked for CUDA.
"""

from __future__ import annotations

import sys
import types

import pytest

from .options import selected_devices

__all__ = [
    "MARKER",
    "NO_CUDA",
    "cuda_available",
    "device_of",
]

#: Marker naming the device kind a test runs on.
MARKER = "netprops_device"

_FIXTURES = "netprops-device-fixture"
_OLD_THREADS = pytest.StashKey[int]()


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch)."""
    import torch

    return torch.cuda.is_available()


def _cuda_missing() -> str:
    torch = sys.modules["torch"]
    return f"torch {torch.__version__}, torch.version.cuda={torch.version.cuda}"


def _fixture_module(devices: list[str]) -> types.ModuleType:
    """A plugin holding the ``netprops_device`` fixture, parametrized over ``devices``."""
    params = [
        pytest.param(kind, marks=pytest.mark.netprops_device(kind), id=kind) for kind in devices
    ]

    @pytest.fixture(scope="session", params=params, name="netprops_device")
    def netprops_device(request: pytest.FixtureRequest) -> str:
        """The device kind a test runs on (``"cpu"`` or ``"cuda"``), one test per kind
        selected by ``--netprops-device``; session-scoped, so fixtures of any scope can use it."""
        return request.param

    module = types.ModuleType(f"{__name__}.fixtures")
    module.netprops_device = netprops_device  # type: ignore[attr-defined]
    return module


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(kind): the test runs on device kind 'cpu' or 'cuda' (counted in the netprops "
        "ledger; 'cuda' is skipped with a reason where CUDA is not available)",
    )
    if config.getoption("netprops_device") == "cuda" and not cuda_available():
        raise pytest.UsageError(
            f"--netprops-device cuda was requested but CUDA is not available ({_cuda_missing()}); "
            "refusing to run a GPU job that would only skip"
        )
    config.pluginmanager.register(_fixture_module(selected_devices(config)), _FIXTURES)
    threads = config.getoption("netprops_threads")
    if threads is not None:
        import torch

        config.stash[_OLD_THREADS] = torch.get_num_threads()
        torch.set_num_threads(threads)


def pytest_unconfigure(config: pytest.Config) -> None:
    fixtures = config.pluginmanager.get_plugin(_FIXTURES)
    if fixtures is not None:
        config.pluginmanager.unregister(fixtures)
    old = config.stash.get(_OLD_THREADS, None)
    if old is not None:
        sys.modules["torch"].set_num_threads(old)
        del config.stash[_OLD_THREADS]


def device_of(item: pytest.Item) -> str | None:
    """The device kind ``item`` is marked for, or None."""
    marker = item.get_closest_marker(MARKER)
    return str(marker.args[0]) if marker is not None and marker.args else None


#: Why a test marked for CUDA is skipped on this machine.
NO_CUDA = "CUDA is not available on this machine (run with --netprops-device cuda on a GPU host)"


@pytest.hookimpl(trylast=True)  # after projects' hooks that add the marker, and after -k / -m
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The device travels to the ledger in user_properties, which test reports carry
    # (also from pytest-xdist workers to the controller). A skip mark (not a skip at
    # setup) reports the skip at the test's own location.
    cuda_here: bool | None = None
    for item in items:
        kind = device_of(item)
        if kind is None:
            continue
        item.user_properties.append(("netprops_device", kind))
        if kind == "cuda":
            if cuda_here is None:
                cuda_here = cuda_available()
            if not cuda_here:
                item.add_marker(pytest.mark.skip(reason=NO_CUDA))
