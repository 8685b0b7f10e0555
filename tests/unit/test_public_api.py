"""The public surface is listed once (``__all__``), resolves, is documented, and the README names it."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import netprops

PACKAGES = [
    "netprops",
    "netprops.checks",
    "netprops.layers",
    "netprops.models",
    "netprops.init",
    "netprops.strategies",
    "netprops.baselines",
    "netprops.scenarios",
    "netprops.data",
    "netprops.train",
    "netprops.monitor",
    "netprops.gate",
    "netprops.plugin.reporting",
    "netprops.checks.registry",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_and_is_documented(name):
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"


def test_readme_names_every_public_check():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    public_checks = [n for n in netprops.checks.__all__ if n.startswith("check_")]
    missing = [n for n in public_checks if n not in readme]
    assert not missing, f"README does not mention {missing}"
