"""The `netprops` console script's top level."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import netprops
from netprops.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"netprops {netprops.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: netprops" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = shutil.which("netprops") or str(__import__("pathlib").Path(sys.executable).with_name("netprops"))
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: netprops" in result.stdout
