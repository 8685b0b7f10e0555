"""check_device_parity: CPU vs CUDA for real where a GPU is present, float32 vs float64 everywhere.

The dtype comparison (``devices=("cpu", device), dtypes=(float64, float32)``)
runs the same code path as the device comparison, so it is exercised on
CPU-only machines; the ``cuda``-marked tests compare devices for real.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from netprops import PropertyViolation, make_generator, seeded_global_rng
from netprops.checks.normalization import conditioning
from netprops.checks.parity import CheckSkipped, check_device_parity
from netprops.layers.dropout import DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm2d, LayerNorm

_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
_DTYPES = (torch.float64, torch.float32)


def _randn(shape, seed, device="cpu", dtype=torch.float32, offset=0.0):
    g = make_generator(seed, device)
    return (torch.randn(shape, generator=g, device=device, dtype=torch.float64) + offset).to(dtype)


def _modules():
    with seeded_global_rng(0):
        return {
            "nn.LayerNorm": (nn.LayerNorm(8), (5, 8)),
            "LayerNorm": (LayerNorm(8), (5, 8)),
            "mlp-train": (
                nn.Sequential(
                    nn.Linear(8, 16),
                    nn.BatchNorm1d(16),
                    nn.ReLU(),
                    nn.Dropout(0.5),
                    nn.Linear(16, 3),
                ),
                (6, 8),
            ),
            "cnn-train": (
                nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), nn.ReLU()),
                (2, 3, 6, 6),
            ),
        }


# --------------------------------------------------------------------------- broken modules
class HalfPrecisionInside(nn.Module):
    """Bug: silently computes in float16 unless the input is float64."""

    def forward(self, x):
        if x.dtype == torch.float64:
            return torch.tanh(x)
        return torch.tanh(x.half()).to(x.dtype)


class _WrongGradInFloat32(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        grad_w = (g * x).sum(0)
        if grad_w.dtype != torch.float64:
            grad_w = grad_w * (1 + 1e-3)  # the "kernel" for float32 is off by 0.1%
        return g * w, grad_w


class ScaleWithBadBackward(nn.Module):
    """Bug: right forward, right input gradient, wrong weight gradient in float32."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x):
        return _WrongGradInFloat32.apply(x, self.w)


# --------------------------------------------------------------------------- dtype parity (any machine)
@pytest.mark.parametrize("name", list(_modules()))
def test_modules_agree_in_float32_and_float64(device, name):
    module, shape = _modules()[name]
    module = module.to(device)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = _randn(shape, 1, device, offset=0.5)
    result = check_device_parity(module, x, devices=("cpu", device), dtypes=_DTYPES, seed=3)
    assert result.statistic <= result.bound == 1.0
    assert "output" in result.details["errors"]
    assert "grad of x" in result.details["errors"]
    if name.endswith("train"):
        assert any(k.startswith("buffer") for k in result.details["errors"])
    # the module itself is untouched: values, mode, no gradients
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in module.parameters())
    assert module.training


def test_dropout_is_compared_in_eval_but_left_in_train_mode():
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.9))
    result = check_device_parity(net, _randn((4, 6), 2), devices=("cpu", "cpu"), dtypes=_DTYPES)
    assert result.statistic <= 1.0
    assert net[1].training


def test_netprops_stochastic_layers_are_compared_in_eval(device):
    g = make_generator(4, device)
    layer = DropConnectLinear(6, 5, p=0.5, generator=g, device=device)
    net = nn.Sequential(layer, Dropout(0.5, generator=make_generator(5, device))).train()
    state = g.get_state()
    result = check_device_parity(
        net, _randn((4, 6), 6, device), devices=(device, device), dtypes=_DTYPES
    )
    assert result.statistic <= 1.0
    assert "grad of 0.weight" in result.details["errors"]
    assert net.training and layer.last_mask is None
    assert torch.equal(g.get_state(), state)


def test_float16_internals_fail_parity(device):
    x = _randn((4, 16), 3, device)
    with pytest.raises(PropertyViolation, match="output differs") as exc:
        check_device_parity(
            HalfPrecisionInside(), x, devices=(device, "cpu"), dtypes=_DTYPES, seed=9
        )
    text = str(exc.value)
    for part in (
        "statistic:",
        "bound:     <= 1",
        "seed:      9",
        "reproduce: netprops.checks.check_device_parity(module, x, devices=",
    ):
        assert part in text


def test_wrong_parameter_gradient_fails_parity(device):
    module = ScaleWithBadBackward(8).to(device)
    with pytest.raises(PropertyViolation, match="grad of w differs"):
        check_device_parity(
            module, _randn((5, 8), 4, device), devices=(device, device), dtypes=_DTYPES
        )


def test_module_without_gradients_compares_outputs_only(device):
    result = check_device_parity(
        nn.ReLU(), _randn((3, 4), 5, device).detach(), devices=(device, "cpu"), dtypes=_DTYPES
    )
    assert "output" in result.details["errors"]
    with seeded_global_rng(0):
        frozen = nn.Linear(4, 2, device=device).requires_grad_(False)
    result = check_device_parity(
        frozen, _randn((3, 4), 6, device), devices=(device, device), dtypes=_DTYPES
    )
    assert set(result.details["errors"]) == {"output", "grad of x"}


@_FIXTURE_OK
@given(
    n=st.integers(1, 6), d=st.integers(2, 40), offset=st.floats(-10, 10), seed=st.integers(0, 2**32)
)
def test_layer_norm_parity_for_any_shape(device, n, d, offset, seed):
    x = _randn((n, d), seed, device, offset=offset)
    # float32 rounding in LayerNorm grows with the conditioning of the rows
    kappa = float(conditioning(x, -1).max())
    for ln in (nn.LayerNorm(d), LayerNorm(d)):
        result = check_device_parity(
            ln.to(device), x, devices=(device, device), dtypes=_DTYPES, seed=seed, kappa=kappa
        )
        assert result.statistic <= 1.0


# --------------------------------------------------------------------------- real devices
@pytest.mark.cuda
@pytest.mark.parametrize("name", list(_modules()))
def test_modules_agree_on_cpu_and_cuda(name):
    module, shape = _modules()[name]
    x = _randn(shape, 7, offset=0.5)
    for devices in (("cpu", "cuda"), ("cuda", "cpu")):
        result = check_device_parity(module, x, devices=devices, seed=2)
        assert result.statistic <= 1.0
    assert next(module.parameters()).device.type == "cpu"


@pytest.mark.cuda
def test_float16_internals_fail_on_cuda_too():
    with pytest.raises(PropertyViolation, match="output differs"):
        check_device_parity(
            HalfPrecisionInside(), _randn((4, 16), 8), devices=("cuda", "cuda"), dtypes=_DTYPES
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: nothing is skipped")
def test_missing_cuda_raises_check_skipped():
    with pytest.raises(CheckSkipped, match="needs CUDA, which is not available") as exc:
        check_device_parity(nn.LayerNorm(3), torch.ones(2, 3))
    assert "CUDA" in exc.value.reason
    assert not issubclass(CheckSkipped, AssertionError)


@pytest.mark.cuda
def test_absent_cuda_index_raises_check_skipped():
    index = torch.cuda.device_count()
    with pytest.raises(CheckSkipped, match="is not present"):
        check_device_parity(nn.LayerNorm(3), torch.ones(2, 3), devices=("cpu", f"cuda:{index}"))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"devices": "cpu"}, TypeError, "devices must be a pair"),
        ({"devices": ("cpu", "cpu", "cpu")}, ValueError, "exactly 2 devices"),
        ({"devices": ("cpu", 0)}, TypeError, r"devices\[1\] must be str or device"),
        (
            {"devices": ("cpu", "tpu")},
            ValueError,
            r"devices\[1\] must be 'cpu', 'cuda' or 'cuda:N'",
        ),
        (
            {"devices": ("cpu", "meta")},
            ValueError,
            r"devices\[1\] kind must be one of 'cpu', 'cuda'",
        ),
        ({"devices": ("cpu", "cpu")}, ValueError, "compare a setup with itself"),
        (
            {"devices": ("cpu", "cpu"), "dtypes": (torch.float32,)},
            TypeError,
            "dtypes must be None or a pair",
        ),
        (
            {"devices": ("cpu", "cpu"), "dtypes": (torch.float32, "float64")},
            TypeError,
            r"dtypes\[1\] must be dtype",
        ),
        (
            {"devices": ("cpu", "cpu"), "dtypes": (torch.float32, torch.int64)},
            ValueError,
            "dtype must be one of",
        ),
        (
            {"seed": -1, "devices": ("cpu", "cpu"), "dtypes": _DTYPES},
            ValueError,
            "seed must be an int >= 0",
        ),
        ({"x": torch.ones(2, 3, dtype=torch.long)}, TypeError, "floating-point"),
        (
            {"kappa": 0.5, "devices": ("cpu", "cpu"), "dtypes": _DTYPES},
            ValueError,
            "kappa must be a finite number >= 1",
        ),
        ({"kappa": "1"}, TypeError, "kappa must be a real number"),
        ({"module": "ln"}, TypeError, "module must be Module"),
    ],
)
def test_parity_validates_arguments(kwargs, exc, pattern):
    args = {"module": nn.LayerNorm(3), "x": torch.ones(2, 3)} | kwargs
    module, x = args.pop("module"), args.pop("x")
    with pytest.raises(exc, match=pattern):
        check_device_parity(module, x, **args)


class _LostFirstLayerGradient(nn.Module):
    """Deep tanh net whose float32 path drops the first layer's weight gradient."""

    def __init__(self) -> None:
        super().__init__()
        with seeded_global_rng(0):
            self.l1 = nn.Linear(32, 32)
            self.net = nn.Sequential(*[m for _ in range(7) for m in (nn.Linear(32, 32), nn.Tanh())])
            self.out = nn.Linear(32, 4)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(0.2)  # small gradients reach l1

    def forward(self, x):
        w = self.l1.weight
        if x.dtype == torch.float32:
            w = w.detach() + 0 * w  # the bug: no gradient flows to l1.weight
        return self.out(self.net(nn.functional.linear(x, w, self.l1.bias)))


def test_a_gradient_lost_in_a_layer_with_small_gradients_is_caught(device):
    module = _LostFirstLayerGradient().to(device)
    with pytest.raises(PropertyViolation, match=r"grad of l1\.weight differs"):
        check_device_parity(
            module, _randn((8, 32), 3, device), devices=(device, device), dtypes=_DTYPES
        )
