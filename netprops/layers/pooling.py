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

Max pooling has a fast path for the common non-overlapping case (stride equal
to the kernel, no padding: the zoo's ``MaxPool2d(2)``): the maximum is a chain
of elementwise ``torch.maximum`` over the ``kH·kW`` strided slices of the input
(no copy of the windows), the arg-max is kept as a boolean mask of the winning
cell of every window (1 byte per input element), and the backward copies the
gradient into the winning cells slice by slice (a bitwise AND with the mask,
so an infinite or NaN gradient reaches the winner only, as in torch). Without autograd (eval,
``no_grad``, or an input that needs no gradient) only the maximum is computed.
At 64×32×28×28 (float32, one thread) that is about 0.7 ms for a forward pass
without autograd and 5–6 ms for forward + backward, against about 7 and 7.5 ms
for ``F.max_pool2d`` (whose CPU kernel walks each window in scalar code) and 19
and 21 ms for the general path.

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


_SAME_WIDTH_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _tiles(x: torch.Tensor, kernel: Pair, out_hw: Pair) -> torch.Tensor:
    """``(N, C, H_out, W_out, kH, kW)`` view of non-overlapping windows (stride = kernel, no padding).

    The windows tile the top-left ``H_out·kH × W_out·kW`` block; rows and
    columns past it belong to no window. A view for any input strides.
    """
    (kh, kw), (out_h, out_w) = kernel, out_hw
    block = x[:, :, : out_h * kh, : out_w * kw]
    return block.unflatten(3, (out_w, kw)).unflatten(2, (out_h, kh)).permute(0, 1, 2, 4, 3, 5)


def _window_max(win: torch.Tensor) -> torch.Tensor:
    """Maximum over the last two dims of ``win``: elementwise ``maximum`` of its window slices.

    Rows are reduced first (their slices are the larger ones), then columns.
    ``torch.maximum`` returns NaN when either operand is NaN, as the pooling
    kernels do. Always a new tensor.
    """
    kh, kw = win.shape[-2:]
    rows = win[..., 0, :]
    for r in range(1, kh):
        rows = torch.maximum(rows, win[..., r, :])
    if kw == 1:
        return rows[..., 0].clone() if kh == 1 else rows[..., 0]
    out = torch.maximum(rows[..., 0], rows[..., 1])
    for c in range(2, kw):
        out = torch.maximum(out, rows[..., c])
    return out


def _is_tiling(kernel: Pair, stride: Pair, padding: Pair) -> bool:
    """Non-overlapping, unpadded windows of more than one cell: the fast max-pool path."""
    return stride == kernel and padding == (0, 0) and kernel != (1, 1)


def _max_pool_values(x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair) -> torch.Tensor:
    """The max-pool output alone (no arg-max): what a pass without autograd needs."""
    if _is_tiling(kernel, stride, padding):
        out_hw = (x.shape[2] // kernel[0], x.shape[3] // kernel[1])
        return _window_max(_tiles(x, kernel, out_hw))
    return _window_max(_windows(x, kernel, stride, padding, float("-inf")))


def _winner_mask(win: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``(kH·kW, N, C, H_out, W_out)`` bool: the one cell of each window that gets its gradient.

    The first cell (row-major window order) equal to the maximum — the index
    ``F.max_pool2d`` reports for ties — and, in a window whose maximum is NaN,
    its last NaN cell (the kernel's ``val > max || isnan(val)`` update).
    """
    kw = win.shape[-1]
    cells = [win[..., j // kw, j % kw] for j in range(win.shape[-2] * kw)]
    mask = torch.empty((len(cells), *values.shape), dtype=torch.bool, device=values.device)
    torch.eq(cells[0], values, out=mask[0])
    seen = mask[0].clone()
    for j in range(1, len(cells)):
        hit = torch.eq(cells[j], values)
        torch.logical_and(hit, seen.logical_not(), out=mask[j])
        seen.logical_or_(hit)
    missing = seen.logical_not_()  # only NaN maxima equal no cell
    if missing.any():
        for j in reversed(range(len(cells))):
            nan = cells[j].isnan().logical_and_(missing)
            mask[j].logical_or_(nan)
            missing.logical_and_(nan.logical_not_())
    return mask


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling; saves where each output's gradient goes.

    ``apply(x, kernel, stride, padding)`` with already validated int pairs.
    Ties go to the first maximal cell in row-major window order (the index
    ``F.max_pool2d`` reports on CPU); a window whose maximum is NaN routes its
    gradient to its last NaN cell, and one whose maximum is ``-inf`` to its
    first real cell, as PyTorch does.

    Non-overlapping unpadded windows (stride = kernel) save a boolean mask of
    the winning cells and copy the gradient into them slice by slice; other geometries save the flat arg-max index of every output in
    its input plane and ``scatter_add`` the gradient.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        ctx.in_shape = (n, c, h, w)
        ctx.kernel = kernel
        if _is_tiling(kernel, stride, padding):
            win = _tiles(x, kernel, (h // kernel[0], w // kernel[1]))
            values = _window_max(win)
            ctx.tiling = True
            ctx.save_for_backward(_winner_mask(win, values))
            return values

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

        ctx.tiling = False
        ctx.save_for_backward(index)
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        n, c, h, w = ctx.in_shape
        if not ctx.tiling:
            (index,) = ctx.saved_tensors
            flat_grad = grad.reshape(n, c, -1)
            grad_in = flat_grad.new_zeros(n, c, h * w)
            grad_in = grad_in.scatter_add(2, index.view(n, c, -1), flat_grad)
            return grad_in.view(n, c, h, w), None, None, None

        (mask,) = ctx.saved_tensors
        (kh, kw), (out_h, out_w) = ctx.kernel, grad.shape[2:]
        if torch.is_grad_enabled():  # double backward: the same routing, differentiable
            parts = torch.where(mask, grad.unsqueeze(0), grad.new_zeros(()))
            parts = parts.view(kh, kw, n, c, out_h, out_w).permute(2, 3, 4, 0, 5, 1)
            grad_in = parts.reshape(n, c, out_h * kh, out_w * kw)
            return F.pad(grad_in, (0, w - out_w * kw, 0, h - out_h * kh)), None, None, None
        covered = out_h * kh == h and out_w * kw == w  # else rows/columns outside every window
        grad_in = (torch.empty if covered else torch.zeros)(
            (n, c, h, w), dtype=grad.dtype, device=grad.device
        )
        # Route by the bits: grad AND all-ones keeps it exactly (an inf or NaN
        # gradient goes to the winner only, as in torch), AND zero gives +0.0.
        # A multiply by the 0/1 mask would turn inf·0 into NaN, torch.where is
        # several times slower on CPU.
        bits = _SAME_WIDTH_INT[grad.element_size()]
        cells = _tiles(grad_in.view(bits), (kh, kw), (out_h, out_w))
        for j in range(kh * kw):
            keep = mask[j].to(bits).neg_()  # True -> -1: every bit set
            torch.bitwise_and(grad.view(bits), keep, out=cells[..., j // kw, j % kw])
        return grad_in, None, None, None


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


def _max_pool(x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair) -> torch.Tensor:
    if x.requires_grad and torch.is_grad_enabled():
        return MaxPool2dFunction.apply(x, kernel, stride, padding)
    return _max_pool_values(x, kernel, stride, padding)


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
    return _max_pool(x, kernel, step, pad)


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
        return _max_pool(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Module form of :func:`avg_pool2d` (arguments validated at construction)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.kernel_size, self.stride, self.padding)
        return AvgPool2dFunction.apply(x, self.kernel_size, self.stride, self.padding)
