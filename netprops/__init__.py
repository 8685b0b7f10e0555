"""netprops: verify the properties of PyTorch neural-network building blocks."""

from __future__ import annotations

__version__ = "0.1.0"

from . import checks, init, layers, models, strategies
from .devices import (
    available_devices,
    cuda_available,
    deterministic,
    resolve_device,
    tf32_disabled,
    tf32_enabled,
)
from .errors import PropertyViolation
from .seeding import derive_seed, make_generator, seeded_global_rng
from .spec import spec
from .tolerances import Tolerance, tolerance

__all__ = [
    "PropertyViolation",
    "Tolerance",
    "__version__",
    "available_devices",
    "checks",
    "cuda_available",
    "derive_seed",
    "deterministic",
    "init",
    "layers",
    "make_generator",
    "models",
    "resolve_device",
    "seeded_global_rng",
    "spec",
    "strategies",
    "tf32_disabled",
    "tf32_enabled",
    "tolerance",
]
