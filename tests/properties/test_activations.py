"""Activation derivatives: the hand-written backward, the derivative functions and autograd agree.

For every activation in ``ACTIVATIONS`` (drawn slopes / alphas), on drawn float64
inputs including the kink ``z = 0``:

* the forward equals torch's own function;
* ``derivative_of(name)(z)`` (the coursework's derivative of the pre-activation)
  equals autograd through torch's function;
* the vector-Jacobian product of our ``autograd.Function`` equals ``g ⊙ f'(z)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from netprops.layers.activations import ACTIVATIONS, derivative_of, get_activation
from netprops.strategies import seeds

from .conftest import hypothesis_settings, randn


def _torch_reference(name: str, param: float):
    return {
        "identity": lambda z: z,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, param),
        "elu": lambda z: F.elu(z, param),
        "silu": F.silu,
    }[name]


def _ours(name: str, param: float):
    kwargs = {"leaky_relu": {"negative_slope": param}, "elu": {"alpha": param}}.get(name, {})
    module = get_activation(name, **kwargs)
    derivative = derivative_of(name)
    deriv = (lambda z: derivative(z, param)) if kwargs else derivative
    return module, deriv


@st.composite
def activation_cases(draw):
    name = draw(st.sampled_from(ACTIVATIONS))
    if name == "leaky_relu":
        param = draw(st.one_of(st.just(0.01), st.floats(-2.0, 2.0)))
    elif name == "elu":
        param = draw(st.one_of(st.just(1.0), st.floats(0.0, 3.0)))
    else:
        param = 0.0
    return name, param


@given(
    case=activation_cases(),
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    scale=st.sampled_from([1.0, 5.0, 30.0]),
    zeros=st.booleans(),
    seed=seeds(),
)
@example(case=("relu", 0.0), shape=[1], scale=1.0, zeros=True, seed=0)
@example(case=("leaky_relu", 0.01), shape=[1], scale=1.0, zeros=True, seed=0)
@example(case=("elu", 1.0), shape=[1], scale=1.0, zeros=True, seed=0)
@hypothesis_settings()
def test_derivatives_equal_autograd(device, case, shape, scale, zeros, seed):
    name, param = case
    z = randn(tuple(shape), seed, device, torch.float64, scale=scale)
    if zeros:  # the kink: PyTorch takes the left branch's derivative at exactly 0
        z.view(-1)[::2] = 0.0
    g = randn(tuple(shape), seed + 1, device, torch.float64)
    module, derivative = _ours(name, param)
    reference = _torch_reference(name, param)

    z_ref = z.clone().requires_grad_(True)
    y_ref = reference(z_ref)
    (autograd_derivative,) = torch.autograd.grad(y_ref.sum(), z_ref)

    z_ours = z.clone().requires_grad_(True)
    y = module(z_ours)
    (vjp,) = torch.autograd.grad(y, z_ours, g)

    torch.testing.assert_close(y.detach(), y_ref.detach())
    torch.testing.assert_close(derivative(z), autograd_derivative)
    torch.testing.assert_close(vjp, g * autograd_derivative)


@given(case=activation_cases(), seed=seeds())
@example(case=("sigmoid", 0.0), seed=0)
@hypothesis_settings()
def test_float32_backward_matches_float64(device, case, seed):
    name, param = case
    # float32 values, so both dtypes see the same points (and the same side of a kink)
    z = randn((4, 9), seed, device, torch.float32, scale=4.0).double()
    module, _ = _ours(name, param)
    grads = []
    for dtype in (torch.float64, torch.float32):
        zi = z.to(dtype).requires_grad_(True)
        (grad,) = torch.autograd.grad(module(zi).sum(), zi)
        grads.append(grad.double())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
