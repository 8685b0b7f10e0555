"""Max/avg pooling with hand-written backward, compared with torch's F.max_pool2d/F.avg_pool2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netprops
from netprops.layers import pooling as P
from netprops.tolerances import tolerance

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

POOLS = {
    "max": (P.max_pool2d, F.max_pool2d, P.MaxPool2dFunction, P.MaxPool2d),
    "avg": (P.avg_pool2d, F.avg_pool2d, P.AvgPool2dFunction, P.AvgPool2d),
}
# (kernel_size, stride, padding, (H, W))
GEOMETRIES = [
    (2, None, 0, (8, 8)),
    (3, 1, 1, (7, 9)),
    (3, 2, 1, (10, 10)),
    ((3, 2), (2, 1), (1, 1), (6, 5)),
    (1, 1, 0, (3, 4)),
    (4, 3, 2, (9, 11)),
    (5, 2, 0, (5, 12)),
]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    tol = tolerance(expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def _distinct(seed: int, shape, device: str, dtype=torch.float64) -> torch.Tensor:
    """A random permutation of distinct values, so the arg-max of every window is unique."""
    g = netprops.make_generator(seed, device)
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(n, generator=g, device=device).to(dtype)
    return (perm / n - 0.5).reshape(shape) * 4


def _run(fn, x: torch.Tensor, grad_seed: int, *args):
    leaf = x.detach().clone().requires_grad_(True)
    y = fn(leaf, *args)
    g = netprops.make_generator(grad_seed, x.device.type)
    grad_out = torch.randn(y.shape, generator=g, device=x.device, dtype=x.dtype)
    y.backward(grad_out)
    return y.detach(), leaf.grad


def _compare(kind: str, x: torch.Tensor, kernel, stride, padding) -> None:
    ours, ref, _, _ = POOLS[kind]
    y_ref, gx_ref = _run(ref, x, 1, kernel, stride, padding)
    y, gx = _run(ours, x, 1, kernel, stride, padding)
    assert y.shape == y_ref.shape
    assert y.dtype == x.dtype
    _close(y, y_ref)
    _close(gx, gx_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("kernel", "stride", "padding", "hw"), GEOMETRIES)
@pytest.mark.parametrize("kind", list(POOLS))
def test_matches_torch_forward_and_backward(kind, kernel, stride, padding, hw, dtype, device):
    x = _distinct(2, (2, 3, *hw), device, dtype)
    _compare(kind, x, kernel, stride, padding)


@fixture_ok
@given(
    kind=st.sampled_from(list(POOLS)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    extra=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    nc=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_torch_for_any_geometry(device, kind, kernel, stride, pad, extra, nc, seed):
    padding = tuple(min(p, k // 2) for p, k in zip(pad, kernel, strict=True))
    hw = tuple(max(1, k - 2 * p + e) for k, p, e in zip(kernel, padding, extra, strict=True))
    x = _distinct(seed, (*nc, *hw), device)
    _compare(kind, x, kernel, stride, padding)


@pytest.mark.parametrize("kind", list(POOLS))
def test_module_equals_functional_and_torch_on_channels_last(kind, device):
    ours, _, _, module_cls = POOLS[kind]
    x = _distinct(3, (2, 4, 7, 7), device).to(memory_format=torch.channels_last)
    module = module_cls(3, stride=2, padding=1)
    _close(module(x), ours(x, 3, 2, 1))
    _compare(kind, x, 3, 2, 1)


@pytest.mark.parametrize("kind", list(POOLS))
def test_stride_defaults_to_kernel(kind, device):
    ours, _, _, module_cls = POOLS[kind]
    x = _distinct(4, (1, 2, 6, 9), device)
    _close(ours(x, (2, 3)), ours(x, (2, 3), (2, 3)))
    assert module_cls((2, 3)).stride == (2, 3)


@pytest.mark.parametrize(("kernel", "stride", "padding", "hw"), GEOMETRIES[:4])
@pytest.mark.parametrize("kind", list(POOLS))
def test_gradcheck(kind, kernel, stride, padding, hw, device):
    _, _, function, _ = POOLS[kind]
    x = _distinct(5, (1, 2, *hw), device).requires_grad_(True)
    args = P._pool_args(kernel, stride, padding)
    assert torch.autograd.gradcheck(lambda t: function.apply(t, *args), (x,))


@pytest.mark.parametrize("kind", list(POOLS))
def test_gradgradcheck(kind, device):
    _, _, function, _ = POOLS[kind]
    x = _distinct(7, (1, 1, 5, 4), device).requires_grad_(True)
    args = P._pool_args((3, 2), (2, 1), (1, 1))
    with netprops.seeded_global_rng(7):  # gradgradcheck draws its grad_outputs globally
        assert torch.autograd.gradgradcheck(lambda t: function.apply(t, *args), (x,))


def test_max_window_of_minus_inf_routes_gradient_like_torch(device):
    x = torch.full((1, 2, 5, 5), float("-inf"), dtype=torch.float64, device=device)
    x[0, 0, 3, 3] = 1.0
    x[0, 1, 0, 4] = -2.0
    y_ref, gx_ref = _run(F.max_pool2d, x, 6, 3, 1, 1)
    y, gx = _run(P.max_pool2d, x, 6, 3, 1, 1)
    assert torch.equal(y, y_ref)
    assert torch.equal(gx, gx_ref)


def test_avg_counts_padding_in_divisor(device):
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64, device=device)
    expected = F.avg_pool2d(x, 2, 1, 1, count_include_pad=True)
    got = P.avg_pool2d(x, 2, 1, 1)
    _close(got, expected)
    assert not torch.allclose(got, F.avg_pool2d(x, 2, 1, 1, count_include_pad=False))


@pytest.mark.parametrize("module_cls", [P.MaxPool2d, P.AvgPool2d])
def test_module_repr(module_cls):
    module = module_cls((3, 2), stride=1, padding=(1, 0))
    assert repr(module) == (
        f"{module_cls.__name__}(kernel_size=(3, 2), stride=(1, 1), padding=(1, 0))"
    )
    assert (
        repr(module_cls(2))
        == f"{module_cls.__name__}(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    )


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kind", list(POOLS))
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"kernel_size": -2}, ValueError, "kernel_size"),
        ({"kernel_size": (2, 0)}, ValueError, r"kernel_size\[1\]"),
        ({"kernel_size": (2, 2, 2)}, ValueError, "kernel_size"),
        ({"kernel_size": 2.0}, TypeError, "kernel_size"),
        ({"kernel_size": 2, "stride": 0}, ValueError, "stride"),
        ({"kernel_size": 2, "stride": "1"}, TypeError, "stride"),
        ({"kernel_size": 2, "padding": -1}, ValueError, "padding"),
        ({"kernel_size": 3, "padding": 2}, ValueError, "half of kernel_size"),
        ({"kernel_size": (4, 2), "padding": (2, 2)}, ValueError, "half of kernel_size"),
    ],
)
def test_bad_hyperparameters_raise(kind, kwargs, error, match, device):
    ours, _, _, module_cls = POOLS[kind]
    x = torch.zeros(1, 1, 6, 6, device=device)
    with pytest.raises(error, match=match):
        ours(x, **kwargs)
    with pytest.raises(error, match=match):
        module_cls(**kwargs)


@pytest.mark.parametrize("kind", list(POOLS))
@pytest.mark.parametrize("shape", [(6, 6), (1, 6, 6), (1, 1, 1, 6, 6)])
def test_non_4d_input_raises(kind, shape, device):
    ours, _, _, module_cls = POOLS[kind]
    x = torch.zeros(shape, device=device)
    with pytest.raises(ValueError, match="4-D"):
        ours(x, 2)
    with pytest.raises(ValueError, match="4-D"):
        module_cls(2)(x)


@pytest.mark.parametrize("kind", list(POOLS))
def test_input_smaller_than_kernel_raises(kind, device):
    ours, _, _, module_cls = POOLS[kind]
    x = torch.zeros(1, 1, 2, 5, device=device)
    with pytest.raises(ValueError, match="too small"):
        ours(x, 3)
    with pytest.raises(ValueError, match="too small"):
        module_cls(3)(x)


@pytest.mark.parametrize("kind", list(POOLS))
def test_integer_and_non_tensor_inputs_raise(kind, device):
    ours, _, _, module_cls = POOLS[kind]
    with pytest.raises(TypeError, match="floating-point"):
        ours(torch.zeros(1, 1, 4, 4, dtype=torch.int64, device=device), 2)
    with pytest.raises(TypeError, match="floating-point"):
        module_cls(2)(torch.zeros(1, 1, 4, 4, dtype=torch.int32, device=device))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ours([[[[1.0]]]], 1)


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_max_pool_propagates_nan_like_torch(device, position):
    x = torch.tensor([1.0, 5.0, 3.0, 2.0], device=device)
    x[position] = float("nan")
    x = x.reshape(1, 1, 2, 2).requires_grad_(True)
    ours = P.max_pool2d(x, 2)
    theirs = F.max_pool2d(x, 2)
    torch.testing.assert_close(ours, theirs, equal_nan=True)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, equal_nan=True)


# --------------------------------------------------------------------------- ties, NaN, fast path
def _few_values(
    seed: int, shape, device: str, dtype=torch.float64, levels: int = 3
) -> torch.Tensor:
    """Values from a small set, so most windows hold ties (as after a ReLU, full of zeros)."""
    g = netprops.make_generator(seed, device)
    return torch.randint(0, levels, shape, generator=g, device=device).to(dtype)


def _assert_same_routing(x: torch.Tensor, kernel, stride, padding) -> None:
    """Output and input gradient equal to F.max_pool2d's (NaN where it has NaN)."""
    y_ref, gx_ref = _run(F.max_pool2d, x, 9, kernel, stride, padding)
    y, gx = _run(P.max_pool2d, x, 9, kernel, stride, padding)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("kernel", "stride", "padding", "hw"), [*GEOMETRIES, (2, 2, 0, (7, 9))])
def test_max_ties_route_to_the_first_maximal_cell_like_torch(kernel, stride, padding, hw, dtype):
    x = _few_values(11, (2, 3, *hw), "cpu", dtype)
    _assert_same_routing(x, kernel, stride, padding)


@fixture_ok
@given(
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    tiling=st.booleans(),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    nan_share=st.sampled_from([0.0, 0.2, 0.6]),
    seed=st.integers(0, 2**31 - 1),
)
def test_max_ties_and_nans_match_torch_for_any_geometry(kernel, tiling, extra, nan_share, seed):
    """Non-overlapping (fast path) and overlapping windows, with ties and several NaNs a window."""
    stride = kernel if tiling else (1, 1)
    hw = tuple(k + e for k, e in zip(kernel, extra, strict=True))
    x = _few_values(seed, (2, 2, *hw), "cpu")
    g = netprops.make_generator(seed + 1)
    x[torch.rand(x.shape, generator=g) < nan_share] = float("nan")
    _assert_same_routing(x, kernel, stride, 0)


@pytest.mark.parametrize("fill", [float("inf"), float("-inf")])
def test_max_fast_path_infinite_windows_route_like_torch(fill, device):
    x = _few_values(12, (1, 2, 6, 6), device)
    x[0, 0, :2, :2] = fill  # a whole window of ±inf
    x[0, 1, 2, 3] = fill  # one infinite cell among finite ones
    _assert_same_routing(x, 2, 2, 0)


@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
def test_max_fast_path_gradcheck_and_gradgradcheck(hw, device):
    x = _distinct(13, (2, 2, *hw), device).requires_grad_(True)
    args = P._pool_args(2, None, 0)
    assert torch.autograd.gradcheck(lambda t: P.MaxPool2dFunction.apply(t, *args), (x,))
    with netprops.seeded_global_rng(13):  # gradgradcheck draws its grad_outputs globally
        assert torch.autograd.gradgradcheck(lambda t: P.MaxPool2dFunction.apply(t, *args), (x,))


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, None, 0), ((3, 2), (2, 1), (1, 1))])
def test_max_without_autograd_equals_the_autograd_forward(kernel, stride, padding, device):
    """Under no_grad (or for an input needing no gradient) only the maximum is computed."""
    x = _few_values(14, (2, 3, 9, 8), device, levels=4)
    x[0, 1, 3, 3] = float("nan")
    with_grad = P.max_pool2d(x.clone().requires_grad_(True), kernel, stride, padding)
    assert with_grad.grad_fn is not None
    with torch.no_grad():
        plain = P.max_pool2d(x.clone().requires_grad_(True), kernel, stride, padding)
    assert plain.grad_fn is None
    torch.testing.assert_close(plain, with_grad.detach(), rtol=0, atol=0, equal_nan=True)
    module = P.MaxPool2d(kernel, stride, padding)
    torch.testing.assert_close(module(x), plain, rtol=0, atol=0, equal_nan=True)


def test_max_fast_path_on_channels_last_and_strided_input(device):
    base = _distinct(15, (2, 4, 10, 12), device)
    for x in (base.to(memory_format=torch.channels_last), base[:, ::2, 1:, 2:]):
        _compare("max", x, 2, 2, 0)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1)])
def test_max_non_finite_upstream_gradient_reaches_the_winner_only(kernel, stride, padding, device):
    x = _distinct(16, (1, 2, 6, 7), device)
    y_ref = F.max_pool2d(x.clone().requires_grad_(True), kernel, stride, padding)
    grad_out = torch.ones_like(y_ref)
    grad_out[0, 0, 0, 0] = float("inf")
    grad_out[0, 1, 1, 1] = float("nan")
    grads = []
    for fn in (F.max_pool2d, P.max_pool2d):
        leaf = x.clone().requires_grad_(True)
        fn(leaf, kernel, stride, padding).backward(grad_out)
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0, equal_nan=True)
    assert grads[1].isnan().sum() == 1 and grads[1].isinf().sum() == 1
