"""Dtype-aware comparison tolerances, in one table (docs/methods.md §Tolerances for deterministic comparisons)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Tolerance", "tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol * scale + rtol * |expected|``."""

    rtol: float
    atol: float

    def bound(self, expected: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Elementwise allowed deviation for ``expected`` (``scale`` is the conditioning κ)."""
        return self.atol * scale + self.rtol * expected.abs()


# fp16/bf16 values are those for kernels that accumulate in fp32.
_TABLE: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(rtol=1e-12, atol=1e-12),
    torch.float32: Tolerance(rtol=1e-5, atol=1e-5),
    torch.bfloat16: Tolerance(rtol=1.6e-2, atol=1e-2),
    torch.float16: Tolerance(rtol=1e-2, atol=1e-2),
}


def tolerance(dtype: torch.dtype) -> Tolerance:
    """Return the comparison tolerance for ``dtype``.

    Raises
    ------
    ValueError
        for a dtype that is not a floating-point type.
    """
    try:
        return _TABLE[dtype]
    except KeyError:
        valid = ", ".join(str(d) for d in _TABLE)
        raise ValueError(f"dtype must be one of {valid}; got {dtype}") from None
