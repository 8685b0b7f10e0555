"""The plugin's options: ``--netprops-*`` on the command line, ``netprops_*`` in the ini file."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

__all__ = [
    "DEVICE_CHOICES",
    "PROFILE_INI",
    "explicitly_used",
    "int_at_least",
    "selected_devices",
]

#: Values of ``--netprops-device``.
DEVICE_CHOICES = ("cpu", "cuda", "all")

#: Ini key naming the Hypothesis profile a project wants netprops to register and load.
PROFILE_INI = "netprops_hypothesis_profile"


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``minimum`` (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netprops", "netprops property checks")
    group.addoption(
        "--netprops-device",
        dest="netprops_device",
        action="store",
        default="cpu",
        choices=DEVICE_CHOICES,
        help="device(s) of the netprops_device fixture and the spec-generated tests: cpu "
        "(default), cuda (fails at start-up without CUDA), or all (cpu, plus cuda when available)",
    )
    group.addoption(
        "--netprops-seed",
        action="store",
        default=0,
        type=int_at_least(0),
        help="base seed of the spec-generated tests (module weights, inputs, checks); default 0",
    )
    group.addoption(
        "--netprops-threads",
        action="store",
        default=None,
        type=int_at_least(1),
        help="torch.set_num_threads(N) for the run (e.g. 1 per worker with pytest-xdist -n auto)",
    )
    group.addoption(
        "--netprops-report",
        action="store",
        default=None,
        metavar="PATH",
        help="write the netprops ledger (every generated test's outcome, statistic, bound, "
        "alpha, seed and replay line) as JSON to PATH",
    )
    parser.addini(
        PROFILE_INI,
        "Hypothesis profile netprops registers and loads: dev, ci, thorough, or auto "
        "(ci when $CI is set, else dev). Empty (default): netprops leaves Hypothesis alone. "
        "--hypothesis-profile overrides it.",
        default="",
    )


def selected_devices(config: pytest.Config) -> list[str]:
    """The device kinds ``--netprops-device`` selects for this session."""
    option = config.getoption("netprops_device")
    return ["cpu", "cuda"] if option == "all" else [option]


def explicitly_used(config: pytest.Config) -> bool:
    """Whether the run asked for netprops: a ``--netprops-*`` option away from its
    default, or the project's ini file naming a netprops Hypothesis profile."""
    option = config.option
    return bool(
        config.getini(PROFILE_INI).strip()
        or option.netprops_device != "cpu"
        or option.netprops_seed != 0
        or option.netprops_threads is not None
        or option.netprops_report is not None
    )
