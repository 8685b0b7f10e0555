"""Activations with hand-written backward, compared with torch's own ops."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netprops
from netprops.layers import activations as A
from netprops.tolerances import tolerance

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

# name -> (torch reference, our functional, our Function, extra Function args)
REFERENCES = {
    "identity": (lambda t: t * 1, A.identity, None, ()),
    "sigmoid": (torch.sigmoid, A.sigmoid, A.SigmoidFunction, ()),
    "tanh": (torch.tanh, A.tanh, A.TanhFunction, ()),
    "relu": (F.relu, A.relu, A.ReLUFunction, ()),
    "leaky_relu": (F.leaky_relu, A.leaky_relu, A.LeakyReLUFunction, (0.01,)),
    "elu": (F.elu, A.elu, A.ELUFunction, (1.0,)),
    "silu": (F.silu, A.silu, A.SiLUFunction, ()),
}
FUNCTIONS = [name for name, ref in REFERENCES.items() if ref[2] is not None]
DTYPES = [torch.float32, torch.float64]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    tol = tolerance(expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def _input(seed: int, shape, device: str, dtype=torch.float64, scale: float = 3.0):
    g = netprops.make_generator(seed, device)
    x = torch.randn(shape, generator=g, device=device, dtype=dtype) * scale
    # exact zeros and large magnitudes exercise the kinks and saturation
    flat = x.view(-1)
    flat[: min(3, flat.numel())] = 0.0
    if flat.numel() > 5:
        flat[3], flat[4] = 40.0, -40.0
    return x


def _away_from_zero(seed: int, shape, device: str, margin: float = 0.1) -> torch.Tensor:
    """float64 values with |x| >= margin, so finite differences never straddle a kink."""
    g = netprops.make_generator(seed, device)
    x = torch.randn(shape, generator=g, device=device, dtype=torch.float64)
    return x + torch.sign(x) * margin + (x == 0) * margin


def _grads(fn, x: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.detach().clone().requires_grad_(True)
    y = fn(leaf)
    y.backward(grad_out)
    return y.detach(), leaf.grad


# --------------------------------------------------------------------------- forward/backward
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_forward_and_backward_match_torch(name, dtype, device):
    ref, ours, _, _ = REFERENCES[name]
    x = _input(1, (16, 33), device, dtype)
    g = netprops.make_generator(2, device)
    grad_out = torch.randn(x.shape, generator=g, device=device, dtype=dtype)
    y_ref, gx_ref = _grads(ref, x, grad_out)
    y, gx = _grads(ours, x, grad_out)
    assert y.dtype == dtype
    assert y.shape == x.shape
    _close(y, y_ref)
    _close(gx, gx_ref)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_modules_match_torch_on_noncontiguous_input(name, device):
    ref, _, _, _ = REFERENCES[name]
    x = _input(3, (24, 10), device).t()  # transposed view
    assert not x.is_contiguous()
    g = netprops.make_generator(4, device)
    grad_out = torch.randn(x.shape, generator=g, device=device, dtype=x.dtype)
    module = A.get_activation(name)
    y_ref, gx_ref = _grads(ref, x, grad_out)
    y, gx = _grads(module, x, grad_out)
    _close(y, y_ref)
    _close(gx, gx_ref)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bfloat16_follows_torch_within_bf16_tolerance(name, device):
    ref, ours, _, _ = REFERENCES[name]
    x = _input(5, (8, 16), device, torch.bfloat16)
    grad_out = torch.ones_like(x)
    y_ref, gx_ref = _grads(ref, x, grad_out)
    y, gx = _grads(ours, x, grad_out)
    assert y.dtype == torch.bfloat16
    assert gx.dtype == torch.bfloat16
    _close(y, y_ref)
    _close(gx, gx_ref)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradcheck_every_function(name, device):
    _, _, function, args = REFERENCES[name]
    x = _away_from_zero(6, (5, 7), device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: function.apply(t, *args), (x,))


@pytest.mark.parametrize(
    ("function", "args"),
    [
        *[(A.LeakyReLUFunction, (slope,)) for slope in (0.2, -0.5, 3.0)],
        *[(A.ELUFunction, (alpha,)) for alpha in (0.3, 2.5, 0.0)],
    ],
)
def test_gradcheck_with_parameters(function, args, device):
    x = _away_from_zero(7, (4, 6), device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: function.apply(t, *args), (x,))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradgradcheck_every_function(name, device):
    _, _, function, args = REFERENCES[name]
    x = _away_from_zero(8, (3, 4), device).requires_grad_(True)
    with netprops.seeded_global_rng(8):  # gradgradcheck draws its grad_outputs globally
        assert torch.autograd.gradgradcheck(lambda t: function.apply(t, *args), (x,))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_second_derivative_matches_torch(name, device):
    # grad_out that does not itself require grad: the second-order term must come from
    # differentiating our backward, not from the upstream graph.
    ref, ours, _, _ = REFERENCES[name]
    x = _away_from_zero(12, (10,), device)

    def hessian_diag(fn):
        leaf = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(leaf).sum(), leaf, create_graph=True)
        if not gx.requires_grad:  # a backward that is constant in x (leaky ReLU)
            return torch.zeros_like(x)
        (ggx,) = torch.autograd.grad(gx.sum(), leaf, allow_unused=True)
        return torch.zeros_like(x) if ggx is None else ggx

    _close(hessian_diag(ours), hessian_diag(ref))


# --------------------------------------------------------------------------- derivatives
DERIVATIVE_REFS = {
    "identity": (A.identity_derivative, lambda t: t * 1, {}),
    "sigmoid": (A.sigmoid_derivative, torch.sigmoid, {}),
    "tanh": (A.tanh_derivative, torch.tanh, {}),
    "relu": (A.relu_derivative, F.relu, {}),
    "leaky_relu": (A.leaky_relu_derivative, F.leaky_relu, {}),
    "elu": (A.elu_derivative, F.elu, {}),
    "silu": (A.silu_derivative, F.silu, {}),
}


def _autograd_derivative(ref, z: torch.Tensor) -> torch.Tensor:
    leaf = z.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ref(leaf).sum(), leaf)
    return grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(DERIVATIVE_REFS))
def test_derivative_equals_autograd_of_torch_reference(name, dtype, device):
    derivative, ref, _ = DERIVATIVE_REFS[name]
    z = _input(9, (7, 9), device, dtype)  # includes exact zeros: kink conventions match torch
    expected = _autograd_derivative(ref, z)
    got = derivative(z)
    assert got.dtype == dtype
    _close(got, expected)
    assert A.derivative_of(name) is derivative
    _close(A.get_activation(name).derivative(z), expected)


@pytest.mark.parametrize("name", list(DERIVATIVE_REFS))
def test_derivative_matches_our_backward(name, device):
    z = _input(10, (6, 5), device)
    module = A.get_activation(name)
    _, gx = _grads(module, z, torch.ones_like(z))
    _close(A.derivative_of(name)(z), gx)


def test_parametrized_derivatives_use_their_parameter(device):
    z = _input(11, (20,), device)
    _close(
        A.leaky_relu_derivative(z, negative_slope=0.3),
        _autograd_derivative(functools.partial(F.leaky_relu, negative_slope=0.3), z),
    )
    _close(
        A.elu_derivative(z, alpha=0.7),
        _autograd_derivative(functools.partial(F.elu, alpha=0.7), z),
    )
    _close(
        A.LeakyReLU(0.3).derivative(z),
        A.leaky_relu_derivative(z, 0.3),
    )
    _close(A.ELU(0.7).derivative(z), A.elu_derivative(z, 0.7))


# --------------------------------------------------------------------------- Hypothesis
@fixture_ok
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    slope=st.floats(-2.0, 3.0, allow_nan=False),
    alpha=st.floats(0.0, 3.0, allow_nan=False),
)
def test_parametrized_activations_match_torch_for_any_shape(device, shape, seed, slope, alpha):
    x = _input(seed, tuple(shape), device)
    g = netprops.make_generator(seed + 1, device)
    grad_out = torch.randn(x.shape, generator=g, device=device, dtype=x.dtype)
    pairs = [
        (functools.partial(F.leaky_relu, negative_slope=slope), A.LeakyReLU(slope)),
        (functools.partial(F.elu, alpha=alpha), A.ELU(alpha)),
    ]
    for ref, ours in pairs:
        y_ref, gx_ref = _grads(ref, x, grad_out)
        y, gx = _grads(ours, x, grad_out)
        _close(y, y_ref)
        _close(gx, gx_ref)


@fixture_ok
@given(
    name=st.sampled_from(FUNCTIONS),
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from(DTYPES),
)
def test_unparametrized_activations_match_torch_for_any_shape(device, name, shape, seed, dtype):
    ref, ours, _, _ = REFERENCES[name]
    x = _input(seed, tuple(shape), device, dtype)
    grad_out = torch.ones_like(x)
    y_ref, gx_ref = _grads(ref, x, grad_out)
    y, gx = _grads(ours, x, grad_out)
    assert y.shape == x.shape
    _close(y, y_ref)
    _close(gx, gx_ref)


# --------------------------------------------------------------------------- modules / registry
@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (A.Identity(), "Identity()"),
        (A.Sigmoid(), "Sigmoid()"),
        (A.Tanh(), "Tanh()"),
        (A.ReLU(), "ReLU()"),
        (A.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
        (A.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (A.ELU(), "ELU(alpha=1.0)"),
        (A.ELU(alpha=0.5), "ELU(alpha=0.5)"),
        (A.SiLU(), "SiLU()"),
    ],
)
def test_module_repr(module, expected):
    assert repr(module) == expected


def test_registry_builds_every_name():
    expected = {
        "identity": A.Identity,
        "sigmoid": A.Sigmoid,
        "tanh": A.Tanh,
        "relu": A.ReLU,
        "leaky_relu": A.LeakyReLU,
        "elu": A.ELU,
        "silu": A.SiLU,
    }
    assert set(A.ACTIVATIONS) == set(expected)
    for name in A.ACTIVATIONS:
        module = A.get_activation(name)
        assert type(module) is expected[name]
        assert module.name == name
        assert list(module.parameters()) == []


def test_registry_passes_keyword_arguments():
    assert A.get_activation("leaky_relu", negative_slope=0.25).negative_slope == 0.25
    assert A.get_activation("elu", alpha=0.5).alpha == 0.5


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="name") as info:
        A.get_activation("gelu")
    for name in A.ACTIVATIONS:
        assert repr(name) in str(info.value)
    with pytest.raises(ValueError, match="'gelu'"):
        A.derivative_of("gelu")


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match="name"):
        A.get_activation(torch.nn.ReLU)
    with pytest.raises(TypeError, match="name"):
        A.derivative_of(3)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("relu", {"alpha": 1.0}), ("elu", {"negative_slope": 0.1}), ("leaky_relu", {"slope": 0.1})],
)
def test_registry_rejects_unexpected_keywords(name, kwargs):
    with pytest.raises(TypeError, match=f"{name}.*{next(iter(kwargs))}"):
        A.get_activation(name, **kwargs)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: A.ELU(alpha=-0.1), ValueError, "alpha"),
        (lambda: A.get_activation("elu", alpha=-1.0), ValueError, "alpha"),
        (lambda: A.ELU(alpha=math.inf), ValueError, "alpha"),
        (lambda: A.ELU(alpha="1"), TypeError, "alpha"),
        (lambda: A.LeakyReLU(negative_slope=math.nan), ValueError, "negative_slope"),
        (lambda: A.LeakyReLU(negative_slope=None), TypeError, "negative_slope"),
        (
            lambda: A.leaky_relu(torch.zeros(2), negative_slope=math.inf),
            ValueError,
            "negative_slope",
        ),
        (lambda: A.elu(torch.zeros(2), alpha=-2.0), ValueError, "alpha"),
        (lambda: A.elu_derivative(torch.zeros(2), alpha=-2.0), ValueError, "alpha"),
        (lambda: A.leaky_relu_derivative(torch.zeros(2), math.nan), ValueError, "negative_slope"),
    ],
)
def test_bad_parameters_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()


_ALL_CALLABLES = (
    [fn for _, fn, _, _ in REFERENCES.values()]
    + [d for d, _, _ in DERIVATIVE_REFS.values()]
    + [A.get_activation(name) for name in A.ACTIVATIONS]
)


@pytest.mark.parametrize("fn", _ALL_CALLABLES)
def test_integer_tensors_are_rejected(fn, device):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.arange(4, device=device))


@pytest.mark.parametrize("fn", [A.relu, A.sigmoid_derivative, A.ReLU()])
def test_non_tensors_are_rejected(fn):
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        fn([1.0, 2.0])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_elu_gradient_at_infinities_matches_torch(device, alpha, dtype):
    x = torch.tensor([float("-inf"), -1.0, 0.0, 1.0, float("inf")], device=device, dtype=dtype)
    ours_x = x.clone().requires_grad_(True)
    theirs_x = x.clone().requires_grad_(True)
    A.elu(ours_x, alpha).sum().backward()
    F.elu(theirs_x, alpha).sum().backward()
    torch.testing.assert_close(ours_x.grad, theirs_x.grad, equal_nan=False)
