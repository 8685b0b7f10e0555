"""The README's spec example is a real, collected file, and its ledger is what that file prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import netprops.checks.contract
import netprops.checks.gradients
import netprops.checks.normalization  # noqa: F401  (pytester drops modules first imported inside)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "specs" / "test_readme_example.py"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(after: str, language: str = "") -> str:
    """The first fenced code block after the text ``after``."""
    start = README.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match is not None, f"no ```{language} block after {after!r}"
    return match.group(1)


def test_the_readme_example_is_the_collected_file():
    assert readme_block("`tests/specs/test_readme_example.py`", "python") == EXAMPLE.read_text(
        encoding="utf-8"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="the README shows a run without CUDA")
def test_the_readme_ledger_is_what_the_example_prints(pytester: pytest.Pytester):
    shown = readme_block("pytest -v --netprops-device all tests/specs/test_readme_example.py")
    lines = shown.splitlines()
    start = next(i for i, line in enumerate(lines) if "netprops ledger" in line)
    expected = lines[start + 2 : -1]  # after the environment line, before the summary line
    # another module name: the outer run may have imported test_readme_example already
    pytester.makepyfile(test_example=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--netprops-device", "all")
    result.assert_outcomes(passed=9, skipped=15)
    out = result.outlines
    begin = next(i for i, line in enumerate(out) if "netprops ledger" in line)
    end = next(i for i in range(begin + 1, len(out)) if out[i].startswith("="))
    assert out[begin + 2 : end] == expected
    assert re.fullmatch(r"=+ 9 passed, 15 skipped in .* =+", lines[-1])
