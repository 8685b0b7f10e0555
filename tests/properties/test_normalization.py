"""Normalization layers' exact properties (docs/methods.md §Normalization contracts).

Inputs come from the public ``tensors`` strategy: normal rows, rows with a large
common offset (κ up to ~1e3), constant rows, tiny and mixed-scale features, in
float32 and float64 (float16/bfloat16 with moderate offsets). The checks'
tolerances scale with the conditioning κ of each row, so all of these must pass
exactly as written — these are not statistical tests. Every normalization family
(LayerNorm, RMSNorm, GroupNorm, InstanceNorm, BatchNorm) is compared with its float64
oracle with trained-looking affine parameters, and each family's typical bug fails.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from netprops import PropertyViolation, make_generator
from netprops.checks.normalization import (
    check_batch_independent,
    check_normalized,
    check_shift_invariant,
)
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.spec import perturb_constant_parameters_
from netprops.strategies import TENSOR_KINDS, seeds, tensors

from .conftest import hypothesis_settings, randn

dtypes = st.sampled_from([torch.float32, torch.float64])


@st.composite
def ln_cases(draw, min_batch: int = 1, kinds: tuple[str, ...] = TENSOR_KINDS):
    """(input, normalized_shape): batch-first input whose last 1 or 2 dims are normalized."""
    batch = draw(st.integers(min_batch, 8))
    lead = draw(st.lists(st.integers(1, 3), max_size=1))
    norm_shape = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=2)))
    shape = (batch, *lead, *norm_shape)
    x = draw(tensors(shape=shape, dtype=dtypes, seed=seeds(), kinds=kinds))
    return x, norm_shape


def _affine_layer_norm(norm_shape, x, seed, affine):
    ln = LayerNorm(norm_shape, elementwise_affine=affine, device=x.device, dtype=x.dtype)
    if affine:  # a non-trivial affine: row independence must not depend on it
        g = make_generator(seed, x.device)
        with torch.no_grad():
            ln.weight.copy_(1 + 0.5 * torch.randn(ln.weight.shape, generator=g, device=x.device))
            ln.bias.copy_(torch.randn(ln.bias.shape, generator=g, device=x.device))
    return ln


@given(case=ln_cases(min_batch=2), affine=st.booleans(), train=st.booleans(), seed=seeds())
@example(
    case=(torch.tensor([[1.0], [2.0]]), (1,)), affine=False, train=True, seed=0
)  # n = 1: every row normalizes to 0
@example(case=(torch.tensor([[1.0, 3.0], [5.0, 5.0]]), (2,)), affine=True, train=False, seed=0)
@hypothesis_settings()
def test_layer_norm_rows_are_batch_independent(device, case, affine, train, seed):
    x, norm_shape = case
    x = x.to(device)  # the strategy draws on the CPU (same values on every device)
    ln = _affine_layer_norm(norm_shape, x, seed, affine).train(train)
    # permuted, replaced, cut and padded batches, and each row alone (batch size 1)
    result = check_batch_independent(ln, x, seed=seed)
    assert result.details["rows_alone"]
    assert result.statistic <= 1.0


@given(case=ln_cases(min_batch=1), train=st.booleans())
@example(case=(torch.tensor([[0.5, -1.0, 2.0]]), (3,)), train=True)  # batch size 1
@example(case=(torch.tensor([[7.0, 7.0, 7.0]]), (3,)), train=False)  # a constant row
@hypothesis_settings()
def test_layer_norm_output_has_mean_zero_and_biased_variance(device, case, train):
    x, norm_shape = case
    x = x.to(device)
    ln = LayerNorm(norm_shape, device=device, dtype=x.dtype).train(train)
    result = check_normalized(ln, x)
    assert result.details["n"] == math.prod(norm_shape)


@given(
    case=ln_cases(),
    affine=st.booleans(),
    seed=seeds(),
)
@example(case=(torch.tensor([[1.0, 2.0]]), (2,)), affine=False, seed=0)
@hypothesis_settings()
def test_layer_norm_is_shift_invariant_and_odd(device, case, affine, seed):
    x, norm_shape = case
    x = x.to(device)
    # without a bias the layer is odd: LN(−x) = −LN(x) is checked too
    ln = LayerNorm(norm_shape, elementwise_affine=affine, bias=False, device=device, dtype=x.dtype)
    result = check_shift_invariant(ln, x, seed=seed)
    assert isinstance(result.details["properties"]["negation f(-x) = -f(x)"], float)


@given(
    value=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    width=st.integers(1, 300),
    rows=st.integers(1, 4),
    dtype=dtypes,
    seed=seeds(),
)
# the float32 row the shift-invariance property once found: its sum/n mean is 1 ulp off
@example(value=-1.6052763462, width=3, rows=1, dtype=torch.float32, seed=0)
@hypothesis_settings()
def test_layer_norm_of_a_constant_row_is_exactly_beta(device, value, width, rows, dtype, seed):
    x = torch.full((rows, width), value, dtype=dtype, device=device)
    bias = randn((width,), seed, device, dtype)
    weight = randn((width,), seed + 1, device, dtype)
    ln = LayerNorm(width, device=device, dtype=dtype)
    with torch.no_grad():
        ln.weight.copy_(weight)
        ln.bias.copy_(bias)
    expected = torch.nn.functional.layer_norm(x, (width,), weight, bias)
    assert torch.equal(expected, bias.expand(rows, width))  # the reference's own contract
    assert torch.equal(ln(x).detach(), expected)


# --------------------------------------------------------------------------- BatchNorm contrast
def _batch_norm(x):
    cls = BatchNorm1d if x.dim() in (2, 3) else BatchNorm2d
    return cls(x.shape[1], device=x.device, dtype=x.dtype)


@st.composite
def bn_inputs(draw, min_batch: int = 2):
    """Batch-first inputs of BatchNorm1d/2d shapes, ``min_batch`` rows or more."""
    rank = draw(st.integers(2, 4))
    batch = draw(st.integers(min_batch, 6))
    channels = draw(st.integers(1, 5))
    spatial = tuple(draw(st.integers(1, 3)) for _ in range(rank - 2))
    dtype = draw(dtypes)
    seed = draw(seeds())
    offset = draw(st.sampled_from([0.0, 3.0, -50.0]))
    return (batch, channels, *spatial), dtype, seed, offset


@given(inp=bn_inputs())
@example(inp=((2, 1), torch.float32, 0, 0.0))
@hypothesis_settings()
def test_batch_norm_rows_depend_on_the_batch_in_train_mode_only(device, inp):
    shape, dtype, seed, offset = inp
    x = randn(shape, seed, device, dtype, offset=offset)
    bn = _batch_norm(x)
    check_batch_independent(bn.eval(), x, seed=seed)  # eval: per-channel affine of running stats
    with pytest.raises(PropertyViolation, match="check_batch_independent"):
        check_batch_independent(bn.train(), x, seed=seed)


# With 2 rows BatchNorm maps every channel to about ±1 whatever the values, which can
# look normalized and shift invariant per row to float32 rounding: 3 rows or more.
@given(inp=bn_inputs(min_batch=3))
@example(inp=((3, 1), torch.float64, 0, 0.0))
@hypothesis_settings()
def test_batch_norm_normalizes_columns_not_rows(device, inp):
    shape, dtype, seed, offset = inp
    x = randn(shape, seed, device, dtype, offset=offset)
    bn = _batch_norm(x).train()
    # per-sample statistics over the channel dims are those of LayerNorm, not BatchNorm's
    dims = tuple(range(1, x.dim()))
    plain = type(bn)(x.shape[1], affine=False, device=device, dtype=dtype).train()
    with pytest.raises(PropertyViolation, match="check_normalized"):
        check_normalized(plain, x, kind="layer", dims=dims)
    check_normalized(bn, x)  # and per channel over the batch, they are BatchNorm's
    # BatchNorm's own invariance is to a per-channel shift; a per-row shift changes its output
    with pytest.raises(PropertyViolation, match="shift invariance"):
        check_shift_invariant(bn, x, seed=seed, negation=False)
    ln = LayerNorm(x.shape[1:], device=device, dtype=dtype)
    check_normalized(ln, x, dims=dims)
    check_shift_invariant(ln, x, seed=seed)


# --------------------------------------------------------------------------- every family
# (constructor(channels, length, device, dtype), input rank); channels are doubled for groups
_FAMILIES = {
    "nn.LayerNorm": (lambda c, t, d, dt: nn.LayerNorm(t, device=d, dtype=dt), 3),
    "nn.LayerNorm-2d": (lambda c, t, d, dt: nn.LayerNorm((c, t), device=d, dtype=dt), 3),
    "LayerNorm": (lambda c, t, d, dt: LayerNorm(t, device=d, dtype=dt), 3),
    "nn.RMSNorm": (lambda c, t, d, dt: nn.RMSNorm(t, device=d, dtype=dt), 3),
    "nn.GroupNorm": (lambda c, t, d, dt: nn.GroupNorm(2, 2 * c, device=d, dtype=dt), 3),
    "nn.InstanceNorm1d": (
        lambda c, t, d, dt: nn.InstanceNorm1d(c, affine=True, device=d, dtype=dt),
        3,
    ),
    "nn.BatchNorm1d": (lambda c, t, d, dt: nn.BatchNorm1d(c, device=d, dtype=dt), 2),
    "nn.BatchNorm2d": (lambda c, t, d, dt: nn.BatchNorm2d(c, device=d, dtype=dt), 4),
    "BatchNorm2d": (lambda c, t, d, dt: BatchNorm2d(c, device=d, dtype=dt), 4),
}

#: measured worst |y − oracle|/B over 33,600 inputs of tests/quality/norm_margins.py: 0.38
#: (bfloat16 BatchNorm/InstanceNorm training outputs); the property keeps that margin
NORMALIZED_MARGIN = 0.5


@st.composite
def norm_cases(draw):
    """(family, module with trained-looking parameters, input): any family, shape, dtype."""
    family = draw(st.sampled_from(sorted(_FAMILIES)))
    factory, rank = _FAMILIES[family]
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.bfloat16, torch.float16]))
    batch, c, t = draw(st.integers(2, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 6))
    channels = 2 * c if family == "nn.GroupNorm" else c
    shape = {2: (batch, c), 3: (batch, channels, t), 4: (batch, c, 2, t)}[rank]
    half = dtype in (torch.float16, torch.bfloat16)
    # half precision: moderate offsets (a 30σ offset leaves bfloat16 ~3 significant levels)
    x = draw(
        tensors(
            shape=shape,
            dtype=dtype,
            seed=seeds(),
            kinds=("normal", "offset") if half else TENSOR_KINDS,
            max_offset=3.0 if half else 1e3,
        )
    )
    module = factory(c, t, "cpu", dtype)
    perturb_constant_parameters_(module, seed=draw(seeds()))
    return family, module.train(draw(st.booleans())), x


@given(case=norm_cases())
@hypothesis_settings(max_examples=30)
def test_every_norm_family_with_trained_parameters_matches_its_oracle(device, case):
    family, module, x = case
    module, x = module.to(device), x.to(device)
    result = check_normalized(module, x)
    assert result.statistic <= NORMALIZED_MARGIN, (family, result.details)


class _IgnoresAffineLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return nn.functional.layer_norm(x, self.normalized_shape, None, None, self.eps)


class _CentringRMSNorm(nn.RMSNorm):
    def forward(self, x):
        return nn.functional.layer_norm(x, self.normalized_shape, self.weight, None, 1e-6)


class _InterleavedGroupNorm(nn.GroupNorm):
    def forward(self, x):
        n, c, g = x.shape[0], x.shape[1], self.num_groups
        strided = x.reshape(n, c // g, g, -1).transpose(1, 2).reshape(x.shape)
        y = nn.functional.group_norm(strided, g, None, None, self.eps)
        y = y.reshape(n, g, c // g, -1).transpose(1, 2).reshape(x.shape)
        return y * self.weight.view(1, -1, 1) + self.bias.view(1, -1, 1)


class _UnbiasedBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x):
        var, mean = torch.var_mean(x, dim=0, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


_BUGS = {
    "LayerNorm ignoring its affine": (lambda c, t: _IgnoresAffineLayerNorm(t), 3, 1),
    "RMSNorm subtracting the mean": (lambda c, t: _CentringRMSNorm(t), 3, 1),
    "GroupNorm with strided groups": (lambda c, t: _InterleavedGroupNorm(2, 2 * c), 3, 2),
    "BatchNorm with the unbiased variance": (lambda c, t: _UnbiasedBatchNorm1d(c), 2, 1),
}


@given(
    bug=st.sampled_from(sorted(_BUGS)),
    batch=st.integers(3, 6),
    c=st.integers(2, 4),
    t=st.integers(3, 8),
    dtype=dtypes,
    seed=seeds(),
)
@example(bug="GroupNorm with strided groups", batch=3, c=2, t=3, dtype=torch.float32, seed=0)
@hypothesis_settings(max_examples=12)
def test_each_family_bug_is_caught_for_any_shape(device, bug, batch, c, t, dtype, seed):
    factory, rank, widen = _BUGS[bug]
    module = factory(c, t).to(device=device, dtype=dtype)
    perturb_constant_parameters_(module, seed=seed)
    shape = (batch, widen * c, t) if rank == 3 else (batch, c)
    x = randn(shape, seed, device, dtype)
    with pytest.raises(PropertyViolation, match="check_normalized: output element"):
        check_normalized(module, x)
