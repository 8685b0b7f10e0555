"""Shared machinery of the model zoo: the base class, input shapes, seeded construction.

Every zoo model subclasses :class:`ZooModel`, which gives it

* ``forward(x)`` and ``get_layer_outputs(x)`` from one ordered list of named
  steps (``_steps``), so the intermediate outputs a property check reads are
  exactly the values ``forward`` computes;
* ``count_parameters()`` (trainable parameters only).

Layers are built without drawing from torch's global RNG: ``nn.Linear`` and
``nn.Conv2d`` are allocated with :func:`torch.nn.utils.skip_init` (meta device,
then empty CPU storage) and then filled from an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import skip_init

from ..errors import check_float_tensor, check_int, check_positive_int, check_type
from ..init import fans, he_normal_, uniform_
from ..layers.dropout import DropConnectConv2d, DropConnectLinear, Dropout
from ..seeding import derive_seed, make_generator, resolve_generator

__all__ = [
    "STANDARD_INPUT_SHAPES",
    "ZooModel",
    "count_parameters",
    "model_generator",
    "resolve_input_shape",
]

STANDARD_INPUT_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (3, 32, 32))
"""The two input kinds of the zoo: Fashion-MNIST/MNIST and CIFAR-10-like images."""

_SEED_BOUND = 2**62
_STOCHASTIC = (Dropout, DropConnectLinear, DropConnectConv2d)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model`` (parameters with ``requires_grad``)."""
    check_type("model", model, nn.Module)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class ZooModel(nn.Module):
    """Base of the zoo models: a forward pass written as named steps, seeded masks.

    Subclasses implement ``_steps(x)``, yielding ``(name, tensor)`` pairs in
    forward order; the last pair is the model output and is named ``"output"``,
    and end their ``__init__`` with ``self._seed_masks_from(generator)``.

    Dropout / DropConnect masks: a model built from a generator draws one
    *mask seed* from it; every netprops ``Dropout`` / ``DropConnect*`` module
    inside gets its own generator seeded with ``derive_seed(mask_seed, name)``.
    Moving or casting the model (``.to``, ``.cuda``, ``.double`` …) re-seeds
    them on the new device, so masks stay reproducible on any device.
    :meth:`manual_seed` sets a new mask seed.
    """

    _mask_seed: int | None = None

    def _seed_masks_from(self, generator: torch.Generator | None) -> None:
        if generator is not None:
            seed = int(torch.randint(0, _SEED_BOUND, (1,), generator=generator).item())
            self.manual_seed(seed)

    def manual_seed(self, seed: int) -> ZooModel:
        """Re-seed every Dropout / DropConnect mask generator from ``seed`` (an int >= 0).

        Returns the model. Raises TypeError/ValueError for a bad ``seed``.
        """
        self._mask_seed = check_int("seed", seed, min_value=0)
        for name, module in self.named_modules():
            if isinstance(module, _STOCHASTIC):
                module.manual_seed(derive_seed(self._mask_seed, name))
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> ZooModel:  # type: ignore[override]
        # .to()/.cuda()/.double() land here: mask generators must follow the parameters.
        super()._apply(fn, recurse)
        if self._mask_seed is not None:
            self.manual_seed(self._mask_seed)
        return self

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for _, out in self._steps(x):  # noqa: B007 - only the last value is the output
            pass
        return out

    def get_layer_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run a forward pass and return every named intermediate output, in order.

        The values are the tensors ``forward`` computes (still attached to the
        autograd graph; wrap the call in ``torch.no_grad()`` when that is not
        wanted). The last entry is ``"output"``, equal to ``self(x)`` in eval mode.

        Raises
        ------
        TypeError, ValueError
            as ``forward`` for a non-float input or one of the wrong shape.
        """
        return dict(self._steps(x))

    def count_parameters(self) -> int:
        """Number of trainable scalars (parameters with ``requires_grad``)."""
        return count_parameters(self)


# --------------------------------------------------------------------------- input shapes
def resolve_input_shape(
    in_channels: int | None = None, input_shape: Sequence[int] | None = None
) -> tuple[int, int, int]:
    """Return the ``(C, H, W)`` input shape named by ``in_channels`` and/or ``input_shape``.

    With neither, ``(1, 28, 28)``. With only ``in_channels``, the standard shape
    with that many channels (1 → ``(1, 28, 28)``, 3 → ``(3, 32, 32)``). With
    ``input_shape``, that shape (``in_channels``, if also given, must agree).

    Raises
    ------
    TypeError
        if ``input_shape`` is not a tuple/list/torch.Size of ints, or ``in_channels`` not an int.
    ValueError
        if ``input_shape`` does not have 3 entries >= 1, ``in_channels`` < 1,
        ``in_channels`` has no standard shape and no ``input_shape`` was given,
        or the two disagree.
    """
    if in_channels is not None:
        in_channels = check_positive_int("in_channels", in_channels)
    if input_shape is None:
        if in_channels is None:
            return STANDARD_INPUT_SHAPES[0]
        for shape in STANDARD_INPUT_SHAPES:
            if shape[0] == in_channels:
                return shape
        raise ValueError(
            f"in_channels={in_channels} has no standard input shape (1 -> (1, 28, 28), "
            f"3 -> (3, 32, 32)); pass input_shape=(C, H, W) as well"
        )
    check_type("input_shape", input_shape, (tuple, list, torch.Size))
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W) with 3 entries, got {input_shape!r}")
    shape = tuple(check_positive_int(f"input_shape[{i}]", s) for i, s in enumerate(input_shape))
    if in_channels is not None and in_channels != shape[0]:
        raise ValueError(
            f"in_channels={in_channels} disagrees with input_shape={shape} "
            f"(whose first entry is the channel count)"
        )
    return shape  # type: ignore[return-value]


def check_image_input(
    model: str, x: Any, channels: int, spatial: tuple[int, int] | None = None
) -> torch.Tensor:
    """Raise unless ``x`` is a float tensor ``(N, channels, H, W)`` (with ``(H, W) == spatial``)."""
    check_float_tensor("x", x)
    ok = x.dim() == 4 and x.shape[1] == channels
    if spatial is not None:
        ok = ok and tuple(x.shape[2:]) == spatial
    if not ok:
        hw = "H, W" if spatial is None else f"{spatial[0]}, {spatial[1]}"
        raise ValueError(
            f"{model} expected input of shape (N, {channels}, {hw}), got {tuple(x.shape)}"
        )
    return x


def flatten_input(model: str, x: Any, features: int) -> torch.Tensor:
    """Flatten ``x`` of shape ``(N, *)`` with ``prod(*) == features`` to ``(N, features)``."""
    check_float_tensor("x", x)
    if x.dim() < 2 or math.prod(x.shape[1:]) != features:
        raise ValueError(
            f"{model} expected input of shape (N, *) with {features} features per sample "
            f"(e.g. (N, {features})), got {tuple(x.shape)}"
        )
    return x.reshape(x.shape[0], features)


# --------------------------------------------------------------------------- seeded construction
def model_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A private CPU generator for one model, seeded by one draw from ``generator``.

    The model draws its initial weights and its mask seed from this generator,
    so building it advances the caller's generator by exactly one draw and the
    model never holds it. ``None`` passes through: the model then draws its
    weights and masks from torch's default generator.

    Raises
    ------
    TypeError
        if ``generator`` is not a ``torch.Generator``.
    ValueError
        if it is not a CPU generator (models are built on the CPU; move them
        with ``.to(device)`` afterwards).
    """
    if generator is None:
        return None
    check_type("generator", generator, torch.Generator)
    resolve_generator(generator, "cpu")
    seed = int(torch.randint(0, _SEED_BOUND, (1,), generator=generator).item())
    return make_generator(seed)


def torch_default_init_(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """``nn.Linear``/``nn.ConvNd``'s own default init, drawn from ``generator``.

    Weight and bias ``U(-1/√fan_in, 1/√fan_in)`` — what torch's
    ``kaiming_uniform_(a=√5)`` reset gives — without touching the global RNG.
    """
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    bound = 1.0 / math.sqrt(fans(weight)[0])
    uniform_(weight, bound, generator=generator)
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        uniform_(bias, bound, generator=generator)
    return module


def make_linear(
    in_features: int, out_features: int, *, bias: bool = True, generator: torch.Generator | None
) -> nn.Linear:
    """``nn.Linear`` with torch's default init drawn from ``generator``."""
    linear = skip_init(nn.Linear, in_features, out_features, bias=bias)
    torch_default_init_(linear, generator)
    return linear


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    bias: bool = True,
    init: str = "default",
    generator: torch.Generator | None,
) -> nn.Conv2d:
    """``nn.Conv2d`` with 'same' padding (odd kernels), initialized from ``generator``.

    ``init="default"`` is torch's default; ``"he_fan_out"`` is He normal with
    ``mode="fan_out"`` and zero bias (torchvision's ResNet init).
    """
    conv = skip_init(
        nn.Conv2d,
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=bias,
    )
    if init == "default":
        torch_default_init_(conv, generator)
    else:
        he_normal_(conv.weight, mode="fan_out", generator=generator)
        if conv.bias is not None:
            with torch.no_grad():
                conv.bias.zero_()
    return conv
