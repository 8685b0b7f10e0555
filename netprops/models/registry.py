"""Models by name: ``create("resnet20", seed=0)``, ``list_models()``, ``register_model``.

Every entry builds a fresh model from a seed or a generator, so the same call
gives the same weights and never touches torch's global RNG. ``create``
without ``seed`` or ``generator`` uses ``seed=0``.

Input kinds: every built-in entry supports both ``(1, 28, 28)`` (the default)
and ``(3, 32, 32)`` (``entry.input_shapes``); pass ``in_channels=3`` or
``input_shape=(3, 32, 32)`` to ``create``. For the fully connected models this
sets the flattened input size (``create("mlp-784-256-10", in_channels=3)`` is
3072→256→10; the name keeps the Fashion-MNIST width). For the CNNs it sets
the input channels and the flattened size of the head; for the ResNets (global
pooling) only the channel count matters.

==========================  ===================================================
name                        model
==========================  ===================================================
mlp-784-500-100-100-10      the coursework's seed network (``MLP``, ReLU)
mlp-784-256-10              depth comparison: 1 hidden layer
mlp-784-128-64-10           depth comparison: 2 hidden layers
mlp-784-128-64-32-16-10     depth comparison: 4 hidden layers
cnn-2, cnn-3                ``SimpleCNN`` with 2 / 3 conv layers
cnn-k3, cnn-k5, cnn-k7      ``KernelCNN``: 3×3 / 5×5 / 7×7 kernels, equal size
cnn-k1x3                    ``KernelCNN``: 1×1 bottleneck + 3×3, equal size
cnn-depthN[-residual]       ``DepthCNN`` with N = 2, 4, 6, 8 convs, plain / skips
resnet20                    ``ResNet("basic", (3, 3, 3), width=16)``
resnet-bottleneck           ``ResNet("bottleneck", (3, 3, 3), width=64)`` (29 layers)
wrn-16-4                    ``ResNet("wide", (2, 2, 2), widen_factor=4)``
resmlp                      ``ResidualMLP(784, width=256, n_blocks=4)``
==========================  ===================================================
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import check_choice, check_type
from ..seeding import make_generator
from .base import STANDARD_INPUT_SHAPES, resolve_input_shape
from .cnn import DepthCNN, KernelCNN, SimpleCNN
from .mlp import MLP
from .resnet import ResidualMLP, ResNet

__all__ = ["INPUT_ARGS", "ModelEntry", "create", "get_model_entry", "list_models", "register_model"]

INPUT_ARGS: tuple[str | None, ...] = (
    None,
    "input_shape",
    "in_channels",
    "in_features",
    "layer_sizes",
)
"""How an entry turns ``in_channels`` / ``input_shape`` into its factory's arguments.

``"input_shape"``: passed on as the ``(C, H, W)`` tuple; ``"in_channels"``:
its ``C``; ``"in_features"``: ``C·H·W``; ``"layer_sizes"``: ``C·H·W`` replaces
the first entry of ``layer_sizes``; ``None``: the factory takes them (or not)
as ordinary keyword arguments.
"""

_INPUT_KEYS = ("in_channels", "input_shape")


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry.

    Attributes
    ----------
    name : str
        Registry name.
    factory : callable
        Called as ``factory(**defaults, **overrides, generator=g)``.
    defaults : mapping
        Keyword arguments fixed by this entry (overridable).
    input_shapes : tuple of (C, H, W)
        Input shapes the entry supports; the first is the default.
    description : str
        One line for ``list_models`` readers and error messages.
    input_arg : str or None
        One of ``INPUT_ARGS``.
    """

    name: str
    factory: Callable[..., nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, int, int], ...] = (STANDARD_INPUT_SHAPES[0],)
    description: str = ""
    input_arg: str | None = None

    def accepted_overrides(self) -> tuple[str, ...] | None:
        """Names ``create`` accepts as overrides; ``None`` when the factory takes ``**kwargs``."""
        params = inspect.signature(self.factory).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return None
        names = [
            n
            for n, p in params.items()
            if n != "generator"
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        if self.input_arg is not None:
            names += [k for k in _INPUT_KEYS if k not in names]
        return tuple(names)


_REGISTRY: dict[str, ModelEntry] = {}


def _check_input_shapes(input_shapes: Any) -> tuple[tuple[int, int, int], ...]:
    check_type("input_shapes", input_shapes, (tuple, list))
    if not input_shapes:
        raise ValueError("input_shapes must list at least one (C, H, W) shape")
    return tuple(resolve_input_shape(input_shape=s) for s in input_shapes)


def _add(entry: ModelEntry, overwrite: bool) -> ModelEntry:
    if entry.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"a model named {entry.name!r} is already registered; pass overwrite=True to replace it"
        )
    _REGISTRY[entry.name] = entry
    return entry


def register_model(
    name: str,
    factory: Callable[..., nn.Module],
    *,
    input_shapes: Sequence[Sequence[int]] = (STANDARD_INPUT_SHAPES[0],),
    description: str = "",
    overwrite: bool = False,
) -> ModelEntry:
    """Register ``factory`` under ``name`` for :func:`create`.

    Parameters
    ----------
    name : str
        A non-empty name, e.g. ``"my-mlp"``.
    factory : callable
        Builds the model; must accept a keyword ``generator`` (a CPU
        ``torch.Generator``, which it should draw every initial weight from).
        ``create`` passes it the user's overrides as keyword arguments; a
        factory without ``**kwargs`` has unknown overrides rejected by name.
    input_shapes : sequence of (C, H, W)
        Input shapes the model supports (documentation for users and tests).
    description : str
        One line describing the model.
    overwrite : bool
        Replace an existing entry of the same name instead of raising.

    Returns
    -------
    ModelEntry

    Raises
    ------
    TypeError
        if ``factory`` is not callable or takes no ``generator`` keyword.
    ValueError
        for an empty name, a name already registered (without ``overwrite``),
        or malformed ``input_shapes``.
    """
    check_type("name", name, str)
    if not name:
        raise ValueError("name must be a non-empty string")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {factory!r}")
    params = inspect.signature(factory).parameters
    takes_generator = "generator" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if not takes_generator:
        raise TypeError(
            f"factory {factory!r} must accept a keyword argument 'generator' "
            "(models are built from an explicit generator)"
        )
    check_type("description", description, str)
    check_type("overwrite", overwrite, bool)
    entry = ModelEntry(name, factory, {}, _check_input_shapes(input_shapes), description)
    return _add(entry, overwrite)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered as ``name``.

    Raises
    ------
    TypeError
        if ``name`` is not a string.
    ValueError
        for an unknown name; the message lists the valid ones.
    """
    check_type("name", name, str)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def _apply_input(entry: ModelEntry, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn ``in_channels`` / ``input_shape`` in ``kwargs`` into the factory's own argument."""
    if entry.input_arg is None or not any(k in kwargs for k in _INPUT_KEYS):
        return kwargs
    shape = resolve_input_shape(kwargs.pop("in_channels", None), kwargs.pop("input_shape", None))
    if entry.input_arg == "input_shape":
        kwargs["input_shape"] = shape
    elif entry.input_arg == "in_channels":
        kwargs["in_channels"] = shape[0]
    elif entry.input_arg == "in_features":
        kwargs["in_features"] = math.prod(shape)
    else:  # "layer_sizes"
        sizes = list(kwargs["layer_sizes"])
        kwargs["layer_sizes"] = [math.prod(shape), *sizes[1:]]
    return kwargs


def create(
    name: str,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the model registered as ``name``.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    seed : int, optional
        Seed (>= 0) of the generator the weights are drawn from.
    generator : torch.Generator, optional
        A CPU generator to draw from instead of ``seed``. With neither, ``seed=0``.
    **overrides
        Keyword arguments of the model's constructor (e.g. ``dropout=0.2``,
        ``norm="batch"``), plus ``in_channels`` / ``input_shape`` to pick the
        input kind (see the module docstring).

    Returns
    -------
    nn.Module
        A freshly built model on the CPU, in training mode.

    Raises
    ------
    TypeError
        for an override the model does not take (the accepted ones are listed).
    ValueError
        for an unknown name (the registered ones are listed), both ``seed`` and
        ``generator``, or a bad override value.

    Examples
    --------
    >>> model = create("cnn-2", seed=0, in_channels=3)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    entry = get_model_entry(name)
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both")
    if generator is None:
        generator = make_generator(0 if seed is None else seed)
    else:
        check_type("generator", generator, torch.Generator)
    accepted = entry.accepted_overrides()
    if accepted is not None:
        unknown = sorted(set(overrides) - set(accepted))
        if unknown:
            raise TypeError(
                f"model {name!r} got unexpected override(s) {unknown}; "
                f"it accepts {', '.join(accepted)} (and seed or generator)"
            )
    kwargs = _apply_input(entry, {**entry.defaults, **overrides})
    return entry.factory(**kwargs, generator=generator)


# --------------------------------------------------------------------------- built-in entries
_BOTH = STANDARD_INPUT_SHAPES


def _builtin(
    name: str, factory: Callable[..., nn.Module], input_arg: str, description: str, **defaults: Any
) -> None:
    check_choice("input_arg", input_arg, INPUT_ARGS)
    _add(ModelEntry(name, factory, defaults, _BOTH, description, input_arg), overwrite=False)


for _sizes, _what in [
    ((784, 500, 100, 100, 10), "the coursework's seed network"),
    ((784, 256, 10), "depth comparison, 1 hidden layer"),
    ((784, 128, 64, 10), "depth comparison, 2 hidden layers"),
    ((784, 128, 64, 32, 16, 10), "depth comparison, 4 hidden layers"),
]:
    _builtin(
        "mlp-" + "-".join(map(str, _sizes)),
        MLP,
        "layer_sizes",
        f"MLP {'→'.join(map(str, _sizes))} with ReLU ({_what})",
        layer_sizes=_sizes,
    )

for _n in (2, 3):
    _builtin(f"cnn-{_n}", SimpleCNN, "input_shape", f"SimpleCNN, {_n} conv layers", num_conv=_n)

for _k, _what in [(3, "3×3"), (5, "5×5"), (7, "7×7"), ("1x3", "1×1 + 3×3")]:
    _builtin(
        f"cnn-k{_k}",
        KernelCNN,
        "input_shape",
        f"KernelCNN with {_what} kernels (parameter count matched to the others)",
        kernel=_k,
    )

for _depth in (2, 4, 6, 8):
    for _residual in (False, True):
        _builtin(
            f"cnn-depth{_depth}" + ("-residual" if _residual else ""),
            DepthCNN,
            "input_shape",
            f"DepthCNN, {_depth} conv layers" + (" with skips" if _residual else ""),
            depth=_depth,
            residual=_residual,
        )

_builtin(
    "resnet20",
    ResNet,
    "in_channels",
    "ResNet-20 (basic blocks, 3×3)",
    block="basic",
    layers=(3, 3, 3),
)
_builtin(
    "resnet-bottleneck",
    ResNet,
    "in_channels",
    "ResNet-29 of bottleneck blocks, stage widths 64/128/256",
    block="bottleneck",
    layers=(3, 3, 3),
    width=64,
)
_builtin(
    "wrn-16-4",
    ResNet,
    "in_channels",
    "wide ResNet WRN-16-4 (pre-activation blocks)",
    block="wide",
    layers=(2, 2, 2),
    widen_factor=4,
)
_builtin("resmlp", ResidualMLP, "in_features", "fully connected ResNet, 4 blocks of width 256")
