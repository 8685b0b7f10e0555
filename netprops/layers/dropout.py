"""Dropout and DropConnect with explicit generators (docs/methods.md §Monte Carlo checks).

Conventions: ``p`` is the DROP probability (PyTorch's convention; Srivastava
2014 and Wan 2013 write p for the keep probability ``q = 1 − p``). Training
outputs are "inverted": kept values are scaled by ``1/q`` so that the
expectation over masks equals the eval-mode output, and eval mode is exactly
the identity / ``F.linear`` / ``F.conv2d`` with no random draw.

Randomness: each module holds an optional ``torch.Generator`` (``generator``)
used for every mask draw. With ``generator=None`` masks come from torch's
default generator: that is the caller's choice, never the library's.
:meth:`manual_seed` (re)creates the module's own generator from an integer.

DropConnect (Wan et al. 2013) drops individual *weights*. The bias is never
masked, so for a single output ``y_i = Σ_j (M_ij/q)·W_ij·x_j + b_i``::

    E[y_i]   = Σ_j W_ij x_j + b_i
    Var[y_i] = p/(1 − p) · Σ_j W_ij² x_j²            (see ``output_variance``)

``per_sample=False`` shares one mask across the batch (fast: one masked
weight, one ``F.linear``); ``per_sample=True`` draws one mask per example as
in Wan et al., evaluated as one batched matmul / grouped convolution, at the
cost of materializing a ``(batch, *weight.shape)`` mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import (
    check_float_tensor,
    check_int,
    check_positive_int,
    check_probability,
    check_type,
)
from ..init import fans, he_uniform_, uniform_
from ..seeding import make_generator, resolve_generator

__all__ = ["DropConnectConv2d", "DropConnectLinear", "Dropout"]


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None:
        check_type("generator", generator, torch.Generator)
    return generator


class _Stochastic(nn.Module):
    """Shared drop probability and generator handling."""

    def __init__(self, p: float, generator: torch.Generator | None) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.generator: torch.Generator | None = _check_generator(generator)
        self._pending_seed: int | None = None
        self._seed: int | None = None  # set by manual_seed: lets the generator follow .to()

    def _parameter_device(self) -> torch.device | None:
        for param in self.parameters():
            return param.device
        return None

    def manual_seed(self, seed: int) -> _Stochastic:
        """(Re)create this module's generator, seeded with ``seed`` (an int >= 0).

        The generator is created on the device of the module's parameters; a
        module without parameters (:class:`Dropout`) creates it on the device of
        its next input. Moving the module (``.to()``, ``.cuda()``) afterwards
        re-creates the generator from ``seed`` on the new device (a generator
        cannot change device); a generator passed to the constructor is the
        caller's object and is never replaced.

        Returns the module, so ``Dropout(0.1).manual_seed(0)`` chains.
        """
        seed = check_int("seed", seed, min_value=0)
        self._seed = seed
        device = self._parameter_device()
        if device is None:
            self.generator = None
            self._pending_seed = seed
        else:
            self.generator = make_generator(seed, device)
            self._pending_seed = None
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> _Stochastic:  # type: ignore[override]
        super()._apply(fn, recurse)
        if self._seed is not None:
            self.manual_seed(self._seed)  # on the parameters' new device, or lazily
        return self

    def _generator_for(self, device: torch.device) -> torch.Generator | None:
        """The generator for draws on ``device``; ValueError if it lives on another device."""
        if self._pending_seed is not None:
            self.generator = make_generator(self._pending_seed, device)
            self._pending_seed = None
        return resolve_generator(self.generator, device)

    def _keep_mask(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """0/1 keep-mask of ``shape`` (keep probability ``1 − p``) in ``like``'s dtype/device."""
        generator = self._generator_for(like.device)
        # ``U < 1 − p`` with U ~ uniform[0, 1) is Bernoulli(1 − p); on the CPU it draws a
        # 512×512 mask ~3.5x faster than bernoulli_. U is always float32, so one seed gives
        # the same mask in every dtype and half precision does not round 1 − p.
        u = torch.rand(tuple(shape), generator=generator, dtype=torch.float32, device=like.device)
        mask = u.lt_(1.0 - self.p)  # in place: 1.0 where kept, 0.0 where dropped
        return mask if mask.dtype == like.dtype else mask.to(like.dtype)


# --------------------------------------------------------------------------- Dropout


class Dropout(_Stochastic):
    """Inverted dropout: in training each element is zeroed with probability ``p``
    and the kept ones are scaled by ``1/(1 − p)``; identity in eval mode and for ``p = 0``.

    Parameters
    ----------
    p : float in [0, 1)
        Drop probability.
    generator : torch.Generator, optional
        Source of the masks, on the device of the inputs; None draws from
        torch's default generator.

    Shape
    -----
    any input shape; output has the input's shape and dtype.

    Raises
    ------
    TypeError
        ``p`` not a real number, ``generator`` not a Generator, integer input.
    ValueError
        ``p`` outside [0, 1); a generator on another device than the input.

    Notes
    -----
    The backward pass multiplies the upstream gradient by the forward's (scaled) mask.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor("input", x)
        if not self.training or self.p == 0.0:
            return x
        mask = self._keep_mask(x.shape, x).div_(1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- DropConnect


class _DropConnect(_Stochastic):
    """Weight masking shared by the Linear and Conv2d variants.

    Subclasses define ``weight``/``bias`` and ``_apply_weight(x, weight)``
    (the layer with a given, possibly batched, weight).
    """

    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(self, p: float, per_sample: bool, generator: torch.Generator | None) -> None:
        super().__init__(p, generator)
        self.per_sample = check_type("per_sample", per_sample, bool)
        self.last_mask: torch.Tensor | None = None

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Torch's default init, drawn from ``generator`` (else the module's, else global).

        Weight: ``kaiming_uniform_(a=√5)``, i.e. ``U(±1/√fan_in)``; bias ``U(±1/√fan_in)``
        — the init of ``nn.Linear`` / ``nn.Conv2d``, value for value under the same RNG state.
        """
        generator = _check_generator(generator)
        if generator is None:
            generator = self.generator
        he_uniform_(self.weight, a=math.sqrt(5), nonlinearity="leaky_relu", generator=generator)
        if self.bias is not None:
            fan_in, _ = fans(self.weight)
            uniform_(self.bias, 1.0 / math.sqrt(fan_in), generator=generator)

    def sample_mask(self, batch_shape: Sequence[int] = ()) -> torch.Tensor:
        """Draw keep-masks (1 keep, 0 drop) from the layer's generator.

        Parameters
        ----------
        batch_shape : sequence of int
            Leading shape: one independent mask per entry.

        Returns
        -------
        Tensor of shape ``(*batch_shape, *weight.shape)``, weight's dtype and device.
        """
        batch_shape = tuple(
            check_int(f"batch_shape[{i}]", s, min_value=0) for i, s in enumerate(batch_shape)
        )
        return self._keep_mask(batch_shape + tuple(self.weight.shape), self.weight)

    def masked_weight(self, mask: torch.Tensor) -> torch.Tensor:
        """``weight · mask / (1 − p)``: the weight a training forward uses with ``mask``.

        ``mask`` of shape ``(*batch, *weight.shape)`` gives a batched weight.
        """
        return self.weight * mask / (1.0 - self.p)

    def _forward(self, x: torch.Tensor, batch_shape: tuple[int, ...]) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return self._apply_weight(x, self.weight)
        mask = self.sample_mask(batch_shape if self.per_sample else ())
        self.last_mask = mask
        return self._apply_weight(x, self.masked_weight(mask))

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DropConnectLinear(_DropConnect):
    """Linear layer with DropConnect: in training each weight is dropped with probability ``p``.

    Kept weights are scaled by ``1/(1 − p)``, so ``E[output] = F.linear(x, W, b)``;
    the bias is not masked. Eval mode is exactly ``F.linear(x, W, b)``.

    Parameters
    ----------
    in_features, out_features : int >= 1
    p : float in [0, 1), default 0.5
        Drop probability of each weight.
    bias : bool, default True
    per_sample : bool, default False
        One mask per example (Wan et al. 2013; memory ``batch × out × in``)
        instead of one mask shared by the batch.
    generator : torch.Generator, optional
        Source of the masks and, at construction, of the parameter init
        (the global RNG is then untouched); None uses torch's default generator.
    device, dtype
        Factory arguments for the parameters.

    Attributes
    ----------
    last_mask : Tensor or None
        Keep-mask of the last training forward: ``(out, in)``, or
        ``(*batch, out, in)`` with ``per_sample``.

    Shape
    -----
    input ``(*, in_features)``, output ``(*, out_features)``.

    Raises
    ------
    TypeError / ValueError
        bad constructor arguments; integer input; last input dim != ``in_features``;
        generator on another device than the input.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        p: float = 0.5,
        bias: bool = True,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(p, per_sample, generator)
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        check_type("bias", bias, bool)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor("input", x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input's last dimension must be in_features={self.in_features}, "
                f"got input of shape {list(x.shape)}"
            )
        return self._forward(x, tuple(x.shape[:-1]))

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if weight.dim() == 2:
            return F.linear(x, weight, self.bias)
        # per-example weights (*batch, out, in): one batched matmul
        y = torch.matmul(weight, x.unsqueeze(-1)).squeeze(-1)
        return y if self.bias is None else y + self.bias

    def output_variance(self, x: torch.Tensor) -> torch.Tensor:
        """Exact variance over masks of each training output: ``p/(1−p) · Σ_j W_ij² x_j²``.

        Shape of the output for ``x`` (``(*, out_features)``); the same with or
        without ``per_sample`` (each output uses one mask row either way).
        """
        check_float_tensor("input", x)
        return F.linear(x.square(), self.weight.square()) * (self.p / (1.0 - self.p))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, p={self.p}, "
            f"bias={self.bias is not None}, per_sample={self.per_sample}"
        )


def _pair(name: str, value: Any, min_value: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``min_value``, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (
            check_int(f"{name}[0]", value[0], min_value=min_value),
            check_int(f"{name}[1]", value[1], min_value=min_value),
        )
    v = check_int(name, value, min_value=min_value)
    return (v, v)


class DropConnectConv2d(_DropConnect):
    """2-D convolution with DropConnect on the kernel weights.

    In training each kernel weight is dropped with probability ``p`` and kept
    ones are scaled by ``1/(1 − p)`` (bias not masked); eval mode is exactly
    ``F.conv2d``. ``per_sample=True`` draws one kernel mask per example and
    runs the batch as one grouped convolution.

    Parameters
    ----------
    in_channels, out_channels : int >= 1
    kernel_size : int or (int, int), >= 1
    stride : int or (int, int), >= 1
    padding : int or (int, int), >= 0 (zero padding)
    dilation : int or (int, int), >= 1
    groups : int >= 1 dividing both channel counts
    p, bias, per_sample, generator, device, dtype
        As :class:`DropConnectLinear`.

    Attributes
    ----------
    last_mask : Tensor or None
        ``(out, in/groups, kh, kw)``, or ``(N, out, in/groups, kh, kw)`` with ``per_sample``.

    Shape
    -----
    input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; output ``(N, C_out, H', W')`` as ``F.conv2d``.

    Raises
    ------
    TypeError / ValueError
        bad constructor arguments; integer input; wrong rank or channel count;
        generator on another device than the input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        p: float = 0.5,
        bias: bool = True,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(p, per_sample, generator)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self.dilation = _pair("dilation", dilation, 1)
        self.groups = check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide in_channels and out_channels, got groups={groups}, "
                f"in_channels={in_channels}, out_channels={out_channels}"
            )
        check_type("bias", bias, bool)
        factory = {"device": device, "dtype": dtype}
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _check_input(self, x: torch.Tensor) -> None:
        check_float_tensor("input", x)
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"input must have shape (N, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self._forward(x, tuple(x.shape[:-3]))

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias, groups: int) -> torch.Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if weight.dim() == 4:
            return self._conv(x, weight, self.bias, self.groups)
        # per-example kernels (N, out, in/g, kh, kw): fold the batch into the groups
        n = x.shape[0]
        if n == 0:  # no kernels to fold (groups would be 0): the empty output of the shape
            return self._conv(x, self.weight, self.bias, self.groups)
        folded = x.reshape(1, n * self.in_channels, *x.shape[2:])
        y = self._conv(folded, weight.reshape(-1, *weight.shape[2:]), None, n * self.groups)
        y = y.reshape(n, self.out_channels, *y.shape[2:])
        return y if self.bias is None else y + self.bias.view(-1, 1, 1)

    def output_variance(self, x: torch.Tensor) -> torch.Tensor:
        """Exact variance over masks of each training output: ``p/(1−p) · conv2d(x², W²)``.

        Shape of the output for ``x``; the same with or without ``per_sample``.
        """
        self._check_input(x)
        var = self._conv(x.square(), self.weight.square(), None, self.groups)
        return var * (self.p / (1.0 - self.p))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, p={self.p}, bias={self.bias is not None}, "
            f"per_sample={self.per_sample}"
        )
