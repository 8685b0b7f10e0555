"""Prints the mutant kill matrix (filled by test_mutants.py) in pytest's terminal summary."""

from __future__ import annotations

from typing import Any

import pytest

#: device -> the rendered kill matrix lines of that device's run
KILL_MATRIX = pytest.StashKey[dict[str, list[str]]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    matrices = config.stash.get(KILL_MATRIX, {})
    for device, lines in matrices.items():
        terminalreporter.write_sep("=", f"netprops mutant kill matrix ({device})")
        for line in lines:
            terminalreporter.write_line(line)
