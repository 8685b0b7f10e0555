"""LayerNorm / BatchNorm1d / BatchNorm2d against torch.nn and float64 oracles."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import netprops
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm, batch_norm, layer_norm
from netprops.tolerances import tolerance

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [torch.float32, torch.float64]


def _randn(seed: int, shape, device: str, dtype=torch.float64) -> torch.Tensor:
    g = netprops.make_generator(seed, device)
    return torch.randn(shape, generator=g, device=device, dtype=dtype)


def _input(seed: int, shape, device: str, dtype=torch.float64, offset=3.0, scale=2.0):
    """Gaussian input with a non-zero mean (offset) so centring is exercised."""
    return _randn(seed, shape, device, dtype) * scale + offset


def _randomize_affine(module: nn.Module, seed: int) -> None:
    """Give weight/bias random values from a generator (init is ones/zeros)."""
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.copy_(_randn(seed + i, p.shape, str(p.device), p.dtype) * 0.5 + 1.0)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, kappa: float = 1.0) -> None:
    """``|Δ| ≤ atol·κ + rtol·|expected|`` with the tolerance of ``actual``'s dtype (docs/methods.md §Tolerances for deterministic comparisons)."""
    tol = tolerance(actual.dtype)
    torch.testing.assert_close(
        actual.to(expected.dtype), expected, rtol=tol.rtol, atol=tol.atol * kappa
    )


def _run(module: nn.Module, x: torch.Tensor, dy: torch.Tensor):
    """Output and gradients (input, then each parameter) of one forward/backward."""
    leaf = x.detach().clone().requires_grad_(True)
    for p in module.parameters():
        p.grad = None
    y = module(leaf)
    y.backward(dy)
    return y.detach(), leaf.grad, [p.grad for p in module.parameters()]


def _run_both(ours: nn.Module, ref: nn.Module, x: torch.Tensor, dy: torch.Tensor, dtype):
    """Ours in ``dtype``, the float64 ``ref`` on the same (rounded) values, and torch's error.

    Returns ``(ours_results, oracle_results, floors)`` where ``floors`` holds, per result
    tensor, the largest deviation of torch's own module run in ``dtype`` from the oracle:
    ill-conditioned batches (a channel with a tiny spread) are allowed the error torch
    itself makes there, on top of the dtype tolerance.
    """
    x, dy = x.to(dtype), dy.to(dtype)
    same_dtype = copy.deepcopy(ref).to(dtype)  # before ref's step: same running stats
    oracle = _run(ref, x.double(), dy.double())
    theirs = _run(same_dtype, x, dy)
    floors = [
        (t.double() - o).abs().max().item()
        for t, o in zip(_flatten(theirs), _flatten(oracle), strict=True)
    ]
    return _run(ours, x, dy), oracle, floors


def _flatten(results) -> list[torch.Tensor]:
    y, gx, gp = results
    return [y, gx, *gp]


def _compare(ours, ref, kappa: float, floors=None) -> None:
    ours, ref = _flatten(ours), _flatten(ref)
    assert len(ours) == len(ref)
    floors = floors or [0.0] * len(ref)
    for i, (a, b, floor) in enumerate(zip(ours, ref, floors, strict=True)):
        # parameter grads sum over the batch: scale the absolute tolerance up
        k = kappa if i < 2 else kappa * 10
        tol = tolerance(a.dtype)
        torch.testing.assert_close(
            a.double(), b.double(), rtol=tol.rtol, atol=tol.atol * k + 2 * floor
        )


# --------------------------------------------------------------------------- LayerNorm

LN_CASES = [
    ((4, 6), (6,)),
    ((1, 5), (5,)),  # batch size 1
    ((7,), (7,)),  # no batch dims
    ((2, 3, 4), (4,)),
    ((3, 4, 5), (4, 5)),
    ((2, 8, 16), (8, 16)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "normalized_shape"), LN_CASES)
@pytest.mark.parametrize(
    ("affine", "bias"),
    [(True, True), (True, False), (False, True)],
    ids=["affine", "nobias", "plain"],
)
def test_layer_norm_matches_torch_float64_oracle(
    device, dtype, shape, normalized_shape, affine, bias
):
    ours = LayerNorm(
        normalized_shape, elementwise_affine=affine, bias=bias, device=device, dtype=dtype
    )
    _randomize_affine(ours, seed=11)
    ref = nn.LayerNorm(
        normalized_shape, elementwise_affine=affine, bias=bias, device=device, dtype=torch.float64
    )
    ref.load_state_dict(ours.state_dict())
    x = _input(1, shape, device)
    dy = _randn(2, shape, device)
    kappa = (3.0 + 2.0) / 2.0
    ours_out, ref_out, floors = _run_both(ours, ref, x, dy, dtype)
    _compare(ours_out, ref_out, kappa, floors)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_equals_torch_same_dtype(device, dtype):
    """Against torch's own kernel in the same dtype (not only the float64 oracle)."""
    ours = LayerNorm(32, device=device, dtype=dtype)
    _randomize_affine(ours, seed=3)
    ref = nn.LayerNorm(32, device=device, dtype=dtype)
    ref.load_state_dict(ours.state_dict())
    x = _input(4, (16, 32), device, dtype)
    dy = _randn(5, (16, 32), device, dtype)
    _compare(_run(ours, x, dy), _run(ref, x, dy), kappa=2.5)


@fixture_ok
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 6),
    n=st.integers(1, 24),
    offset=st.floats(-50, 50),
)
def test_layer_norm_property_matches_torch(device, seed, rows, n, offset):
    ours = LayerNorm(n, device=device, dtype=torch.float64)
    _randomize_affine(ours, seed)
    ref = nn.LayerNorm(n, device=device, dtype=torch.float64)
    ref.load_state_dict(ours.state_dict())
    x = _input(seed, (rows, n), device, offset=offset)
    dy = _randn(seed + 1, (rows, n), device)
    kappa = (abs(offset) + 2.0) / 2.0
    _compare(_run(ours, x, dy), _run(ref, x, dy), kappa)


def test_layer_norm_same_in_train_and_eval(device):
    ln = LayerNorm(10, device=device, dtype=torch.float64)
    _randomize_affine(ln, 0)
    x = _input(1, (3, 10), device)
    y_train = ln.train()(x)
    y_eval = ln.eval()(x)
    assert torch.equal(y_train, y_eval)


def test_layer_norm_non_contiguous_input(device):
    ln = LayerNorm(6, device=device, dtype=torch.float64)
    _randomize_affine(ln, 0)
    ref = nn.LayerNorm(6, device=device, dtype=torch.float64)
    ref.load_state_dict(ln.state_dict())
    x = _input(1, (6, 4), device).t()  # (4, 6), non-contiguous
    assert not x.is_contiguous()
    dy = _randn(2, (4, 6), device)
    _compare(_run(ln, x, dy), _run(ref, x, dy), kappa=2.5)


def test_layer_norm_half_precision_against_float64(device):
    ln = LayerNorm(16, device=device, dtype=torch.bfloat16)
    x = _input(1, (8, 16), device)
    ref = nn.functional.layer_norm(x, (16,))
    y = ln(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    _assert_close(y, ref, kappa=2.5)


def test_layer_norm_functional_matches_module(device):
    x = _input(1, (3, 4, 5), device)
    w = _randn(2, (4, 5), device)
    b = _randn(3, (4, 5), device)
    ref = nn.functional.layer_norm(x, (4, 5), w, b, 1e-3)
    _assert_close(layer_norm(x, (4, 5), w, b, eps=1e-3), ref, kappa=2.5)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_gradcheck(device, affine):
    x = _input(1, (3, 5), device).requires_grad_(True)
    w = (_randn(2, (5,), device) + 1).requires_grad_(affine)
    b = _randn(3, (5,), device).requires_grad_(affine)
    args = (x, w, b) if affine else (x,)

    def fn(x, w=None, b=None):
        return layer_norm(x, (5,), w, b)

    assert torch.autograd.gradcheck(fn, args)
    # create_graph=True takes the composite path: second derivatives are exact too
    # (gradgradcheck draws its random grad_outputs from the global RNG)
    with netprops.seeded_global_rng(0):
        assert torch.autograd.gradgradcheck(fn, args)


def test_layer_norm_state_dict_round_trip_with_torch(device):
    ref = nn.LayerNorm((3, 4), device=device)
    _randomize_affine(ref, 5)
    ours = LayerNorm((3, 4), device=device)
    ours.load_state_dict(ref.state_dict())
    assert ours.state_dict().keys() == ref.state_dict().keys()
    back = nn.LayerNorm((3, 4), device=device)
    back.load_state_dict(ours.state_dict())
    assert torch.equal(back.weight, ref.weight)
    assert torch.equal(back.bias, ref.bias)


def test_layer_norm_init_and_repr(device):
    ln = LayerNorm((2, 3), eps=1e-3, device=device)
    assert torch.equal(ln.weight, torch.ones(2, 3, device=device))
    assert torch.equal(ln.bias, torch.zeros(2, 3, device=device))
    assert "(2, 3)" in repr(ln)
    assert "eps=0.001" in repr(ln)
    assert LayerNorm(4, bias=False).bias is None
    plain = LayerNorm(4, elementwise_affine=False)
    assert plain.weight is None
    assert list(plain.parameters()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"normalized_shape": 0}, ValueError, "normalized_shape"),
        ({"normalized_shape": (3, 0)}, ValueError, r"normalized_shape\[1\]"),
        ({"normalized_shape": ()}, ValueError, "normalized_shape"),
        ({"normalized_shape": 2.5}, TypeError, "normalized_shape"),
        ({"normalized_shape": True}, TypeError, "normalized_shape"),
        ({"normalized_shape": 4, "eps": 0.0}, ValueError, "eps"),
        ({"normalized_shape": 4, "eps": -1e-5}, ValueError, "eps"),
        ({"normalized_shape": 4, "elementwise_affine": "yes"}, TypeError, "elementwise_affine"),
        ({"normalized_shape": 4, "bias": 1}, TypeError, "bias"),
    ],
)
def test_layer_norm_constructor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        LayerNorm(**kwargs)


def test_layer_norm_input_validation(device):
    ln = LayerNorm((4, 5), device=device)
    with pytest.raises(ValueError, match=r"\[4, 5\].*\[2, 5, 4\]"):
        ln(torch.zeros(2, 5, 4, device=device))
    with pytest.raises(ValueError, match="normalized_shape"):
        ln(torch.zeros(5, device=device))
    with pytest.raises(TypeError, match="floating-point"):
        ln(torch.zeros(2, 4, 5, dtype=torch.long, device=device))
    with pytest.raises(TypeError, match="floating-point"):
        layer_norm(torch.zeros(2, 3, dtype=torch.int32, device=device), (3,))


# --------------------------------------------------------------------------- BatchNorm

BN_CASES = [
    (BatchNorm1d, nn.BatchNorm1d, (8, 5)),
    (BatchNorm1d, nn.BatchNorm1d, (2, 5)),  # smallest batch allowed in training
    (BatchNorm1d, nn.BatchNorm1d, (4, 5, 3)),
    (BatchNorm1d, nn.BatchNorm1d, (1, 5, 3)),  # N=1 but 3 values per channel
    (BatchNorm2d, nn.BatchNorm2d, (4, 5, 3, 2)),
    (BatchNorm2d, nn.BatchNorm2d, (2, 5, 4, 4)),
]
BN_IDS = ["1d-8x5", "1d-2x5", "1d-4x5x3", "1d-1x5x3", "2d-4x5x3x2", "2d-2x5x4x4"]


def _channel_offsets(shape, device) -> torch.Tensor:
    """Per-channel offsets (mean ≠ 0, different for each channel)."""
    view = [1] * len(shape)
    view[1] = shape[1]
    return torch.linspace(-4.0, 6.0, shape[1], device=device, dtype=torch.float64).view(view)


def _bn_pair(ours_cls, ref_cls, device, dtype, **kwargs):
    ours = ours_cls(5, device=device, dtype=dtype, **kwargs)
    _randomize_affine(ours, seed=21)
    ref = ref_cls(5, device=device, dtype=torch.float64, **kwargs)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


# every shape with the default momentum; other momenta on a 1d and a 2d shape
BN_MOMENTUM_CASES = [
    pytest.param(0.1, *case, id=f"m0.1-{name}") for case, name in zip(BN_CASES, BN_IDS, strict=True)
] + [
    pytest.param(m, *BN_CASES[i], id=f"{label}-{BN_IDS[i]}")
    for m, label in [(0.35, "m0.35"), (None, "cumulative")]
    for i in (0, 4)
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("momentum", "ours_cls", "ref_cls", "shape"), BN_MOMENTUM_CASES)
def test_batch_norm_training_steps_match_torch(device, dtype, momentum, ours_cls, ref_cls, shape):
    ours, ref = _bn_pair(ours_cls, ref_cls, device, dtype, momentum=momentum)
    offsets = _channel_offsets(shape, device)
    kappa = (6.0 + 2.0) / 2.0
    for step in range(4):
        x = _input(100 + step, shape, device, offset=0.0) + offsets
        dy = _randn(200 + step, shape, device)
        ours_out, ref_out, floors = _run_both(ours, ref, x, dy, dtype)
        _compare(ours_out, ref_out, kappa, floors)
    _assert_close(ours.running_mean, ref.running_mean, kappa)
    _assert_close(ours.running_var, ref.running_var, kappa)
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 4
    assert ours.num_batches_tracked.dtype == torch.long
    # eval: running statistics, same output and gradients as torch's eval
    ours.eval()
    ref.eval()
    x = _input(300, shape, device, offset=0.0) + offsets
    dy = _randn(301, shape, device)
    ours_out, ref_out, floors = _run_both(ours, ref, x, dy, dtype)
    _compare(ours_out, ref_out, kappa, floors)


def test_batch_norm_running_update_formula(device):
    """One step from the documented formula, independent of torch's module."""
    bn = BatchNorm1d(3, momentum=0.25, device=device, dtype=torch.float64)
    x = _input(7, (6, 3), device)
    bn(x)
    mean = x.mean(0)
    unbiased = x.var(0, correction=1)
    torch.testing.assert_close(bn.running_mean, 0.75 * 0.0 + 0.25 * mean)
    torch.testing.assert_close(bn.running_var, 0.75 * 1.0 + 0.25 * unbiased)


def test_batch_norm_cumulative_average(device):
    """momentum=None: running stats are the plain average of the batch statistics."""
    bn = BatchNorm2d(3, momentum=None, device=device, dtype=torch.float64)
    means, variances = [], []
    for step in range(5):
        x = _input(step, (4, 3, 2, 2), device)
        bn(x)
        means.append(x.mean((0, 2, 3)))
        variances.append(x.var((0, 2, 3), correction=1))
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack(variances).mean(0))


def test_batch_norm_training_normalizes_with_biased_variance(device):
    bn = BatchNorm2d(4, affine=False, device=device, dtype=torch.float64)
    x = _input(3, (5, 4, 3, 3), device) + _channel_offsets((5, 4, 3, 3), device)[:, :4]
    y = bn(x)
    var = x.var((0, 2, 3), correction=0, keepdim=True)
    expected = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(var + 1e-5)
    torch.testing.assert_close(y, expected)


def test_batch_norm_eval_is_batch_independent(device):
    bn = BatchNorm1d(5, device=device, dtype=torch.float64)
    _randomize_affine(bn, 1)
    bn(_input(1, (8, 5), device))
    bn.eval()
    x = _input(2, (6, 5), device)
    full = bn(x)
    torch.testing.assert_close(bn(x[2:3]), full[2:3])
    shape = (1, 5)
    expected = (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + 1e-5)
    torch.testing.assert_close(full, expected * bn.weight.view(shape) + bn.bias.view(shape))


@pytest.mark.parametrize(("ours_cls", "ref_cls", "shape"), BN_CASES[::2], ids=BN_IDS[::2])
def test_batch_norm_without_running_stats(device, ours_cls, ref_cls, shape):
    ours, ref = _bn_pair(ours_cls, ref_cls, device, torch.float64, track_running_stats=False)
    assert ours.running_mean is None
    assert ours.num_batches_tracked is None
    assert ours.state_dict().keys() == ref.state_dict().keys()
    x = _input(1, shape, device) + _channel_offsets(shape, device)
    dy = _randn(2, shape, device)
    train_out = _run(ours, x, dy)
    ours.eval()
    ref.eval()
    eval_out = _run(ours, x, dy)
    _compare(eval_out, _run(ref, x, dy), kappa=4.0)
    # batch statistics in eval too: identical to training mode
    _compare(eval_out, train_out, kappa=1.0)


@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d])
def test_batch_norm_affine_false(device, cls):
    shape = (4, 5) if cls is BatchNorm1d else (4, 5, 2, 3)
    ref_cls = nn.BatchNorm1d if cls is BatchNorm1d else nn.BatchNorm2d
    ours, ref = _bn_pair(cls, ref_cls, device, torch.float64, affine=False)
    assert list(ours.parameters()) == []
    x = _input(1, shape, device)
    dy = _randn(2, shape, device)
    _compare(_run(ours, x, dy), _run(ref, x, dy), kappa=2.5)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_batch_norm_scalar_loss_backward(device):
    """An expanded (stride-0) upstream gradient, as from ``y.sum().backward()``."""
    ours, ref = _bn_pair(BatchNorm2d, nn.BatchNorm2d, device, torch.float64)
    x = _input(1, (3, 5, 2, 2), device)
    grads = []
    for module in (ours, ref):
        leaf = x.clone().requires_grad_(True)
        (module(leaf) ** 2).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    ("cls", "shape"),
    [(BatchNorm1d, (1, 5)), (BatchNorm1d, (1, 5, 1)), (BatchNorm2d, (1, 5, 1, 1))],
)
def test_batch_norm_one_value_per_channel_raises_like_torch(device, cls, shape):
    bn = cls(5, device=device)
    x = torch.zeros(shape, device=device)
    message = "Expected more than 1 value per channel when training, got input size"
    with pytest.raises(ValueError, match=message) as ours:
        bn(x)
    ref = (nn.BatchNorm1d if cls is BatchNorm1d else nn.BatchNorm2d)(5, device=device)
    with pytest.raises(ValueError, match=message) as theirs:
        ref(x)
    assert str(ours.value) == str(theirs.value)
    # eval mode normalizes one sample with the running statistics
    bn.eval()
    assert bn(x).shape == shape


def test_batch_norm_state_dict_compatible_with_torch(device):
    ref = nn.BatchNorm2d(5, device=device, dtype=torch.float64)
    _randomize_affine(ref, 2)
    for step in range(3):
        ref(_input(step, (4, 5, 2, 2), device))
    ours = BatchNorm2d(5, device=device, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    ours.eval()
    ref.eval()
    x = _input(9, (3, 5, 2, 2), device)
    torch.testing.assert_close(ours(x), ref(x))
    # and back: torch's module loads ours
    back = nn.BatchNorm2d(5, device=device, dtype=torch.float64)
    back.load_state_dict(ours.state_dict())
    assert torch.equal(back.running_var, ref.running_var)


def test_batch_norm_gradcheck(device):
    x = _input(1, (4, 3, 2), device).requires_grad_(True)
    w = (_randn(2, (3,), device) + 1).requires_grad_(True)
    b = _randn(3, (3,), device).requires_grad_(True)

    def fn(x, w, b):
        return batch_norm(x, None, None, w, b, training=True)

    assert torch.autograd.gradcheck(fn, (x, w, b))
    with netprops.seeded_global_rng(0):
        assert torch.autograd.gradgradcheck(fn, (x, w, b))
    x2 = _input(4, (5, 3), device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: batch_norm(x, None, None, training=True), (x2,))


def test_batch_norm_half_precision_against_float64(device):
    bn = BatchNorm1d(6, device=device, dtype=torch.bfloat16)
    x = _input(1, (16, 6), device)
    ref = nn.functional.batch_norm(x, None, None, training=True)
    y = bn(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    _assert_close(y, ref, kappa=2.5)
    assert bn.running_mean.dtype == torch.bfloat16


def test_batch_norm_reset_and_repr(device):
    bn = BatchNorm1d(3, momentum=None, device=device)
    bn(_input(0, (4, 3), device, torch.float32))
    bn.reset_running_stats()
    assert torch.equal(bn.running_mean, torch.zeros(3, device=device))
    assert torch.equal(bn.running_var, torch.ones(3, device=device))
    assert bn.num_batches_tracked.item() == 0
    text = repr(bn)
    assert text.startswith("BatchNorm1d(3")
    assert "momentum=None" in text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_features": 0}, ValueError, "num_features"),
        ({"num_features": 2.0}, TypeError, "num_features"),
        ({"num_features": 3, "eps": 0}, ValueError, "eps"),
        ({"num_features": 3, "momentum": 1.5}, ValueError, "momentum"),
        ({"num_features": 3, "momentum": -0.1}, ValueError, "momentum"),
        ({"num_features": 3, "momentum": "0.1"}, TypeError, "momentum"),
        ({"num_features": 3, "affine": 1}, TypeError, "affine"),
        ({"num_features": 3, "track_running_stats": None}, TypeError, "track_running_stats"),
    ],
)
@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d])
def test_batch_norm_constructor_validation(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_batch_norm_input_validation(device):
    bn1 = BatchNorm1d(4, device=device)
    bn2 = BatchNorm2d(4, device=device)
    with pytest.raises(ValueError, match=r"2D or 3D.*4D"):
        bn1(torch.zeros(2, 4, 3, 3, device=device))
    with pytest.raises(ValueError, match=r"4D.*3D"):
        bn2(torch.zeros(2, 4, 3, device=device))
    with pytest.raises(ValueError, match=r"expected 4 channels.*got 3"):
        bn1(torch.zeros(2, 3, device=device))
    with pytest.raises(ValueError, match=r"expected 4 channels.*got 5"):
        bn2(torch.zeros(2, 5, 3, 3, device=device))
    with pytest.raises(TypeError, match="floating-point"):
        bn1(torch.zeros(2, 4, dtype=torch.long, device=device))
    with pytest.raises(ValueError, match=r"\(N, C, \*\)"):
        batch_norm(torch.zeros(4, device=device), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batch_norm(torch.zeros(2, 4, device=device), None, None, training=False)
