"""Hypothesis profiles registered by the plugin."""

from __future__ import annotations

import pytest
from hypothesis import settings

import netprops.plugin  # noqa: F401  (registers the profiles)


def test_ci_profile_is_derandomized_without_deadline_or_database():
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.deadline is None
    assert ci.database is None
    assert ci.print_blob is True


def test_thorough_profile_runs_many_random_examples():
    thorough = settings.get_profile("thorough")
    assert thorough.max_examples >= 1000
    assert thorough.derandomize is False
    assert thorough.max_examples > settings.get_profile("ci").max_examples


def test_dev_profile_has_no_deadline():
    assert settings.get_profile("dev").deadline is None


PROFILE_PROBE = """
from hypothesis import settings

def test_profile():
    print("PROFILE", settings().max_examples, settings().derandomize)
"""


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"CI": "true"}, [], "PROFILE 25 True"),
        ({"CI": "true"}, ["--hypothesis-profile", "thorough"], "PROFILE 2000 False"),
    ],
)
def test_profile_selection(pytester: pytest.Pytester, monkeypatch, env, args, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile(PROFILE_PROBE)
    result = pytester.runpytest_subprocess("-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{expected}*"])
