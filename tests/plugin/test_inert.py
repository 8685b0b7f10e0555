"""Installed but unused, netprops changes nothing in a project's pytest run.

A throw-away project that has its own Hypothesis test, its own ``--device``
option and ``device`` fixture, and does not use netprops, runs in a fresh
process with the plugin (as every run in an environment with netprops
installed) and with ``-p no:netprops``. Everything the project can observe must
be the same: the Hypothesis settings and the number of examples run, the option
namespace apart from ``--netprops-*``, the markers apart from ``netprops*``, the
environment variables, and the modules loaded (no torch, scipy, numpy or
Hypothesis import by the plugin).
"""

from __future__ import annotations

import json

import pytest

CONFTEST = """
import json
import sys

import pytest

HEAVY = ("torch", "scipy", "numpy", "hypothesis")
PROBE = {}


def pytest_addoption(parser):
    parser.addoption("--device", default="probe-cpu", help="the project's own option")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    PROBE["options"] = sorted(vars(config.option))
    PROBE["markers"] = sorted(config.getini("markers"))


def pytest_sessionstart(session):
    PROBE["loaded_at_start"] = [m for m in HEAVY if m in sys.modules]


def pytest_collection_finish(session):
    PROBE["loaded_after_collection"] = [m for m in HEAVY[:3] if m in sys.modules]


def pytest_sessionfinish(session):
    with open("probe.json", "w") as f:
        json.dump(PROBE, f)


@pytest.fixture
def device(request):
    return request.config.getoption("device")
"""

TESTS = """
import json
import os

from hypothesis import given, settings, strategies as st

from conftest import PROBE

CALLS = []


@given(st.integers())
def test_hypothesis_examples(n):
    CALLS.append(n)


def test_report(device):
    assert device == "probe-cpu"
    current = settings()
    PROBE["examples"] = len(CALLS)
    PROBE["settings"] = [current.max_examples, current.derandomize, str(current.deadline)]
    PROBE["environ"] = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
"""


def probe(pytester: pytest.Pytester, *args: str) -> dict:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    return json.loads((pytester.path / "probe.json").read_text())


@pytest.mark.parametrize("ci", [None, "true"], ids=["local", "CI"])
def test_an_unused_netprops_changes_nothing(pytester: pytest.Pytester, monkeypatch, ci):
    for name in ("CI", "GITHUB_ACTIONS", "CUBLAS_WORKSPACE_CONFIG", "HYPOTHESIS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    if ci is not None:
        monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_probe=TESTS)
    with_netprops = probe(pytester)
    without = probe(pytester, "-p", "no:netprops")

    assert with_netprops["examples"] == without["examples"] == 100  # 100 stays 100
    assert with_netprops["settings"] == without["settings"]
    assert with_netprops["environ"] == without["environ"]
    assert "CUBLAS_WORKSPACE_CONFIG" not in with_netprops["environ"]
    assert with_netprops["loaded_at_start"] == without["loaded_at_start"] == []
    assert with_netprops["loaded_after_collection"] == without["loaded_after_collection"] == []
    extra_options = set(with_netprops["options"]) - set(without["options"])
    assert set(without["options"]) <= set(with_netprops["options"])
    assert extra_options == {
        "netprops_device",
        "netprops_report",
        "netprops_seed",
        "netprops_threads",
    }
    extra_markers = set(with_netprops["markers"]) - set(without["markers"])
    assert {m.split(":")[0] for m in extra_markers} == {"netprops", "netprops_device(kind)"}
