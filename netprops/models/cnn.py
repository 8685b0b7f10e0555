"""Convolutional networks: a simple CNN, the kernel-size study and the depth study.

All are :class:`ConvNet` s — stages of conv units, each stage followed by a
netprops ``MaxPool2d(2)``, then ``flatten → dropout → Linear`` — and differ
only in the stage plan:

* :class:`SimpleCNN`: 2 or 3 stages of one 3×3 conv (32, 64, 128 channels);
* :class:`KernelCNN`: two stages whose widths make the 3×3, 5×5, 7×7 and
  1×1+3×3 variants equal in size (within about 2 %; see ``KERNEL_PLANS``);
* :class:`DepthCNN`: 2, 4, 6, 8 … 3×3 convs of one width in two stages, plain
  or with a skip around every conv whose input and output shapes are equal.

A conv unit is ``conv → norm → [+ x] → activation`` (:class:`ConvUnit`); the
skip is added before the activation, as in ResNet's ``BasicBlock``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import check_choice, check_int, check_positive_int, check_probability, check_type
from ..init import init_network
from ..layers.activations import get_activation
from ..layers.dropout import Dropout
from ..layers.norm import BatchNorm2d
from ..layers.pooling import MaxPool2d
from .base import (
    ZooModel,
    check_image_input,
    make_conv,
    make_linear,
    model_generator,
    resolve_input_shape,
)
from .mlp import _check_init

__all__ = [
    "CNN_NORMS",
    "KERNEL_PLANS",
    "ConvNet",
    "ConvUnit",
    "DepthCNN",
    "KernelCNN",
    "SimpleCNN",
    "conv_parameter_count",
]

CNN_NORMS: tuple[str | None, ...] = (None, "batch")
"""Values of ``norm`` for the CNNs: none or netprops ``BatchNorm2d`` after each conv."""

StagePlan = Sequence[Sequence[tuple[int, int]]]

KERNEL_PLANS: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "3": (((44, 3),), ((64, 3),)),
    "5": (((16, 5),), ((64, 5),)),
    "7": (((8, 7),), ((64, 7),)),
    # The 1×1 bottleneck sits in stage 2: on a 1- or 3-channel image it would add nothing.
    "1x3": (((44, 3),), ((41, 1), (64, 3))),
}
"""Stage plans ``((out_channels, kernel_size), …)`` per stage of :class:`KernelCNN`.

Widths chosen so the conv parameter counts agree within 2.1 % for 1 or 3
input channels, with or without BatchNorm; the last width (64) is shared, so
the linear heads are identical and the totals agree even more closely.
"""


class ConvUnit(nn.Module):
    """``post = act(norm(conv(x)) [+ x])``, a 'same'-padded conv with optional skip.

    The conv has a bias only without a norm (a norm's shift makes it redundant).
    ``pre_post`` returns the activation's input and output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        norm: str | None,
        activation: nn.Module,
        skip: bool,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__()
        if skip and in_channels != out_channels:
            raise ValueError(
                f"a skip connection needs equal channels, got {in_channels} -> {out_channels}"
            )
        self.skip = skip
        self.conv = make_conv(
            in_channels, out_channels, kernel_size, bias=norm is None, generator=generator
        )
        self.norm = BatchNorm2d(out_channels) if norm == "batch" else nn.Identity()
        self.act = activation

    def pre_post(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pre, post)``: the activation's input (skip included) and output."""
        pre = self.norm(self.conv(x))
        if self.skip:
            pre = pre + x
        return pre, self.act(pre)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_post(x)[1]

    def zero_init_residual_(self) -> None:
        """Zero the residual branch (the norm's scale, else the conv), so ``post = act(x)``."""
        target = self.norm if isinstance(self.norm, BatchNorm2d) else self.conv
        with torch.no_grad():
            target.weight.zero_()
            if isinstance(target, nn.Conv2d) and target.bias is not None:
                target.bias.zero_()

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


def _check_plan(stages: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
    check_type("stages", stages, (tuple, list))
    if not stages:
        raise ValueError("stages must list at least one stage, got an empty sequence")
    plan = []
    for s, stage in enumerate(stages):
        check_type(f"stages[{s}]", stage, (tuple, list))
        if not stage:
            raise ValueError(f"stages[{s}] must list at least one (channels, kernel_size) pair")
        units = []
        for u, unit in enumerate(stage):
            name = f"stages[{s}][{u}]"
            check_type(name, unit, (tuple, list))
            if len(unit) != 2:
                raise ValueError(f"{name} must be a (channels, kernel_size) pair, got {unit!r}")
            channels = check_positive_int(f"{name} channels", unit[0])
            kernel = check_positive_int(f"{name} kernel_size", unit[1])
            if kernel % 2 == 0:
                raise ValueError(f"{name} kernel_size must be odd ('same' padding), got {kernel}")
            units.append((channels, kernel))
        plan.append(tuple(units))
    return tuple(plan)


class ConvNet(ZooModel):
    """Stages of :class:`ConvUnit` s, each followed by ``MaxPool2d(2)``, and a linear head.

    Parameters
    ----------
    stages : sequence of sequences of (int, int)
        ``(out_channels, kernel_size)`` of each conv, grouped by stage; kernel
        sizes odd (padding ``k // 2`` keeps the spatial size until the pool).
    in_channels, input_shape
        Input channels and/or ``(C, H, W)``; see
        :func:`netprops.models.base.resolve_input_shape` (default ``(1, 28, 28)``,
        ``in_channels=3`` means ``(3, 32, 32)``). The flattened size of the head
        is computed from it, so the network accepts exactly that shape.
    num_classes : int
        Output width (>= 1).
    norm : {None, "batch"}
        netprops ``BatchNorm2d`` after each conv (the convs then have no bias).
    activation : str
        Activation name for :func:`netprops.layers.activations.get_activation`.
    dropout : float
        Drop probability in [0, 1) before the linear head (netprops ``Dropout``).
    residual : bool
        Skip connection around every conv whose input and output channels are
        equal (the skip joins before the activation, ``BasicBlock``-style).
    zero_init_residual : bool
        Zero the residual branch of each skipped unit (the norm's scale, or the
        conv without a norm), so each starts as ``act(x)`` — the identity on
        non-negative input with ReLU. Needs ``residual=True``.
    init : str, optional
        A :data:`netprops.init.INIT_SCHEMES` name for all convs and the head
        (biases zeroed); ``None`` keeps torch's default ``U(±1/√fan_in)``.
    init_params : mapping, optional
        Parameters of ``init``.
    generator : torch.Generator, optional
        CPU generator; one seed is drawn from it for a private generator that
        draws the weights and the seed of the dropout masks (see
        :class:`~netprops.models.base.ZooModel`). ``None``: torch's default one.

    Shape
    -----
    ``(N, C, H, W) -> (N, num_classes)`` with ``(C, H, W) == input_shape``.

    Layer outputs
    -------------
    ``get_layer_outputs(x)`` gives ``"convi.pre"`` (the activation's input,
    skip included) and ``"convi.post"`` for every conv ``i = 1 …`` (numbered
    across stages), ``"pools"`` after each stage ``s``, then ``"output"``.

    Raises
    ------
    TypeError, ValueError
        for a bad argument (the allowed values are named), an input too small
        for the number of pooling stages, and in ``forward`` for input of
        another shape than ``(N, *input_shape)``.
    """

    def __init__(
        self,
        stages: StagePlan,
        *,
        in_channels: int | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int = 10,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        residual: bool = False,
        zero_init_residual: bool = False,
        init: str | None = None,
        init_params: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.stages = plan = _check_plan(stages)
        self.input_shape = resolve_input_shape(in_channels, input_shape)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.norm_kind = check_choice("norm", norm, CNN_NORMS)
        get_activation(activation)
        self.drop_prob = check_probability("dropout", dropout)
        self.residual = check_type("residual", residual, bool)
        check_type("zero_init_residual", zero_init_residual, bool)
        params = _check_init(init, init_params)
        self.init = init
        channels, height, width = self.input_shape
        for s in range(len(plan)):
            if min(height, width) < 2:
                raise ValueError(
                    f"input_shape {self.input_shape} is too small for {len(plan)} "
                    f"2x2 pooling stages (the spatial size would reach 0 at stage {s + 1})"
                )
            height, width = height // 2, width // 2
        skips = []
        c = channels
        for stage in plan:
            for out, _ in stage:
                skips.append(residual and out == c)
                c = out
        if residual and not any(skips):
            raise ValueError("residual=True but no conv has equal input and output channels")
        if zero_init_residual and not residual:
            raise ValueError("zero_init_residual=True needs residual=True")

        g = model_generator(generator)
        units, pools, c, i = [], [], channels, 0
        for stage in plan:
            for out, kernel in stage:
                units.append(
                    ConvUnit(
                        c,
                        out,
                        kernel,
                        norm=norm,
                        activation=get_activation(activation),
                        skip=skips[i],
                        generator=g,
                    )
                )
                c, i = out, i + 1
            pools.append(MaxPool2d(2))
        self.units = nn.ModuleList(units)
        self.pools = nn.ModuleList(pools)
        self.dropout = Dropout(self.drop_prob, generator=g) if dropout > 0 else nn.Identity()
        self.head = make_linear(c * height * width, self.num_classes, generator=g)
        if init is not None:
            init_network(self, init, generator=g, **params)
        if zero_init_residual:
            for unit in self.units:
                if unit.skip:
                    unit.zero_init_residual_()
        self._seed_masks_from(g)

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        check_image_input(type(self).__name__, x, self.input_shape[0], self.input_shape[1:])
        units = iter(self.units)
        i = 0
        for s, stage in enumerate(self.stages, start=1):
            for _ in stage:
                i += 1
                pre, x = next(units).pre_post(x)
                yield f"conv{i}.pre", pre
                yield f"conv{i}.post", x
            x = self.pools[s - 1](x)
            yield f"pool{s}", x
        yield "output", self.head(self.dropout(x.flatten(1)))

    def extra_repr(self) -> str:
        return (
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"norm={self.norm_kind!r}, dropout={self.drop_prob}, residual={self.residual}, "
            f"init={self.init!r}"
        )


_SIMPLE_CHANNELS = (32, 64, 128)


class SimpleCNN(ConvNet):
    """2 or 3 stages of ``3×3 conv → [BatchNorm] → act → MaxPool2d(2)`` and a linear head.

    Parameters
    ----------
    num_conv : {2, 3}
        Number of conv layers (one per stage).
    channels : sequence of int, optional
        Output channels of each conv; defaults to the first ``num_conv`` of (32, 64, 128).
    kernel_size : int
        Odd kernel size of every conv.
    **kwargs
        ``in_channels``, ``input_shape``, ``num_classes``, ``norm``, ``activation``,
        ``dropout``, ``init``, ``init_params``, ``generator``: as :class:`ConvNet`.

    Raises
    ------
    TypeError, ValueError
        for ``num_conv`` outside {2, 3}, ``channels`` of another length, and as
        :class:`ConvNet`.
    """

    def __init__(
        self,
        num_conv: int = 2,
        channels: Sequence[int] | None = None,
        kernel_size: int = 3,
        *,
        in_channels: int | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int = 10,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        init: str | None = None,
        init_params: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        num_conv = check_choice("num_conv", check_int("num_conv", num_conv), (2, 3))
        if channels is None:
            channels = _SIMPLE_CHANNELS[:num_conv]
        check_type("channels", channels, (tuple, list))
        if len(channels) != num_conv:
            raise ValueError(
                f"channels must list {num_conv} widths (one per conv), got {list(channels)}"
            )
        super().__init__(
            [[(c, kernel_size)] for c in channels],
            in_channels=in_channels,
            input_shape=input_shape,
            num_classes=num_classes,
            norm=norm,
            activation=activation,
            dropout=dropout,
            init=init,
            init_params=init_params,
            generator=generator,
        )


class KernelCNN(ConvNet):
    """The kernel-size study: two stages with 3×3, 5×5, 7×7 or 1×1+3×3 convs.

    Channel widths come from ``KERNEL_PLANS`` so that all variants have the
    same number of parameters within about 2 % (3×3: 44, 64; 5×5: 16, 64;
    7×7: 8, 64; 1×1+3×3: 3×3 to 44, then 1×1 to 41 and 3×3 to 64).

    Parameters
    ----------
    kernel : {3, 5, 7, "1x3"}
        The variant (``"3"``, ``"5"``, ``"7"`` are accepted too).
    **kwargs
        As :class:`ConvNet` (without ``stages``, ``residual``).
    """

    def __init__(
        self,
        kernel: int | str = 3,
        *,
        in_channels: int | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int = 10,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        init: str | None = None,
        init_params: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        key = kernel if isinstance(kernel, str) else str(check_int("kernel", kernel))
        check_choice("kernel", key, tuple(KERNEL_PLANS))
        super().__init__(
            KERNEL_PLANS[key],
            in_channels=in_channels,
            input_shape=input_shape,
            num_classes=num_classes,
            norm=norm,
            activation=activation,
            dropout=dropout,
            init=init,
            init_params=init_params,
            generator=generator,
        )
        self.kernel = key


class DepthCNN(ConvNet):
    """The depth study: ``depth`` 3×3 convs of one width in two pooled stages.

    Stage 1 holds ``depth // 2`` convs, stage 2 the rest; every conv has
    ``width`` output channels. With ``residual=True`` each conv but the first
    (whose input has ``in_channels`` channels) gets a ``BasicBlock``-style skip,
    so the plain and residual versions have the same parameters.

    Parameters
    ----------
    depth : int
        Number of conv layers (>= 2), e.g. 2, 4, 6, 8.
    residual : bool
        Add the skips.
    width : int
        Channels of every conv (>= 1).
    zero_init_residual : bool
        As :class:`ConvNet` (needs ``residual=True``).
    **kwargs
        As :class:`ConvNet` (without ``stages``).
    """

    def __init__(
        self,
        depth: int = 2,
        residual: bool = False,
        width: int = 32,
        *,
        in_channels: int | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int = 10,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        init: str | None = None,
        init_params: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        depth = check_int("depth", depth, min_value=2)
        width = check_positive_int("width", width)
        first = depth // 2
        super().__init__(
            [[(width, 3)] * first, [(width, 3)] * (depth - first)],
            in_channels=in_channels,
            input_shape=input_shape,
            num_classes=num_classes,
            norm=norm,
            activation=activation,
            dropout=dropout,
            residual=residual,
            zero_init_residual=zero_init_residual,
            init=init,
            init_params=init_params,
            generator=generator,
        )
        self.depth = depth
        self.width = width


def conv_parameter_count(model: ConvNet) -> int:
    """Trainable parameters of the conv units only (head excluded)."""
    return sum(p.numel() for p in model.units.parameters() if p.requires_grad)
