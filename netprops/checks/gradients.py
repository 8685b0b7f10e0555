"""Gradient checks: finite differences (gradcheck) and gradient clipping."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
from torch import nn

from ..devices import deterministic
from ..errors import check_choice, check_int, check_positive_float
from ..seeding import derive_seed, make_generator, seeded_global_rng
from . import _common
from .registry import register_check
from .results import CheckResult, violation

__all__ = ["check_grad_clipping", "check_gradcheck"]


#: How far (in units of ``eps``) the second evaluation point of :func:`check_gradcheck`
#: moves each input entry: a kink within ``eps`` of the first point is then within ``eps``
#: of the second with probability <= 1/_JITTER_EPS per entry.
_JITTER_EPS = 1000


@register_check("gradcheck", dtypes=(torch.float64,))
def check_gradcheck(
    fn: nn.Module | Callable[..., torch.Tensor],
    inputs: torch.Tensor | Sequence[int] | Sequence[torch.Tensor],
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    check_params: bool = True,
) -> CheckResult:
    """Compare the analytic gradients of ``fn`` with finite differences in float64.

    Runs :func:`torch.autograd.gradcheck` on a float64 copy of ``fn`` (a module is
    deep-copied and cast, the caller's is untouched). ``inputs`` is a tensor, a
    sequence of tensors, or a shape from which a seeded normal input is drawn.
    With ``check_params`` the module's parameters are differentiated too.

    Every evaluation of ``fn`` (the analytic pass and each finite-difference one) runs
    with the same random draws: torch's global RNG seeded from ``seed`` inside a fork,
    and generators held by the module re-seeded. A stochastic layer in train mode
    (dropout, RReLU) is then checked as the deterministic function ``x ↦ f(x; draws)``
    whose Jacobian its backward must compute: a backward that uses other draws than its
    forward, or scales them wrongly, still fails. Without this, each evaluation drew a
    fresh mask and the finite differences of a correct ``nn.Dropout`` were ~1e6.
    The caller's RNG state is left as it was.

    Finite differences are valid only where ``fn`` is differentiable on ``[x − eps, x +
    eps]``: an input entry drawn within ``eps`` of a kink or jump (ReLU at 0, Hardshrink
    at ±λ; probability ~``2·eps`` per entry and kink for unit-scale inputs) makes a
    correct module mismatch. On a Jacobian mismatch the check therefore runs gradcheck
    once more at the inputs moved by a seeded ``δ ~ U(−1000·eps, 1000·eps)`` per entry,
    and fails only if that point mismatches too (``details["moved"]`` says when the
    second point was needed). A wrong backward (a wrong formula, scale or mask) is wrong
    on a neighbourhood of its inputs and fails at both points; a kink near the first
    point is within ``eps`` of the second with probability <= 1/1000 per entry.

    Raises
    ------
    PropertyViolation
        with gradcheck's report when a gradient is wrong.
    """
    __tracebackhide__ = True
    seed = check_int("seed", seed, min_value=0)
    device = torch.device(device)
    if isinstance(inputs, torch.Tensor):
        tensors = [inputs]
    elif all(isinstance(d, int) for d in inputs):
        g = make_generator(seed, device)
        tensors = [torch.randn(tuple(inputs), generator=g, device=device, dtype=torch.float64)]
    else:
        tensors = list(inputs)
    tensors = [
        t.detach().to(device=device, dtype=torch.float64).requires_grad_(True) for t in tensors
    ]
    params: list[torch.Tensor] = []
    if isinstance(fn, nn.Module):
        module = copy.deepcopy(fn).to(device=device, dtype=torch.float64)
        if check_params:
            params = [p for p in module.parameters() if p.requires_grad]
        names = [name for name, p in module.named_parameters() if p.requires_grad]
        n_inputs = len(tensors)

        def call(*args: torch.Tensor) -> torch.Tensor:
            with _common.seeded_module(module, seed, device):
                if params:
                    replaced = dict(zip(names, args[n_inputs:], strict=True))
                    return torch.func.functional_call(module, replaced, args[:n_inputs])
                return module(*args[:n_inputs])

        target: Callable[..., torch.Tensor] = call
    else:
        function = fn
        rng_devices = (device,) if device.type == "cuda" else ()

        def seeded_call(*args: torch.Tensor) -> torch.Tensor:
            with seeded_global_rng(seed, rng_devices):
                return function(*args)

        target = seeded_call
    args = tuple(tensors) + tuple(p.detach().clone().requires_grad_(True) for p in params)
    reproduce = f"netprops.checks.check_gradcheck(fn, inputs, seed={seed}, eps={eps:g}, atol={atol:g}, rtol={rtol:g})"
    # gradcheck requires two backward passes to agree bit for bit; on CUDA, atomics
    # (scatter_add, index_add) break that unless deterministic kernels are selected.
    guard = deterministic(True, warn_only=True) if device.type == "cuda" else nullcontext()

    def mismatch(point: tuple[torch.Tensor, ...]) -> RuntimeError | None:
        try:
            with guard:
                torch.autograd.gradcheck(
                    target, point, eps=eps, atol=atol, rtol=rtol, raise_exception=True
                )
        except RuntimeError as exc:
            return exc
        return None

    details: dict[str, object] = {
        "inputs": [tuple(t.shape) for t in tensors],
        "parameters": len(params),
    }
    exc = mismatch(args)
    if exc is not None and "not reentrant" not in str(exc):
        # Finite differences are only valid where fn is differentiable on [x - eps, x + eps]:
        # an input entry within eps of a kink or jump (ReLU's 0, Hardshrink's ±λ) fails a
        # correct module. Test again at the inputs moved by a seeded δ of up to
        # _JITTER_EPS·eps per entry; a wrong backward is wrong there too.
        jitter = make_generator(derive_seed(seed, "gradcheck-jitter"), device)
        moved = tuple(
            (
                t.detach()
                + _JITTER_EPS
                * eps
                * (2 * torch.rand(t.shape, generator=jitter, device=device, dtype=t.dtype) - 1)
            ).requires_grad_(True)
            for t in tensors
        )
        second = mismatch(moved + args[len(tensors) :])
        if second is None:
            details["moved"] = (
                f"mismatch at the given input (an entry within eps={eps:g} of a point where "
                f"fn is not differentiable); passed at the input moved by up to "
                f"{_JITTER_EPS * eps:g} per entry"
            )
        exc = second
    if exc is not None:
        what = (
            "backward is not reentrant: two backward passes of the same inputs differ"
            if "not reentrant" in str(exc)
            else "analytic gradient differs from finite differences (at the given input "
            f"and at the input moved by up to {_JITTER_EPS * eps:g} per entry)"
        )
        violation(
            "check_gradcheck",
            f"{what}:\n{exc}",
            statistic=float("nan"),
            bound=atol,
            seed=seed,
            reproduce=reproduce,
        )
    return CheckResult("check_gradcheck", 0.0, atol, seed, 0.0, details, reproduce)


_SHAPES = ((7, 5), (11,), (3, 4, 2), (1,))

#: Rounding allowance of the clipping check, in units of ``dtype``'s epsilon: the total
#: norm of 71 entries and one multiply (measured worst case ≈ 7.5 units over 4,000 torch/netprops cases).
_CLIP_ULPS = 16

#: The constant torch adds to the total norm before dividing (``clip_grad_norm_``).
_TORCH_EPS = 1e-6


def _total_norm(grads: Iterable[torch.Tensor], norm_type: float) -> float:
    flat = torch.cat([g.detach().double().flatten() for g in grads])
    return float(flat.abs().max()) if math.isinf(norm_type) else float(flat.norm(norm_type))


def check_grad_clipping(
    clip_fn: Callable[..., torch.Tensor],
    *,
    max_norm: float = 1.0,
    norm_type: float = 2.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> CheckResult:
    """Check a function with the signature of ``torch.nn.utils.clip_grad_norm_``.

    On seeded parameters of several shapes, with gradients scaled both above
    (×10) and below (×0.1) ``max_norm``:

    * the returned value is the total norm ``T`` before clipping;
    * above the limit, every gradient is multiplied by one common coefficient
      ``c`` (the whole gradient vector keeps its direction: per-parameter clipping
      fails) with ``max_norm/(T + 1e-6) <= c <= max_norm/T``, to ``tol`` = 16 units
      of rounding of ``dtype``. The upper end bounds the clipped norm by
      ``max_norm``; the lower end (torch's ``1e-6`` in the denominator allowed
      for) makes the clipped norm equal ``max_norm``: zeroing the gradients,
      squaring the coefficient or any other over-shrinking fails;
    * nothing changes when the norm is already under the limit;
    * parameters without a gradient are ignored.

    ``norm_type`` may be ``float('inf')``. Deterministic: no false failures.

    Raises
    ------
    PropertyViolation
        naming the violated condition.
    """
    __tracebackhide__ = True
    if not callable(clip_fn):
        raise TypeError(f"clip_fn must be callable, got {type(clip_fn).__name__}")
    max_norm = check_positive_float("max_norm", max_norm)
    norm_type = (
        check_positive_float("norm_type", norm_type) if not math.isinf(norm_type) else norm_type
    )
    seed = check_int("seed", seed, min_value=0)
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    device = torch.device(device)
    reproduce = f"netprops.checks.check_grad_clipping(clip_fn, max_norm={max_norm}, norm_type={norm_type}, seed={seed})"
    eps = torch.finfo(dtype).eps
    g = make_generator(seed, device)
    worst = 0.0
    for factor in (10.0, 0.1):
        params = [torch.zeros(s, device=device, dtype=dtype, requires_grad=True) for s in _SHAPES]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, device=device, dtype=dtype)
        bare = torch.zeros(3, device=device, dtype=dtype, requires_grad=True)  # no grad: ignored
        raw = [p.grad.clone() for p in params]
        scale = factor * max_norm / _total_norm(raw, norm_type)
        for p, r in zip(params, raw, strict=True):
            p.grad.mul_(scale)
            r.mul_(scale)
        before = _total_norm(raw, norm_type)
        returned = float(clip_fn([*params, bare], max_norm, norm_type=norm_type))
        after_grads = [p.grad for p in params]
        after = _total_norm(after_grads, norm_type)
        case = (
            f"gradient norm {before:.4g} ({'above' if factor > 1 else 'below'} max_norm={max_norm})"
        )
        tol = _CLIP_ULPS * eps
        if abs(returned - before) > tol * before:
            violation(
                "check_grad_clipping",
                f"{case}: returned {returned:.8g}, expected the total norm before clipping {before:.8g}",
                statistic=returned,
                bound=(before * (1 - tol), before * (1 + tol)),
                seed=seed,
                reproduce=reproduce,
            )
        if after > max_norm * (1 + tol):
            violation(
                "check_grad_clipping",
                f"{case}: norm after clipping {after:.8g} exceeds max_norm",
                statistic=after,
                bound=max_norm * (1 + tol),
                seed=seed,
                reproduce=reproduce,
            )
        flat_raw = torch.cat([r.double().flatten() for r in raw])
        flat_after = torch.cat([a.double().flatten() for a in after_grads])
        coef = float(flat_after.norm() / flat_raw.norm())
        deviation = float((flat_after - coef * flat_raw).abs().max() / flat_raw.abs().max())
        worst = max(worst, deviation)
        if deviation > tol:
            violation(
                "check_grad_clipping",
                f"{case}: clipping changed the gradient's direction (not one common factor)",
                statistic=deviation,
                bound=tol,
                seed=seed,
                reproduce=reproduce,
            )
        if factor < 1 and not all(torch.equal(a, r) for a, r in zip(after_grads, raw, strict=True)):
            violation(
                "check_grad_clipping",
                f"{case}: gradients changed although their norm was under the limit",
                statistic=abs(coef - 1.0),
                bound=0.0,
                seed=seed,
                reproduce=reproduce,
            )
        if factor > 1:
            # torch scales by max_norm / (T + 1e-6): accept anything from that to max_norm / T
            low, high = max_norm / (before + _TORCH_EPS), max_norm / before
            bound = (low * (1 - tol), high * (1 + tol))
            if not bound[0] <= coef <= bound[1]:
                what = "more" if coef < bound[0] else "less"
                violation(
                    "check_grad_clipping",
                    f"{case}: gradients were scaled by {coef:.8g}, {what} than clipping to "
                    f"max_norm needs (max_norm/(T + 1e-6) = {low:.8g} ... max_norm/T = "
                    f"{high:.8g}); the clipped norm is {after:.8g}, not max_norm",
                    statistic=coef,
                    bound=bound,
                    seed=seed,
                    reproduce=reproduce,
                )
    details = {"norm_type": norm_type, "max_norm": max_norm, "shapes": _SHAPES}
    return CheckResult(
        "check_grad_clipping", worst, _CLIP_ULPS * eps, seed, 0.0, details, reproduce
    )
