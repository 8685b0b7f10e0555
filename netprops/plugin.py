"""pytest plugin: devices, markers and Hypothesis profiles.

Registered through the ``pytest11`` entry point, so any pytest run in an
environment where netprops is installed gets:

* ``--device {cpu,cuda,all}`` and a ``device`` fixture parametrized from it;
  with ``--device cuda`` on a machine without CUDA the run fails at start-up
  (a GPU job must never pass by skipping everything);
* the markers ``cuda``, ``slow``, ``convergence`` and ``benchmark``; a test
  marked ``cuda`` is skipped with a reason when CUDA is absent;
* Hypothesis profiles ``dev``, ``ci`` and ``thorough`` (``--hypothesis-profile``);
  ``ci`` is loaded automatically when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

DEVICE_CHOICES = ("cpu", "cuda", "all")

MARKERS = {
    "cuda": "test needs a CUDA device (skipped without one unless --device cuda was given)",
    "slow": "test takes more than a few seconds",
    "convergence": "short training compared against a stored baseline",
    "benchmark": "pytest-benchmark timing (excluded from the default run)",
}

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile(
    "ci",
    parent=settings.get_profile("ci"),
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    max_examples=25,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    derandomize=False,
    phases=tuple(Phase),
    suppress_health_check=_SUPPRESS,
)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netprops", "netprops property checks")
    group.addoption(
        "--device",
        action="store",
        default="cpu",
        choices=DEVICE_CHOICES,
        help="device(s) for the `device` fixture: cpu (default), cuda (fails without CUDA), "
        "or all (cpu, plus cuda when available)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.getoption("hypothesis_profile", default=None) is None:
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    if config.getoption("device") == "cuda" and not _cuda_available():
        import torch

        raise pytest.UsageError(
            "--device cuda was requested but CUDA is not available "
            f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda}); "
            "refusing to run a GPU job that would only skip"
        )


def selected_devices(config: pytest.Config) -> list[str]:
    """The device kinds the `device` fixture runs on for this session."""
    option = config.getoption("device")
    if option == "all":
        return ["cpu", "cuda"]
    return [option]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(dev, marks=[pytest.mark.cuda] if dev == "cuda" else [], id=dev)
        for dev in selected_devices(metafunc.config)
    ]
    metafunc.parametrize("device", params)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None and not _cuda_available():
        pytest.skip("CUDA is not available on this machine (run with --device cuda on a GPU host)")


def _profile_name() -> str:
    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter is not None else str(settings._current_profile)


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch

    from . import __version__

    return [
        f"netprops {__version__}: devices={selected_devices(config)}, "
        f"torch {torch.__version__} (cuda {torch.version.cuda}, available={_cuda_available()}), "
        f"threads={torch.get_num_threads()}, "
        f"hypothesis profile={_profile_name()}",
    ]
