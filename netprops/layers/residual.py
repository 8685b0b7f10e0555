"""Residual blocks: ResNet basic/bottleneck, wide pre-activation, fully connected.

Conventions follow torchvision's ResNet:

* each conv block declares ``expansion`` (output channels = ``planes * expansion``);
* the norm layer is injected (``norm_layer: num_features -> nn.Module``,
  default :class:`netprops.layers.norm.BatchNorm2d`);
* parameter names (``conv1``, ``bn1``, ..., ``downsample``) match
  ``torchvision.models.resnet.BasicBlock``/``Bottleneck``, so a state dict
  loads across; ``downsample`` is ``nn.Identity`` when the shortcut is the identity;
* convs are He-normal with ``mode="fan_out"`` (relu gain, whatever the
  activation, as torchvision), norms start at γ = 1, β = 0;
* ``zero_init_residual=True`` zeroes the last γ of the residual branch
  (Goyal et al. 2017), so a block with an identity shortcut starts as
  ``act(x)``. For the post-activation blocks (:class:`BasicBlock`,
  :class:`Bottleneck`) that is the identity only on inputs that ``act`` fixes,
  e.g. non-negative inputs with ReLU, which is what a previous block feeds in.
  :class:`WideBasicBlock` (zeroes its last conv) and :class:`ResidualMLPBlock`
  (zeroes its last Linear) are exact identities for any input.

Weights are drawn from ``generator`` (a CPU ``torch.Generator``); modules are
built with ``torch.nn.utils.skip_init`` so construction itself never draws from
the global RNG. ``generator=None`` draws the init from torch's default generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import skip_init

from ..errors import (
    check_choice,
    check_float_tensor,
    check_int,
    check_positive_int,
    check_probability,
    check_type,
)
from ..init import he_normal_
from ..seeding import resolve_generator
from .activations import ACTIVATIONS, get_activation
from .dropout import Dropout
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm

__all__ = [
    "MLP_NORMS",
    "BasicBlock",
    "Bottleneck",
    "NormLayer",
    "ResidualMLPBlock",
    "WideBasicBlock",
]

NormLayer = Callable[[int], nn.Module]
MLP_NORMS: tuple[str | None, ...] = ("layer", "batch", None)


# --------------------------------------------------------------------------- helpers
def _activation(activation: str) -> nn.Module:
    check_type("activation", activation, str)
    return get_activation(check_choice("activation", activation, ACTIVATIONS))


def _check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None:
        check_type("generator", generator, torch.Generator)
    return resolve_generator(generator, "cpu")


def check_norm_layer(norm_layer: NormLayer | None) -> NormLayer:
    """``norm_layer`` itself, or netprops ``BatchNorm2d`` for None; TypeError if not callable."""
    if norm_layer is None:
        return BatchNorm2d
    if not callable(norm_layer):
        raise TypeError(
            f"norm_layer must be a callable num_features -> nn.Module or None, got {norm_layer!r}"
        )
    return norm_layer


def make_norm(norm_layer: NormLayer | None, num_features: int) -> nn.Module:
    """``norm_layer(num_features)`` (None: netprops ``BatchNorm2d``) with γ=1, β=0.

    Raises TypeError when ``norm_layer`` is not callable or does not return an
    ``nn.Module``.
    """
    norm = check_norm_layer(norm_layer)(num_features)
    if not isinstance(norm, nn.Module):
        raise TypeError(
            f"norm_layer({num_features}) must return an nn.Module, got {type(norm).__name__}"
        )
    with torch.no_grad():
        if getattr(norm, "weight", None) is not None:
            norm.weight.fill_(1.0)
        if getattr(norm, "bias", None) is not None:
            norm.bias.zero_()
    return norm


def _conv(
    in_planes: int,
    out_planes: int,
    kernel_size: int,
    stride: int,
    generator: torch.Generator | None,
) -> nn.Conv2d:
    """Bias-free conv, 'same' padding for odd kernels, He fan_out init from ``generator``."""
    conv = skip_init(
        nn.Conv2d,
        in_planes,
        out_planes,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=False,
    )
    he_normal_(conv.weight, mode="fan_out", nonlinearity="relu", generator=generator)
    return conv


def _zero_last_(module: nn.Module, what: str) -> None:
    weight = getattr(module, "weight", None)
    if weight is None:
        raise ValueError(
            f"zero_init_residual=True needs {what} to have a weight to zero "
            f"(an affine norm_layer), got {module!r}"
        )
    with torch.no_grad():
        weight.zero_()


def _check_conv_input(x: torch.Tensor, channels: int) -> None:
    check_float_tensor("x", x)
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape (N, {channels}, H, W), got {tuple(x.shape)}")


class _ConvBlock(nn.Module):
    """Shared surface of the conv blocks: ``has_projection`` and ``extra_repr``."""

    expansion: ClassVar[int] = 1
    in_planes: int
    planes: int
    stride: int
    downsample: nn.Module

    @property
    def has_projection(self) -> bool:
        """True when the shortcut is a 1×1 projection rather than the identity."""
        return not isinstance(self.downsample, nn.Identity)

    def extra_repr(self) -> str:
        return f"in_planes={self.in_planes}, planes={self.planes}, stride={self.stride}"


class _ConvBlockArgs:
    """Validated constructor arguments shared by the conv blocks."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        norm_layer: NormLayer | None,
        zero_init_residual: bool,
        generator: torch.Generator | None,
    ) -> None:
        self.in_planes = check_positive_int("in_planes", in_planes)
        self.planes = check_positive_int("planes", planes)
        self.stride = check_int("stride", stride, min_value=1)
        self.norm_layer = check_norm_layer(norm_layer)
        self.zero_init_residual = check_type("zero_init_residual", zero_init_residual, bool)
        self.generator = _check_generator(generator)


# --------------------------------------------------------------------------- ResNet blocks
class BasicBlock(_ConvBlock):
    """ResNet basic block (He et al. 2016, torchvision layout).

    ``y = act(bn2(conv3x3(act(bn1(conv3x3_s(x))))) + shortcut(x))``, where the
    shortcut is ``downsample = conv1x1_s + norm`` when ``stride != 1`` or
    ``in_planes != planes * expansion``, else the identity.

    Parameters
    ----------
    in_planes, planes : int
        Input channels and branch width (>= 1); output channels ``planes``.
    stride : int
        Stride of the first conv and the projection (>= 1).
    norm_layer : callable, optional
        ``num_features -> nn.Module``; ``None`` means netprops ``BatchNorm2d``.
    activation : str
        Name for :func:`~netprops.layers.activations.get_activation`.
    zero_init_residual : bool
        Zero ``bn2.weight`` so the block starts as ``act(x)`` (the identity
        for non-negative ``x`` with ReLU) when the shortcut is the identity.
    generator : torch.Generator, optional
        CPU generator for the conv weights (He normal, fan_out).

    Shape
    -----
    ``(N, in_planes, H, W) -> (N, planes, ⌈H/stride⌉, ⌈W/stride⌉)``.

    Raises
    ------
    TypeError / ValueError
        for a bad argument, for ``zero_init_residual`` with a norm without
        weight, and in ``forward`` for an input not shaped ``(N, in_planes, H, W)``.
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        norm_layer: NormLayer | None = None,
        activation: str = "relu",
        zero_init_residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        a = _ConvBlockArgs(in_planes, planes, stride, norm_layer, zero_init_residual, generator)
        self.in_planes, self.planes, self.stride = a.in_planes, a.planes, a.stride
        out_planes = a.planes * self.expansion
        g = a.generator
        self.conv1 = _conv(a.in_planes, a.planes, 3, a.stride, g)
        self.bn1 = make_norm(a.norm_layer, a.planes)
        self.act = _activation(activation)
        self.conv2 = _conv(a.planes, out_planes, 3, 1, g)
        self.bn2 = make_norm(a.norm_layer, out_planes)
        self.downsample = _projection(a, out_planes, with_norm=True)
        if a.zero_init_residual:
            _zero_last_(self.bn2, "bn2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_conv_input(x, self.in_planes)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.downsample(x))


class Bottleneck(_ConvBlock):
    """ResNet bottleneck block (torchvision "v1.5": stride on the 3×3 conv).

    ``y = act(bn3(conv1x1(act(bn2(conv3x3_s(act(bn1(conv1x1(x)))))))) + shortcut(x))``
    with output channels ``planes * 4``; the shortcut rule is that of
    :class:`BasicBlock`. ``zero_init_residual`` zeroes ``bn3.weight``.
    Parameters, shapes and errors as :class:`BasicBlock`.
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        norm_layer: NormLayer | None = None,
        activation: str = "relu",
        zero_init_residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        a = _ConvBlockArgs(in_planes, planes, stride, norm_layer, zero_init_residual, generator)
        self.in_planes, self.planes, self.stride = a.in_planes, a.planes, a.stride
        out_planes = a.planes * self.expansion
        g = a.generator
        self.conv1 = _conv(a.in_planes, a.planes, 1, 1, g)
        self.bn1 = make_norm(a.norm_layer, a.planes)
        self.conv2 = _conv(a.planes, a.planes, 3, a.stride, g)
        self.bn2 = make_norm(a.norm_layer, a.planes)
        self.conv3 = _conv(a.planes, out_planes, 1, 1, g)
        self.bn3 = make_norm(a.norm_layer, out_planes)
        self.act = _activation(activation)
        self.downsample = _projection(a, out_planes, with_norm=True)
        if a.zero_init_residual:
            _zero_last_(self.bn3, "bn3")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_conv_input(x, self.in_planes)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.downsample(x))


class WideBasicBlock(_ConvBlock):
    """Pre-activation wide basic block (Zagoruyko & Komodakis 2016, WRN).

    ``pre = act(bn1(x))``;
    ``y = conv3x3(act(bn2(dropout(conv3x3_s(pre))))) + shortcut``, with no
    activation after the sum. The shortcut is ``x`` itself, or — when
    ``stride != 1`` or ``in_planes != planes`` — a bias-free 1×1 conv applied to
    ``pre`` (the pre-activation is shared by both paths, as in the WRN code).

    Parameters
    ----------
    dropout : float
        Drop probability in [0, 1) between the convs (training mode only),
        masks drawn from ``generator`` after the init (off the CPU, reseed them
        with ``block.dropout.manual_seed(seed)``: a generator cannot change device).
    zero_init_residual : bool
        Zero ``conv2.weight``: the block then starts as the exact identity
        for any input when the shortcut is the identity.

    Other parameters, shapes and errors as :class:`BasicBlock`.
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        dropout: float = 0.0,
        norm_layer: NormLayer | None = None,
        activation: str = "relu",
        zero_init_residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        a = _ConvBlockArgs(in_planes, planes, stride, norm_layer, zero_init_residual, generator)
        self.in_planes, self.planes, self.stride = a.in_planes, a.planes, a.stride
        self.drop_prob = p = check_probability("dropout", dropout)
        g = a.generator
        self.bn1 = make_norm(a.norm_layer, a.in_planes)
        self.act = _activation(activation)
        self.conv1 = _conv(a.in_planes, a.planes, 3, a.stride, g)
        self.dropout = Dropout(p, generator=g)
        self.bn2 = make_norm(a.norm_layer, a.planes)
        self.conv2 = _conv(a.planes, a.planes, 3, 1, g)
        self.downsample = _projection(a, a.planes, with_norm=False)
        if a.zero_init_residual:
            with torch.no_grad():
                self.conv2.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_conv_input(x, self.in_planes)
        pre = self.act(self.bn1(x))
        out = self.conv2(self.act(self.bn2(self.dropout(self.conv1(pre)))))
        return out + self.downsample(pre if self.has_projection else x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dropout={self.drop_prob}"


def _projection(a: _ConvBlockArgs, out_planes: int, *, with_norm: bool) -> nn.Module:
    if a.stride == 1 and a.in_planes == out_planes:
        return nn.Identity()
    conv = _conv(a.in_planes, out_planes, 1, a.stride, a.generator)
    if not with_norm:
        return conv
    return nn.Sequential(conv, make_norm(a.norm_layer, out_planes))


# --------------------------------------------------------------------------- MLP block
class ResidualMLPBlock(nn.Module):
    """Fully connected residual block: ``y = x + fc2(dropout(act(norm(fc1(x)))))``.

    The coursework's ``ResidualBlock`` (two Linear layers around a norm and a
    ReLU, He-initialized, zero biases) in the form that keeps the skip path
    clean: nothing is applied after the sum, so with ``zero_init_residual``
    the block is the exact identity for any input.

    Parameters
    ----------
    features : int
        Input and output width ``F`` (>= 1).
    hidden_features : int, optional
        Hidden width (>= 1); defaults to ``features``.
    activation : str
        Name for :func:`~netprops.layers.activations.get_activation`.
    norm : {"layer", "batch", None}
        Norm after ``fc1``: netprops ``LayerNorm``, ``BatchNorm1d`` or none.
    dropout : float
        Drop probability in [0, 1) after the activation (training mode only).
    zero_init_residual : bool
        Zero ``fc2`` (weight and bias) so the block starts as the identity.
    generator : torch.Generator, optional
        CPU generator for the weights (He normal, fan_in; biases 0) and the
        dropout masks (off the CPU, reseed with ``block.dropout.manual_seed(seed)``).

    Shape
    -----
    ``(N, F) -> (N, F)``; with ``norm != "batch"`` any ``(*, F)``.

    Raises
    ------
    TypeError / ValueError
        for a bad argument, and in ``forward`` for a wrong last dimension (or a
        non-2-D input with ``norm="batch"``).
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | None = None,
        *,
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.features = check_positive_int("features", features)
        hidden = self.features if hidden_features is None else hidden_features
        self.hidden_features = check_positive_int("hidden_features", hidden)
        self.norm_kind = check_choice("norm", norm, MLP_NORMS)
        self.drop_prob = p = check_probability("dropout", dropout)
        check_type("zero_init_residual", zero_init_residual, bool)
        g = _check_generator(generator)
        self.fc1 = skip_init(nn.Linear, self.features, self.hidden_features)
        self.norm: nn.Module
        if self.norm_kind == "layer":
            self.norm = LayerNorm(self.hidden_features)
        elif self.norm_kind == "batch":
            self.norm = BatchNorm1d(self.hidden_features)
        else:
            self.norm = nn.Identity()
        self.act = _activation(activation)
        self.dropout = Dropout(p, generator=g)
        self.fc2 = skip_init(nn.Linear, self.hidden_features, self.features)
        with torch.no_grad():
            for fc in (self.fc1, self.fc2):
                he_normal_(fc.weight, mode="fan_in", nonlinearity="relu", generator=g)
                fc.bias.zero_()
            if zero_init_residual:
                self.fc2.weight.zero_()

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """``fc2(dropout(act(norm(fc1(x)))))``, the part added to ``x``."""
        check_float_tensor("x", x)
        if x.dim() == 0 or x.shape[-1] != self.features:
            raise ValueError(f"x must have shape (*, {self.features}), got {tuple(x.shape)}")
        if self.norm_kind == "batch" and x.dim() != 2:
            raise ValueError(
                f"x must have shape (N, {self.features}) with norm='batch', got {tuple(x.shape)}"
            )
        return self.fc2(self.dropout(self.act(self.norm(self.fc1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_branch(x)

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden_features={self.hidden_features}, "
            f"norm={self.norm_kind!r}"
        )
