"""2-D max and average pooling with hand-written backward passes.

Both layers take ``(N, C, H, W)`` floating tensors and follow
``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` with ``dilation=1``,
``ceil_mode=False`` and (for the average) ``count_include_pad=True``:

* forward: the input is padded (with ``-inf`` for max, ``0`` for the average)
  and viewed as a ``(N, C, H_out, W_out, kH, kW)`` window tensor through
  ``as_strided`` — no Python loop over positions;
* backward: max pooling routes each output gradient to its arg-max with one
  ``scatter_add``; average pooling spreads ``grad / (kH·kW)`` over each window
  with ``fold`` (overlapping windows add up).

``H_out = (H + 2·padH - kH) // strideH + 1`` (likewise for W). The backward
passes are built from differentiable ops, so double backward works.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_float_tensor, check_int

__all__ = [
    "AvgPool2d",
    "AvgPool2dFunction",
    "MaxPool2d",
    "MaxPool2dFunction",
    "avg_pool2d",
    "max_pool2d",
]

IntOrPair = int | tuple[int, int]
Pair = tuple[int, int]


def _pair(name: str, value: Any, min_value: int) -> Pair:
    """``value`` as a pair of ints >= ``min_value`` (an int is used for both sides)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (
            check_int(f"{name}[0]", value[0], min_value=min_value),
            check_int(f"{name}[1]", value[1], min_value=min_value),
        )
    v = check_int(name, value, min_value=min_value)
    return (v, v)


def _pool_args(kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair]:
    """Validate and normalise pooling hyper-parameters (``stride=None`` means the kernel)."""
    kernel = _pair("kernel_size", kernel_size, 1)
    step = kernel if stride is None else _pair("stride", stride, 1)
    pad = _pair("padding", padding, 0)
    for p, k in zip(pad, kernel, strict=True):
        if 2 * p > k:
            raise ValueError(
                f"padding must be at most half of kernel_size, got padding={pad} "
                f"for kernel_size={kernel}"
            )
    return kernel, step, pad


def _check_input(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> tuple[int, int]:
    """Validate the input tensor; return the output size ``(H_out, W_out)``."""
    check_float_tensor("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    out = tuple(
        (size + 2 * p - k) // s + 1
        for size, k, s, p in zip(x.shape[2:], kernel, stride, padding, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"x of spatial size {tuple(x.shape[2:])} is too small for kernel_size={kernel} "
            f"with padding={padding} (output size would be {out})"
        )
    return out  # type: ignore[return-value]


def _windows(
    x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair, fill: float
) -> torch.Tensor:
    """``(N, C, H_out, W_out, kH, kW)`` strided view of the padded input."""
    ph, pw = padding
    xp = F.pad(x, (pw, pw, ph, ph), value=fill) if ph or pw else x.contiguous()
    n, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    out_h, out_w = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    sn, sc, sy, sx = xp.stride()
    return xp.as_strided((n, c, out_h, out_w, kh, kw), (sn, sc, sy * sh, sx * sw, sy, sx))


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling; saves the flat arg-max index of every output in its input plane.

    ``apply(x, kernel, stride, padding)`` with already validated int pairs.
    Ties go to the index ``torch.max`` reports (the first in row-major window
    order on CPU); a window whose maximum is ``-inf`` routes its gradient to its
    first real cell, as PyTorch does.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        win = _windows(x, kernel, stride, padding, float("-inf"))
        out_h, out_w = win.shape[2], win.shape[3]
        # A running max over the kH·kW strided slices: no copy of the unfolded
        # windows (which cost more than the whole convolution stack at 28×28).
        values = win[..., 0, 0].clone()
        local = torch.zeros(values.shape, dtype=torch.long, device=x.device)
        for offset in range(1, kernel[0] * kernel[1]):
            candidate = win[..., offset // kernel[1], offset % kernel[1]]
            # NaN propagates as in torch's kernel (`val > max || isnan(val)`)
            better = (candidate > values) | candidate.isnan()
            values = torch.where(better, candidate, values)
            local.masked_fill_(better, offset)

        kw = kernel[1]
        # A window whose max is -inf may report a padding cell; PyTorch routes its
        # gradient to the window's first real cell, which clamping its first cell gives.
        local = local.masked_fill(values == float("-inf"), 0)
        rows = torch.arange(out_h, device=x.device).view(-1, 1) * stride[0] - padding[0]
        cols = torch.arange(out_w, device=x.device) * stride[1] - padding[1]
        row = (rows + torch.div(local, kw, rounding_mode="floor")).clamp_(0, h - 1)
        col = (cols + local % kw).clamp_(0, w - 1)
        index = row.mul_(w).add_(col)

        ctx.save_for_backward(index)
        ctx.in_shape = (n, c, h, w)
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (index,) = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        flat_grad = grad.reshape(n, c, -1)
        grad_in = flat_grad.new_zeros(n, c, h * w).scatter_add(2, index.view(n, c, -1), flat_grad)
        return grad_in.view(n, c, h, w), None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling with zero padding counted in the divisor (``count_include_pad=True``).

    ``apply(x, kernel, stride, padding)`` with already validated int pairs.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair
    ) -> torch.Tensor:
        ctx.geometry = (tuple(x.shape), kernel, stride, padding)
        return _windows(x, kernel, stride, padding, 0.0).mean(dim=(-2, -1))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (n, c, h, w), kernel, stride, padding = ctx.geometry
        kh, kw = kernel
        ph, pw = padding
        out_h, out_w = grad.shape[2], grad.shape[3]
        # every window position receives grad / (kH·kW); fold sums overlapping windows
        cols = (grad / (kh * kw)).reshape(n, c, 1, out_h * out_w)
        cols = cols.expand(n, c, kh * kw, out_h * out_w).reshape(n, c * kh * kw, out_h * out_w)
        grad_padded = F.fold(
            cols, output_size=(h + 2 * ph, w + 2 * pw), kernel_size=kernel, stride=stride
        )
        return grad_padded[:, :, ph : ph + h, pw : pw + w], None, None, None


def max_pool2d(
    x: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> torch.Tensor:
    """2-D max pooling of an ``(N, C, H, W)`` floating tensor.

    Parameters
    ----------
    x : torch.Tensor
        Input of shape ``(N, C, H, W)``, any floating dtype.
    kernel_size : int or (int, int)
        Window size, >= 1.
    stride : int or (int, int), optional
        Window step, >= 1; defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit ``-inf`` padding on each side, ``0 <= padding <= kernel_size / 2``.

    Returns
    -------
    torch.Tensor
        ``(N, C, H_out, W_out)``, same dtype and device as ``x``.

    Raises
    ------
    TypeError
        if ``x`` is not a floating tensor or a size is not an int / pair of ints.
    ValueError
        if ``x`` is not 4-D, a size is out of range, or the output would be empty.
    """
    kernel, step, pad = _pool_args(kernel_size, stride, padding)
    _check_input(x, kernel, step, pad)
    return MaxPool2dFunction.apply(x, kernel, step, pad)


def avg_pool2d(
    x: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> torch.Tensor:
    """2-D average pooling of an ``(N, C, H, W)`` floating tensor.

    Zero padding counts in the divisor, so every window averages ``kH·kW``
    values (``count_include_pad=True``, PyTorch's default). Parameters,
    return value and errors are those of :func:`max_pool2d`.
    """
    kernel, step, pad = _pool_args(kernel_size, stride, padding)
    _check_input(x, kernel, step, pad)
    return AvgPool2dFunction.apply(x, kernel, step, pad)


class _Pool2d(nn.Module):
    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = _pool_args(kernel_size, stride, padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Module form of :func:`max_pool2d` (arguments validated at construction)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.kernel_size, self.stride, self.padding)
        return MaxPool2dFunction.apply(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Module form of :func:`avg_pool2d` (arguments validated at construction)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.kernel_size, self.stride, self.padding)
        return AvgPool2dFunction.apply(x, self.kernel_size, self.stride, self.padding)
