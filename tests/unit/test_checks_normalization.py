"""check_batch_independent, check_normalized, check_shift_invariant and conditioning.

Pass cases use torch.nn and netprops layers; fail cases use the small broken
layers below, each with the one bug the check is meant to catch.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from netprops import PropertyViolation, make_generator, seeded_global_rng, tolerance
from netprops.checks.normalization import (
    check_batch_independent,
    check_normalized,
    check_shift_invariant,
    conditioning,
)
from netprops.layers.dropout import DropConnectLinear
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.spec import perturb_constant_parameters_

_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed, device, dtype=torch.float32, offset=0.0, scale=1.0):
    g = make_generator(seed, device)
    z = torch.randn(shape, generator=g, device=device, dtype=torch.float64)
    return (scale * (z + offset)).to(dtype)


# --------------------------------------------------------------------------- broken layers
class BatchAxisLayerNorm(nn.Module):
    """Bug: normalizes each feature over the batch axis (BatchNorm's axis)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=0, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + self.eps)


class UnbiasedLayerNorm(nn.Module):
    """Bug: divides by the unbiased variance (n − 1) instead of the biased one (n)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=1)
        return (x - mean) / torch.sqrt(var + self.eps)


class EpslessLayerNorm(nn.Module):
    """Bug: claims eps but normalizes to variance exactly 1 (eps ignored)."""

    eps = 1e-5

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var)


class UncenteredNorm(nn.Module):
    """Bug (for a LayerNorm): divides by the RMS without subtracting the mean."""

    eps = 1e-5
    bias = None

    def forward(self, x):
        return x / torch.sqrt(x.square().mean(-1, keepdim=True) + self.eps)


def _layer_norms(d, device, dtype=torch.float32):
    return [
        nn.LayerNorm(d, device=device, dtype=dtype),
        LayerNorm(d, device=device, dtype=dtype),
    ]


def _assert_message(exc: pytest.ExceptionInfo, seed) -> str:
    text = str(exc.value)
    for part in ("statistic:", "bound:", f"seed:      {seed}", "reproduce: netprops.checks."):
        assert part in text, f"{part!r} missing from:\n{text}"
    return text


# --------------------------------------------------------------------------- conditioning
def test_conditioning_matches_float64_formula(device):
    x = _randn((3, 5, 7), 0, device, offset=4.0, scale=0.5)
    xd = x.double()
    mu = xd.mean(-1, keepdim=True)
    var = ((xd - mu) ** 2).mean(-1, keepdim=True)
    eps = 1e-3
    torch.testing.assert_close(
        conditioning(x, -1, eps), (mu.abs() + var.sqrt()) / (var + eps).sqrt()
    )
    joint = conditioning(x, (1, 2))
    assert joint.shape == (3, 1, 1)
    assert conditioning(torch.zeros(2, 4, device=device)).isinf().all()


# --------------------------------------------------------------------------- batch independence
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_layer_norm_is_batch_independent(device, mode):
    x = _randn((6, 16), 1, device)
    for ln in _layer_norms(16, device):
        ln.train(mode == "train")
        result = check_batch_independent(ln, x, seed=2)
        assert result.statistic <= result.bound == 1.0
        assert result.details["mode"] == mode
        assert ln.training == (mode == "train")


def test_layer_norm_over_trailing_dims_is_batch_independent(device):
    x = _randn((4, 3, 5, 6), 3, device, offset=20.0)
    for ln in _layer_norms((5, 6), device):
        assert check_batch_independent(ln, x, batch_sizes=(1, 3, 9)).statistic <= 1.0


@pytest.mark.parametrize("cls", [nn.BatchNorm1d, BatchNorm1d])
def test_batch_norm_fails_in_train_mode_and_passes_in_eval(device, cls):
    bn = cls(8, device=device)
    x = _randn((6, 8), 4, device, offset=1.0)
    with pytest.raises(PropertyViolation, match=r"changes when .* train mode") as exc:
        check_batch_independent(bn.train(), x, seed=5)
    text = _assert_message(exc, 5)
    assert "check_batch_independent(module, x, seed=5" in text
    assert check_batch_independent(bn.eval(), x, seed=5).statistic <= 1.0


@pytest.mark.parametrize("cls", [nn.BatchNorm2d, BatchNorm2d])
def test_batch_norm_2d_fails_in_train_mode_and_passes_in_eval(device, cls):
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), cls(4)).to(device)
    x = _randn((5, 3, 6, 6), 6, device)
    with pytest.raises(PropertyViolation, match="changes when"):
        check_batch_independent(net.train(), x)
    assert check_batch_independent(net.eval(), x).statistic <= 1.0


def test_batch_norm_batch_of_one_in_train_mode_is_a_violation(device):
    bn = nn.BatchNorm1d(4, device=device).train()
    x = _randn((3, 4), 7, device)
    # only single rows differ from the full batch: the module raises there
    with pytest.raises(
        PropertyViolation, match="raised ValueError when the batch is cut to its first 1 rows"
    ):
        check_batch_independent(_OnlySingles(bn), x)


class _OnlySingles(nn.Module):
    """Wraps a module so that batches of more than one row are the identity (isolates the batch-1 path)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x.clone() if x.shape[0] > 1 else self.inner(x)


def test_batch_axis_layer_norm_fails(device):
    x = _randn((5, 8), 8, device)
    with pytest.raises(PropertyViolation, match="output row"):
        check_batch_independent(BatchAxisLayerNorm(), x)


def test_batch_independence_restores_batch_norm_state(device):
    bn = BatchNorm1d(8, device=device)
    net = nn.Sequential(nn.Identity(), bn).train()
    net[0].eval()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with pytest.raises(PropertyViolation):
        check_batch_independent(net, _randn((6, 8), 9, device, offset=3.0))
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert net.training and bn.training and not net[0].training


def test_dropout_in_train_mode_fails_without_leaking_the_global_rng(device):
    # the autouse fixture fails this test if the check touched the global RNG
    net = nn.Sequential(nn.LayerNorm(8, device=device), nn.Dropout(0.5)).train()
    x = _randn((4, 8), 10, device)
    with pytest.raises(PropertyViolation):
        check_batch_independent(net, x)
    assert check_batch_independent(net.eval(), x).statistic <= 1.0


def test_drop_connect_is_batch_independent_in_eval_only(device):
    g = make_generator(0, device)
    net = nn.Sequential(
        DropConnectLinear(8, 6, generator=g, device=device), LayerNorm(6, device=device)
    )
    x = _randn((5, 8), 22, device)
    assert check_batch_independent(net.eval(), x).statistic <= 1.0
    state = g.get_state()
    with pytest.raises(PropertyViolation, match="train mode"):
        check_batch_independent(net.train(), x)
    assert torch.equal(g.get_state(), state)


@_FIXTURE_OK
@given(
    n=st.integers(2, 7),
    d=st.integers(1, 24),
    offset=st.floats(-1e3, 1e3),
    log_scale=st.floats(-3, 3),
    seed=st.integers(0, 2**32),
)
@example(n=2, d=1, offset=0.0, log_scale=0.0, seed=0)
def test_layer_norm_batch_independent_for_any_shape_and_offset(
    device, n, d, offset, log_scale, seed
):
    x = _randn((n, d), seed, device, offset=offset, scale=10.0**log_scale)
    for ln in _layer_norms(d, device):
        assert check_batch_independent(ln, x, seed=seed).statistic <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"x": [1.0, 2.0]}, TypeError, "x must be a torch.Tensor"),
        ({"x": torch.ones(4, 3, dtype=torch.long)}, TypeError, "floating-point"),
        ({"x": torch.ones(4)}, ValueError, "at least 2 dimensions"),
        ({"x": torch.ones(1, 4)}, ValueError, "at least 2 rows"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"batch_sizes": ()}, ValueError, "at least one batch size"),
        ({"batch_sizes": (2, 0)}, ValueError, r"batch_sizes\[1\] must be an int >= 1"),
        ({"batch_sizes": "3"}, TypeError, "batch_sizes must be a sequence"),
        ({"module": lambda x: x}, TypeError, "module must be Module"),
    ],
)
def test_batch_independent_validates_arguments(kwargs, exc, pattern):
    args = {"module": nn.LayerNorm(3), "x": torch.ones(4, 3)} | kwargs
    module, x = args.pop("module"), args.pop("x")
    with pytest.raises(exc, match=pattern):
        check_batch_independent(module, x, **args)


class _Sum(nn.Module):
    def forward(self, x):
        return x.sum()


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


def test_batch_independent_needs_a_batch_first_tensor_output():
    with pytest.raises(ValueError, match="keep the batch axis"):
        check_batch_independent(_Sum(), torch.ones(4, 3))
    with pytest.raises(TypeError, match=r"must return a torch\.Tensor, got tuple"):
        check_batch_independent(_Pair(), torch.ones(4, 3))


# --------------------------------------------------------------------------- normalized statistics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_norm_output_is_normalized(device, dtype):
    x = _randn((5, 8), 11, device, dtype, offset=2.0)
    modules = [*_layer_norms(8, device, dtype), nn.LayerNorm(8, elementwise_affine=False)]
    for ln in modules:
        result = check_normalized(ln.to(device), x)
        assert result.statistic <= 1.0
        assert result.details["kind"] == "layer"
        assert result.details["dims"] == (1,)
        assert result.details["eps"] == 1e-5


def test_target_variance_is_not_one_for_small_inputs(device):
    """var(y) = σ²/(σ² + ε): at σ² ≈ 1e-4 the output variance is ≈ 0.91, and that passes."""
    x = _randn((4, 16), 12, device, scale=1e-2)
    ln = nn.LayerNorm(16, device=device)
    assert check_normalized(ln, x).statistic <= 1.0
    assert ln(x).double().var(-1, correction=0).max() < 0.95
    with pytest.raises(PropertyViolation, match="matches a layer norm that ignores ε"):
        check_normalized(EpslessLayerNorm(), x, kind="layer")


def test_layer_norm_over_two_trailing_dims(device):
    x = _randn((3, 2, 4, 5), 13, device, offset=-5.0)
    for ln in _layer_norms((4, 5), device):
        result = check_normalized(ln, x)
        assert result.details["dims"] == (2, 3)
        assert result.details["n"] == 20
        assert result.statistic <= 1.0
    plain = nn.LayerNorm((4, 5), elementwise_affine=False, device=device)
    with pytest.raises(PropertyViolation):
        # the module normalizes (4, 5) slices, not the last dim alone
        check_normalized(plain, x, dims=-1)


def test_unbiased_variance_layer_norm_fails_with_small_dims(device):
    x = _randn((6, 8), 14, device)
    with pytest.raises(PropertyViolation, match="divides by the unbiased variance") as exc:
        check_normalized(UnbiasedLayerNorm(), x, kind="layer")
    _assert_message(exc, None)
    # measured: the score of the real bug agrees with the power the correct layer reports
    result = check_normalized(nn.LayerNorm(8, device=device), x)
    assert result.details["power"]["divides by the unbiased variance"] > 100.0


def test_normalizing_over_the_batch_axis_fails(device):
    x = _randn((6, 8), 15, device, offset=1.0)
    with pytest.raises(PropertyViolation, match="normalizes over the batch axis"):
        check_normalized(BatchAxisLayerNorm(), x, kind="layer")
    bn = nn.BatchNorm1d(8, device=device).train()
    with pytest.raises(PropertyViolation, match="normalizes over the batch axis"):
        check_normalized(bn, x, kind="layer")  # BatchNorm is not a LayerNorm ...
    assert check_normalized(bn, x).details["kind"] == "batch"  # ... and is a correct BatchNorm


@_FIXTURE_OK
@given(
    n=st.integers(1, 5),
    d=st.integers(2, 32),
    offset=st.floats(-1e3, 1e3),
    log_scale=st.floats(-2, 2),
    seed=st.integers(0, 2**32),
)
@example(n=1, d=2, offset=1e3, log_scale=-2.0, seed=0)
def test_layer_norm_normalized_for_any_shape_and_offset(device, n, d, offset, log_scale, seed):
    x = _randn((n, d), seed, device, offset=offset, scale=10.0**log_scale)
    for ln in _layer_norms(d, device):
        assert check_normalized(ln, x).statistic <= 1.0


@_FIXTURE_OK
@given(
    n=st.integers(2, 5),
    d=st.integers(4, 16),
    offset=st.floats(-300, 300),
    seed=st.integers(0, 2**32),
)
def test_unbiased_layer_norm_fails_for_any_small_shape(device, n, d, offset, seed):
    x = _randn((n, d), seed, device, offset=offset)
    with pytest.raises(PropertyViolation):
        check_normalized(UnbiasedLayerNorm(), x, kind="layer")


class LastDimOnlyLayerNorm(nn.LayerNorm):
    """Bug: claims normalized_shape (C, L) but normalizes over the last dim only."""

    def forward(self, x):
        return nn.functional.layer_norm(x, x.shape[-1:], None, None, self.eps)


class NegatedLayerNorm(nn.LayerNorm):
    """Bug: returns −LN(x) (same per-slice mean and variance as LN(x))."""

    def forward(self, x):
        return -super().forward(x)


class FlippedLayerNorm(nn.LayerNorm):
    """Bug: returns LN(x) with the features reversed (same per-slice moments)."""

    def forward(self, x):
        return super().forward(x).flip(-1)


class ZerosNorm(nn.Module):
    """Bug: returns zeros (mean 0, variance 0)."""

    eps = 1e-5

    def forward(self, x):
        return torch.zeros_like(x)


class HalfComputedLayerNorm(nn.Module):
    """A LayerNorm that computes in the input's half precision (not in float32)."""

    eps = 1e-5

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + self.eps)


@pytest.mark.parametrize(
    ("cls", "shape"),
    [
        (LastDimOnlyLayerNorm, (8, 6, 10)),
        (NegatedLayerNorm, (8, 64)),
        (FlippedLayerNorm, (8, 64)),
    ],
)
def test_layer_norms_with_the_right_moments_but_wrong_elements_fail(device, cls, shape):
    x = _randn(shape, 30, device, scale=3.0, offset=2.0 / 3.0)
    module = cls(shape[1:], device=device)
    # each passes the moment checks: only the element-wise comparison tells them apart
    with pytest.raises(PropertyViolation, match=r"output element \(\d+(, \d+)+\) is ") as exc:
        check_normalized(module, x)
    text = _assert_message(exc, None)
    assert "expected" in text and "(x − μ)/√(σ² + ε)" in text
    assert "element:" in text and "kappa:" in text


def _hard_rows(shape, seed, device, dtype, offset):
    """Rows at ``offset`` σ from 0, every third of them constant."""
    x = _randn(shape, seed, device, torch.float64, offset=offset)
    rows = x.view(shape[0], -1)
    rows[::3] = rows[::3, :1]
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("offset", [0.0, 3.0, 1e3, -1e3])
@pytest.mark.parametrize("shape", [(7, 64), (6, 3, 5)])
def test_layer_norms_match_the_oracle_at_large_offsets_and_constant_rows(
    device, dtype, offset, shape
):
    x = _hard_rows(shape, 31, device, dtype, offset)
    norm_shape = shape[1:] if len(shape) == 3 else shape[-1]
    for ln in _layer_norms(norm_shape, device, dtype):
        result = check_normalized(ln, x)
        # measured: at most 0.24 (bfloat16: the output's rounding, 2⁻⁸/0.016), 0.05
        # (float16) and 0.025 (float32, float64) over the strategies' kinds and shapes
        assert result.statistic <= 0.5, (type(ln).__name__, result.statistic)


@pytest.mark.parametrize(("dtype", "offset"), [(torch.bfloat16, 100.0), (torch.float16, 300.0)])
def test_zeros_do_not_pass_as_normalized_in_half_precision(device, dtype, offset):
    # half's atol·κ (≈ 1.4 at offset 100) would let zeros pass; the κ term is float32's
    x = _randn((8, 64), 32, device, dtype, offset=offset)
    with pytest.raises(PropertyViolation, match="check_normalized"):
        check_normalized(ZerosNorm(), x, kind="layer")
    for ln in _layer_norms(64, device, dtype):
        assert check_normalized(ln, x).statistic <= 0.5


def test_a_layer_norm_computing_in_half_precision_fails_at_large_offsets(device):
    near = _randn((8, 64), 33, device, torch.bfloat16, offset=1.0)
    assert check_normalized(HalfComputedLayerNorm(), near, kind="layer").statistic <= 1.0
    far = _randn((8, 64), 33, device, torch.bfloat16, offset=100.0)
    with pytest.raises(PropertyViolation):
        check_normalized(HalfComputedLayerNorm(), far, kind="layer")


def test_an_input_too_ill_conditioned_to_tell_zeros_apart_is_refused(device):
    # float32 at an offset of 1e6 σ: atol·κ ≈ 10 exceeds every normalized output
    x = _randn((4, 64), 34, device, offset=1e6)
    for module in (ZerosNorm(), nn.LayerNorm(64, device=device)):
        with pytest.raises(
            ValueError, match=r"float32 input of shape \(4, 64\): .*κ = .*better-conditioned"
        ):
            check_normalized(module, x, kind="layer")
    # one well-conditioned row is enough to tell zeros apart: checked, not refused
    x[0] = _randn((64,), 35, device)
    with pytest.raises(PropertyViolation, match=r"\(0, \d+\)"):
        check_normalized(ZerosNorm(), x, kind="layer")
    assert check_normalized(nn.LayerNorm(64, device=device), x).statistic <= 1.0
    # constant rows normalize to zeros: nothing to tell apart, not refused
    constant = torch.full((3, 16), 1e6, device=device)
    assert check_normalized(ZerosNorm(), constant, kind="layer").statistic <= 1.0


def test_normalized_restores_state_and_mode(device):
    bn = nn.BatchNorm1d(8, device=device).train()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = _randn((6, 8), 16, device, offset=2.0)
    assert check_normalized(bn, x).statistic <= 1.0  # the train forward moved running stats ...
    with pytest.raises(PropertyViolation):
        check_normalized(bn, x, kind="layer")
    assert bn.training
    assert all(torch.equal(v, before[k]) for k, v in bn.state_dict().items())  # ... restored


def test_normalized_validates_arguments():
    x = torch.ones(4, 3)
    ln = nn.LayerNorm(3)
    with pytest.raises(ValueError, match="Identity has no numeric attribute `eps`: pass eps="):
        check_normalized(nn.Identity(), x)  # checked as a LayerNorm: its ε is needed
    with pytest.raises(ValueError, match="kind must be one of 'layer', 'rms'"):
        check_normalized(ln, x, kind="Layer")
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        check_normalized(ln, x, eps=-1.0)
    with pytest.raises(ValueError, match="dims must name non-batch dims"):
        check_normalized(ln, x, dims=0)
    with pytest.raises(ValueError, match="dims must name non-batch dims"):
        check_normalized(ln, x, dims=(2,))
    with pytest.raises(ValueError, match="distinct"):
        check_normalized(ln, x, dims=(1, -1))
    with pytest.raises(TypeError, match="dims must be an int"):
        check_normalized(ln, x, dims="1")
    with pytest.raises(TypeError, match=r"dims\[0\] must be an int"):
        check_normalized(ln, x, dims=(1.0,))
    with pytest.raises(ValueError, match="dims applies to kind 'layer' or 'rms' only"):
        check_normalized(nn.BatchNorm1d(3), x, dims=1)
    with pytest.raises(ValueError, match="groups applies to kind 'group' only"):
        check_normalized(ln, x, groups=1)
    with pytest.raises(ValueError, match="groups=2 must divide the 3 channels"):
        check_normalized(nn.GroupNorm(1, 3), x, groups=2)
    with pytest.raises(ValueError, match="has no attribute `num_groups`: pass groups="):
        check_normalized(nn.Identity(), x, kind="group", eps=0.0)
    with pytest.raises(ValueError, match=r"groups must be an int >= 1"):
        check_normalized(nn.Identity(), x, kind="group", groups=0, eps=0.0)
    with pytest.raises(ValueError, match=r"kind 'instance' needs x of shape \(N, C, \*\)"):
        check_normalized(nn.InstanceNorm1d(3), x)
    with pytest.raises(ValueError, match=r"module.weight has shape \(3,\), but a 'layer' norm"):
        check_normalized(ln, torch.ones(4, 2, 3), dims=(1, 2))
    with pytest.raises(ValueError, match=r"also has parameters \['scale'\]"):
        check_normalized(_ScaledRMS(3), x, kind="rms", eps=1e-6)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        check_normalized(ln, x, seed=-1)
    with pytest.raises(ValueError, match="output of the input's shape"):
        check_normalized(_Sum(), x, kind="layer", eps=0.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        check_normalized(nn.LayerNorm(3), torch.ones(3))


class _ScaledRMS(nn.Module):
    """A correct RMSNorm whose gain is called ``scale`` (the check reads ``weight``)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6) * self.scale


# --------------------------------------------------------------------------- every family, own affine
def _trained(module, seed=0):
    """The module with seeded, non-constant affine parameters and running statistics."""
    perturb_constant_parameters_(module, seed=seed)
    return module


_FAMILIES = {
    "nn.LayerNorm(C)": (lambda d, t: nn.LayerNorm(10, device=d, dtype=t), (4, 6, 10)),
    "nn.LayerNorm(T, C)": (lambda d, t: nn.LayerNorm((6, 10), device=d, dtype=t), (4, 6, 10)),
    "LayerNorm(C)": (lambda d, t: LayerNorm(10, device=d, dtype=t), (4, 6, 10)),
    "nn.RMSNorm": (lambda d, t: nn.RMSNorm(10, device=d, dtype=t), (4, 6, 10)),
    "nn.RMSNorm(eps)": (lambda d, t: nn.RMSNorm((6, 10), eps=1e-5, device=d, dtype=t), (4, 6, 10)),
    "nn.GroupNorm": (lambda d, t: nn.GroupNorm(3, 6, device=d, dtype=t), (4, 6, 5, 5)),
    "nn.GroupNorm-3d": (lambda d, t: nn.GroupNorm(2, 6, device=d, dtype=t), (4, 6, 7)),
    "nn.InstanceNorm1d": (lambda d, t: nn.InstanceNorm1d(6, device=d, dtype=t), (4, 6, 9)),
    "nn.InstanceNorm2d-affine": (
        lambda d, t: nn.InstanceNorm2d(6, affine=True, device=d, dtype=t),
        (4, 6, 4, 5),
    ),
    "nn.BatchNorm1d": (lambda d, t: nn.BatchNorm1d(6, device=d, dtype=t), (8, 6)),
    "nn.BatchNorm1d-3d": (lambda d, t: nn.BatchNorm1d(6, device=d, dtype=t), (4, 6, 5)),
    "nn.BatchNorm2d": (lambda d, t: nn.BatchNorm2d(6, device=d, dtype=t), (4, 6, 3, 3)),
    "nn.BatchNorm3d": (lambda d, t: nn.BatchNorm3d(6, device=d, dtype=t), (2, 6, 2, 3, 2)),
    "BatchNorm2d": (lambda d, t: BatchNorm2d(6, device=d, dtype=t), (4, 6, 3, 3)),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_every_norm_family_with_trained_parameters_matches_its_oracle(device, family, dtype, mode):
    factory, shape = _FAMILIES[family]
    module = _trained(factory(device, dtype), seed=1).train(mode == "train")
    for offset in (0.0, 30.0):
        x = _randn(shape, 40, device, dtype, offset=offset, scale=2.0)
        result = check_normalized(module, x)
        # measured (tests/quality/norm_margins.py): at most 0.38 (bfloat16), 0.054 (float16),
        # 0.016 (float32), 0.0012 (float64)
        assert result.statistic <= 0.5, (family, offset, result.statistic)
        uses_running = mode == "eval" and "BatchNorm" in family
        assert result.details["statistics"] == ("running" if uses_running else "batch")


def test_kinds_and_their_arguments_are_read_from_the_class(device):
    x = _randn((4, 6, 10), 41, device)
    found = {
        "layer": check_normalized(nn.LayerNorm((6, 10), device=device), x).details,
        "rms": check_normalized(nn.RMSNorm(10, device=device), x).details,
        "group": check_normalized(nn.GroupNorm(2, 6, device=device), x).details,
        "instance": check_normalized(nn.InstanceNorm1d(6, device=device), x).details,
        "batch": check_normalized(BatchNorm1d(6, device=device), x).details,
    }
    assert {k: d["kind"] for k, d in found.items()} == {k: k for k in found}
    assert found["layer"]["dims"] == (1, 2) and found["layer"]["n"] == 60
    assert found["rms"]["dims"] == (2,) and found["rms"]["eps"] == torch.finfo(torch.float32).eps
    assert found["group"]["groups"] == 2 and found["group"]["n"] == 30
    assert found["instance"]["n"] == 10 and found["batch"]["n"] == 40
    assert found["instance"]["affine"] == {"weight": None, "bias": None}
    # torch's RMSNorm(eps=None) uses the epsilon of the dtype it computes in (float32 for halves)
    half = check_normalized(nn.RMSNorm(10, device=device, dtype=torch.bfloat16), x.bfloat16())
    assert half.details["eps"] == torch.finfo(torch.float32).eps


class IgnoresAffineLayerNorm(nn.LayerNorm):
    """Bug: never applies its weight and bias (invisible at ones and zeros)."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, None, None, self.eps)


class AllDimsLayerNorm(nn.LayerNorm):
    """Bug: LayerNorm(C) on (N, T, C) normalizes over (T, C), every non-batch dim."""

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=tuple(range(1, x.dim())), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class CentringRMSNorm(nn.RMSNorm):
    """Bug: an "RMSNorm" that subtracts the mean (a LayerNorm without bias)."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, None, self.eps or 1e-6)


class InterleavedGroupNorm(nn.GroupNorm):
    """Bug: group g holds channels g, g + G, g + 2G, ... instead of a contiguous block."""

    def forward(self, x):
        n, c = x.shape[:2]
        g = self.num_groups
        shuffled = x.reshape(n, c // g, g, *x.shape[2:]).transpose(1, 2).reshape(x.shape)
        y = F.group_norm(shuffled, g, None, None, self.eps)
        y = y.reshape(n, g, c // g, *x.shape[2:]).transpose(1, 2).reshape(x.shape)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class PerPixelBatchNorm2d(nn.BatchNorm2d):
    """Bug: training statistics per (channel, pixel) over the batch only."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=0, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class UnbiasedTrainBatchNorm(nn.BatchNorm1d):
    """Bug: the TRAINING output divides by the unbiased batch variance."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=0, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class BatchStatsInstanceNorm(nn.InstanceNorm1d):
    """Bug: normalizes each channel over the batch too (BatchNorm's statistics)."""

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


@pytest.mark.parametrize(
    ("factory", "shape", "diagnosis"),
    [
        (lambda d: IgnoresAffineLayerNorm(10, device=d), (4, 6, 10), "ignores its weight and bias"),
        (lambda d: AllDimsLayerNorm(10, device=d), (4, 6, 10), "every non-batch dim"),
        (lambda d: CentringRMSNorm(10, device=d), (4, 6, 10), r"subtracts the mean \(LayerNorm\)"),
        (
            lambda d: InterleavedGroupNorm(2, 6, device=d),
            (4, 6, 5),
            "interleaves its channel groups",
        ),
        (lambda d: PerPixelBatchNorm2d(3, device=d), (4, 3, 2, 2), r"per \(channel, position\)"),
        (lambda d: UnbiasedTrainBatchNorm(6, device=d), (8, 6), "divides by the unbiased variance"),
        (
            lambda d: BatchStatsInstanceNorm(6, affine=True, device=d),
            (4, 6, 5),
            r"uses batch statistics \(BatchNorm\)",
        ),
    ],
    ids=[
        "ln-affine",
        "ln-all-dims",
        "rms-centring",
        "gn-interleaved",
        "bn-per-pixel",
        "bn-unbiased",
        "in-batch-stats",
    ],
)
def test_each_family_bug_fails_and_is_named(device, factory, shape, diagnosis):
    module = _trained(factory(device), seed=2)
    x = _randn(shape, 42, device, scale=1.5, offset=0.5)
    with pytest.raises(PropertyViolation, match="matches a .* norm that .*" + diagnosis) as exc:
        check_normalized(module, x)
    text = _assert_message(exc, None)
    assert "power:" in text and "kappa:" in text


def test_an_ignored_affine_is_invisible_at_ones_and_zeros_only(device):
    x = _randn((4, 6, 10), 43, device)
    fresh = IgnoresAffineLayerNorm(10, device=device)
    result = check_normalized(fresh, x)  # weight 1, bias 0: the bug cannot show
    assert result.details["power"]["ignores its weight and bias"] == 0.0
    with pytest.raises(PropertyViolation, match="ignores its weight and bias"):
        check_normalized(_trained(fresh), x)


def test_eval_batch_norm_is_compared_with_its_running_statistics(device):
    bn = _trained(nn.BatchNorm2d(3, device=device), seed=4).eval()
    x = _randn((4, 3, 2, 2), 44, device, offset=1.0)
    result = check_normalized(bn, x)
    assert result.details["statistics"] == "running"
    assert result.details["power"]["normalizes with the batch statistics in eval mode"] > 10
    with pytest.raises(PropertyViolation, match="batch statistics in eval mode"):
        check_normalized(_EvalBatchStats(3, device=device).eval(), x)


class _EvalBatchStats(nn.BatchNorm2d):
    """Bug: eval normalizes with the batch's statistics (running ones perturbed away from 0/1)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _trained(self, seed=4)

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class DeclaredRMS(nn.Module):
    """A user's RMSNorm (no torch class to recognize): correct over the last dim."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6) * self.weight


class DeclaredGroupNorm(nn.Module):
    """A user's GroupNorm without ``num_groups``: correct with 2 groups, bias only."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, 2, None, self.bias, 1e-5)


def test_a_users_own_class_is_checked_by_declaration(device):
    x = _randn((4, 6, 8), 45, device)
    rms = _trained(DeclaredRMS(8).to(device))
    assert check_normalized(rms, x, kind="rms", eps=1e-6).statistic <= 1.0
    with pytest.raises(PropertyViolation, match=r"does not subtract the mean \(RMSNorm\)"):
        check_normalized(rms, x + 3.0, eps=1e-6)  # undeclared: checked as a LayerNorm
    group = _trained(DeclaredGroupNorm(6).to(device))
    result = check_normalized(group, x, kind="group", groups=2, eps=1e-5)
    assert result.statistic <= 1.0 and result.details["affine"]["weight"] is None
    with pytest.raises(PropertyViolation, match="normalizes all channels as one group"):
        check_normalized(group, x, kind="group", groups=3, eps=1e-5)


# --------------------------------------------------------------------------- shift invariance
def test_layer_norm_is_shift_invariant_and_odd(device):
    x = _randn((5, 12), 17, device, offset=3.0)
    for ln in [*_layer_norms(12, device), nn.LayerNorm(12, elementwise_affine=False)]:
        result = check_shift_invariant(ln.to(device), x, seed=4)
        properties = result.details["properties"]
        assert set(properties) == {"shift invariance f(x + c) = f(x)", "negation f(-x) = -f(x)"}
        assert all(v <= 1.0 for v in properties.values())
        assert result.details["max_abs_c"] > 0


def test_negation_is_checked_only_for_bias_free_modules(device):
    ln = nn.LayerNorm(6, device=device)
    with torch.no_grad():
        ln.bias.fill_(0.5)
    x = _randn((4, 6), 18, device)
    result = check_shift_invariant(ln, x)
    assert result.details["properties"]["negation f(-x) = -f(x)"] == "not checked"
    with pytest.raises(PropertyViolation, match=r"negation f\(-x\) = -f\(x\) fails"):
        check_shift_invariant(ln, x, negation=True)


def test_uncentred_norm_is_not_shift_invariant(device):
    x = _randn((4, 8), 19, device)
    with pytest.raises(
        PropertyViolation, match=r"shift invariance f\(x \+ c\) = f\(x\) fails"
    ) as exc:
        check_shift_invariant(UncenteredNorm(), x, seed=7)
    _assert_message(exc, 7)


def test_batch_norm_in_eval_is_not_shift_invariant(device):
    with pytest.raises(PropertyViolation, match="shift invariance"):
        check_shift_invariant(nn.BatchNorm1d(8, device=device).eval(), _randn((4, 8), 20, device))


@_FIXTURE_OK
@given(
    shape=st.sampled_from([(3, 8), (2, 1), (4, 3, 5), (2, 33)]),
    offset=st.floats(-1e3, 1e3),
    log_scale=st.floats(-2, 2),
    seed=st.integers(0, 2**32),
)
def test_layer_norm_shift_invariant_for_any_offset(device, shape, offset, log_scale, seed):
    x = _randn(shape, seed, device, offset=offset, scale=10.0**log_scale)
    for ln in _layer_norms(shape[-1], device):
        assert check_shift_invariant(ln, x, seed=seed).statistic <= 1.0


@pytest.mark.parametrize(
    "factory",
    [
        lambda d, t: nn.InstanceNorm1d(6, affine=True, device=d, dtype=t),
        lambda d, t: nn.GroupNorm(3, 6, device=d, dtype=t),
    ],
    ids=["InstanceNorm1d", "GroupNorm"],
)
def test_channel_norms_in_bfloat16_are_shift_invariant_with_their_slices_kappa(device, factory):
    """κ per normalized slice (one channel of one example), not per row: with the row's κ,
    torch's bfloat16 InstanceNorm1d failed at 3 of 20 spec seeds."""
    for seed in range(20):
        module = _trained(factory(device, torch.bfloat16), seed=seed)
        x = _randn((8, 6, 10), 100 + seed, device, torch.bfloat16)
        assert check_shift_invariant(module, x, seed=seed).statistic <= 1.0
        assert check_batch_independent(module, x, seed=seed).statistic <= 1.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_layer_norm_passes_with_its_tolerance(device, dtype):
    x = _randn((4, 32), 21, device, dtype, offset=1.0)
    for ln in _layer_norms(32, device, dtype):
        assert check_batch_independent(ln, x).statistic <= 1.0
        assert check_normalized(ln, x).statistic <= 1.0
        assert check_shift_invariant(ln, x).statistic <= 1.0
    assert tolerance(dtype).rtol > tolerance(torch.float32).rtol


def test_shift_invariant_validates_arguments():
    with pytest.raises(TypeError, match="negation must be a bool or None"):
        check_shift_invariant(nn.LayerNorm(3), torch.ones(2, 3), negation=1)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        check_shift_invariant(nn.LayerNorm(3), torch.ones(2, 3), seed=-2)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        check_shift_invariant(nn.LayerNorm(3), math.pi)
