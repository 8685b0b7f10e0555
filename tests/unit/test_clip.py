"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_ on copies of the same gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netprops
from netprops.layers.clip import clip_grad_norm_
from netprops.tolerances import tolerance

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
NORM_TYPES = [1.0, 2.0, 3.0, math.inf]
SHAPES = [(4, 3), (7,), (2, 2, 2), ()]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    tol = tolerance(expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol, equal_nan=True)


def _params(seed: int, device: str, shapes=SHAPES, dtype=torch.float64, none_at=(), scale=1.0):
    """Two identical parameter lists (ours, torch's) with identical gradients."""
    g = netprops.make_generator(seed, device)
    ours, theirs = [], []
    for i, shape in enumerate(shapes):
        p = torch.zeros(shape, device=device, dtype=dtype, requires_grad=True)
        if i not in none_at:
            p.grad = torch.randn(shape, generator=g, device=device, dtype=dtype) * scale
        q = p.detach().clone().requires_grad_(True)
        q.grad = None if p.grad is None else p.grad.clone()
        ours.append(p)
        theirs.append(q)
    return ours, theirs


def _check_same(ours, theirs, total, total_ref) -> None:
    _close(total, total_ref)
    assert total.shape == ()
    assert total.device == total_ref.device
    for p, q in zip(ours, theirs, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            _close(p.grad, q.grad)


def _unclipped_total(params, norm_type: float) -> float:
    flat = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
    return torch.linalg.vector_norm(flat, norm_type).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("max_norm_factor", [0.3, 3.0], ids=["clipped", "below_limit"])
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_matches_torch(norm_type, max_norm_factor, dtype, device):
    ours, theirs = _params(1, device, dtype=dtype, none_at=(1,))
    unclipped = _unclipped_total(ours, norm_type)
    max_norm = max_norm_factor * unclipped
    before = [None if p.grad is None else p.grad.clone() for p in ours]
    total = clip_grad_norm_(ours, max_norm, norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    _check_same(ours, theirs, total, total_ref)
    changed = any(
        not torch.equal(b, p.grad) for b, p in zip(before, ours, strict=True) if b is not None
    )
    assert changed == (max_norm_factor < 1)
    # the returned norm is the one before clipping; after clipping the norm is <= max_norm
    _close(total, torch.tensor(unclipped, dtype=dtype, device=device))
    assert _unclipped_total(ours, norm_type) <= max_norm * (1 + 1e-5)


def test_single_tensor_and_generator_inputs(device):
    ours, theirs = _params(2, device, shapes=[(5, 5)])
    _check_same(
        ours, theirs, clip_grad_norm_(ours[0], 0.5), torch.nn.utils.clip_grad_norm_(theirs[0], 0.5)
    )
    ours, theirs = _params(3, device)
    total = clip_grad_norm_((p for p in ours), 1.0, norm_type=1)
    total_ref = torch.nn.utils.clip_grad_norm_((p for p in theirs), 1.0, norm_type=1)
    _check_same(ours, theirs, total, total_ref)


def test_module_parameters(device):
    with netprops.seeded_global_rng(4):
        layer = torch.nn.Linear(6, 3).to(device)
        reference = torch.nn.Linear(6, 3).to(device)
    reference.load_state_dict(layer.state_dict())
    g = netprops.make_generator(4, device)
    x = torch.randn(8, 6, generator=g, device=device)
    layer(x).square().sum().backward()
    reference(x).square().sum().backward()
    total = clip_grad_norm_(layer.parameters(), 0.1)
    total_ref = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.1)
    _check_same(list(layer.parameters()), list(reference.parameters()), total, total_ref)


@pytest.mark.parametrize("params", [[], "all_none"])
def test_no_gradients_returns_zero(params, device):
    if params == "all_none":
        ours, theirs = _params(5, device, none_at=range(len(SHAPES)))
    else:
        ours, theirs = [], []
    total = clip_grad_norm_(ours, 1.0)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert torch.equal(total, total_ref)
    assert all(p.grad is None for p in ours)


def test_zero_max_norm_zeroes_gradients(device):
    ours, theirs = _params(6, device)
    _check_same(
        ours, theirs, clip_grad_norm_(ours, 0.0), torch.nn.utils.clip_grad_norm_(theirs, 0.0)
    )
    assert all(torch.count_nonzero(p.grad) == 0 for p in ours)


def test_zero_gradients_stay_zero(device):
    ours, theirs = _params(7, device, scale=0.0)
    _check_same(
        ours, theirs, clip_grad_norm_(ours, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    )


def test_mixed_dtypes_match_torch(device):
    ours64, theirs64 = _params(8, device, shapes=[(3, 3)], dtype=torch.float64)
    ours32, theirs32 = _params(9, device, shapes=[(4,)], dtype=torch.float32)
    ours, theirs = ours64 + ours32, theirs64 + theirs32
    total = clip_grad_norm_(ours, 0.2)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, 0.2)
    _check_same(ours, theirs, total, total_ref)
    assert total.dtype == total_ref.dtype


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_nonfinite_total(bad, norm_type, device):
    ours, theirs = _params(9, device)
    ours[0].grad[0, 0] = bad
    theirs[0].grad[0, 0] = bad
    before = [p.grad.clone() for p in ours]
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type, error_if_nonfinite=True)
    for b, p in zip(before, ours, strict=True):
        torch.testing.assert_close(p.grad, b, equal_nan=True, rtol=0, atol=0)
    # without the flag both scale by the non-finite norm in the same way
    total = clip_grad_norm_(ours, 1.0, norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    _check_same(ours, theirs, total, total_ref)
    assert not torch.isfinite(total)


def test_result_is_not_part_of_a_graph(device):
    ours, _ = _params(10, device)
    total = clip_grad_norm_(ours, 0.5)
    assert not total.requires_grad
    assert all(not p.grad.requires_grad for p in ours)


@fixture_ok
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    norm_type=st.one_of(st.sampled_from([math.inf]), st.floats(0.5, 6.0)),
    factor=st.floats(0.01, 3.0),
)
def test_matches_torch_for_any_parameter_set(device, shapes, seed, norm_type, factor):
    ours, theirs = _params(seed, device, shapes=[tuple(s) for s in shapes])
    max_norm = factor * _unclipped_total(ours, norm_type)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    _check_same(ours, theirs, total, total_ref)


@pytest.mark.parametrize(
    ("max_norm", "norm_type"),
    [
        (torch.tensor(0.5), 2.0),
        (torch.tensor([0.5]), torch.tensor(3.0)),
        (torch.tensor(1, dtype=torch.int64), math.inf),
        (torch.tensor(0.5, dtype=torch.float64), torch.tensor([[1.0]])),
    ],
    ids=["0-dim", "1-element-and-tensor-order", "integer", "float64-and-2d-order"],
)
def test_one_element_tensor_arguments_match_torch(device, max_norm, norm_type):
    # torch reads max_norm and norm_type with float(): a one-element tensor is accepted
    ours, theirs = _params(12, device)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    _check_same(ours, theirs, total, total_ref)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_norm": -1.0}, ValueError, "max_norm"),
        ({"max_norm": math.nan}, ValueError, "max_norm"),
        ({"max_norm": "1"}, TypeError, "max_norm"),
        ({"max_norm": 1.0, "norm_type": 0}, ValueError, "norm_type"),
        ({"max_norm": 1.0, "norm_type": -2.0}, ValueError, "norm_type"),
        ({"max_norm": 1.0, "norm_type": math.nan}, ValueError, "norm_type"),
        ({"max_norm": 1.0, "norm_type": "inf"}, TypeError, "norm_type"),
        ({"max_norm": 1.0, "error_if_nonfinite": 1}, TypeError, "error_if_nonfinite"),
        ({"max_norm": torch.tensor([1.0, 2.0])}, TypeError, r"max_norm .*one-element.*\(2,\)"),
        ({"max_norm": torch.tensor(True)}, TypeError, "max_norm .*torch.bool"),
        ({"max_norm": torch.tensor(-1.0)}, ValueError, "max_norm must be a number >= 0"),
        ({"max_norm": 1.0, "norm_type": torch.tensor(1j)}, TypeError, "norm_type"),
        ({"max_norm": 1.0, "norm_type": torch.tensor(0.0)}, ValueError, "norm_type"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match, device):
    ours, _ = _params(11, device)
    before = [p.grad.clone() for p in ours]
    with pytest.raises(error, match=match):
        clip_grad_norm_(ours, **kwargs)
    for b, p in zip(before, ours, strict=True):
        assert torch.equal(b, p.grad)


@pytest.mark.parametrize(
    ("parameters", "match"),
    [(3.0, "parameters must be"), ([torch.zeros(1), 2.0], r"parameters\[1\]")],
)
def test_bad_parameters_raise(parameters, match):
    with pytest.raises(TypeError, match=match):
        clip_grad_norm_(parameters, 1.0)
