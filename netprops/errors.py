"""Errors and argument validation.

Every public constructor and function validates its arguments through the
helpers here, so each bad argument raises an error that names the argument,
the offending value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

import torch

__all__ = [
    "PropertyViolation",
    "check_choice",
    "check_finite_float",
    "check_float_tensor",
    "check_int",
    "check_min_dims",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_seeds",
    "check_type",
]


class PropertyViolation(AssertionError):
    """A checked property does not hold.

    Subclasses :class:`AssertionError` so pytest reports it as a test failure.
    The message carries the statistic, the bound, the seed and a reproduction.
    """


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> Any:
    """Raise TypeError unless ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise TypeError(f"{name} must be {names}, got {value!r} ({type(value).__name__})")
    return value


def check_int(name: str, value: Any, *, min_value: int | None = None) -> int:
    """Return ``value`` as int; TypeError for non-integers (bool included), ValueError below ``min_value``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be an int >= {min_value}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as int; raise unless it is an int >= 1."""
    return check_int(name, value, min_value=1)


def check_finite_float(name: str, value: Any) -> float:
    """Return ``value`` as float; raise unless it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float; raise unless it is > 0 (>= 0 with ``allow_zero``)."""
    value = check_finite_float(name, value)
    if value < 0 or (value == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return value


def check_probability(name: str, value: Any, *, allow_one: bool = False) -> float:
    """Return ``value`` as float; raise unless it lies in [0, 1) ([0, 1] with ``allow_one``)."""
    value = check_finite_float(name, value)
    upper_ok = value <= 1 if allow_one else value < 1
    if not (value >= 0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be a probability in {interval}, got {value!r}")
    return value


def check_seeds(name: str, value: Any, *, min_count: int = 1) -> tuple[int, ...]:
    """Return ``value`` (a sequence of ints >= 0, not a string) as a tuple; raise unless it
    holds at least ``min_count`` seeds, all distinct."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a sequence of ints, got {value!r} ({type(value).__name__})"
        )
    seeds = tuple(check_int(f"{name}[{i}]", v, min_value=0) for i, v in enumerate(value))
    if len(seeds) < min_count or len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} must hold at least {min_count} distinct seeds, got {list(seeds)}")
    return seeds


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; ValueError listing the valid ones otherwise."""
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def check_float_tensor(name: str, tensor: Any) -> torch.Tensor:
    """Raise unless ``tensor`` is a floating-point torch.Tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32, float64), "
            f"got dtype {tensor.dtype}"
        )
    return tensor


def check_min_dims(name: str, tensor: torch.Tensor, min_dims: int) -> torch.Tensor:
    """Raise ValueError unless ``tensor.dim() >= min_dims``."""
    if tensor.dim() < min_dims:
        raise ValueError(
            f"{name} must have at least {min_dims} dimensions, got shape {tuple(tensor.shape)}"
        )
    return tensor
