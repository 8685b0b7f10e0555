"""Residual networks: the CIFAR-style three-stage ResNet / WRN, and a fully connected one.

Both are built from the netprops residual blocks
(:mod:`netprops.layers.residual`): ``BasicBlock``, ``Bottleneck``,
``WideBasicBlock`` and ``ResidualMLPBlock``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from ..errors import check_choice, check_int, check_positive_int, check_probability, check_type
from ..layers.activations import get_activation
from ..layers.norm import LayerNorm
from ..layers.residual import (
    MLP_NORMS,
    BasicBlock,
    Bottleneck,
    ResidualMLPBlock,
    WideBasicBlock,
    check_norm_layer,
    make_norm,
)
from .base import (
    ZooModel,
    check_image_input,
    flatten_input,
    make_conv,
    make_linear,
    model_generator,
)

__all__ = ["RESNET_BLOCKS", "ResNet", "ResidualMLP"]

RESNET_BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "wide": WideBasicBlock,
}
"""Values of ``ResNet(block=...)`` and the netprops block each one uses."""

_STAGE_MULTIPLIERS = (1, 2, 4)
_STAGE_STRIDES = (1, 2, 2)


class ResNet(ZooModel):
    """CIFAR-style ResNet (He et al. 2016, §4.2) and wide ResNet (Zagoruyko & Komodakis 2016).

    ``stem → stage1 → stage2 → stage3 → global average pool → Linear``. The stem
    is a 3×3 conv to ``width`` channels (+ norm + activation for the
    post-activation blocks; the pre-activation ``"wide"`` network instead ends
    with norm + activation after stage 3, as WRN). Stage ``s`` has ``layers[s]``
    blocks, output width ``width · widen_factor · (1, 2, 4)[s]`` and stride
    ``(1, 2, 2)[s]`` on its first block. A bottleneck stage of output width
    ``w`` uses ``planes = w / 4`` (``Bottleneck.expansion``), so at equal width
    and ``layers`` it has far fewer parameters than a basic one.

    ``ResNet("basic", (3, 3, 3))`` is ResNet-20; ``ResNet("wide", (2, 2, 2),
    widen_factor=4)`` is WRN-16-4.

    Parameters
    ----------
    block : {"basic", "bottleneck", "wide"}
        Block type (``RESNET_BLOCKS``).
    layers : sequence of 3 ints
        Blocks per stage (each >= 1).
    width : int
        Stem width and stage-1 base width (>= 1).
    widen_factor : int
        Multiplier of the stage widths (>= 1).
    in_channels : int
        Input channels (any spatial size works: the pool is global).
    num_classes : int
        Output width.
    zero_init_residual : bool
        Zero the last norm (basic, bottleneck) or conv (wide) of every
        block's residual branch (blocks with an identity shortcut then start
        as ``act(x)``, the identity on non-negative input with ReLU; wide
        blocks as ``x``).
    norm_layer : callable, optional
        ``num_features -> nn.Module`` for every norm; netprops ``BatchNorm2d`` by default.
    activation : str
        Activation name used in the stem and every block.
    dropout : float
        Dropout in [0, 1) inside each wide block (``block="wide"`` only).
    generator : torch.Generator, optional
        CPU generator; one seed is drawn from it for a private generator that
        draws the weights (He normal, fan_out for convs as torchvision; torch's
        default for the head) and the seed of the dropout masks (see
        :class:`~netprops.models.base.ZooModel`). ``None``: torch's default one.

    Shape
    -----
    ``(N, in_channels, H, W) -> (N, num_classes)``.

    Layer outputs
    -------------
    ``get_layer_outputs(x)`` gives ``"stem"``, ``"stage{s}.block{b}"`` for every
    block, ``"final"`` (wide only: the last norm + activation), ``"pool"``
    ``(N, C)`` and ``"output"``.

    Raises
    ------
    TypeError, ValueError
        for a bad argument (unknown block, ``layers`` not 3 positive ints, a
        bottleneck stage width not divisible by 4, dropout with a non-wide
        block ...), and in ``forward`` for input that is not ``(N, in_channels, H, W)``.
    """

    def __init__(
        self,
        block: str = "basic",
        layers: Sequence[int] = (3, 3, 3),
        width: int = 16,
        widen_factor: int = 1,
        in_channels: int = 1,
        num_classes: int = 10,
        zero_init_residual: bool = False,
        *,
        norm_layer: Callable[[int], nn.Module] | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_type("block", block, str)
        self.block = check_choice("block", block, tuple(RESNET_BLOCKS))
        check_type("layers", layers, (tuple, list))
        if len(layers) != 3:
            raise ValueError(f"layers must list 3 block counts (one per stage), got {layers!r}")
        self.layers = tuple(check_positive_int(f"layers[{i}]", n) for i, n in enumerate(layers))
        self.width = check_positive_int("width", width)
        self.widen_factor = check_positive_int("widen_factor", widen_factor)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        check_type("zero_init_residual", zero_init_residual, bool)
        check_norm_layer(norm_layer)
        get_activation(activation)
        drop = check_probability("dropout", dropout)
        if drop > 0 and block != "wide":
            raise ValueError(f"dropout is only used by block='wide', got block={block!r}")
        cls = RESNET_BLOCKS[block]
        expansion: int = cls.expansion  # type: ignore[attr-defined]
        stage_widths = [self.width * self.widen_factor * m for m in _STAGE_MULTIPLIERS]
        for w in stage_widths:
            if w % expansion:
                raise ValueError(
                    f"block={block!r} needs stage widths divisible by {expansion}, got "
                    f"{stage_widths} (width={width}, widen_factor={widen_factor})"
                )
        self.stage_widths = tuple(stage_widths)
        self.pre_activation = block == "wide"

        g = model_generator(generator)
        stem: list[nn.Module] = [
            make_conv(self.in_channels, self.width, 3, bias=False, init="he_fan_out", generator=g)
        ]
        if not self.pre_activation:
            stem += [make_norm(norm_layer, self.width), get_activation(activation)]
        self.stem = nn.Sequential(*stem)
        extra = {"dropout": drop} if block == "wide" else {}
        in_planes = self.width
        for s, (n_blocks, w, stride) in enumerate(
            zip(self.layers, stage_widths, _STAGE_STRIDES, strict=True)
        ):
            blocks = []
            for b in range(n_blocks):
                blocks.append(
                    cls(
                        in_planes,
                        w // expansion,
                        stride if b == 0 else 1,
                        norm_layer=norm_layer,
                        activation=activation,
                        zero_init_residual=zero_init_residual,
                        generator=g,
                        **extra,
                    )
                )
                in_planes = w
            self.add_module(f"stage{s + 1}", nn.Sequential(*blocks))
        self.final = (
            nn.Sequential(make_norm(norm_layer, in_planes), get_activation(activation))
            if self.pre_activation
            else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = make_linear(in_planes, self.num_classes, generator=g)
        self._seed_masks_from(g)

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        check_image_input(type(self).__name__, x, self.in_channels)
        x = self.stem(x)
        yield "stem", x
        for s in range(1, 4):
            for b, block in enumerate(getattr(self, f"stage{s}"), start=1):
                x = block(x)
                yield f"stage{s}.block{b}", x
        if self.pre_activation:
            x = self.final(x)
            yield "final", x
        x = self.pool(x).flatten(1)
        yield "pool", x
        yield "output", self.fc(x)

    def extra_repr(self) -> str:
        return (
            f"block={self.block!r}, layers={self.layers}, stage_widths={self.stage_widths}, "
            f"in_channels={self.in_channels}, num_classes={self.num_classes}"
        )


class ResidualMLP(ZooModel):
    """Fully connected residual network of :class:`~netprops.layers.residual.ResidualMLPBlock` s.

    ``flatten → Linear(in_features, width) → act → n_blocks × (x + fc2(drop(act(norm(fc1(x))))))
    → [LayerNorm] → Linear(width, num_classes)``. The blocks leave the skip path
    clean (nothing after the sum), so with ``zero_init_residual`` the whole
    body is the identity at init.

    Parameters
    ----------
    in_features : int
        Flattened input size (784 for 1×28×28, 3072 for 3×32×32).
    width : int
        Width of the residual stream (>= 1).
    n_blocks : int
        Number of residual blocks (>= 1).
    num_classes : int
        Output width.
    hidden_features : int, optional
        Hidden width inside each block (default ``width``).
    activation : str
        Activation name (stem and blocks).
    norm : {None, "layer", "batch"}
        Norm inside each block (and, for "layer", a ``LayerNorm`` before the head).
    dropout : float
        Dropout in [0, 1) inside each block.
    zero_init_residual : bool
        Zero every block's ``fc2`` so each block starts as the identity.
    generator : torch.Generator, optional
        CPU generator; one seed is drawn from it for a private generator
        (blocks: He normal, zero bias; stem and head: torch's default) and the
        seed of the dropout masks.

    Shape
    -----
    ``(N, *) -> (N, num_classes)`` with ``prod(*) == in_features``.

    Layer outputs
    -------------
    ``"stem.pre"``, ``"stem.post"``, ``"block{b}"`` for each block, ``"output"``.

    Raises
    ------
    TypeError, ValueError
        for a bad argument, and in ``forward`` for input of the wrong size.
    """

    def __init__(
        self,
        in_features: int = 784,
        width: int = 256,
        n_blocks: int = 4,
        num_classes: int = 10,
        *,
        hidden_features: int | None = None,
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.width = check_positive_int("width", width)
        self.n_blocks = check_int("n_blocks", n_blocks, min_value=1)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.norm_kind = check_choice("norm", norm, MLP_NORMS)
        get_activation(activation)
        check_type("zero_init_residual", zero_init_residual, bool)
        g = model_generator(generator)
        self.stem = make_linear(self.in_features, self.width, generator=g)
        self.stem_act = get_activation(activation)
        self.blocks = nn.Sequential(
            *(
                ResidualMLPBlock(
                    self.width,
                    hidden_features,
                    activation=activation,
                    norm=norm,
                    dropout=dropout,
                    zero_init_residual=zero_init_residual,
                    generator=g,
                )
                for _ in range(self.n_blocks)
            )
        )
        self.final_norm = LayerNorm(self.width) if norm == "layer" else nn.Identity()
        self.head = make_linear(self.width, self.num_classes, generator=g)
        self._seed_masks_from(g)

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        h = flatten_input(type(self).__name__, x, self.in_features)
        pre = self.stem(h)
        yield "stem.pre", pre
        h = self.stem_act(pre)
        yield "stem.post", h
        for b, block in enumerate(self.blocks, start=1):
            h = block(h)
            yield f"block{b}", h
        yield "output", self.head(self.final_norm(h))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, width={self.width}, n_blocks={self.n_blocks}, "
            f"num_classes={self.num_classes}, norm={self.norm_kind!r}"
        )
