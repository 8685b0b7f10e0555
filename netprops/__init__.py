"""netprops: verify the properties of PyTorch neural-network building blocks.

Names are imported on first use (PEP 562), so ``import netprops`` — and the
pytest plugin, which pytest imports in every run where netprops is installed —
costs no torch import until something of netprops is actually used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: Public name -> the submodule that defines it (subpackages map to themselves).
_EXPORTS: dict[str, str] = {
    "PropertyViolation": "errors",
    "Tolerance": "tolerances",
    "available_devices": "devices",
    "checks": "checks",
    "cuda_available": "devices",
    "derive_seed": "seeding",
    "deterministic": "devices",
    "init": "init",
    "layers": "layers",
    "make_generator": "seeding",
    "models": "models",
    "Monitor": "monitor",
    "MonitorLimits": "monitor",
    "MonitorReport": "monitor",
    "monitoring": "monitor",
    "resolve_device": "devices",
    "seeded_global_rng": "seeding",
    "spec": "spec",
    "strategies": "strategies",
    "tf32_disabled": "devices",
    "tf32_enabled": "devices",
    "tolerance": "tolerances",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def _load(name: str) -> Any:
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return module if _EXPORTS[name] == name and name != "spec" else getattr(module, name)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _load(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """``netprops.spec`` is the function :func:`netprops.spec.spec`, also after the
    submodule of the same name was imported (the import system then sets the
    package attribute ``spec`` to the submodule; this property keeps the function)."""

    @property
    def spec(self) -> Any:
        return _load("spec")

    @spec.setter
    def spec(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package
