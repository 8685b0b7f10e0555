"""Public Hypothesis strategies for property tests on PyTorch modules.

Draws are small (sizes, seeds, probabilities); big tensors are built from a drawn
seed through a ``torch.Generator`` (docs/methods.md §Hypothesis with torch), so examples shrink well and
never trip Hypothesis' data-size limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from .devices import available_devices
from .errors import check_int
from .seeding import make_generator

__all__ = [
    "ConvConfig",
    "MLPConfig",
    "batch_sizes",
    "conv_configs",
    "depths",
    "devices",
    "mlp_configs",
    "probabilities",
    "seeds",
    "shapes",
    "tensors",
    "widths",
]

#: Kinds of tensor ``tensors()`` draws, beyond plain standard normal values.
TENSOR_KINDS = ("normal", "offset", "constant_rows", "tiny", "mixed_scale")


def _strategy(value: Any) -> st.SearchStrategy:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``torch.Generator`` (0 ≤ seed < 2³²)."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def probabilities(*, min_value: float = 0.0, max_value: float = 0.9) -> st.SearchStrategy[float]:
    """Drop probabilities in ``[min_value, max_value]`` (max < 1), with 0 and ½ as explicit edge cases."""
    if not 0.0 <= min_value <= max_value < 1.0:
        raise ValueError(f"need 0 <= min_value <= max_value < 1, got [{min_value}, {max_value}]")
    edges = [v for v in (0.0, 0.5) if min_value <= v <= max_value]
    inner = st.floats(min_value=min_value, max_value=max_value, allow_nan=False)
    return st.one_of(st.sampled_from(edges), inner) if edges else inner


def widths(*, min_value: int = 1, max_value: int = 256) -> st.SearchStrategy[int]:
    """Layer widths (1 included by default: the degenerate single-unit layer)."""
    return st.integers(
        min_value=check_int("min_value", min_value, min_value=1), max_value=max_value
    )


def depths(*, min_value: int = 1, max_value: int = 12) -> st.SearchStrategy[int]:
    """Numbers of layers."""
    return st.integers(
        min_value=check_int("min_value", min_value, min_value=1), max_value=max_value
    )


def batch_sizes(*, min_value: int = 1, max_value: int = 64) -> st.SearchStrategy[int]:
    """Batch sizes; 1 is always a possible draw and is tried first when shrinking."""
    return st.integers(
        min_value=check_int("min_value", min_value, min_value=1), max_value=max_value
    )


def shapes(
    *, min_dims: int = 2, max_dims: int = 4, min_side: int = 1, max_side: int = 16
) -> st.SearchStrategy[tuple[int, ...]]:
    """Tensor shapes, batch first."""
    check_int("min_dims", min_dims, min_value=1)
    return st.lists(
        st.integers(min_value=min_side, max_value=max_side), min_size=min_dims, max_size=max_dims
    ).map(tuple)


def devices() -> st.SearchStrategy[str]:
    """Device kinds available on this machine (``"cpu"``, plus ``"cuda"`` when present)."""
    return st.sampled_from(available_devices())


def _build(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int, kind: str, offset: float
) -> torch.Tensor:
    g = make_generator(seed, device)
    base = torch.randn(shape, generator=g, device=device, dtype=torch.float64)
    if kind == "offset":
        base = base + offset
    elif kind == "constant_rows":
        rows = base.reshape(shape[0], -1) if len(shape) >= 2 else base.reshape(1, -1)
        base = rows[:, :1].expand_as(rows).reshape(shape)
    elif kind == "tiny":
        base = base * 1e-3
    elif kind == "mixed_scale":
        scales = torch.logspace(-2, 2, shape[-1], device=device, dtype=torch.float64)
        base = base * scales
    return base.to(dtype).contiguous()


def tensors(
    shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]] | None = None,
    *,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float32,
    device: str | st.SearchStrategy[str] = "cpu",
    seed: int | st.SearchStrategy[int] | None = None,
    kinds: tuple[str, ...] = TENSOR_KINDS,
    max_offset: float = 1e3,
) -> st.SearchStrategy[torch.Tensor]:
    """Floating tensors built from a drawn seed, with edge cases.

    ``kinds`` selects what may be drawn: ``normal`` (standard normal),
    ``offset`` (normal plus a common offset up to ``max_offset``: large mean
    relative to the spread, the hard case for normalization), ``constant_rows``
    (every row constant: zero variance), ``tiny`` (values ~1e-3) and
    ``mixed_scale`` (features spanning 1e-2..1e2). Values are drawn in float64
    and cast to ``dtype``.
    """
    unknown = set(kinds) - set(TENSOR_KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {TENSOR_KINDS}; got {kinds!r}")
    return _tensors(shape, dtype, device, seed, kinds, max_offset)


@st.composite
def _tensors(
    draw: st.DrawFn,
    shape: Any,
    dtype: Any,
    device: Any,
    seed: Any,
    kinds: tuple[str, ...],
    max_offset: float,
) -> torch.Tensor:
    shape_value = draw(_strategy(shape if shape is not None else shapes()))
    dtype_value = draw(_strategy(dtype))
    device_value = draw(_strategy(device))
    seed_value = draw(_strategy(seed if seed is not None else seeds()))
    kind = draw(st.sampled_from(kinds))
    offset = (
        draw(st.floats(min_value=-max_offset, max_value=max_offset, allow_nan=False))
        if kind == "offset"
        else 0.0
    )
    return _build(tuple(shape_value), dtype_value, device_value, seed_value, kind, offset)


@dataclass(frozen=True)
class MLPConfig:
    """A drawn fully-connected architecture: ``layer_sizes`` and an activation name."""

    layer_sizes: tuple[int, ...]
    activation: str
    batch_size: int
    seed: int


@dataclass(frozen=True)
class ConvConfig:
    """A drawn convolution: channels, kernel, stride, padding, input size."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: int
    height: int
    width: int
    batch_size: int
    seed: int


def mlp_configs(
    *,
    max_depth: int = 4,
    max_width: int = 64,
    activations: tuple[str, ...] = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "silu"),
) -> st.SearchStrategy[MLPConfig]:
    """Small MLP architectures (``layer_sizes`` of length 2..max_depth+1)."""
    return st.builds(
        MLPConfig,
        layer_sizes=st.lists(widths(max_value=max_width), min_size=2, max_size=max_depth + 1).map(
            tuple
        ),
        activation=st.sampled_from(activations),
        batch_size=batch_sizes(max_value=16),
        seed=seeds(),
    )


@st.composite
def conv_configs(
    draw: st.DrawFn, *, max_channels: int = 8, max_kernel: int = 5, max_side: int = 12
) -> ConvConfig:
    """Small 2-D convolutions whose output is non-empty (padding ≤ kernel // 2, as torch requires for pooling)."""
    kernel = draw(st.integers(min_value=1, max_value=max_kernel))
    padding = draw(st.integers(min_value=0, max_value=kernel // 2))
    side_min = max(1, kernel - 2 * padding)
    return ConvConfig(
        in_channels=draw(st.integers(1, max_channels)),
        out_channels=draw(st.integers(1, max_channels)),
        kernel_size=kernel,
        stride=draw(st.integers(1, 3)),
        padding=padding,
        height=draw(st.integers(side_min, max(side_min, max_side))),
        width=draw(st.integers(side_min, max(side_min, max_side))),
        batch_size=draw(batch_sizes(max_value=8)),
        seed=draw(seeds()),
    )
