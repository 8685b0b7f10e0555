"""Device resolution and reproducibility switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .errors import check_choice

__all__ = [
    "available_devices",
    "cuda_available",
    "deterministic",
    "resolve_device",
    "tf32_disabled",
    "tf32_enabled",
]

DEVICE_KINDS = ("cpu", "cuda")


def cuda_available() -> bool:
    """True when a CUDA device can be used by this process."""
    return torch.cuda.is_available()


def available_devices() -> tuple[str, ...]:
    """Device kinds usable here, ``("cpu",)`` or ``("cpu", "cuda")``."""
    return ("cpu", "cuda") if cuda_available() else ("cpu",)


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` into a usable device.

    Raises
    ------
    ValueError
        for an unknown device kind, or a CUDA device when CUDA is not available.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be one of 'cpu', 'cuda', 'cuda:N'; got {device!r}") from exc
    check_choice("device", dev.type, DEVICE_KINDS)
    if dev.type == "cuda" and not cuda_available():
        raise ValueError(
            f"device {device!r} was requested but CUDA is not available on this machine "
            f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda})"
        )
    if dev.type == "cuda" and dev.index is not None:
        count = torch.cuda.device_count()
        if dev.index >= count:
            raise ValueError(
                f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
    return dev


def _tf32_switches() -> list[tuple[Any, str, Any, Any]]:
    """(backend, attribute, off value, current value) for matmul and cuDNN.

    torch >= 2.9 has two APIs, the legacy ``allow_tf32`` flags and
    ``fp32_precision``; reading a legacy flag after the new API was used raises
    (and the reverse is allowed). Each backend is driven through the legacy
    flag while that still reads, else through ``fp32_precision``, so callers
    of either API see consistent state inside and after the block.
    """
    switches = []
    backends = torch.backends
    for legacy, modern in (
        (backends.cuda.matmul, [backends.cuda.matmul]),
        (
            backends.cudnn,
            [getattr(backends.cudnn, "conv", None), getattr(backends.cudnn, "rnn", None)],
        ),
    ):
        try:
            switches.append((legacy, "allow_tf32", False, legacy.allow_tf32))
        except RuntimeError:  # the new API is in use for this backend
            switches += [(b, "fp32_precision", "ieee", b.fp32_precision) for b in modern if b]
    return switches


def tf32_enabled() -> bool:
    """Whether CUDA matmuls or cuDNN convolutions may use TF32 (either API)."""
    return any(value is True or value == "tf32" for _, _, _, value in _tf32_switches())


@contextmanager
def tf32_disabled() -> Iterator[None]:
    """Disable TF32 in matmul and cuDNN inside the block (full fp32 precision on Ampere+).

    Works whether the caller uses the legacy ``allow_tf32`` flags or torch's
    ``fp32_precision`` settings, and restores them on exit.
    """
    switches = _tf32_switches()
    for backend, attribute, off, _ in switches:
        setattr(backend, attribute, off)
    try:
        yield
    finally:
        for backend, attribute, _, value in reversed(switches):
            setattr(backend, attribute, value)


@contextmanager
def deterministic(enabled: bool = True, *, warn_only: bool = False) -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(enabled, warn_only=...)``.

    ``warn_only`` makes ops without a deterministic implementation warn instead
    of raising. The previous settings (and cuDNN benchmark mode) are restored.
    """
    old = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark = False if enabled else old_bench
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old, warn_only=old_warn)
        torch.backends.cudnn.benchmark = old_bench
