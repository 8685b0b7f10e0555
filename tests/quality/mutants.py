"""A catalog of deliberately broken variants of netprops' layers and initializers.

Each :class:`Mutant` is one of OUR layers (a subclass, or a wrapper of our
function) with exactly one bug, paired with its correct twin, and with the
public checks that apply to its family (:class:`Probe`: how to call the check
on such a subject). ``tests/quality/test_mutants.py`` runs every probe on every
mutant (the kill matrix: each mutant must be caught by at least one check) and
on every correct twin for several seeds (each must pass every probe).

Statistical probes run at ``MC_ALPHA = ALPHA/4`` or ``VP_ALPHA = ALPHA/8`` with
the sizes chosen in tests/properties (see test_stochastic.py and
test_init_variance.py for why): a correct twin fails one of them with
probability <= ALPHA; they are budgeted in tests/properties/conftest.py.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from properties.conftest import ALPHA
from torch import nn

from netprops import derive_seed, make_generator
from netprops.checks.contract import check_train_eval_contract
from netprops.checks.gradients import check_grad_clipping, check_gradcheck
from netprops.checks.normalization import (
    check_batch_independent,
    check_normalized,
    check_shift_invariant,
)
from netprops.checks.parity import check_device_parity
from netprops.checks.stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
)
from netprops.checks.variance import (
    check_init_distribution,
    check_model_variance,
    check_variance_preserved,
)
from netprops.init import he_normal_, he_uniform_, xavier_normal_
from netprops.layers.activations import Tanh, TanhFunction
from netprops.layers.clip import clip_grad_norm_
from netprops.layers.dropout import DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, LayerNorm, batch_norm
from netprops.layers.pooling import MaxPool2d, MaxPool2dFunction
from netprops.layers.residual import ResidualMLPBlock
from netprops.spec import perturb_constant_parameters_

__all__ = ["CATALOG", "CHECK_ORDER", "Mutant", "Probe", "Twin", "twins"]

MC_ALPHA = ALPHA / 4
VP_ALPHA = ALPHA / 8
P_DROP = 0.3


def _randn(shape, seed, device, dtype=torch.float32, offset=0.0, scale=1.0):
    g = make_generator(seed, device)
    z = torch.randn(shape, generator=g, device=device, dtype=torch.float64)
    return (offset + scale * z).to(dtype)


# =========================================================================== initializers
def _fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def xavier_fan_in_only_(tensor, gain=1.0, *, generator=None):
    """BUG: std = gain·√(1/fan_in), i.e. 2/(fan_in + fan_in) instead of 2/(fan_in + fan_out)."""
    fan_in, _ = _fans(tensor.shape)
    with torch.no_grad():
        return tensor.normal_(0.0, gain * math.sqrt(1.0 / fan_in), generator=generator)


def he_without_sqrt2_(tensor, *, generator=None):
    """BUG: std = 1/√fan_in (the ReLU gain √2 is missing)."""
    return he_normal_(tensor, nonlinearity="linear", generator=generator)


def he_fan_out_(tensor, *, generator=None):
    """BUG: std = √2/√fan_out although forward preservation needs fan_in."""
    return he_normal_(tensor, mode="fan_out", generator=generator)


def he_uniform_bound_is_std_(tensor, *, generator=None):
    """BUG: U(−σ, σ) with σ = √2/√fan_in: the bound lacks √3, variance is σ²/3."""
    fan_in, _ = _fans(tensor.shape)
    std = math.sqrt(2.0 / fan_in)
    with torch.no_grad():
        return tensor.uniform_(-std, std, generator=generator)


def _xavier_std(shape):
    fan_in, fan_out = _fans(shape)
    return math.sqrt(2.0 / (fan_in + fan_out))


def _he_std(shape):
    return math.sqrt(2.0 / _fans(shape)[0])


# =========================================================================== LayerNorm
class BatchAxisLayerNorm(LayerNorm):
    """BUG: normalizes each feature over the BATCH axis (dim 0) instead of each row."""

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=0, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class UnbiasedLayerNorm(LayerNorm):
    """BUG: divides by the unbiased variance (n − 1) instead of the biased one (n)."""

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class EpsOutsideSqrtLayerNorm(LayerNorm):
    """BUG: (x − μ)/(σ + ε) instead of (x − μ)/√(σ² + ε)."""

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return (x - mean) / (var.sqrt() + self.eps) * self.weight + self.bias


# =========================================================================== BatchNorm
def _channel_stats(x, correction):
    dims = [d for d in range(x.dim()) if d != 1]
    return torch.var_mean(x, dim=dims, correction=correction)


class EvalUpdatingBatchNorm(BatchNorm1d):
    """BUG: eval forwards also move the running statistics (with the batch's)."""

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            var, mean = _channel_stats(x.detach(), correction=1)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        return out


class BiasedRunningVarBatchNorm(BatchNorm1d):
    """BUG: running_var tracks the BIASED batch variance σ²_B instead of n/(n−1)·σ²_B."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        old = self.running_var.detach().clone()
        out = super().forward(x)
        var, _ = _channel_stats(x.detach(), correction=0)
        with torch.no_grad():
            self.running_var.copy_(torch.lerp(old, var, self.momentum))
        return out


class EvalBatchStatsBatchNorm(BatchNorm1d):
    """BUG: eval mode normalizes with the batch's statistics, not the running ones."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        return batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class SwappedMomentumBatchNorm(BatchNorm1d):
    """BUG: x̂ ← m·x̂ + (1 − m)·x_t (Keras' convention) with torch's m = 0.1."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        momentum = self.momentum
        self.momentum = 1.0 - momentum
        try:
            return super().forward(x)
        finally:
            self.momentum = momentum


# =========================================================================== Dropout
class ExactVarianceDropout(Dropout):
    """Our Dropout plus the exact variance of its training output x²·p/(1−p) (docs/methods.md §Monte Carlo checks);
    the correct twin of the Dropout mutants (they inherit the correct formula)."""

    def output_variance(self, x):
        return x.square() * (self.p / (1.0 - self.p))


class KeepProbabilityDropout(ExactVarianceDropout):
    """BUG: keeps each entry with probability p (the papers' convention) instead of 1 − p."""

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        generator = self._generator_for(x.device)
        mask = torch.empty_like(x).bernoulli_(self.p, generator=generator)
        return x * mask / (1.0 - self.p)


class EvalDropout(ExactVarianceDropout):
    """BUG: drops in eval mode too."""

    def forward(self, x):
        if self.p == 0.0:
            return x
        return x * self._keep_mask(x.shape, x).div_(1.0 - self.p)


class BatchSharedDropout(ExactVarianceDropout):
    """BUG: one mask over the features, broadcast to every example of the batch."""

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self._keep_mask((1, *x.shape[1:]), x).div_(1.0 - self.p)


# =========================================================================== DropConnect
class NoRescaleDropConnect(DropConnectLinear):
    """BUG: kept weights are not scaled by 1/(1 − p)."""

    def masked_weight(self, mask):
        return self.weight * mask


class EvalMaskDropConnect(DropConnectLinear):
    """BUG: the weight mask is applied in eval mode too."""

    def _forward(self, x, batch_shape):
        mask = self.sample_mask(batch_shape if self.per_sample else ())
        self.last_mask = mask
        return self._apply_weight(x, self.masked_weight(mask))


class SharedPerSampleDropConnect(DropConnectLinear):
    """BUG: ``per_sample=True`` draws one mask and expands it over the batch."""

    def _forward(self, x, batch_shape):
        if not self.training or self.p == 0.0:
            return self._apply_weight(x, self.weight)
        mask = self.sample_mask(()).expand(*batch_shape, *self.weight.shape)
        self.last_mask = mask
        return self._apply_weight(x, self.masked_weight(mask))


class FrozenMaskDropConnect(DropConnectLinear):
    """BUG: one mask is drawn at the first training forward and shared by all later ones."""

    frozen: torch.Tensor | None = None

    def _forward(self, x, batch_shape):
        if not self.training or self.p == 0.0:
            return self._apply_weight(x, self.weight)
        if self.frozen is None:
            self.frozen = self.sample_mask(())
        self.last_mask = self.frozen
        return self._apply_weight(x, self.masked_weight(self.frozen))


# =========================================================================== residual
class ExactVarianceMLPBlock(ResidualMLPBlock):
    """Our ResidualMLPBlock plus the exact variance of its training output over dropout
    masks, ``p/(1−p)·Σ_j W2_ij² h_j²`` (the correct twin of the residual mutant)."""

    def output_variance(self, x):
        h = self.act(self.norm(self.fc1(x)))
        return (h.square() @ self.fc2.weight.square().T) * (self.dropout.p / (1 - self.dropout.p))


class NoSkipMLPBlock(ExactVarianceMLPBlock):
    """BUG: returns the residual branch without adding the input (no skip connection)."""

    def forward(self, x):
        return self.residual_branch(x)


# =========================================================================== activation
class _TanhWrongBackward(TanhFunction):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)  # BUG: 1 − y instead of 1 − y²


class WrongBackwardTanh(Tanh):
    """BUG: tanh's Function computes the backward with 1 − tanh instead of 1 − tanh²."""

    def forward(self, x):
        return _TanhWrongBackward.apply(x)


# =========================================================================== pooling
class _MaxPoolScatterBackward(MaxPool2dFunction):
    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        flat = grad.reshape(n, c, -1)
        # BUG: scatter overwrites where scatter_add sums (a cell that is the max of
        # several overlapping windows gets one window's gradient)
        grad_in = flat.new_zeros(n, c, h * w).scatter(2, index.view(n, c, -1), flat)
        return grad_in.view(n, c, h, w), None, None, None


class OverwritingMaxPool2d(MaxPool2d):
    """BUG: max pooling's backward overwrites instead of accumulating overlapping windows."""

    def forward(self, x):
        return _MaxPoolScatterBackward.apply(x, self.kernel_size, self.stride, self.padding)


# =========================================================================== clipping
def clip_each_tensor_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """BUG: clips every gradient tensor to max_norm separately, not their total norm."""
    params = [p for p in parameters if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(p.grad, norm_type) for p in params])
    total = torch.linalg.vector_norm(norms, norm_type)
    for p in params:
        clip_grad_norm_(p, max_norm, norm_type, error_if_nonfinite)
    return total


# =========================================================================== probes
@dataclass(frozen=True)
class Probe:
    """One public check, called on a subject (layer or function) for a seed.

    ``run(subject, seed, device)`` returns the CheckResult or raises
    ``PropertyViolation``; ``statistical`` probes can fail a correct subject
    with a known small probability (their level), the others cannot.
    """

    check: str
    run: Callable[[Any, int, str], Any]
    statistical: bool = False


def _probe(check: str, statistical: bool = False):
    def decorate(fn):
        return Probe(check, fn, statistical)

    return decorate


def init_distribution_probe(expected_std: Callable[[tuple], float], law: str) -> Probe:
    shape = (64, 256)  # non-square: fan_in 256, fan_out 64

    def run(init_fn, seed, device):
        return check_init_distribution(
            init_fn,
            shape,
            expected_std=expected_std(shape),
            distribution=law,
            seed=seed,
            device=device,
            alpha=ALPHA / 4,
        )

    return Probe("check_init_distribution", run, statistical=True)


def variance_preserved_probe(nonlinearity: str) -> Probe:
    def run(init_fn, seed, device):
        return check_variance_preserved(
            init_fn,
            nonlinearity=nonlinearity,
            width=128,
            depth=8,
            n_networks=8,
            seed=seed,
            device=device,
            alpha=VP_ALPHA,
        )

    return Probe("check_variance_preserved", run, statistical=True)


def model_variance_probe(activation: str) -> Probe:
    """A square 256-wide network filled by the initializer (biases 0)."""
    width, depth = 256, 4

    def run(init_fn, seed, device):
        g = make_generator(seed, device)
        layers: list[nn.Module] = []
        for i in range(depth + 1):
            layers.append(nn.Linear(width if i else 64, width if i < depth else 10, device="meta"))
            if i < depth:
                layers.append(nn.ReLU() if activation == "relu" else nn.Identity())
        model = nn.Sequential(*layers).to_empty(device=device)
        for layer in model:
            if isinstance(layer, nn.Linear):
                init_fn(layer.weight, generator=g)
                nn.init.zeros_(layer.bias)
        x = _randn((16, 64), seed + 1, device)
        return check_model_variance(model, x, seed=seed, alpha=ALPHA / 4)  # derived bands

    return Probe("check_model_variance", run, statistical=True)


def _ln_input(seed, device):
    """Rows at several scales and offsets (0.01-scale rows expose where ε sits)."""
    x = _randn((6, 8), seed, device)
    scales = torch.tensor([1.0, 0.01, 3.0, 0.02, 1.0, 0.5], device=device).view(-1, 1)
    offsets = torch.tensor([0.0, 0.0, 5.0, -1.0, 20.0, 0.0], device=device).view(-1, 1)
    return x * scales + offsets


@_probe("check_batch_independent")
def ln_batch_independent(module, seed, device):
    return check_batch_independent(module, _ln_input(seed, device), seed=seed)


@_probe("check_normalized")
def ln_normalized(module, seed, device):
    return check_normalized(module, _ln_input(seed, device))


@_probe("check_shift_invariant")
def ln_shift_invariant(module, seed, device):
    return check_shift_invariant(module, _ln_input(seed, device), seed=seed)


def _gradcheck_probe(make_input, eval_mode=False):
    def run(module, seed, device):
        module = module.eval() if eval_mode else module  # stochastic layers: deterministic eval
        return check_gradcheck(module, make_input(seed, device), seed=seed, device=device)

    return Probe("check_gradcheck", run)


def _parity_probe(make_input):
    def run(module, seed, device):
        x = make_input(seed, device)
        if device == "cpu":
            return check_device_parity(
                module, x, devices=("cpu", "cpu"), seed=seed, dtypes=(torch.float64, torch.float32)
            )
        return check_device_parity(module, x, devices=("cpu", device), seed=seed)

    return Probe("check_device_parity", run)


def _bn_input(seed, device):
    return _randn((5, 4), seed, device, offset=1.0, scale=2.0)


@_probe("check_train_eval_contract")
def bn_contract(module, seed, device):
    # 5 values per channel: a biased running_var is off by m·s²/5, far beyond float32 rounding
    return check_train_eval_contract(module, _bn_input(seed, device), seed=seed)


@_probe("check_normalized")
def bn_normalized(module, seed, device):
    # train mode: each channel normalized over the batch (biased variance), own affine
    return check_normalized(module, _bn_input(seed, device))


@_probe("check_batch_independent")
def bn_eval_batch_independent(module, seed, device):
    return check_batch_independent(module.eval(), _bn_input(seed, device), seed=seed)


def _mc_input(shape):
    return lambda seed, device: _randn(shape, seed + 1, device, torch.float64)


@_probe("check_expectation_equal", statistical=True)
def dropout_expectation(module, seed, device):
    x = _randn((2, 4), seed + 1, device, torch.float64)
    return check_expectation_equal(
        module, x, reference=lambda t: t, n_samples=1000, alpha=MC_ALPHA, seed=seed
    )


@_probe("check_drop_rate", statistical=True)
def drop_rate(module, seed, device):
    dtype = next(module.parameters(), torch.ones(())).dtype
    return check_drop_rate(
        module,
        torch.ones(4, 8, device=device, dtype=dtype),
        p=P_DROP,
        seed=seed,
        n=20_000,
        alpha=ALPHA,
    )


@_probe("check_masks_independent", statistical=True)
def masks_independent(module, seed, device):
    width = getattr(module, "in_features", 5)
    x = _randn((2, width), seed + 1, device, torch.float64)
    return check_masks_independent(module, x, n_samples=256, alpha=ALPHA, seed=seed)


@_probe("check_train_eval_contract")
def stochastic_contract(module, seed, device):
    width = getattr(module, "in_features", getattr(module, "features", 4))
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    return check_train_eval_contract(module, _randn((3, width), seed, device, dtype), seed=seed)


@_probe("check_expectation_equal", statistical=True)
def dropconnect_expectation(module, seed, device):
    # 3 rows: with one mask shared by the batch the rows are dependent, which the check allows
    x = _randn((3, module.in_features), seed + 1, device, torch.float64)
    return check_expectation_equal(
        module,
        x,
        reference=lambda t: F.linear(t, module.weight, module.bias),
        n_samples=1000,
        alpha=MC_ALPHA,
        seed=seed,
    )


@_probe("check_gradcheck")
def dropconnect_eval_gradcheck(module, seed, device):
    x = _randn((2, module.in_features), seed, device, torch.float64)
    return check_gradcheck(module.eval(), x, seed=seed, device=device)


@_probe("check_expectation_equal", statistical=True)
def residual_expectation(module, seed, device):
    # features = 1: each output has its own dropout mask (independent outputs)
    reference = _eval_copy(module)
    x = _randn((4, 1), seed + 1, device, torch.float64)
    return check_expectation_equal(
        module,
        x,
        reference=lambda t: t + reference.residual_branch(t),
        n_samples=1000,
        alpha=MC_ALPHA,
        seed=seed,
    )


def _eval_copy(module):
    return copy.deepcopy(module).eval()


@_probe("check_batch_independent")
def residual_batch_independent(module, seed, device):
    return check_batch_independent(module.eval(), _randn((4, 1), seed, device, torch.float64))


@_probe("check_grad_clipping")
def clipping(fn, seed, device):
    return check_grad_clipping(fn, max_norm=1.0, seed=seed, device=device)


def _distinct_pool_input(seed, device):
    order = torch.randperm(25, generator=make_generator(seed)).to(device)
    return (order.to(torch.float64) * 0.1).reshape(1, 1, 5, 5)


# =========================================================================== builders
def trained(module, seed):
    """``module`` with seeded trained-looking affine parameters and running statistics
    (ones around U(0.5, 1.5), zeros around U(-0.5, 0.5)): a layer that ignores them shows."""
    perturb_constant_parameters_(module, seed=derive_seed(seed, "mutant-parameters"))
    return module


def _layer_norm(cls):
    return lambda seed, device: trained(cls(8, device=device), seed)


def _batch_norm(cls):
    return lambda seed, device: trained(cls(4, momentum=0.1, device=device), seed)


def _dropout(cls):
    return lambda seed, device: cls(P_DROP, generator=make_generator(seed, device))


def _dropconnect(cls, per_sample=False):
    def build(seed, device):
        return cls(
            8,
            6,
            p=P_DROP,
            per_sample=per_sample,
            generator=make_generator(seed, device),
            device=device,
            dtype=torch.float64,
        )

    return build


def _residual(cls):
    def build(seed, device):
        block = cls(1, 6, dropout=0.25, norm="layer", generator=make_generator(seed))
        block = block.double().to(device)
        block.dropout.manual_seed(seed)
        return block

    return build


def _fixed(value):
    return lambda seed, device: value


# =========================================================================== the catalog
@dataclass(frozen=True)
class Twin:
    """A correct subject: the layer or function the mutants of a family break."""

    name: str
    build: Callable[[int, str], Any]
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class Mutant:
    """One bug: ``build(seed, device)`` gives the broken subject, ``twin`` the correct one."""

    name: str
    family: str
    bug: str
    build: Callable[[int, str], Any]
    twin: Twin

    @property
    def probes(self) -> tuple[Probe, ...]:
        return self.twin.probes


XAVIER = Twin(
    "init.xavier_normal_",
    _fixed(xavier_normal_),
    (
        init_distribution_probe(_xavier_std, "normal"),
        variance_preserved_probe("linear"),
        model_variance_probe("linear"),
    ),
)
HE = Twin(
    "init.he_normal_",
    _fixed(he_normal_),
    (
        init_distribution_probe(_he_std, "normal"),
        variance_preserved_probe("relu"),
        model_variance_probe("relu"),
    ),
)
HE_UNIFORM = Twin(
    "init.he_uniform_",
    _fixed(he_uniform_),
    (
        init_distribution_probe(_he_std, "uniform"),
        variance_preserved_probe("relu"),
        model_variance_probe("relu"),
    ),
)
LAYER_NORM = Twin(
    "LayerNorm",
    _layer_norm(LayerNorm),
    (
        ln_batch_independent,
        ln_normalized,
        ln_shift_invariant,
        _gradcheck_probe(lambda seed, device: _ln_input(seed, device).double()[:3]),
        _parity_probe(_ln_input),
    ),
)
BATCH_NORM = Twin(
    "BatchNorm1d",
    _batch_norm(BatchNorm1d),
    (
        bn_contract,
        bn_normalized,
        bn_eval_batch_independent,
        _gradcheck_probe(lambda seed, device: _bn_input(seed, device).double()),
        _parity_probe(_bn_input),
    ),
)
DROPOUT = Twin(
    "Dropout (+ exact variance)",
    _dropout(ExactVarianceDropout),
    (dropout_expectation, drop_rate, masks_independent, stochastic_contract),
)
DROPCONNECT = Twin(
    "DropConnectLinear",
    _dropconnect(DropConnectLinear),
    (dropconnect_expectation, drop_rate, stochastic_contract, dropconnect_eval_gradcheck),
)
DROPCONNECT_PER_SAMPLE = Twin(
    "DropConnectLinear (per_sample)",
    _dropconnect(DropConnectLinear, per_sample=True),
    (dropconnect_expectation, drop_rate, masks_independent, stochastic_contract),
)
RESIDUAL = Twin(
    "ResidualMLPBlock (+ exact variance)",
    _residual(ExactVarianceMLPBlock),
    (
        residual_expectation,
        _gradcheck_probe(_mc_input((3, 1)), eval_mode=True),
        residual_batch_independent,
        stochastic_contract,
    ),
)
TANH = Twin(
    "Tanh",
    _fixed(Tanh()),
    (
        _gradcheck_probe(lambda seed, device: _randn((3, 5), seed, device, torch.float64)),
        _parity_probe(lambda seed, device: _randn((3, 5), seed, device)),
    ),
)
MAX_POOL = Twin(
    "MaxPool2d(3, stride=1)",
    lambda seed, device: MaxPool2d(3, stride=1, padding=1),
    (_gradcheck_probe(_distinct_pool_input), _parity_probe(_distinct_pool_input)),
)
CLIP = Twin("clip_grad_norm_", _fixed(clip_grad_norm_), (clipping,))


CATALOG: tuple[Mutant, ...] = (
    Mutant(
        "xavier_fan_in_only",
        "init",
        "Xavier std uses fan_in only: √(1/fan_in)",
        _fixed(xavier_fan_in_only_),
        XAVIER,
    ),
    Mutant(
        "he_without_sqrt2",
        "init",
        "He std without the ReLU gain √2",
        _fixed(he_without_sqrt2_),
        HE,
    ),
    Mutant(
        "he_fan_out",
        "init",
        "He std from fan_out (forward needs fan_in)",
        _fixed(he_fan_out_),
        HE,
    ),
    Mutant(
        "he_uniform_bound_is_std",
        "init",
        "He uniform bound σ instead of √3·σ",
        _fixed(he_uniform_bound_is_std_),
        HE_UNIFORM,
    ),
    Mutant(
        "layernorm_batch_axis",
        "LayerNorm",
        "normalizes over the batch axis",
        _layer_norm(BatchAxisLayerNorm),
        LAYER_NORM,
    ),
    Mutant(
        "layernorm_unbiased_var",
        "LayerNorm",
        "divides by the unbiased variance",
        _layer_norm(UnbiasedLayerNorm),
        LAYER_NORM,
    ),
    Mutant(
        "layernorm_eps_outside_sqrt",
        "LayerNorm",
        "(x − μ)/(σ + ε) instead of /√(σ² + ε)",
        _layer_norm(EpsOutsideSqrtLayerNorm),
        LAYER_NORM,
    ),
    Mutant(
        "batchnorm_updates_in_eval",
        "BatchNorm",
        "eval forwards move the running statistics",
        _batch_norm(EvalUpdatingBatchNorm),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm_biased_running_var",
        "BatchNorm",
        "running_var stores the biased batch variance",
        _batch_norm(BiasedRunningVarBatchNorm),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm_eval_batch_stats",
        "BatchNorm",
        "eval normalizes with batch statistics",
        _batch_norm(EvalBatchStatsBatchNorm),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm_swapped_momentum",
        "BatchNorm",
        "running update m·old + (1 − m)·new",
        _batch_norm(SwappedMomentumBatchNorm),
        BATCH_NORM,
    ),
    Mutant(
        "dropout_keeps_p",
        "Dropout",
        "keeps with probability p instead of 1 − p",
        _dropout(KeepProbabilityDropout),
        DROPOUT,
    ),
    Mutant(
        "dropout_in_eval",
        "Dropout",
        "drops in eval mode",
        _dropout(EvalDropout),
        DROPOUT,
    ),
    Mutant(
        "dropout_batch_shared_mask",
        "Dropout",
        "one feature mask broadcast over the batch",
        _dropout(BatchSharedDropout),
        DROPOUT,
    ),
    Mutant(
        "dropconnect_no_rescale",
        "DropConnect",
        "kept weights not scaled by 1/(1 − p)",
        _dropconnect(NoRescaleDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "dropconnect_mask_in_eval",
        "DropConnect",
        "weight mask applied in eval mode",
        _dropconnect(EvalMaskDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "dropconnect_frozen_mask",
        "DropConnect",
        "one mask shared by every forward pass",
        _dropconnect(FrozenMaskDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "dropconnect_shared_per_sample_mask",
        "DropConnect",
        "per_sample=True expands one mask over the batch",
        _dropconnect(SharedPerSampleDropConnect, per_sample=True),
        DROPCONNECT_PER_SAMPLE,
    ),
    Mutant(
        "residual_no_skip",
        "residual",
        "block returns the branch without + x",
        _residual(NoSkipMLPBlock),
        RESIDUAL,
    ),
    Mutant(
        "tanh_wrong_backward",
        "activation",
        "tanh backward uses 1 − y instead of 1 − y²",
        _fixed(WrongBackwardTanh()),
        TANH,
    ),
    Mutant(
        "maxpool_overwriting_backward",
        "pooling",
        "max-pool backward scatter (overwrites) instead of scatter_add",
        lambda seed, device: OverwritingMaxPool2d(3, stride=1, padding=1),
        MAX_POOL,
    ),
    Mutant(
        "clip_each_tensor",
        "clipping",
        "clips each gradient tensor separately",
        _fixed(clip_each_tensor_),
        CLIP,
    ),
)

#: Column order of the kill matrix.
CHECK_ORDER: tuple[str, ...] = (
    "check_init_distribution",
    "check_variance_preserved",
    "check_model_variance",
    "check_batch_independent",
    "check_normalized",
    "check_shift_invariant",
    "check_train_eval_contract",
    "check_expectation_equal",
    "check_masks_independent",
    "check_drop_rate",
    "check_gradcheck",
    "check_grad_clipping",
    "check_device_parity",
)


def twins() -> tuple[Twin, ...]:
    """The distinct correct twins, in catalog order."""
    seen: dict[str, Twin] = {}
    for mutant in CATALOG:
        seen.setdefault(mutant.twin.name, mutant.twin)
    return tuple(seen.values())


# normalization and train/eval mutants (tests/quality/mutants_norm.py)
from .mutants_norm import NORM_MUTANTS  # noqa: E402

CATALOG += NORM_MUTANTS

from .mutants_dynamics import DYNAMICS_CHECKS, DYNAMICS_MUTANTS  # noqa: E402

CATALOG += DYNAMICS_MUTANTS
CHECK_ORDER += DYNAMICS_CHECKS

# the mutants of issue #12's stochastic/init/clipping/activation/pooling work
from .mutants_stochastic import STOCHASTIC_MUTANTS  # noqa: E402

CATALOG += STOCHASTIC_MUTANTS
