"""Layer normalization and batch normalization, written from scratch (torch's contract).

The normalization cores are ``torch.autograd.Function`` s with a hand-written
first-order backward: a few fused ops (mean, centring, ``vector_norm``,
``addcmul``, matrix-vector products for the weighted row sums) instead of an
autograd graph of small ones, and one reused full-size buffer in the backward.
``torch.var_mean`` is avoided on purpose: its CPU kernel is tens of times
slower than a two-pass centred variance at these shapes. On a 2-core CPU
forward + backward measured about 2× torch's fused kernels for LayerNorm /
BatchNorm1d at 128×512 (per-op dispatch and Python ``Function`` overhead) and
about 1.2–1.4× for BatchNorm2d at 128×64×16×16. When a graph of
the gradient itself is requested (``create_graph=True``, e.g. ``gradgradcheck``
or gradient penalties) the backward falls back to differentiating a composite
reference, so higher-order derivatives stay exact.

Conventions (docs/methods.md §Normalization contracts):

* ``LayerNorm`` normalizes each sample over its trailing ``normalized_shape``
  with the *biased* variance; train and eval compute the same thing.
* ``BatchNorm1d`` / ``BatchNorm2d`` normalize each channel over the batch (and
  spatial) dimensions with the biased variance in training, store the
  *unbiased* variance ``n/(n-1)·σ²`` in ``running_var``, update running
  statistics as ``x̂ ← (1 − m)·x̂ + m·x_t`` (``momentum=None``: cumulative
  average ``m = 1/num_batches_tracked``) and use them in eval mode.

Buffers and parameters carry torch's names, so ``load_state_dict`` moves
weights between these modules and ``torch.nn.LayerNorm`` / ``BatchNorm*d``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch
from torch import nn

from ..errors import (
    check_float_tensor,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_type,
)

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "batch_norm",
    "layer_norm",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are normalized in float32, like torch's CPU/CUDA kernels.
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    # Skipping no-op .to() calls matters: this sits on a per-batch hot path.
    return t if t is None or t.dtype == dtype else t.to(dtype)


# torch.compiler.is_compiling appeared in torch 2.3; before it nothing here is traced.
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)

_SCALARS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor of ``like``'s dtype and device, cached (read-only).

    A tensor operand lets ``addcmul`` add a constant without the extra dispatch
    a Python scalar costs. Not cached while tracing (torch.compile), where a
    fake tensor must not outlive the trace.
    """
    key = (value, like.dtype, like.device)
    cached = _SCALARS.get(key)
    if cached is None:
        cached = torch.full((), value, dtype=like.dtype, device=like.device)
        if not _is_compiling():
            if len(_SCALARS) >= 64:
                _SCALARS.clear()
            _SCALARS[key] = cached
    return cached


# --------------------------------------------------------------------------- LayerNorm


def _layer_norm_reference(
    x2: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """Composite (autograd-differentiable) LayerNorm on a 2-D view ``(rows, n)``."""
    var, mean = torch.var_mean(x2, dim=-1, keepdim=True, correction=0)
    y = (x2 - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class _LayerNormFunction(torch.autograd.Function):
    """LayerNorm over the last dim of a 2-D tensor ``(rows, n)``; weight/bias of shape ``(n,)``."""

    @staticmethod
    def forward(ctx: Any, x2, weight, bias, eps: float):  # type: ignore[override]
        n = x2.shape[-1]
        # Two-pass centred variance (torch.var_mean's CPU kernel is ~40x slower here)
        # on data shifted by each row's first element: a constant row then centres to
        # exactly 0 (so y == bias, as torch's kernel gives), where sum/n can be 1 ulp
        # off the constant. The mean is folded into the in-place subtraction (alpha)
        # and eps enters through a cached scalar tensor: each op costs µs of dispatch.
        xhat = torch.sub(x2, x2[:, :1])
        xhat.sub_(xhat.sum(-1, keepdim=True), alpha=1.0 / n)
        norm = torch.linalg.vector_norm(xhat, dim=-1, keepdim=True)
        rstd = torch.addcmul(_scalar(eps, xhat), norm, norm, value=1.0 / n).rsqrt_()
        xhat.mul_(rstd)
        if weight is not None and bias is not None:
            y = torch.addcmul(bias, xhat, weight)
        elif weight is not None:
            y = xhat * weight
        elif bias is not None:
            y = xhat + bias
        else:
            y = xhat.clone()
        ctx.eps = eps
        ctx.save_for_backward(x2, weight, bias, xhat, rstd)
        return y

    @staticmethod
    def backward(ctx: Any, dy):  # type: ignore[override]
        x2, weight, bias, xhat, rstd = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _composite_backward(_layer_norm_reference, ctx, dy, x2, weight, bias)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        dx = dw = db = None
        if need_b:
            db = dy.sum(0)
        if not (need_x or need_w):
            return dx, dw, db, None
        # One full-size buffer serves as dy·x̂ and then as dx (fresh allocations cost page faults).
        buf = torch.mul(dy, xhat)
        if need_w:
            dw = buf.sum(0)
        if need_x:
            # dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)) with g = dy·w, means over the
            # normalized dim; the weighted row means are matrix-vector products.
            n = x2.shape[-1]
            if weight is not None:
                # addmm with beta=0 ignores its first argument and scales by alpha in the GEMV.
                w_col = weight.unsqueeze(-1)
                neg_mean_gx = torch.addmm(rstd, buf, w_col, beta=0, alpha=-1.0 / n)
                neg_mean_g = torch.addmm(rstd, dy, w_col, beta=0, alpha=-1.0 / n)
                torch.addcmul(neg_mean_g, dy, weight, out=buf)
            else:
                neg_mean_gx = buf.sum(-1, keepdim=True).mul_(-1.0 / n)
                neg_mean_g = dy.sum(-1, keepdim=True).mul_(-1.0 / n)
                torch.add(dy, neg_mean_g, out=buf)
            dx = buf.addcmul_(xhat, neg_mean_gx).mul_(rstd)
        return dx, dw, db, None


def _composite_backward(reference, ctx: Any, dy, x, weight, bias):
    """Differentiable backward for ``create_graph=True``: differentiate ``reference``.

    The saved inputs keep their autograd history, so the returned gradients
    carry a graph back to them and higher-order derivatives are exact.
    """
    need = ctx.needs_input_grad
    tensors = (x, weight, bias)
    inputs = [t for t, n in zip(tensors, need[:3], strict=True) if n]
    with torch.enable_grad():
        y = reference(x, weight, bias, ctx.eps)
        grads = iter(torch.autograd.grad(y, inputs, dy, create_graph=True))
    out = [next(grads) if n else None for n in need[:3]]
    return (*out, *([None] * (len(need) - 3)))


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Functional LayerNorm: ``(x − mean) / sqrt(var_biased + eps) · weight + bias``.

    Parameters
    ----------
    x : Tensor, floating point, shape ``(*, *normalized_shape)``
    normalized_shape : sequence of int
        Trailing dimensions to normalize over.
    weight, bias : Tensor of shape ``normalized_shape`` or None
    eps : float > 0

    Returns
    -------
    Tensor of the shape and dtype of ``x``.

    Raises
    ------
    TypeError
        ``x`` is not a floating-point tensor.
    ValueError
        the trailing shape of ``x`` differs from ``normalized_shape``.
    """
    check_float_tensor("input", x)
    shape = tuple(normalized_shape)
    _check_trailing_shape(x, shape)
    return _layer_norm(x, len(shape), math.prod(shape), weight, bias, eps)


def _check_trailing_shape(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    d = len(shape)
    if x.dim() < d or x.shape[x.dim() - d :] != shape:
        raise ValueError(
            f"input's trailing shape must equal normalized_shape {list(shape)}, "
            f"got input of shape {list(x.shape)}"
        )


def _layer_norm(
    x: torch.Tensor,
    d: int,
    n: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """LayerNorm of validated input over its last ``d`` dims (``n`` elements)."""
    dtype = _compute_dtype(x.dtype)
    # Reshape/cast only when needed: each extra view is an autograd node on a hot path.
    x2 = x if x.dim() == 2 and d == 1 else x.reshape(-1, n)
    x2 = _cast(x2, dtype)
    w = _flat(weight, n, dtype)
    b = _flat(bias, n, dtype)
    if x2.shape[0] == 0:
        y = _layer_norm_reference(x2, w, b, eps)
    else:
        y = _LayerNormFunction.apply(x2, w, b, eps)
    y = _cast(y, x.dtype)
    return y if y.dim() == x.dim() else y.reshape(x.shape)


def _flat(t: torch.Tensor | None, n: int, dtype: torch.dtype) -> torch.Tensor | None:
    if t is None:
        return None
    if t.dim() != 1:
        t = t.reshape(n)
    return t if t.dtype == dtype else t.to(dtype)


class LayerNorm(nn.Module):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    Same computation in train and eval mode; the variance is biased (divides by n).

    Parameters
    ----------
    normalized_shape : int or sequence of int
        Trailing shape to normalize over (each entry >= 1).
    eps : float > 0, default 1e-5
    elementwise_affine : bool, default True
        Learn ``weight`` (init ones) and ``bias`` (init zeros) of shape ``normalized_shape``.
    bias : bool, default True
        With ``elementwise_affine``, whether to learn the additive ``bias``.
    device, dtype
        Factory arguments for the parameters.

    Shape
    -----
    input ``(*, *normalized_shape)``, output same shape and dtype.

    Raises
    ------
    TypeError / ValueError
        bad constructor arguments; integer input; input whose trailing shape differs.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, bool):
            raise TypeError(
                f"normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}"
            )
        if isinstance(normalized_shape, Integral):
            normalized_shape = (normalized_shape,)
        check_type("normalized_shape", normalized_shape, (tuple, list, torch.Size))
        if len(normalized_shape) == 0:
            raise ValueError("normalized_shape must name at least one dimension, got ()")
        self.normalized_shape = tuple(
            check_positive_int(f"normalized_shape[{i}]", s) for i, s in enumerate(normalized_shape)
        )
        self._ndim = len(self.normalized_shape)
        self._numel = math.prod(self.normalized_shape)
        self.eps = check_positive_float("eps", eps)
        self.elementwise_affine = check_type("elementwise_affine", elementwise_affine, bool)
        check_type("bias", bias, bool)
        factory = {"device": device, "dtype": dtype}
        if self.elementwise_affine:
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to ones, bias to zeros (no randomness)."""
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor("input", x)
        _check_trailing_shape(x, self.normalized_shape)
        return _layer_norm(x, self._ndim, self._numel, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


# --------------------------------------------------------------------------- BatchNorm


def _stat_shape(x: torch.Tensor) -> list[int]:
    shape = [1] * x.dim()
    shape[1] = x.shape[1]
    return shape


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a ``(C,)`` tensor so it broadcasts over ``x`` of shape ``(N, C, *)``."""
    # (C,) already broadcasts against (N, C); skipping the view saves an op on a hot path.
    return t if x.dim() == 2 else t.view(-1, *([1] * (x.dim() - 2)))


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0, *range(2, x.dim()))


def _batch_norm_reference(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """Composite (autograd-differentiable) training-mode BatchNorm with batch statistics."""
    var, mean = torch.var_mean(x, dim=_reduce_dims(x), keepdim=True, correction=0)
    y = (x - mean) * torch.rsqrt(var + eps)
    shape = _stat_shape(x)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _channel_sum(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of ``(N, C, *)``, shape ``(C,)``."""
    if t.dim() == 2:
        return t.sum(0)
    # Reducing the contiguous trailing dims first is much faster on CPU than one
    # (0, 2, ...) reduction.
    return t.flatten(2).sum(-1).sum(0)


def _centred(x: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``x − μ`` per channel, with ``μ = total / n``: the forward's and backward's, bit for bit."""
    return torch.sub(x, _per_channel(total, x), alpha=1.0 / (x.numel() // x.shape[1]))


class _BatchNormFunction(torch.autograd.Function):
    """Training-mode BatchNorm of ``(N, C, *)`` with batch statistics.

    Returns ``(y, sum, sumsq)``: the per-channel sum of ``x`` and of the squared
    deviations ``(x − μ)²`` (shape ``(C,)``), non-differentiable side outputs from
    which :func:`batch_norm` updates the running statistics.

    Only ``x`` and per-channel vectors are kept for the backward, which recomputes
    ``x − μ`` (one elementwise pass) rather than holding a second full-size
    tensor from forward to backward: in a deep network the extra live memory
    costs more (allocator page faults, cache) than the pass.
    """

    @staticmethod
    def forward(ctx: Any, x, weight, bias, eps: float):  # type: ignore[override]
        inv_n = 1.0 / (x.numel() // x.shape[1])
        total = _channel_sum(x)
        # Two-pass centred variance: torch.var_mean's CPU kernel is far slower here.
        # Each op costs a few µs of dispatch at this size: the mean is folded into the
        # subtraction (alpha) and eps enters through a cached scalar tensor.
        xc = _centred(x, total)
        if xc.dim() == 2:
            # vector_norm over dim 0 is ~9x slower than this on CPU; the squares'
            # buffer then receives the output.
            y = torch.mul(xc, xc)
            sumsq = y.sum(0)
        else:
            y = xc  # the output is written over x − μ, which is not kept
            sumsq = torch.linalg.vector_norm(xc.flatten(2), dim=-1).square_().sum(0)
        rstd = torch.add(_scalar(eps, xc), sumsq, alpha=inv_n).rsqrt_()
        scale = rstd * weight if weight is not None else rstd
        if bias is not None:
            torch.addcmul(_per_channel(bias, x), xc, _per_channel(scale, x), out=y)
        else:
            torch.mul(xc, _per_channel(scale, x), out=y)
        ctx.eps = eps
        ctx.save_for_backward(x, weight, bias, total, rstd, scale)
        ctx.mark_non_differentiable(total, sumsq)
        # The statistics never receive gradients: skip materializing zeros for them.
        ctx.set_materialize_grads(False)
        return y, total, sumsq

    @staticmethod
    def backward(ctx: Any, dy, _dsum, _dsumsq):  # type: ignore[override]
        if dy is None:  # no gradient reached y (grads are not materialized)
            return None, None, None, None
        x, weight, bias, total, rstd, k = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _composite_backward(_batch_norm_reference, ctx, dy, x, weight, bias)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        sum_dy = _channel_sum(dy)
        xc = _centred(x, total)
        # One full-size buffer serves as dy·(x − μ) and then as dx.
        buf = torch.mul(dy, xc)
        dw = _channel_sum(buf).mul_(rstd)  # Σ dy·x̂ per channel
        dx = None
        if need_x:
            # dx = w·rstd·(dy − mean(dy) − x̂·mean(dy·x̂)) = k·dy + k2·(x − μ) + k3,
            # with k = w·rstd (the forward's scale).
            c = k * (-1.0 / (x.numel() // x.shape[1]))
            k2 = c * rstd * dw
            k3 = c * sum_dy
            torch.addcmul(_per_channel(k3, x), xc, _per_channel(k2, x), out=buf)
            dx = buf.addcmul_(dy, _per_channel(k, x))
        return dx, dw if need_w else None, sum_dy if need_b else None, None


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Functional BatchNorm over channel dim 1 (the contract of ``F.batch_norm``).

    Parameters
    ----------
    x : Tensor, floating point, shape ``(N, C, *)``
    running_mean, running_var : Tensor of shape ``(C,)`` or None
        Updated in place when ``training`` (``running_var`` gets the unbiased
        batch variance); used for normalization when not ``training``.
    weight, bias : Tensor of shape ``(C,)`` or None
    training : bool
        Use batch statistics (and update running ones) instead of running ones.
    momentum : float
        Weight of the new batch statistics in the running update.
    eps : float > 0

    Raises
    ------
    TypeError
        ``x`` is not a floating-point tensor.
    ValueError
        ``x`` has fewer than 2 dims; training with one value per channel;
        not training and no running statistics given.
    """
    check_float_tensor("input", x)
    if x.dim() < 2:
        raise ValueError(f"input must have shape (N, C, *), got shape {list(x.shape)}")
    dtype = _compute_dtype(x.dtype)
    w, b = _cast(weight, dtype), _cast(bias, dtype)
    xc = _cast(x, dtype)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required when training=False")
        shape = _stat_shape(x)
        scale = torch.rsqrt(_cast(running_var, dtype) + eps)
        if w is not None:
            scale = scale * w
        shift = -_cast(running_mean, dtype) * scale
        if b is not None:
            shift = shift + b
        return _cast(torch.addcmul(shift.reshape(shape), xc, scale.reshape(shape)), x.dtype)
    n = x.numel() // x.shape[1]
    if n <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {x.size()}"
        )
    y, total, sumsq = _BatchNormFunction.apply(xc, w, b, eps)
    # total/sumsq are non-differentiable outputs, so these in-place updates record no
    # graph: x̂ ← (1 − m)·x̂ + m·x_t with x_t = total/n (mean) or sumsq/(n − 1)
    # (unbiased variance), the division folded into add_'s alpha.
    if running_mean is not None:
        running_mean.mul_(1.0 - momentum).add_(_cast(total, running_mean.dtype), alpha=momentum / n)
    if running_var is not None:
        running_var.mul_(1.0 - momentum).add_(
            _cast(sumsq, running_var.dtype), alpha=momentum / (n - 1)
        )
    return _cast(y, x.dtype)


class _BatchNorm(nn.Module):
    """Shared BatchNorm machinery; subclasses declare the accepted input ranks."""

    _ranks: tuple[int, ...] = ()
    _rank_text: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.eps = check_positive_float("eps", eps)
        self.momentum = (
            None if momentum is None else check_probability("momentum", momentum, allow_one=True)
        )
        self.affine = check_type("affine", affine, bool)
        self.track_running_stats = check_type("track_running_stats", track_running_stats, bool)
        factory = {"device": device, "dtype": dtype}
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            self.bias = nn.Parameter(torch.empty(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked",
                torch.tensor(0, dtype=torch.long, device=device),
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean to 0, running variance to 1, batch counter to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset running statistics; weight to ones, bias to zeros (no randomness)."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        check_float_tensor("input", x)
        if x.dim() not in self._ranks:
            raise ValueError(
                f"{type(self).__name__} expected {self._rank_text} input, "
                f"got {x.dim()}D input of shape {list(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expected {self.num_features} channels (dim 1), "
                f"got {x.shape[1]} in input of shape {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        return batch_norm(
            x,
            # Eval with track_running_stats=False: batch stats, nothing to update.
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` input over all dims but C.

    Parameters
    ----------
    num_features : int >= 1
        C, the number of channels.
    eps : float > 0, default 1e-5
    momentum : float in [0, 1] or None, default 0.1
        Running update ``x̂ ← (1 − m)·x̂ + m·x_t``; None for a cumulative average.
    affine : bool, default True
        Learn per-channel ``weight`` (ones) and ``bias`` (zeros).
    track_running_stats : bool, default True
        Keep ``running_mean`` (0), ``running_var`` (1, unbiased) and
        ``num_batches_tracked``; without them batch statistics are used in eval too.
    device, dtype
        Factory arguments for parameters and buffers.

    Raises
    ------
    TypeError / ValueError
        bad constructor arguments; integer input; wrong rank or channel count;
        training with one value per channel.
    """

    _ranks = (2, 3)
    _rank_text = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` input over N, H, W per channel.

    Parameters as :class:`BatchNorm1d`.
    """

    _ranks = (4,)
    _rank_text = "4D"
