"""Device resolution and reproducibility switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import check_choice

__all__ = [
    "available_devices",
    "cuda_available",
    "deterministic",
    "resolve_device",
    "tf32_disabled",
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
    return dev


@contextmanager
def tf32_disabled() -> Iterator[None]:
    """Disable TF32 in matmul and cuDNN inside the block (full fp32 precision on Ampere+)."""
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul
        torch.backends.cudnn.allow_tf32 = old_cudnn


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(enabled)``, restoring afterwards."""
    old = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False if enabled else old_bench
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old, warn_only=old_warn)
        torch.backends.cudnn.benchmark = old_bench
