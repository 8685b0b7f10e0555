"""Mutants of the stochastic layers, initializers, clipping, activations and pooling (issue #12).

Each is one realistic bug next to its correct twin, caught by a public check
at the check's defaults (sample sizes, tolerances; ``alpha`` at the suite's
``ALPHA``, below the default 1e-9, so a kill here is a kill at the default)
on ordinary inputs: standard-normal batches of ordinary shapes. Registered in
the catalog by the import at the end of ``mutants.py``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from properties.conftest import ALPHA
from torch import nn

from netprops import make_generator
from netprops.checks.contract import check_train_eval_contract
from netprops.checks.stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
)
from netprops.checks.variance import check_init_distribution, check_variance_preserved
from netprops.init import he_normal_, xavier_uniform_
from netprops.layers.activations import LeakyReLU, LeakyReLUFunction
from netprops.layers.clip import clip_grad_norm_
from netprops.layers.dropout import DropConnectLinear
from netprops.layers.pooling import AvgPool2dFunction, MaxPool2d, MaxPool2dFunction

from .mutants import (
    CLIP,
    DROPCONNECT,
    DROPOUT,
    MAX_POOL,
    P_DROP,
    ExactVarianceDropout,
    Mutant,
    Probe,
    Twin,
    _dropconnect,
    _dropout,
    _fans,
    _fixed,
    _gradcheck_probe,
    _parity_probe,
    _randn,
    _xavier_std,
    variance_preserved_probe,
)

__all__ = ["STOCHASTIC_MUTANTS"]


# =========================================================================== Dropout
class NonInvertedDropout(ExactVarianceDropout):
    """BUG: classic (non-inverted) dropout: no 1/(1−p) in training, × (1−p) at eval."""

    def forward(self, x):
        if self.p == 0.0:
            return x
        if not self.training:
            return x * (1.0 - self.p)
        return x * self._keep_mask(x.shape, x)


class CachedMaskDropout(ExactVarianceDropout):
    """BUG: the mask of the first training forward is cached and reused by later calls."""

    cached: torch.Tensor | None = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.cached is None or self.cached.shape != x.shape:
            self.cached = self._keep_mask(x.shape, x).div_(1.0 - self.p)
        return x * self.cached


class DropPath(nn.Module):
    """Stochastic depth (drop-path): one keep/drop draw per example, kept ones × 1/(1−p).

    The correct twin of :class:`NoRescaleDropPath`; the draws come from ``generator``.
    """

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def keep(self, x):
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        u = torch.rand(shape, generator=self.generator, device=x.device)
        return (u >= self.p).to(x.dtype)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self.keep(x) / (1.0 - self.p)


class NoRescaleDropPath(DropPath):
    """BUG: drops whole examples but forgets the 1/(1−p) on the kept ones."""

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self.keep(x)


class NoRescaleDropout2d(nn.Dropout2d):
    """BUG: torch's channel dropout with its 1/(1−p) undone (a hand-written Dropout2d)."""

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return super().forward(x) * (1.0 - self.p)


def _feature_input(seed, device):
    return _randn((2, 4, 3, 3), seed + 1, device, torch.float64)


def _path_input(seed, device):
    return _randn((8, 6), seed + 1, device, torch.float64)


def _stochastic_probes(make_input):
    """Expectation, drop rate and per-example independence at the checks' defaults."""

    def expectation(module, seed, device):
        return check_expectation_equal(module, make_input(seed, device), seed=seed, alpha=ALPHA)

    def drop_rate(module, seed, device):
        return check_drop_rate(module, make_input(seed, device), seed=seed, alpha=ALPHA)

    def independent(module, seed, device):
        return check_masks_independent(module, make_input(seed, device), seed=seed, alpha=ALPHA)

    def contract(module, seed, device):
        return check_train_eval_contract(module, make_input(seed, device), seed=seed)

    return (
        Probe("check_expectation_equal", expectation, statistical=True),
        Probe("check_drop_rate", drop_rate, statistical=True),
        Probe("check_masks_independent", independent, statistical=True),
        Probe("check_train_eval_contract", contract),
    )


DROPOUT_2D = Twin(
    "torch Dropout2d",
    lambda seed, device: nn.Dropout2d(P_DROP),
    _stochastic_probes(_feature_input),
)
DROP_PATH = Twin(
    "DropPath",
    lambda seed, device: DropPath(P_DROP, make_generator(seed, device)),
    _stochastic_probes(_path_input),
)


# =========================================================================== DropConnect
class OverReportingDropConnect(DropConnectLinear):
    """BUG: ``output_variance`` forgets the factor p: Σ W²x²/(1−p), 1/p times the truth."""

    def output_variance(self, x):
        return F.linear(x.square(), self.weight.square()) / (1.0 - self.p)


# =========================================================================== activation
class _LeakyDefaultSlopeBackward(LeakyReLUFunction):
    @staticmethod
    def backward(ctx, grad):
        (coef,) = ctx.saved_tensors
        # BUG: the backward uses the default slope 0.01, not the layer's negative_slope
        return grad * torch.where(coef == 1, 1.0, 0.01).to(grad.dtype), None


class WrongSlopeBackwardLeakyReLU(LeakyReLU):
    """BUG: leaky ReLU whose backward uses slope 0.01 whatever ``negative_slope`` is."""

    def forward(self, x):
        return _LeakyDefaultSlopeBackward.apply(x, self.negative_slope)


def _activation_input(seed, device):
    return _randn((3, 5), seed, device, torch.float64)


LEAKY_RELU = Twin(
    "LeakyReLU(0.2)",
    _fixed(LeakyReLU(0.2)),
    (
        _gradcheck_probe(_activation_input),
        _parity_probe(lambda seed, device: _randn((3, 5), seed, device)),
    ),
)


# =========================================================================== pooling
class _MaxPoolSpreadingBackward(MaxPool2dFunction):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.geometry = (tuple(x.shape), kernel, stride, padding)
        return MaxPool2dFunction.forward(ctx, x, kernel, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        # BUG: every cell of the window gets grad/(kH·kW), as in average pooling
        return AvgPool2dFunction.backward(ctx, grad)


class SpreadingMaxPool2d(MaxPool2d):
    """BUG: max pooling whose backward spreads the gradient over the window."""

    def forward(self, x):
        return _MaxPoolSpreadingBackward.apply(x, self.kernel_size, self.stride, self.padding)


# =========================================================================== clipping
def _total_norm(params, norm_type):
    norms = [torch.linalg.vector_norm(p.grad, norm_type) for p in params]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


def clip_zeroes_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """BUG: zeroes every gradient when the total norm is above max_norm."""
    params = [p for p in parameters if p.grad is not None]
    total = _total_norm(params, norm_type)
    if total > max_norm:
        for p in params:
            p.grad.zero_()
    return total


def clip_squared_coefficient_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """BUG: scales by (max_norm/(total + 1e-6))² instead of max_norm/(total + 1e-6)."""
    params = [p for p in parameters if p.grad is not None]
    total = _total_norm(params, norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0) ** 2
    for p in params:
        p.grad.mul_(coef)
    return total


def clip_returns_norm_after_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """BUG: clips correctly but returns the total norm after clipping, not before."""
    params = [p for p in parameters if p.grad is not None]
    clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
    return _total_norm(params, norm_type)


# =========================================================================== initializers
CONV_SHAPE = (64, 32, 3, 3)  # fan_in 288, fan_out 576
LEAKY_SLOPE = 0.2


def he_conv_without_receptive_field_(tensor, *, generator=None):
    """BUG: He std from fan_in = size(1) only (the 3×3 receptive field is forgotten)."""
    std = math.sqrt(2.0 / tensor.shape[1])
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def xavier_uniform_half_variance_(tensor, *, generator=None):
    """BUG: bound gain·√(3/(fan_in + fan_out)) instead of √(6/(...)): half the variance."""
    fan_in, fan_out = _fans(tensor.shape)
    bound = math.sqrt(3.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def he_leaky_gain_without_square_(tensor, *, generator=None):
    """BUG: leaky-ReLU gain √(2/(1 + a)) instead of √(2/(1 + a²)), at a = 0.2."""
    std = math.sqrt(2.0 / (1.0 + LEAKY_SLOPE)) / math.sqrt(_fans(tensor.shape)[0])
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


TN_STD = 0.02
TN_BOUND = 2 * TN_STD  # trunc_normal_(std=σ, a=−2σ, b=2σ)


def _trunc_normal(std, bound):
    return functools.partial(torch.nn.init.trunc_normal_, std=std, a=-bound, b=bound)


def _init_probe(shape, expected_std, law, **extra):
    def run(init_fn, seed, device):
        return check_init_distribution(
            init_fn,
            shape,
            expected_std=expected_std,
            distribution=law,
            seed=seed,
            device=device,
            alpha=ALPHA,
            **extra,
        )

    return Probe("check_init_distribution", run, statistical=True)


def _leaky_preserved_probe():
    def run(init_fn, seed, device):
        return check_variance_preserved(
            init_fn,
            nonlinearity="leaky_relu",
            negative_slope=LEAKY_SLOPE,
            width=128,
            depth=8,
            n_networks=8,
            seed=seed,
            device=device,
            alpha=ALPHA,
        )

    return Probe("check_variance_preserved", run, statistical=True)


HE_CONV = Twin(
    "init.he_normal_ (3×3 conv)",
    _fixed(he_normal_),
    (_init_probe(CONV_SHAPE, math.sqrt(2.0 / _fans(CONV_SHAPE)[0]), "normal"),),
)
XAVIER_UNIFORM = Twin(
    "init.xavier_uniform_",
    _fixed(xavier_uniform_),
    (_init_probe((64, 256), _xavier_std((64, 256)), "uniform"), variance_preserved_probe("linear")),
)
HE_LEAKY = Twin(
    "init.he_normal_(a=0.2, leaky_relu)",
    _fixed(functools.partial(he_normal_, a=LEAKY_SLOPE, nonlinearity="leaky_relu")),
    (
        _init_probe((64, 256), math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2)) / math.sqrt(256), "normal"),
        _leaky_preserved_probe(),
    ),
)
TRUNC_NORMAL = Twin(
    "torch trunc_normal_(std=0.02, a=-0.04, b=0.04)",
    _fixed(_trunc_normal(TN_STD, TN_BOUND)),
    (_init_probe((64, 256), TN_STD, "truncated_normal", truncation=(-TN_BOUND, TN_BOUND)),),
)


STOCHASTIC_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "dropout_not_inverted",
        "Dropout",
        "no 1/(1 − p) in training, × (1 − p) at eval",
        _dropout(NonInvertedDropout),
        DROPOUT,
    ),
    Mutant(
        "dropout_cached_mask",
        "Dropout",
        "the first mask is reused by every later forward",
        _dropout(CachedMaskDropout),
        DROPOUT,
    ),
    Mutant(
        "drop_path_no_rescale",
        "Dropout",
        "drop-path keeps examples without 1/(1 − p)",
        lambda seed, device: NoRescaleDropPath(P_DROP, make_generator(seed, device)),
        DROP_PATH,
    ),
    Mutant(
        "dropout2d_no_rescale",
        "Dropout",
        "channel dropout without 1/(1 − p)",
        lambda seed, device: NoRescaleDropout2d(P_DROP),
        DROPOUT_2D,
    ),
    Mutant(
        "dropconnect_over_reported_variance",
        "DropConnect",
        "output_variance 1/p times too large (hides bias)",
        _dropconnect(OverReportingDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "leaky_relu_backward_default_slope",
        "activation",
        "backward uses slope 0.01 instead of negative_slope",
        _fixed(WrongSlopeBackwardLeakyReLU(0.2)),
        LEAKY_RELU,
    ),
    Mutant(
        "maxpool_spreading_backward",
        "pooling",
        "max-pool backward spreads the gradient over the window",
        lambda seed, device: SpreadingMaxPool2d(3, stride=1, padding=1),
        MAX_POOL,
    ),
    Mutant(
        "clip_zeroes",
        "clipping",
        "zeroes the gradients above max_norm",
        _fixed(clip_zeroes_),
        CLIP,
    ),
    Mutant(
        "clip_squared_coefficient",
        "clipping",
        "scales by (max_norm/total)²",
        _fixed(clip_squared_coefficient_),
        CLIP,
    ),
    Mutant(
        "clip_returns_norm_after",
        "clipping",
        "returns the clipped norm instead of the norm before clipping",
        _fixed(clip_returns_norm_after_),
        CLIP,
    ),
    Mutant(
        "conv_fan_without_receptive_field",
        "init",
        "He std from fan_in = C_in, without k_h·k_w",
        _fixed(he_conv_without_receptive_field_),
        HE_CONV,
    ),
    Mutant(
        "xavier_uniform_half_variance",
        "init",
        "Xavier uniform bound √(3/(fan_in + fan_out))",
        _fixed(xavier_uniform_half_variance_),
        XAVIER_UNIFORM,
    ),
    Mutant(
        "leaky_relu_gain_without_square",
        "init",
        "leaky-ReLU gain √(2/(1 + a)) at a = 0.2",
        _fixed(he_leaky_gain_without_square_),
        HE_LEAKY,
    ),
    Mutant(
        "trunc_normal_bound_one_std",
        "init",
        "truncated at ±σ instead of ±2σ",
        _fixed(_trunc_normal(TN_STD, TN_STD)),
        TRUNC_NORMAL,
    ),
    Mutant(
        "trunc_normal_half_std",
        "init",
        "truncated normal with std σ/2 (bounds ±2σ kept)",
        _fixed(_trunc_normal(TN_STD / 2, TN_BOUND)),
        TRUNC_NORMAL,
    ),
)
