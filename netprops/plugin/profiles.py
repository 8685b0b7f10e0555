"""Hypothesis profiles ``dev``, ``ci`` and ``thorough``, registered and loaded only when asked.

A project that does not ask keeps Hypothesis exactly as Hypothesis sets itself
up (its ``default`` profile, or its own ``ci`` profile on CI). A project asks by

* naming a profile in its ini file, ``netprops_hypothesis_profile = dev | ci |
  thorough | auto`` (``auto``: ``ci`` when ``$CI`` is set, else ``dev``): the three
  profiles are registered (netprops's ``ci`` replaces Hypothesis's, built on it)
  and the named one is loaded, unless ``--hypothesis-profile`` names another;
* or by ``--hypothesis-profile dev`` / ``thorough`` when no profile of that name is
  registered yet: netprops registers that one, and Hypothesis's own plugin loads it.

Registration happens in ``pytest_configure`` before Hypothesis's plugin loads the
profile named by ``--hypothesis-profile``. The profile that was active before is
restored when the session ends (in-process runs such as ``pytester`` leave no trace).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

from .options import PROFILE_INI

__all__ = [
    "AUTO",
    "PROFILE_NAMES",
    "register_profiles",
    "running_in_ci",
]

#: The profiles netprops defines.
PROFILE_NAMES = ("dev", "ci", "thorough")

#: Ini value: ``ci`` when :func:`running_in_ci`, else ``dev``.
AUTO = "auto"

_PREVIOUS = pytest.StashKey[str]()


def running_in_ci() -> bool:
    """Whether ``$CI`` says this is a CI run (set to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def register_profiles(names: Iterable[str] = PROFILE_NAMES) -> None:
    """Register netprops's Hypothesis profiles ``names`` (imports Hypothesis).

    ``dev``: 25 examples, no deadline. ``ci``: Hypothesis's ``ci`` profile
    (derandomized, no database, failing examples printed as blobs) with 25
    examples. ``thorough``: 2000 random examples, every phase. None has a deadline
    (first calls compile kernels), and all suppress the too-slow and
    data-too-large health checks.
    """
    from hypothesis import HealthCheck, Phase, settings

    suppress = [HealthCheck.too_slow, HealthCheck.data_too_large]
    profiles = {
        "dev": {"max_examples": 25},
        "ci": {
            # Hypothesis >= 6.1xx ships a "ci" profile: build on it where it exists
            "parent": settings.get_profile("ci") if _registered("ci") else None,
            "derandomize": True,
            "database": None,
            "print_blob": True,
            "max_examples": 25,
        },
        "thorough": {"max_examples": 2000, "derandomize": False, "phases": tuple(Phase)},
    }
    for name in names:
        settings.register_profile(
            name, **profiles[name], deadline=None, suppress_health_check=suppress
        )


def _registered(name: str) -> bool:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        settings.get_profile(name)
    except InvalidArgument:
        return False
    return True


def _load(config: pytest.Config, name: str) -> None:
    from hypothesis import settings

    current = getattr(settings, "get_current_profile_name", None)
    if current is not None:
        config.stash[_PREVIOUS] = current()
    settings.load_profile(name)


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getini(PROFILE_INI).strip()
    given = config.getoption("hypothesis_profile", default=None)
    if wanted:
        if wanted not in (AUTO, *PROFILE_NAMES):
            raise pytest.UsageError(
                f"{PROFILE_INI} must be one of {', '.join((AUTO, *PROFILE_NAMES))}, got {wanted!r}"
            )
        register_profiles()
        if not given:
            _load(config, ("ci" if running_in_ci() else "dev") if wanted == AUTO else wanted)
    elif given in ("dev", "thorough") and not _registered(given):
        register_profiles([given])


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_PREVIOUS, None)
    if previous is not None:
        from hypothesis import settings

        settings.load_profile(previous)
        del config.stash[_PREVIOUS]
