"""Activation functions with hand-written backward passes.

Each activation comes in four shapes:

* a ``torch.autograd.Function`` (``SigmoidFunction`` ...) whose ``backward``
  is written out rather than traced, saving only what it needs;
* a functional wrapper (``sigmoid(x)``, ``leaky_relu(x, negative_slope)`` ...)
  that validates its input;
* a thin ``nn.Module`` (``Sigmoid``, ``LeakyReLU(negative_slope)`` ...);
* the derivative as a plain function of the pre-activation ``z``
  (``sigmoid_derivative(z)`` ...), as in the coursework.

Each ``backward`` is built from differentiable ops on the saved inputs and
outputs (or on piecewise-constant factors, whose derivative is 0), so double
backward (``create_graph=True``, Hessian-vector products) works too. The
backward passes avoid boolean masks, which are slow on CPU, and stay within
about 1.2-1.9x of PyTorch's fused kernels for forward + backward at 128x512.

Conventions at the kinks follow PyTorch: the derivative at ``z == 0`` is taken
from the left branch (0 for ReLU, ``negative_slope`` for leaky ReLU, ``alpha``
for ELU), i.e. the ``z > 0`` test of the coursework.

``get_activation(name, **kwargs)`` builds a module from its name (one of
``ACTIVATIONS``); ``derivative_of(name)`` returns the derivative function.
All functions accept any shape and any floating dtype and keep both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.autograd.function import FunctionCtx

from ..errors import check_choice, check_finite_float, check_float_tensor, check_positive_float
from ..errors import check_type as _check_type

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "ELUFunction",
    "Identity",
    "LeakyReLU",
    "LeakyReLUFunction",
    "ReLU",
    "ReLUFunction",
    "SiLU",
    "SiLUFunction",
    "Sigmoid",
    "SigmoidFunction",
    "Tanh",
    "TanhFunction",
    "derivative_of",
    "elu",
    "elu_derivative",
    "get_activation",
    "identity",
    "identity_derivative",
    "leaky_relu",
    "leaky_relu_derivative",
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "silu",
    "silu_derivative",
    "tanh",
    "tanh_derivative",
]

ACTIVATIONS: tuple[str, ...] = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "silu")


def _check_alpha(alpha: Any) -> float:
    # alpha >= 0 keeps sign(elu(x)) == sign(x), which ELUFunction.backward relies on.
    return check_positive_float("alpha", alpha, allow_zero=True)


# --------------------------------------------------------------------------- Functions
class SigmoidFunction(torch.autograd.Function):
    """``σ(x) = 1 / (1 + e^{-x})``; backward ``g · σ · (1 - σ)`` from the saved output."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        gy = grad * y
        return torch.addcmul(gy, gy, y, value=-1)  # g·σ - g·σ·σ


class TanhFunction(torch.autograd.Function):
    """``tanh(x)``; backward ``g · (1 - tanh²)`` from the saved output."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.addcmul(grad, grad * y, y, value=-1)  # g - g·y·y


# Boolean masks (x > 0, torch.where) are several times slower than arithmetic on
# CPU, so the piecewise functions below build their 0/1 step from sign() instead.
def _step(t: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``t > 0``, else ``0.0`` (NaN stays NaN)."""
    return torch.sign(t).clamp_min_(0)  # in place on sign's fresh output: one allocation


class ReLUFunction(torch.autograd.Function):
    """``max(x, 0)``; backward passes ``g`` where the saved output is > 0.

    The backward multiplies by the 0/1 step, so an infinite or NaN upstream
    gradient at an inactive unit gives NaN (PyTorch's masks it to 0).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.sign(y) * grad  # y >= 0, so sign(y) is the 0/1 step


def _leaky_coefficient(x: torch.Tensor, slope: float) -> torch.Tensor:
    """``1`` where ``x > 0``, ``slope`` elsewhere (NaN stays NaN)."""
    if 0 <= slope <= 1:  # sign(x) is -1/0/1, so clamping at slope gives slope/slope/1
        return torch.sign(x).clamp_min_(slope)  # in place on sign's fresh output
    start = torch.full((), slope, dtype=x.dtype, device=x.device)
    # lerp with a 0/1 weight returns exactly one of its ends
    return torch.lerp(start, torch.ones_like(start), _step(x))


class LeakyReLUFunction(torch.autograd.Function):
    """``x`` for ``x > 0``, ``negative_slope · x`` otherwise.

    Forward computes the piecewise-constant derivative ``c`` once, returns
    ``c · x`` and saves ``c``: backward is a single product ``g · c``. (``c`` is
    an intermediate, but its own derivative is 0, so double backward stays exact.)
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, negative_slope: float) -> torch.Tensor:
        coef = _leaky_coefficient(x, negative_slope)
        ctx.save_for_backward(coef)
        return x * coef

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (coef,) = ctx.saved_tensors
        return grad * coef, None


class ELUFunction(torch.autograd.Function):
    """``x`` for ``x > 0``, ``alpha · (e^x - 1)`` otherwise (``alpha >= 0``).

    Backward uses the saved output: for ``x <= 0`` the derivative
    ``alpha · e^x`` equals ``y + alpha``, and ``y > 0`` exactly when ``x > 0``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        # One addend is exactly 0, so each branch is computed without extra rounding.
        y = torch.add(x.clamp_min(0), torch.expm1(x.clamp_max(0)), alpha=alpha)
        ctx.alpha = alpha
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        alpha = ctx.alpha
        if alpha == 1:  # the default: 1 + min(y, 0) is e^x for x <= 0 and 1 for x > 0
            coef = y.clamp_max(0) + 1
        else:
            one = torch.ones((), dtype=y.dtype, device=y.device)
            # a select, not lerp: lerp's (1 - w)·(y + alpha) is inf·0 = NaN at y = +inf
            coef = torch.where(y > 0, one, y + alpha)
        return coef * grad, None


class SiLUFunction(torch.autograd.Function):
    """``x · σ(x)`` (swish); backward ``g · σ · (1 + x · (1 - σ))``."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, s = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: recompute σ so the graph reaches x
            s = torch.sigmoid(x)
        gs = grad * s
        return torch.addcmul(gs, gs, torch.addcmul(x, x, s, value=-1))  # g·σ·(1 + x - x·σ)


# --------------------------------------------------------------------------- functional
def identity(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` unchanged (validated to be a floating tensor)."""
    return check_float_tensor("x", x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid of a floating tensor of any shape.

    Raises
    ------
    TypeError
        if ``x`` is not a floating-point tensor.
    """
    return SigmoidFunction.apply(check_float_tensor("x", x))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent of a floating tensor of any shape (TypeError otherwise)."""
    return TanhFunction.apply(check_float_tensor("x", x))


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(x, 0)`` of a floating tensor of any shape (TypeError otherwise)."""
    return ReLUFunction.apply(check_float_tensor("x", x))


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """Leaky ReLU of a floating tensor of any shape.

    Raises
    ------
    TypeError
        if ``x`` is not a floating tensor or ``negative_slope`` not a real number.
    ValueError
        if ``negative_slope`` is not finite.
    """
    negative_slope = check_finite_float("negative_slope", negative_slope)
    return LeakyReLUFunction.apply(check_float_tensor("x", x), negative_slope)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """ELU of a floating tensor of any shape.

    Raises
    ------
    TypeError
        if ``x`` is not a floating tensor or ``alpha`` not a real number.
    ValueError
        if ``alpha`` is negative or not finite.
    """
    alpha = _check_alpha(alpha)
    return ELUFunction.apply(check_float_tensor("x", x), alpha)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU / swish ``x · σ(x)`` of a floating tensor of any shape (TypeError otherwise)."""
    return SiLUFunction.apply(check_float_tensor("x", x))


# --------------------------------------------------------------------------- derivatives
def identity_derivative(z: torch.Tensor) -> torch.Tensor:
    """``d/dz z = 1``, shaped like ``z``."""
    return torch.ones_like(check_float_tensor("z", z))


def sigmoid_derivative(z: torch.Tensor) -> torch.Tensor:
    """``σ'(z) = σ(z) (1 - σ(z))`` of the pre-activation ``z``."""
    s = torch.sigmoid(check_float_tensor("z", z))
    return s * (1 - s)


def tanh_derivative(z: torch.Tensor) -> torch.Tensor:
    """``tanh'(z) = 1 - tanh(z)²``."""
    return 1 - torch.tanh(check_float_tensor("z", z)).square()


def relu_derivative(z: torch.Tensor) -> torch.Tensor:
    """``1`` where ``z > 0``, else ``0`` (0 at the kink, as PyTorch)."""
    return (check_float_tensor("z", z) > 0).to(z.dtype)


def leaky_relu_derivative(z: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``1`` where ``z > 0``, else ``negative_slope``."""
    negative_slope = check_finite_float("negative_slope", negative_slope)
    z = check_float_tensor("z", z)
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, negative_slope))


def elu_derivative(z: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``1`` where ``z > 0``, else ``alpha · e^z``."""
    alpha = _check_alpha(alpha)
    z = check_float_tensor("z", z)
    return torch.where(z > 0, torch.ones_like(z), torch.exp(z) * alpha)


def silu_derivative(z: torch.Tensor) -> torch.Tensor:
    """``σ(z) (1 + z (1 - σ(z)))``."""
    s = torch.sigmoid(check_float_tensor("z", z))
    return s * (1 + z * (1 - s))


# --------------------------------------------------------------------------- modules
class _Activation(nn.Module):
    """Shared base: ``name`` (a key of ``ACTIVATIONS``) and ``derivative(z)``."""

    name: str = ""

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        """Derivative of this activation at the pre-activation ``z``."""
        return _DERIVATIVES[self.name](z)


class Identity(_Activation):
    """``y = x`` (for "no activation" in a registry-built network)."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return identity(x)


class Sigmoid(_Activation):
    """Logistic sigmoid through :class:`SigmoidFunction`."""

    name = "sigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigmoid(x)


class Tanh(_Activation):
    """Hyperbolic tangent through :class:`TanhFunction`."""

    name = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


class ReLU(_Activation):
    """``max(x, 0)`` through :class:`ReLUFunction`."""

    name = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu(x)


class LeakyReLU(_Activation):
    """Leaky ReLU through :class:`LeakyReLUFunction`.

    Parameters
    ----------
    negative_slope : float
        Slope for ``x <= 0``; any finite number (TypeError/ValueError otherwise).
    """

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_finite_float("negative_slope", negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LeakyReLUFunction.apply(check_float_tensor("x", x), self.negative_slope)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return leaky_relu_derivative(z, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Activation):
    """ELU through :class:`ELUFunction`.

    Parameters
    ----------
    alpha : float
        Scale of the negative branch; a finite number >= 0 (TypeError/ValueError otherwise).
    """

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _check_alpha(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ELUFunction.apply(check_float_tensor("x", x), self.alpha)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return elu_derivative(z, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SiLU(_Activation):
    """SiLU / swish through :class:`SiLUFunction`."""

    name = "silu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu(x)


# --------------------------------------------------------------------------- registry
_MODULES: dict[str, type[_Activation]] = {
    "identity": Identity,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "silu": SiLU,
}

_KWARGS: dict[str, tuple[str, ...]] = {"leaky_relu": ("negative_slope",), "elu": ("alpha",)}

_DERIVATIVES: dict[str, Callable[..., torch.Tensor]] = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "elu": elu_derivative,
    "silu": silu_derivative,
}


def get_activation(name: str, **kwargs: Any) -> nn.Module:
    """Build the activation module called ``name``.

    Parameters
    ----------
    name : str
        One of ``ACTIVATIONS``.
    **kwargs
        Constructor arguments: ``negative_slope`` for ``"leaky_relu"``,
        ``alpha`` for ``"elu"``; the others take none.

    Raises
    ------
    TypeError
        if ``name`` is not a string or a keyword is not accepted by that activation.
    ValueError
        if ``name`` is unknown (the message lists the valid names) or a keyword
        value is out of range (e.g. a negative ``alpha``).

    Examples
    --------
    >>> get_activation("leaky_relu", negative_slope=0.2)
    LeakyReLU(negative_slope=0.2)
    """
    _check_type("name", name, str)
    check_choice("name", name, ACTIVATIONS)
    allowed = _KWARGS.get(name, ())
    unexpected = sorted(set(kwargs) - set(allowed))
    if unexpected:
        accepts = ", ".join(allowed) if allowed else "no keyword arguments"
        raise TypeError(
            f"activation {name!r} got unexpected keyword argument(s) {unexpected}; "
            f"it accepts {accepts}"
        )
    return _MODULES[name](**kwargs)


def derivative_of(name: str) -> Callable[..., torch.Tensor]:
    """Return the derivative function (of the pre-activation) for activation ``name``.

    Raises
    ------
    TypeError / ValueError
        if ``name`` is not a string / not one of ``ACTIVATIONS``.
    """
    _check_type("name", name, str)
    check_choice("name", name, ACTIVATIONS)
    return _DERIVATIVES[name]
