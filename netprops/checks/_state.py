"""Save and restore what a check may disturb: training mode and module-held generators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["module_generators", "preserved_mode", "seeded_module"]


def module_generators(module: nn.Module) -> list[tuple[nn.Module, str, torch.Generator]]:
    """Every ``torch.Generator`` held as an attribute by ``module`` or its submodules."""
    found = []
    for sub in module.modules():
        for name, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                found.append((sub, name, value))
    return found


@contextmanager
def preserved_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Restore the ``training`` flag of every submodule on exit."""
    modes = [(sub, sub.training) for sub in module.modules()]
    try:
        yield module
    finally:
        for sub, mode in modes:
            sub.training = mode


@contextmanager
def seeded_module(module: nn.Module, seed: int, device: torch.device) -> Iterator[nn.Module]:
    """Make every draw of ``module`` inside the block a pure function of ``seed``.

    Module-held generators are re-seeded from ``seed`` (their object and state are
    restored afterwards); draws from torch's global RNG (e.g. ``nn.Dropout``) are
    seeded through ``fork_rng``, so the caller's RNG state is untouched too.
    """
    from ..seeding import derive_seed, seeded_global_rng

    held = module_generators(module)
    saved = [(sub, name, gen, gen.get_state()) for sub, name, gen in held]
    try:
        for index, (_sub, _name, gen) in enumerate(held):
            gen.manual_seed(derive_seed(seed, "module-generator", index))
        devices = (device,) if device.type == "cuda" else ()
        with seeded_global_rng(seed, devices):
            yield module
    finally:
        for sub, name, gen, state in saved:
            setattr(sub, name, gen)
            gen.set_state(state)
