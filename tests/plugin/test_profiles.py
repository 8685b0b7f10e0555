"""Hypothesis profiles: registered and loaded only when a project asks for them."""

from __future__ import annotations

import pytest
from hypothesis import settings

from netprops.plugin.profiles import register_profiles


@pytest.fixture(scope="module")
def profiles() -> dict[str, settings]:
    register_profiles()  # what the ini option does (this repository's run already did)
    return {name: settings.get_profile(name) for name in ("dev", "ci", "thorough")}


def test_ci_profile_is_derandomized_without_deadline_or_database(profiles):
    ci = profiles["ci"]
    assert ci.derandomize is True
    assert ci.deadline is None
    assert ci.database is None
    assert ci.print_blob is True
    assert ci.max_examples == 25


def test_thorough_profile_runs_many_random_examples(profiles):
    thorough = profiles["thorough"]
    assert thorough.max_examples >= 1000
    assert thorough.derandomize is False
    assert thorough.max_examples > profiles["ci"].max_examples


def test_dev_profile_has_no_deadline(profiles):
    assert profiles["dev"].deadline is None
    assert profiles["dev"].max_examples == 25


PROFILE_PROBE = """
from hypothesis import settings

def test_profile():
    print("PROFILE", settings().max_examples, settings().derandomize)
"""


@pytest.mark.parametrize(
    ("ini", "env", "args", "expected"),
    [
        ("auto", {}, [], "PROFILE 25 False"),  # dev
        ("auto", {"CI": "true"}, [], "PROFILE 25 True"),  # ci
        ("auto", {"CI": "true"}, ["--hypothesis-profile", "thorough"], "PROFILE 2000 False"),
        ("", {}, ["--hypothesis-profile", "thorough"], "PROFILE 2000 False"),  # asked by name
        ("", {"CI": "true"}, ["--hypothesis-profile", "ci"], "PROFILE 100 True"),  # Hypothesis's
    ],
    ids=["auto", "auto-CI", "auto-option", "option-only", "hypothesis-ci"],
)
def test_profile_selection(pytester: pytest.Pytester, monkeypatch, ini, env, args, expected):
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        pytester.makeini(f"[pytest]\nnetprops_hypothesis_profile = {ini}\n")
    pytester.makepyfile(PROFILE_PROBE)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_an_in_process_run_restores_the_profile(pytester: pytest.Pytester):
    before = settings.get_current_profile_name()
    pytester.makeini("[pytest]\nnetprops_hypothesis_profile = thorough\n")
    pytester.makepyfile(PROFILE_PROBE)
    result = pytester.runpytest_inprocess("-s")
    result.stdout.fnmatch_lines(["*PROFILE 2000 False*"])
    assert settings.get_current_profile_name() == before


def test_an_unknown_profile_name_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nnetprops_hypothesis_profile = fast\n")
    pytester.makepyfile(PROFILE_PROBE)
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*netprops_hypothesis_profile must be one of auto, dev, ci, thorough, got 'fast'*"]
    )
