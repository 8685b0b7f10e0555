"""Gradient clipping by total norm, with the semantics of ``torch.nn.utils.clip_grad_norm_``.

The total norm is the ``norm_type``-norm of the per-parameter gradient norms
(which equals the norm of all gradients concatenated). Every gradient is then
multiplied in place by ``min(1, max_norm / (total + 1e-6))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

import torch

from ..errors import check_type

__all__ = ["clip_grad_norm_"]

_EPS = 1e-6  # keeps the coefficient finite for a zero norm (same constant as torch)


def _check_order(name: str, value: Any, *, allow_zero: bool) -> float:
    """A real number or a one-element real tensor (as torch's ``float(value)`` accepts), not
    NaN, ``> 0`` (``>= 0`` with ``allow_zero``); ``inf`` is allowed."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise TypeError(
                f"{name} must be a real number or a one-element real tensor, got a "
                f"{value.dtype} tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {allowed} (inf allowed), got {value!r}")
    return value


def _as_tensor_list(parameters: Any) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    if not isinstance(parameters, Iterable):
        raise TypeError(
            "parameters must be a torch.Tensor or an iterable of torch.Tensor, "
            f"got {type(parameters).__name__}"
        )
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(
                f"parameters[{i}] must be a torch.Tensor, got {p!r} ({type(p).__name__})"
            )
    return params


@torch.no_grad()
def clip_grad_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> torch.Tensor:
    """Scale the gradients of ``parameters`` in place so their total norm is at most ``max_norm``.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Tensors whose ``.grad`` is clipped; those with ``grad is None`` are ignored.
        A generator is consumed once.
    max_norm : float or one-element tensor
        Largest allowed total norm, ``>= 0`` (``inf`` only measures). A one-element
        tensor is read with ``.item()``, as torch's ``float(max_norm)`` does.
    norm_type : float or one-element tensor
        Order ``p > 0`` of the norm; ``math.inf`` for the max-abs norm.
    error_if_nonfinite : bool
        Raise instead of clipping when the total norm is NaN or infinite.

    Returns
    -------
    torch.Tensor
        0-dim total norm of the gradients *before* clipping, on the device of the
        first gradient (``tensor(0.)`` when there is no gradient).

    Raises
    ------
    TypeError
        if ``parameters`` is not a tensor / iterable of tensors, or an argument has the wrong type.
    ValueError
        if ``max_norm < 0`` or ``norm_type <= 0`` (or either is NaN).
    RuntimeError
        if ``error_if_nonfinite`` and the total norm is NaN or infinite (gradients untouched).

    Examples
    --------
    >>> w = torch.zeros(3, requires_grad=True)
    >>> w.grad = torch.tensor([3.0, 4.0, 0.0])
    >>> clip_grad_norm_(w, max_norm=1.0)
    tensor(5.)
    """
    params = _as_tensor_list(parameters)
    max_norm = _check_order("max_norm", max_norm, allow_zero=True)
    norm_type = _check_order("norm_type", norm_type, allow_zero=False)
    check_type("error_if_nonfinite", error_if_nonfinite, bool)

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)

    first_device = grads[0].device
    norms = [torch.linalg.vector_norm(g, norm_type).to(first_device) for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms), norm_type)

    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total.item()}), "
            "so it cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )

    coef = torch.clamp(max_norm / (total + _EPS), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device))
    return total
