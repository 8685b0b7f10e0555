"""check_gradcheck and check_grad_clipping against torch's references and broken variants."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import netprops
from netprops.checks.gradients import check_grad_clipping, check_gradcheck


class WrongBackwardSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # should be 2x


def test_gradcheck_passes_a_torch_module_with_parameters(device):
    with netprops.seeded_global_rng(0):
        module = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    result = check_gradcheck(module, (2, 4), device=device)
    assert result.details["parameters"] == 2
    assert next(module.parameters()).dtype == torch.float32  # the caller's module is untouched


def test_gradcheck_catches_a_wrong_backward(device):
    with pytest.raises(netprops.PropertyViolation, match="finite differences"):
        check_gradcheck(WrongBackwardSquare.apply, (3, 2), device=device, seed=1)


NORMS = [1.0, 2.0, 3.0, math.inf]


@pytest.mark.parametrize("norm_type", NORMS)
def test_torch_clip_grad_norm_passes(device, norm_type):
    result = check_grad_clipping(
        torch.nn.utils.clip_grad_norm_, norm_type=norm_type, max_norm=0.7, device=device
    )
    assert result.statistic <= result.bound


def per_parameter_clip(parameters, max_norm, norm_type=2.0):
    """Clips each parameter separately: keeps every norm under the limit but bends the direction."""
    total = []
    for p in parameters:
        if p.grad is None:
            continue
        n = p.grad.norm(norm_type)
        total.append(n)
        p.grad.mul_(min(1.0, max_norm / (float(n) + 1e-6)))
    return torch.stack(total).norm(norm_type)


def returns_norm_after(parameters, max_norm, norm_type=2.0):
    params = [p for p in parameters if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    return torch.stack([p.grad.norm(norm_type) for p in params]).norm(norm_type)


def always_scales(parameters, max_norm, norm_type=2.0):
    params = [p for p in parameters if p.grad is not None]
    total = torch.stack([p.grad.norm(norm_type) for p in params]).norm(norm_type)
    for p in params:
        p.grad.mul_(max_norm / (total + 1e-6))
    return total


def _total(params, norm_type):
    grads = [p.grad for p in params if p.grad is not None]
    return torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]).norm(norm_type)


def zeroes_above(parameters, max_norm, norm_type=2.0):
    """Zeroes the gradients when their norm is above the limit (the norm is then <= max_norm)."""
    params = [p for p in parameters if p.grad is not None]
    total = _total(params, norm_type)
    if total > max_norm:
        for p in params:
            p.grad.zero_()
    return total


def squares_coefficient(parameters, max_norm, norm_type=2.0):
    """Scales by (max_norm/total)²: one common factor, norm under the limit, but too small."""
    params = [p for p in parameters if p.grad is not None]
    total = _total(params, norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0) ** 2
    for p in params:
        p.grad.mul_(coef)
    return total


def halves_to_be_safe(parameters, max_norm, norm_type=2.0):
    """Clips to max_norm / 2: a margin that the lower bound must catch."""
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm / 2, norm_type=norm_type)


def without_torch_epsilon(parameters, max_norm, norm_type=2.0):
    """Scales by exactly max_norm / total (no 1e-6): the clipped norm is max_norm exactly."""
    params = [p for p in parameters if p.grad is not None]
    total = _total(params, norm_type)
    coef = torch.clamp(max_norm / total, max=1.0)
    for p in params:
        p.grad.mul_(coef)
    return total


@pytest.mark.parametrize(
    ("clip_fn", "pattern"),
    [
        (per_parameter_clip, "direction|exceeds"),
        (returns_norm_after, "expected the total norm before clipping"),
        (always_scales, "changed although their norm was under the limit"),
        (zeroes_above, r"scaled by 0, more than clipping to max_norm needs"),
        (squares_coefficient, "more than clipping to max_norm needs"),
        (halves_to_be_safe, "more than clipping to max_norm needs"),
    ],
)
def test_broken_clipping_is_caught(device, clip_fn, pattern):
    with pytest.raises(netprops.PropertyViolation, match=pattern):
        check_grad_clipping(clip_fn, device=device)


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_the_lower_bound_allows_torchs_epsilon_and_its_absence(device, norm_type, max_norm, dtype):
    # at max_norm = 1e-3 the total norm is 1e-2 and torch's 1e-6 shifts the coefficient by 1e-4,
    # far beyond float32 rounding: both conventions must pass, and the clipped norm is max_norm
    for clip_fn in (torch.nn.utils.clip_grad_norm_, without_torch_epsilon):
        result = check_grad_clipping(
            clip_fn, max_norm=max_norm, norm_type=norm_type, device=device, dtype=dtype
        )
        assert result.statistic <= result.bound


def test_grad_clipping_validation():
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        check_grad_clipping(torch.nn.utils.clip_grad_norm_, max_norm=-1.0)
    with pytest.raises(TypeError, match="clip_fn must be callable"):
        check_grad_clipping(None)


class _NonReentrant(torch.autograd.Function):
    """Identity whose backward adds a different tiny amount on every call."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _NonReentrant.calls += 1
        return grad * (1 + 1e-12 * _NonReentrant.calls)


def test_gradcheck_names_a_non_reentrant_backward(device):
    with pytest.raises(netprops.PropertyViolation, match="backward is not reentrant"):
        check_gradcheck(_NonReentrant.apply, (3,), device=device)


class UnscaledBackwardDropout(nn.Module):
    """A broken dropout: its backward reuses the forward's mask but forgets the 1/(1-p)."""

    class _Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            keep = (torch.rand_like(x) > 0.5).to(x.dtype)
            ctx.save_for_backward(keep)
            return x * keep * 2

        @staticmethod
        def backward(ctx, grad):
            (keep,) = ctx.saved_tensors
            return grad * keep  # should be grad * keep * 2

    def forward(self, x):
        return self._Fn.apply(x)


@pytest.mark.parametrize(
    "factory", [lambda: nn.Dropout(0.5), lambda: nn.Dropout2d(0.3), lambda: nn.RReLU()]
)
def test_gradcheck_evaluates_a_train_mode_random_layer_with_the_same_draws(device, factory):
    # each evaluation of the function reuses the seed's draws: a correct stochastic layer
    # passes (with fresh masks the finite differences of nn.Dropout were ~1e6), and the
    # caller's global RNG state is left as it was
    module = factory().train()
    state = torch.random.get_rng_state()
    result = check_gradcheck(module, (2, 3, 4, 4), device=device, seed=3)
    assert result.statistic == 0.0
    assert torch.equal(torch.random.get_rng_state(), state)


def test_gradcheck_still_catches_a_wrong_backward_of_a_random_layer(device):
    with pytest.raises(netprops.PropertyViolation, match="finite differences"):
        check_gradcheck(UnscaledBackwardDropout(), (4, 6), device=device, seed=0)


@pytest.mark.parametrize(
    ("module", "kink"), [(nn.Hardshrink(0.5), 0.5), (nn.ReLU(), 0.0), (nn.Hardtanh(), -1.0)]
)
def test_gradcheck_moves_an_input_drawn_within_eps_of_a_kink(device, module, kink):
    # Hardshrink at --netprops-seed 15 drew an entry 5e-7 from its jump at 0.5: the finite
    # differences straddle the jump and a correct module mismatched
    x = torch.randn(4, 8, generator=netprops.make_generator(0), dtype=torch.float64)
    x[1, 3] = kink + 5e-7
    result = check_gradcheck(module, x.to(device), device=device, seed=0)
    assert "moved" in result.details
    assert "moved" not in check_gradcheck(module, (4, 8), device=device, seed=0).details


def test_a_wrong_backward_fails_at_the_moved_input_too(device):
    with pytest.raises(netprops.PropertyViolation, match=r"and at the input moved by up to 0\.001"):
        check_gradcheck(WrongBackwardSquare.apply, (3, 2), device=device, seed=1)
