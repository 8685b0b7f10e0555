"""Fixtures of the plugin tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Throw-away projects run here must not append to this run's GitHub step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
