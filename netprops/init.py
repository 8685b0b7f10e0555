"""Weight initializers written from their formulas, fans, gains and network factories.

Every initializer fills a floating-point tensor in place (under ``torch.no_grad()``,
so leaf ``nn.Parameter`` objects work) and returns it. Those that draw take a
keyword ``generator=`` (a ``torch.Generator`` on the tensor's device); with
``generator=None`` they draw from torch's default generator, which is then the
caller's explicit choice.

Conventions follow ``torch.nn.init`` (docs/methods.md §Initializers): for a weight of shape
``(out, in, *kernel)`` — ``nn.Linear`` is ``(out_features, in_features)``,
``nn.ConvNd`` is ``(C_out, C_in / groups, *k)`` —

* ``fan_in = size(1) · ∏ size[2:]`` and ``fan_out = size(0) · ∏ size[2:]``;
* Xavier/Glorot: ``std = gain · √(2 / (fan_in + fan_out))``;
* He/Kaiming: ``std = gain / √fan_mode``; LeCun: ``std = 1 / √fan_in``;
* the uniform variants draw ``U(-b, b)`` with ``b = √3 · std`` (same variance).

``init_network`` applies a named scheme (``INIT_SCHEMES``) to every weight of a
model and zeroes the biases; ``NetworkInitializer`` builds the coursework's
fully-connected network (784→500→100→100→10) with a chosen scheme without
touching torch's global RNG.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from .errors import (
    check_choice,
    check_finite_float,
    check_float_tensor,
    check_min_dims,
    check_positive_float,
    check_positive_int,
    check_type,
)
from .seeding import resolve_generator

__all__ = [
    "FAN_MODES",
    "INIT_SCHEMES",
    "NONLINEARITIES",
    "NetworkInitializer",
    "calculate_gain",
    "constant_",
    "fans",
    "he_normal_",
    "he_uniform_",
    "init_network",
    "initializable_modules",
    "lecun_normal_",
    "normal_",
    "scheme_std",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

NONLINEARITIES: tuple[str, ...] = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
"""Names accepted by :func:`calculate_gain` (torch's names plus ``"identity"``)."""

FAN_MODES: tuple[str, ...] = ("fan_in", "fan_out")
"""Values of ``mode`` for the He initializers."""

INIT_SCHEMES: tuple[str, ...] = (
    "zeros",
    "normal",
    "xavier",
    "xavier_normal",
    "he",
    "he_uniform",
    "lecun",
)
"""Scheme names accepted by :func:`init_network` and :class:`NetworkInitializer`."""

_LEAKY_RELU_DEFAULT_SLOPE = 0.01  # torch.nn.init.calculate_gain's default
# selu: 3/4 is torch's empirical value (pytorch/pytorch#50664), not a derived one.
_FIXED_GAINS: dict[str, float] = {"tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "selu": 0.75}


# --------------------------------------------------------------------------- fans and gains
def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a Linear or ConvNd weight.

    Parameters
    ----------
    tensor : torch.Tensor
        Shape ``(out, in, *kernel)`` with at least 2 dimensions; any dtype and
        device (only the shape is read, so a ``meta`` tensor works).

    Returns
    -------
    tuple of int
        ``fan_in = size(1) · ∏ size[2:]``, ``fan_out = size(0) · ∏ size[2:]``.

    Raises
    ------
    TypeError
        if ``tensor`` is not a ``torch.Tensor``.
    ValueError
        if it has fewer than 2 dimensions, or a fan is zero (an empty dimension).

    Examples
    --------
    >>> fans(torch.empty(32, 16, 3, 3))
    (144, 288)
    """
    check_type("tensor", tensor, torch.Tensor)
    check_min_dims("tensor", tensor, 2)
    receptive_field = math.prod(tensor.shape[2:])
    fan_in = tensor.shape[1] * receptive_field
    fan_out = tensor.shape[0] * receptive_field
    if fan_in == 0 or fan_out == 0:
        raise ValueError(
            f"tensor has a zero-size fan (fan_in={fan_in}, fan_out={fan_out}) for shape "
            f"{tuple(tensor.shape)}; fans need every dimension >= 1"
        )
    return fan_in, fan_out


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Return the recommended gain for ``nonlinearity`` (as ``torch.nn.init.calculate_gain``).

    ======================================  ===========================
    nonlinearity                            gain
    ======================================  ===========================
    linear, identity, conv*, conv_transpose*  1
    sigmoid                                 1
    tanh                                    5/3
    relu                                    √2
    leaky_relu                              √(2 / (1 + param²))
    selu                                    3/4
    ======================================  ===========================

    Parameters
    ----------
    nonlinearity : str
        One of ``NONLINEARITIES``.
    param : float, optional
        Negative slope of ``leaky_relu`` (default 0.01, as torch); ignored by the
        other nonlinearities (as torch), but still type-checked.

    Raises
    ------
    TypeError
        if ``nonlinearity`` is not a string or ``param`` is not a real number.
    ValueError
        if ``nonlinearity`` is unknown (the message lists the valid names) or
        ``param`` is not finite.
    """
    check_type("nonlinearity", nonlinearity, str)
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    slope = _LEAKY_RELU_DEFAULT_SLOPE if param is None else check_finite_float("param", param)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + slope**2))
    return _FIXED_GAINS.get(nonlinearity, 1.0)


# --------------------------------------------------------------------------- std formulas
def _check_gain(gain: Any) -> float:
    return check_positive_float("gain", gain, allow_zero=True)


def _xavier_std(tensor: torch.Tensor, gain: float = 1.0) -> float:
    fan_in, fan_out = fans(tensor)
    return _check_gain(gain) * math.sqrt(2.0 / (fan_in + fan_out))


def _he_std(
    tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu"
) -> float:
    a = check_finite_float("a", a)
    check_choice("mode", mode, FAN_MODES)
    gain = calculate_gain(nonlinearity, a)
    fan_in, fan_out = fans(tensor)
    return gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def _lecun_std(tensor: torch.Tensor) -> float:
    fan_in, _ = fans(tensor)
    return 1.0 / math.sqrt(fan_in)


def _uniform_bound(std: float) -> float:
    """Half-width of the zero-mean uniform distribution with standard deviation ``std``."""
    return math.sqrt(3.0) * std


# --------------------------------------------------------------------------- tensor initializers
def _draw_target(
    tensor: Any, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Generator | None]:
    check_float_tensor("tensor", tensor)
    return tensor, resolve_generator(generator, tensor.device)


def _fill_normal(
    tensor: torch.Tensor, mean: float, std: float, generator: torch.Generator | None
) -> torch.Tensor:
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def _fill_uniform(
    tensor: torch.Tensor, bound: float, generator: torch.Generator | None
) -> torch.Tensor:
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill a floating-point ``tensor`` (any shape) with 0 in place and return it.

    Raises
    ------
    TypeError
        if ``tensor`` is not a floating-point ``torch.Tensor``.
    """
    check_float_tensor("tensor", tensor)
    with torch.no_grad():
        return tensor.zero_()


def constant_(tensor: torch.Tensor, value: float) -> torch.Tensor:
    """Fill a floating-point ``tensor`` (any shape) with ``value`` in place and return it.

    Raises
    ------
    TypeError
        if ``tensor`` is not a floating-point tensor or ``value`` not a real number.
    ValueError
        if ``value`` is not finite.
    """
    check_float_tensor("tensor", tensor)
    value = check_finite_float("value", value)
    with torch.no_grad():
        return tensor.fill_(value)


def normal_(
    tensor: torch.Tensor,
    std: float = 1.0,
    mean: float = 0.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` (any shape) with draws from ``N(mean, std²)`` in place.

    Raises
    ------
    TypeError
        if ``tensor`` is not a floating-point tensor, ``std``/``mean`` are not
        real numbers, or ``generator`` is not a ``torch.Generator``.
    ValueError
        if ``std`` is negative or not finite, ``mean`` is not finite, or the
        generator is on another device than ``tensor``.
    """
    tensor, generator = _draw_target(tensor, generator)
    std = check_positive_float("std", std, allow_zero=True)
    mean = check_finite_float("mean", mean)
    return _fill_normal(tensor, mean, std, generator)


def uniform_(
    tensor: torch.Tensor, bound: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` (any shape) with draws from ``U(-bound, bound)`` in place.

    Raises
    ------
    TypeError
        if ``tensor`` is not a floating-point tensor or ``bound`` not a real number.
    ValueError
        if ``bound`` is negative or not finite, or the generator is on another device.
    """
    tensor, generator = _draw_target(tensor, generator)
    bound = check_positive_float("bound", bound, allow_zero=True)
    return _fill_uniform(tensor, bound, generator)


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio (2010) uniform: ``U(-b, b)``, ``b = gain · √(6 / (fan_in + fan_out))``.

    Parameters
    ----------
    tensor : torch.Tensor
        Floating-point weight of shape ``(out, in, *kernel)``, filled in place.
    gain : float
        Scale factor >= 0, e.g. ``calculate_gain("tanh")``.
    generator : torch.Generator, optional
        Source of the draws, on ``tensor``'s device.

    Raises
    ------
    TypeError
        for a non-float tensor or a non-real ``gain``.
    ValueError
        for fewer than 2 dimensions, a zero fan, a negative ``gain``, or a
        generator on another device.
    """
    tensor, generator = _draw_target(tensor, generator)
    return _fill_uniform(tensor, _uniform_bound(_xavier_std(tensor, gain)), generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio (2010) normal: ``N(0, std²)``, ``std = gain · √(2 / (fan_in + fan_out))``.

    Arguments and errors as :func:`xavier_uniform_`.
    """
    tensor, generator = _draw_target(tensor, generator)
    return _fill_normal(tensor, 0.0, _xavier_std(tensor, gain), generator)


def he_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. (2015) normal: ``N(0, std²)``, ``std = gain / √fan_mode``.

    Parameters
    ----------
    tensor : torch.Tensor
        Floating-point weight of shape ``(out, in, *kernel)``, filled in place.
    a : float
        Negative slope, used only with ``nonlinearity="leaky_relu"`` (as torch).
    mode : {"fan_in", "fan_out"}
        ``fan_in`` preserves the forward second moment, ``fan_out`` the backward one.
    nonlinearity : str
        One of ``NONLINEARITIES``; ``gain = calculate_gain(nonlinearity, a)``.
    generator : torch.Generator, optional
        Source of the draws, on ``tensor``'s device.

    Raises
    ------
    TypeError
        for a non-float tensor, or non-string ``nonlinearity`` / non-real ``a``.
    ValueError
        for fewer than 2 dimensions, a zero fan, an unknown ``mode`` or
        ``nonlinearity`` (the valid ones are listed), or a generator on another device.
    """
    tensor, generator = _draw_target(tensor, generator)
    return _fill_normal(tensor, 0.0, _he_std(tensor, a, mode, nonlinearity), generator)


def he_uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. (2015) uniform: ``U(-b, b)``, ``b = √3 · gain / √fan_mode``.

    Arguments and errors as :func:`he_normal_`.
    """
    tensor, generator = _draw_target(tensor, generator)
    std = _he_std(tensor, a, mode, nonlinearity)
    return _fill_uniform(tensor, _uniform_bound(std), generator)


def lecun_normal_(
    tensor: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LeCun normal: ``N(0, 1 / fan_in)`` (the SELU initialization).

    Raises
    ------
    TypeError
        for a non-float tensor.
    ValueError
        for fewer than 2 dimensions, a zero fan, or a generator on another device.
    """
    tensor, generator = _draw_target(tensor, generator)
    return _fill_normal(tensor, 0.0, _lecun_std(tensor), generator)


# --------------------------------------------------------------------------- schemes
class _Scheme(NamedTuple):
    fill: Callable[..., torch.Tensor]  # fill(tensor, generator=..., **params)
    std: Callable[..., float]  # std(tensor, **params)
    defaults: Mapping[str, Any]


_REQUIRED = object()
_HE_DEFAULTS = {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"}

_SCHEMES: dict[str, _Scheme] = {
    "zeros": _Scheme(lambda t, *, generator: zeros_(t), lambda t: 0.0, {}),
    "normal": _Scheme(normal_, lambda t, std: std, {"std": _REQUIRED}),
    "xavier": _Scheme(xavier_uniform_, _xavier_std, {"gain": 1.0}),
    "xavier_normal": _Scheme(xavier_normal_, _xavier_std, {"gain": 1.0}),
    "he": _Scheme(he_normal_, _he_std, _HE_DEFAULTS),
    "he_uniform": _Scheme(he_uniform_, _he_std, _HE_DEFAULTS),
    "lecun": _Scheme(lecun_normal_, _lecun_std, {}),
}

# Value checks, run before any weight is touched.
_PARAM_CHECKS: dict[str, Callable[[Any], Any]] = {
    "std": lambda v: check_positive_float("std", v, allow_zero=True),
    "gain": _check_gain,
    "a": lambda v: check_finite_float("a", v),
    "mode": lambda v: check_choice("mode", v, FAN_MODES),
    "nonlinearity": lambda v: calculate_gain(v),
}


def _resolve_scheme(scheme: Any, params: Mapping[str, Any]) -> tuple[_Scheme, dict[str, Any]]:
    """Validate ``scheme`` and its ``params``; return the scheme and the params with defaults."""
    check_type("scheme", scheme, str)
    check_choice("scheme", scheme, INIT_SCHEMES)
    spec = _SCHEMES[scheme]
    accepted = ", ".join(spec.defaults) or "no parameters"
    unexpected = sorted(set(params) - set(spec.defaults))
    if unexpected:
        raise ValueError(
            f"scheme {scheme!r} got unexpected parameter(s) {unexpected}; it accepts {accepted}"
        )
    missing = [k for k, v in spec.defaults.items() if v is _REQUIRED and k not in params]
    if missing:
        raise ValueError(
            f"scheme {scheme!r} requires parameter(s) {missing}; "
            f"e.g. init_network(model, 'normal', std=0.01)"
        )
    resolved = {**spec.defaults, **params}
    for key, value in resolved.items():
        _PARAM_CHECKS[key](value)
    return spec, resolved


def scheme_std(tensor: torch.Tensor, scheme: str, **params: Any) -> float:
    """Standard deviation of the weights ``scheme`` draws for a weight shaped like ``tensor``.

    The uniform schemes draw ``U(-√3·std, √3·std)``; ``"zeros"`` gives 0. Only
    the shape of ``tensor`` is read (a ``meta`` tensor works). Errors as
    :func:`init_network` and :func:`fans`.

    Examples
    --------
    >>> round(scheme_std(torch.empty(100, 300, device="meta"), "he"), 6)
    0.08165
    """
    spec, resolved = _resolve_scheme(scheme, params)
    check_type("tensor", tensor, torch.Tensor)
    return float(spec.std(tensor, **resolved))


# --------------------------------------------------------------------------- networks
def _is_initializable(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, _ConvNd)) or (
        getattr(module, "_netprops_initializable", False) is True
    )


def initializable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return ``(name, module)`` for every module :func:`init_network` initializes.

    The rule: a module is initialized if it is an ``nn.Linear`` or an
    ``nn.modules.conv._ConvNd`` (``nn.Conv1d/2d/3d`` and the transposed
    convolutions, whose fans follow torch's convention of reading ``size(1)``
    as ``fan_in``), or if it sets ``_netprops_initializable = True`` (as a class
    attribute; layers that do not subclass ``nn.Linear``, such as DropConnect
    layers, opt in this way). Such a module must expose a ``weight`` tensor with
    at least 2 dimensions and may expose a ``bias`` tensor or ``None``.
    Modules appear once each, in ``model.named_modules()`` order, which is
    also the order in which their weights draw from the generator.

    Raises
    ------
    TypeError
        if ``model`` is not an ``nn.Module``.
    """
    check_type("model", model, nn.Module)
    return [(name, m) for name, m in model.named_modules() if _is_initializable(m)]


def _check_target(name: str, module: nn.Module, generator: torch.Generator | None) -> None:
    label = f"weight of module {name or '<root>'!r} ({type(module).__name__})"
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.parameter.UninitializedParameter):
        raise ValueError(
            f"{label} is an uninitialized lazy parameter; run a forward pass before init_network"
        )
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{label} must be a torch.Tensor, got {type(weight).__name__}")
    check_float_tensor(label, weight)
    check_min_dims(label, weight, 2)
    fans(weight)
    resolve_generator(generator, weight.device)


def init_network(
    model: nn.Module,
    scheme: str,
    *,
    generator: torch.Generator | None = None,
    **params: Any,
) -> nn.Module:
    """Initialize every weight of ``model`` with ``scheme`` and zero every bias, in place.

    Parameters
    ----------
    model : nn.Module
        The network; the modules touched are those of :func:`initializable_modules`.
        Other parameters (normalization layers, embeddings ...) are left as they are.
    scheme : str
        One of ``INIT_SCHEMES``:

        ==================  ==========================  =====================================
        scheme              initializer                 parameters
        ==================  ==========================  =====================================
        ``zeros``           :func:`zeros_`              none
        ``normal``          :func:`normal_` (mean 0)    ``std`` (required)
        ``xavier``          :func:`xavier_uniform_`     ``gain=1.0``
        ``xavier_normal``   :func:`xavier_normal_`      ``gain=1.0``
        ``he``              :func:`he_normal_`          ``a=0.0, mode="fan_in", nonlinearity="relu"``
        ``he_uniform``      :func:`he_uniform_`         as ``he``
        ``lecun``           :func:`lecun_normal_`       none
        ==================  ==========================  =====================================
    generator : torch.Generator, optional
        Source of all draws (module by module, in ``named_modules()`` order), on
        the model's device.
    **params
        The scheme's parameters.

    Returns
    -------
    nn.Module
        ``model`` itself.

    Raises
    ------
    TypeError
        if ``model`` is not an ``nn.Module``, ``scheme`` is not a string, or a
        parameter or weight has the wrong type.
    ValueError
        for an unknown scheme, an unexpected or missing parameter (the valid ones
        are listed), a bad parameter value, a model with no module to initialize,
        a lazy (uninitialized) weight, a weight with < 2 dimensions or a zero fan,
        or a generator on another device. Everything is checked before any
        weight changes, so a failed call leaves the model untouched.
    """
    targets = initializable_modules(model)
    spec, resolved = _resolve_scheme(scheme, params)
    if not targets:
        raise ValueError(
            f"model {type(model).__name__} has no module to initialize: expected nn.Linear, "
            "nn.ConvNd, or a module with _netprops_initializable = True"
        )
    for name, module in targets:
        _check_target(name, module, generator)
    for _, module in targets:
        spec.fill(module.weight, generator=generator, **resolved)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            zeros_(bias)
    return model


def _get_activation(name: str, params: Mapping[str, Any]) -> nn.Module:
    # Imported here, not at the top: netprops.layers may import this module
    # (layers initialize their weights with these functions).
    from .layers.activations import get_activation

    return get_activation(name, **params)


class NetworkInitializer:
    """Factory for the coursework's fully-connected network with a chosen initialization.

    ``build()`` returns ``nn.Sequential(Flatten, [Linear, activation] × hidden, Linear)``,
    by default 784→500→100→100→10 with ReLU and He (normal, fan_in) weights and
    zero biases. Weights are allocated on the ``meta`` device and then filled by
    :func:`init_network`, so building never draws from torch's global RNG when
    a generator is given.

    Parameters
    ----------
    activation : str
        Name for ``netprops.layers.activations.get_activation`` ("sigmoid",
        "tanh", "relu", "leaky_relu", "elu", "silu", "identity").
    scheme : str
        One of ``INIT_SCHEMES``. The scheme's gain is not derived from
        ``activation``: pass e.g. ``nonlinearity="tanh"`` or ``gain=5/3`` yourself.
    layer_sizes : sequence of int
        Widths from the flattened input to the output, at least two, each >= 1.
    activation_params : mapping, optional
        Keyword arguments for the activation (``negative_slope``, ``alpha``).
    **scheme_params
        Parameters of ``scheme`` (see :func:`init_network`).

    Raises
    ------
    TypeError, ValueError
        at construction, for an unknown activation or scheme, bad parameters,
        or bad ``layer_sizes``.

    Examples
    --------
    >>> from netprops import make_generator
    >>> net = NetworkInitializer("tanh", "xavier", gain=5 / 3).build(make_generator(0))
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        activation: str = "relu",
        scheme: str = "he",
        layer_sizes: tuple[int, ...] = (784, 500, 100, 100, 10),
        *,
        activation_params: Mapping[str, Any] | None = None,
        **scheme_params: Any,
    ) -> None:
        if activation_params is not None:
            check_type("activation_params", activation_params, Mapping)
        self.activation_params: dict[str, Any] = dict(activation_params or {})
        _get_activation(activation, self.activation_params)
        self.activation: str = activation
        _resolve_scheme(scheme, scheme_params)
        self.scheme: str = scheme
        self.scheme_params: dict[str, Any] = dict(scheme_params)
        check_type("layer_sizes", layer_sizes, (tuple, list))
        if len(layer_sizes) < 2:
            raise ValueError(
                f"layer_sizes must list at least 2 widths (input and output), got {layer_sizes!r}"
            )
        self.layer_sizes: tuple[int, ...] = tuple(
            check_positive_int(f"layer_sizes[{i}]", size) for i, size in enumerate(layer_sizes)
        )

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.scheme_params.items())
        if self.activation_params:
            extra += f", activation_params={self.activation_params!r}"
        return (
            f"{type(self).__name__}(activation={self.activation!r}, scheme={self.scheme!r}, "
            f"layer_sizes={self.layer_sizes!r}{extra})"
        )

    def build(
        self,
        generator: torch.Generator | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> nn.Sequential:
        """Build a freshly initialized network.

        Parameters
        ----------
        generator : torch.Generator, optional
            Source of every weight draw; ``None`` draws from torch's default generator.
        device : str or torch.device, optional
            Where the parameters live; defaults to the generator's device, else CPU.
        dtype : torch.dtype
            Floating-point dtype of the parameters.

        Returns
        -------
        nn.Sequential
            Input of any shape ``(N, *)`` that flattens to ``layer_sizes[0]``
            features; output ``(N, layer_sizes[-1])``.

        Raises
        ------
        TypeError
            for a non-floating ``dtype`` or a non-Generator ``generator``.
        ValueError
            if ``generator`` is on another device than ``device``.
        """
        check_type("dtype", dtype, torch.dtype)
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
        if generator is not None:
            check_type("generator", generator, torch.Generator)
        if device is None:
            device = generator.device if generator is not None else "cpu"
        sizes = self.layer_sizes
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out, device="meta", dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(_get_activation(self.activation, self.activation_params))
        model = nn.Sequential(*layers).to_empty(device=device)
        return init_network(model, self.scheme, generator=generator, **self.scheme_params)
