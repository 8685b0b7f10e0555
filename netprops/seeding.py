"""Seeded random generators and seed derivation.

Library code never seeds torch's global RNG: every draw goes through a
``torch.Generator`` built here from an explicit integer seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import check_int, check_type

__all__ = ["derive_seed", "make_generator", "resolve_generator", "seeded_global_rng"]

_MAX_SEED = 2**63 - 1


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed`` (an int >= 0)."""
    seed = check_int("seed", seed, min_value=0)
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator


def resolve_generator(
    generator: torch.Generator | None, device: str | torch.device
) -> torch.Generator | None:
    """Return ``generator`` if it can draw on ``device``, else raise ValueError.

    ``None`` is passed through (the caller then draws from torch's default
    generator, which is the caller's explicit choice, never the library's).
    """
    if generator is None:
        return None
    check_type("generator", generator, torch.Generator)
    if torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(
            f"generator is on {generator.device} but the tensor is on {device}; "
            f"pass a torch.Generator(device={torch.device(device).type!r})"
        )
    return generator


def derive_seed(seed: int, *keys: object) -> int:
    """Derive an independent 63-bit seed from ``seed`` and any hashable labels.

    Stable across processes and Python versions (uses SHA-256 of the repr),
    so ``derive_seed(0, "layer", 3)`` names one stream forever.
    """
    seed = check_int("seed", seed, min_value=0)
    text = repr((seed, *keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & _MAX_SEED


@contextmanager
def seeded_global_rng(seed: int, devices: tuple[str | torch.device, ...] = ()) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring it afterwards.

    For functions that accept no generator (``torch.nn.functional.dropout``):
    the block's draws are a pure function of ``seed`` and the caller's RNG
    state is left exactly as it was. ``devices`` lists CUDA devices to fork too.
    """
    seed = check_int("seed", seed, min_value=0)
    cuda = [torch.device(d) for d in devices if torch.device(d).type == "cuda"]
    with torch.random.fork_rng(devices=cuda, enabled=True):
        # Not torch.manual_seed: it reseeds every GPU's generator (or queues that until
        # CUDA starts), and fork_rng restores only the devices listed.
        torch.random.default_generator.manual_seed(seed)
        for dev in cuda:
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
