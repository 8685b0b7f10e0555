"""check_train_eval_contract and ModuleSnapshot.

Each broken layer below has exactly one bug the contract check must catch; the
correct torch/netprops layers must pass, and every check must leave the module
(modes, parameters, buffers, generators, attributes) and the global RNG as it found them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprops import PropertyViolation, make_generator, seeded_global_rng
from netprops.checks.contract import ModuleSnapshot, check_train_eval_contract
from netprops.layers.dropout import DropConnectConv2d, DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm


def _randn(shape, seed, device, dtype=torch.float32, offset=0.0):
    g = make_generator(seed, device)
    return (torch.randn(shape, generator=g, device=device, dtype=torch.float64) + offset).to(dtype)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(module, before):
    after = module.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


# --------------------------------------------------------------------------- broken layers
class EvalUpdatingBatchNorm(nn.BatchNorm1d):
    """Bug: always runs in training mode, so eval forwards update the running statistics."""

    def forward(self, x):
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, True, 0.1, self.eps
        )


class BiasedRunningVarBatchNorm(nn.BatchNorm1d):
    """Bug: stores the biased batch variance in running_var."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=0, correction=0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class KerasMomentumBatchNorm(nn.BatchNorm1d):
    """Bug: Keras' momentum convention x̂ ← m·x̂ + (1 − m)·x_t with torch's m = 0.1."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=0, correction=1)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, 1 - self.momentum)
            self.running_var.lerp_(var, 1 - self.momentum)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class EvalBatchStatsBatchNorm(nn.BatchNorm1d):
    """Bug: running statistics updated correctly, but eval normalizes with the batch's."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class EvalIgnoresVarBatchNorm(nn.BatchNorm1d):
    """Bug: eval divides by √(1 + ε) instead of √(running_var + ε) (invisible at init)."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        ones = torch.ones_like(self.running_var)
        return F.batch_norm(
            x, self.running_mean, ones, self.weight, self.bias, False, 0.0, self.eps
        )


class UntrackedBatchStatsBatchNorm(nn.BatchNorm1d):
    """Correct: track_running_stats=False (buffers kept) and batch statistics in both modes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.track_running_stats = False

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class AlwaysDropout(nn.Module):
    """Bug: applies dropout in eval mode too."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=True)


class RandomInEval(nn.Module):
    """Bug: draws from torch's global RNG in eval mode (the output does not show it)."""

    def forward(self, x):
        return x + 0.0 * torch.rand_like(x)


class HeldGeneratorInEval(nn.Module):
    """Bug: draws from its own generator in eval mode (the output does not show it)."""

    def __init__(self, device) -> None:
        super().__init__()
        self.generator = make_generator(0, device)

    def forward(self, x):
        noise = torch.rand(x.shape, generator=self.generator, device=x.device)
        return x + 0.0 * noise


class Counting(nn.Module):
    """Bug: eval output depends on how often the module ran (no RNG involved)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * (1.0 + 1e-3 * self.calls)


class DropConnect(nn.Module):
    """A correct DropConnect linear layer: masked weights in train mode, F.linear in eval."""

    def __init__(
        self, n_in: int, n_out: int, p: float, device, masked_in_eval: bool = False
    ) -> None:
        super().__init__()
        self.p = p
        self.masked_in_eval = masked_in_eval
        g = make_generator(1, device)
        self.weight = nn.Parameter(torch.randn(n_out, n_in, generator=g, device=device) / n_in**0.5)
        self.bias = nn.Parameter(torch.randn(n_out, generator=g, device=device))
        self.generator = make_generator(2, device)
        # a fixed mask: with masked_in_eval the eval path wrongly keeps masking (the bug)
        self.register_buffer("fixed_mask", torch.rand(n_out, n_in, generator=g, device=device) > p)

    def forward(self, x):
        if self.training:
            keep = torch.rand(self.weight.shape, generator=self.generator, device=x.device) > self.p
            return F.linear(x, self.weight * keep / (1 - self.p), self.bias)
        if self.masked_in_eval:
            return F.linear(x, self.weight * self.fixed_mask, self.bias)
        return x @ self.weight.T + self.bias  # not bitwise F.linear: the check allows rounding


class DropConnectConv(nn.Conv2d):
    """A correct DropConnect conv layer (eval: the plain convolution)."""

    def __init__(self, *args, p: float = 0.3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.p = p

    def forward(self, x):
        if self.training:
            return F.dropout(super().forward(x), self.p)
        return super().forward(x)


def _mlp(device):
    with seeded_global_rng(0):
        return nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4)
        ).to(device)


# --------------------------------------------------------------------------- passing layers
@pytest.mark.parametrize(
    "factory",
    [
        lambda d: nn.LayerNorm(8, device=d),
        lambda d: LayerNorm(8, device=d),
        lambda d: nn.BatchNorm1d(8, device=d),
        lambda d: BatchNorm1d(8, device=d),
        lambda d: nn.BatchNorm1d(8, momentum=None, device=d),
        lambda d: BatchNorm1d(8, momentum=None, device=d),
        lambda d: nn.BatchNorm1d(8, track_running_stats=False, device=d),
        lambda d: nn.Dropout(0.4),
        lambda d: nn.AlphaDropout(0.2),
        lambda d: Dropout(0.4, generator=make_generator(0, d)),
        lambda d: DropConnectLinear(8, 5, p=0.5, generator=make_generator(1, d), device=d),
        lambda d: DropConnectLinear(
            8, 5, per_sample=True, generator=make_generator(2, d), device=d
        ),
        _mlp,
    ],
    ids=[
        "nn.LayerNorm",
        "LayerNorm",
        "nn.BatchNorm1d",
        "BatchNorm1d",
        "nn.BatchNorm1d-cumulative",
        "BatchNorm1d-cumulative",
        "nn.BatchNorm1d-no-stats",
        "nn.Dropout",
        "nn.AlphaDropout",
        "Dropout",
        "DropConnectLinear",
        "DropConnectLinear-per-sample",
        "mlp",
    ],
)
def test_correct_layers_keep_the_contract(device, factory):
    module = factory(device)
    x = _randn((6, 8), 3, device, offset=1.5)
    before = _state(module)
    result = check_train_eval_contract(module, x, seed=1)
    assert result.statistic <= result.bound == 1.0
    assert module.training  # modules start in train mode and stay there
    _assert_same_state(module, before)


@pytest.mark.parametrize("cls", [nn.BatchNorm2d, BatchNorm2d])
def test_batch_norm_2d_update_follows_torch_rule(device, cls):
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Conv2d(3, 4, 3), cls(4), nn.Dropout2d(0.2)).to(device)
    result = check_train_eval_contract(net, _randn((2, 3, 5, 5), 4, device, offset=-2.0))
    assert set(result.details["batchnorm_like"]) == {"1"}
    assert result.details["dropout_like"] == {"2": "identity"}
    assert result.details["scores"]["1.running_var update"] <= 1.0


def test_cumulative_average_after_earlier_batches(device):
    """momentum=None: the update weight is 1/num_batches_tracked, also after earlier batches."""
    bn = nn.BatchNorm1d(5, momentum=None, device=device).train()
    with torch.no_grad():
        for seed in range(3):
            bn(_randn((4, 5), 10 + seed, device, offset=seed))
    assert int(bn.num_batches_tracked) == 3
    result = check_train_eval_contract(bn, _randn((4, 5), 20, device, offset=5.0))
    assert result.details["scores"]["module.running_mean update"] <= 1.0
    assert int(bn.num_batches_tracked) == 3


def test_drop_connect_eval_is_plain_linear_and_conv(device):
    layer = DropConnect(8, 5, 0.5, device)
    net = nn.Sequential(layer, nn.BatchNorm1d(5, device=device))
    g_state = layer.generator.get_state()
    result = check_train_eval_contract(net, _randn((4, 8), 5, device))
    assert result.details["dropout_like"] == {"0": "F.linear"}
    assert result.details["scores"]["0 eval = F.linear"] <= 1.0
    # the train-mode forward (for the BatchNorm update) drew from the layer's generator
    assert torch.equal(layer.generator.get_state(), g_state)
    with seeded_global_rng(0):
        conv = DropConnectConv(3, 4, 3, stride=2, padding=1, p=0.3).to(device)
    result = check_train_eval_contract(conv, _randn((2, 3, 7, 7), 6, device))
    assert result.details["dropout_like"] == {"module": "conv2d"}


# --------------------------------------------------------------------------- broken layers fail
def test_batch_norm_updating_stats_in_eval_fails(device):
    bn = EvalUpdatingBatchNorm(6, device=device)
    before = _state(bn)
    with pytest.raises(PropertyViolation, match=r"eval-mode forward changed.*running_mean") as exc:
        check_train_eval_contract(bn, _randn((5, 6), 7, device, offset=3.0), seed=11)
    text = str(exc.value)
    for part in (
        "statistic:",
        "bound:     <= 0",
        "seed:      11",
        "reproduce: netprops.checks.check_train_eval_contract(module, x, seed=11, n_repeats=3)",
    ):
        assert part in text
    _assert_same_state(bn, before)
    assert bn.training


def test_biased_running_var_fails(device):
    bn = BiasedRunningVarBatchNorm(6, device=device)
    with pytest.raises(PropertyViolation, match=r"running_var after a train-mode forward") as exc:
        check_train_eval_contract(bn, _randn((8, 6), 8, device, offset=1.0))
    assert "unbiased batch variance" in str(exc.value)
    assert float(bn.running_var.max()) == 1.0  # restored


def test_keras_momentum_convention_fails(device):
    with pytest.raises(PropertyViolation, match="running_mean after a train-mode forward"):
        check_train_eval_contract(
            KerasMomentumBatchNorm(6, device=device), _randn((8, 6), 9, device, offset=2.0)
        )


def test_dropout_active_in_eval_fails(device):
    net = nn.Sequential(nn.Identity(), AlwaysDropout(0.5))
    with pytest.raises(
        PropertyViolation, match=r"'1' .*AlwaysDropout.* is not the identity in eval"
    ):
        check_train_eval_contract(net, _randn((4, 8), 10, device))


def test_drop_connect_masking_in_eval_fails(device):
    layer = DropConnect(8, 5, 0.5, device, masked_in_eval=True)
    with pytest.raises(PropertyViolation, match=r"differs from F\.linear"):
        check_train_eval_contract(layer, _randn((4, 8), 12, device))


@pytest.mark.parametrize("cls", [EvalBatchStatsBatchNorm, EvalIgnoresVarBatchNorm])
def test_batch_norm_eval_not_using_running_stats_fails(device, cls):
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Linear(6, 6), cls(6)).to(device)
    before = _state(net)
    x = _randn((16, 6), 22, device, offset=1.0) * 2
    with pytest.raises(PropertyViolation, match=r"'1' .*does not compute F\.batch_norm") as exc:
        check_train_eval_contract(net, x)
    text = str(exc.value)
    assert cls.__name__ in text
    for part in ("layer: 1", "index: (", "expected: ", "running_var: "):
        assert part in text
    _assert_same_state(net, before)
    assert net.training


def _affine_batch_norm(cls, affine, device, dtype):
    bn = cls(5, affine=affine, device=device, dtype=dtype)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(_randn((5,), 30, device, dtype, offset=1.0))
            bn.bias.copy_(_randn((5,), 31, device, dtype))
    shape = (4, 5, 3, 2) if cls in (nn.BatchNorm2d, BatchNorm2d) else (4, 5, 3)
    with torch.no_grad():  # earlier batches: running statistics away from (0, 1)
        bn.train()(_randn(shape, 32, device, dtype, offset=-3.0) * 2)
    return bn, shape


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "cls",
    [nn.BatchNorm1d, nn.BatchNorm2d, BatchNorm1d, BatchNorm2d],
    ids=lambda c: f"{c.__module__.split('.')[0]}.{c.__name__}",
)
def test_correct_batch_norm_eval_matches_f_batch_norm(device, cls, dtype, affine):
    bn, shape = _affine_batch_norm(cls, affine, device, dtype)
    before = _state(bn)
    result = check_train_eval_contract(bn, _randn(shape, 33, device, dtype, offset=-2.0), seed=2)
    assert result.details["batchnorm_eval"] == {"module": "F.batch_norm with running statistics"}
    assert result.details["batchnorm_train"] == {"module": "F.batch_norm with batch statistics"}
    eval_scores = [v for k, v in result.details["scores"].items() if "running statistics" in k]
    assert len(eval_scores) == 2  # the eval pass and the eval forward after the train forward
    assert max(eval_scores) <= 1.0
    train_scores = [v for k, v in result.details["scores"].items() if "batch statistics" in k]
    assert len(train_scores) == 1 and train_scores[0] <= 1.0
    _assert_same_state(bn, before)


@pytest.mark.parametrize(
    "factory",
    [
        lambda d: nn.BatchNorm1d(5, track_running_stats=False, device=d),
        lambda d: BatchNorm1d(5, track_running_stats=False, device=d),
        lambda d: UntrackedBatchStatsBatchNorm(5, device=d),
    ],
    ids=["nn.BatchNorm1d", "BatchNorm1d", "buffers-kept"],
)
def test_untracked_batch_norm_uses_batch_stats_in_eval_legitimately(device, factory):
    bn = factory(device)
    before = _state(bn)
    result = check_train_eval_contract(bn, _randn((6, 5), 34, device, offset=2.0))
    assert result.statistic <= 1.0
    if bn.running_mean is not None:  # BatchNorm-like by its buffers, but exempt
        assert "track_running_stats=False" in result.details["batchnorm_eval"]["module"]
        assert "track_running_stats=False" in result.details["batchnorm_like"]["module"]
    # no running statistics: eval normalizes with the batch's, and that is what is checked
    assert not any("running statistics" in k for k in result.details["scores"])
    eval_scores = [v for k, v in result.details["scores"].items() if "eval" in k]
    assert len(eval_scores) == 2 and max(eval_scores) <= 1.0
    assert "batch statistics" in result.details["batchnorm_eval"]["module"]
    _assert_same_state(bn, before)


def test_cpu_check_does_not_initialize_cuda(monkeypatch):
    """CUDA generators are only looked at when CUDA is initialized already."""

    def no_cuda(*args, **kwargs):
        raise AssertionError("the check touched CUDA's generators for a CPU module")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", no_cuda)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", no_cuda)
    monkeypatch.setattr(torch.cuda, "init", no_cuda)
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    result = check_train_eval_contract(net, _randn((5, 4), 35, "cpu"))
    assert result.statistic <= 1.0
    with pytest.raises(PropertyViolation, match="drew random numbers from torch global CPU"):
        check_train_eval_contract(RandomInEval(), _randn((4, 3), 36, "cpu"))


def test_global_rng_draw_in_eval_fails_and_rng_is_restored(device):
    # the autouse fixture also fails this test if the CPU generator stayed advanced
    cuda_before = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    with pytest.raises(PropertyViolation, match="drew random numbers from torch global"):
        check_train_eval_contract(RandomInEval(), _randn((4, 3), 13, device))
    if cuda_before:
        assert all(
            torch.equal(a, b)
            for a, b in zip(cuda_before, torch.cuda.get_rng_state_all(), strict=True)
        )


def test_held_generator_draw_in_eval_fails_and_generator_is_restored(device):
    module = nn.Sequential(HeldGeneratorInEval(device))
    state = module[0].generator.get_state()
    with pytest.raises(PropertyViolation, match=r"drew random numbers from 0\.generator"):
        check_train_eval_contract(module, _randn((4, 3), 14, device))
    assert torch.equal(module[0].generator.get_state(), state)


def test_nondeterministic_eval_fails_and_attributes_are_restored(device):
    module = Counting()
    with pytest.raises(PropertyViolation, match="eval mode is not deterministic"):
        check_train_eval_contract(module, _randn((4, 3), 15, device), n_repeats=2)
    assert module.calls == 0


def test_mixed_modes_are_restored(device):
    net = _mlp(device).train()
    net[1].eval()
    net[3].eval()
    modes = [m.training for m in net.modules()]
    before = _state(net)
    check_train_eval_contract(net, _randn((6, 8), 16, device))
    assert [m.training for m in net.modules()] == modes
    _assert_same_state(net, before)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"n_repeats": 1}, ValueError, "n_repeats must be an int >= 2"),
        ({"n_repeats": 2.0}, TypeError, "n_repeats must be an int"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"x": "x"}, TypeError, "x must be a torch.Tensor"),
        ({"x": torch.ones(3)}, ValueError, "at least 2 dimensions"),
        ({"module": None}, TypeError, "module must be Module"),
    ],
)
def test_contract_validates_arguments(kwargs, exc, pattern):
    args = {"module": nn.Identity(), "x": torch.ones(2, 3)} | kwargs
    module, x = args.pop("module"), args.pop("x")
    with pytest.raises(exc, match=pattern):
        check_train_eval_contract(module, x, **args)


# --------------------------------------------------------------------------- ModuleSnapshot
def test_snapshot_restores_everything_a_forward_may_change(device):
    net = _mlp(device)
    holder = HeldGeneratorInEval(device)
    net.add_module("noise", holder)
    weight = net[0].weight
    snapshot = ModuleSnapshot(net)
    before = _state(net)
    gen_state = holder.generator.get_state()
    with torch.no_grad():
        weight.add_(1.0)
        net[4].bias = nn.Parameter(torch.zeros(4, device=device))
    with seeded_global_rng(0):
        net(_randn((4, 8), 17, device)).sum().backward()
    net.add_module("late", nn.Identity())
    holder.generator.manual_seed(123)
    net.eval()
    net.extra_attribute = 1
    changed = snapshot.changed_tensors()
    assert {"0.weight", "1.running_mean", "1.num_batches_tracked"} <= set(changed)
    assert snapshot.changed_generators() == ["noise.generator"]
    assert torch.equal(snapshot.saved("0.weight"), before["0.weight"])

    snapshot.restore()
    _assert_same_state(net, before)
    assert net[0].weight is weight
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(holder.generator.get_state(), gen_state)
    assert net.training and not hasattr(net, "extra_attribute") and not hasattr(net, "late")
    assert snapshot.changed_tensors() == {}
    with pytest.raises(KeyError):
        snapshot.saved("nope")


def test_snapshot_context_manager_restores_on_error(device):
    bn = nn.BatchNorm1d(3, device=device)
    before = _state(bn)

    def forward_then_fail():
        with ModuleSnapshot(bn):
            bn(_randn((4, 3), 18, device))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        forward_then_fail()
    _assert_same_state(bn, before)
    with pytest.raises(TypeError, match="module must be Module"):
        ModuleSnapshot(object())


def test_netprops_dropout_layers_keep_the_contract(device):
    g = make_generator(3, device)
    conv = DropConnectConv2d(3, 4, 3, stride=2, padding=1, generator=g, device=device)
    net = nn.Sequential(conv, BatchNorm2d(4, device=device), Dropout(0.2).manual_seed(5))
    result = check_train_eval_contract(net, _randn((2, 3, 7, 7), 21, device))
    assert result.details["dropout_like"] == {"0": "conv2d", "2": "identity"}
    assert result.statistic <= 1.0
    # the train-mode forward created Dropout's generator from its pending seed: undone
    assert net[2].generator is None
    assert net[2]._pending_seed == 5
    assert conv.last_mask is None


# --------------------------------------------------------------------------- train → eval → train
class InPlaceWeightDrop(nn.Linear):
    """Bug: the training forward writes its dropped weights into the parameter, in place."""

    def __init__(self, *args, p: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.p = p

    def forward(self, x):
        if self.training:
            keep = (torch.rand_like(self.weight) > self.p).to(self.weight.dtype)
            with torch.no_grad():
                self.weight.mul_(keep / (1 - self.p))
        return F.linear(x, self.weight, self.bias)


class FusesInEval(nn.Linear):
    """Bug: eval caches a fused [W | b] matrix that the next training forward trips over."""

    def forward(self, x):
        fused = getattr(self, "fused", None)
        if not self.training:
            self.fused = torch.cat([self.weight, self.bias[:, None]], dim=1)
            return F.linear(x, self.weight, self.bias)
        if fused is not None:
            return F.linear(x, fused)  # shape mismatch: raises
        return F.linear(x, self.weight, self.bias)


class StickyEvalDropout(nn.Module):
    """Bug: eval sets p to 0 (to be the identity) and never puts it back."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            self.p = 0.0
            return x
        return F.dropout(x, self.p, training=True)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda d: InPlaceWeightDrop(8, 5, p=0.5, device=d),
            r"train-mode forward changed the module's parameters \['weight'\]",
        ),
        (
            lambda d: FusesInEval(8, 5, device=d),
            "train-mode forward after the eval-mode forwards raised RuntimeError",
        ),
        (
            lambda d: StickyEvalDropout(0.3),
            "train-mode forward after the eval-mode forwards differs from the same forward",
        ),
    ],
    ids=["weight-drop-in-place", "crash-after-eval", "changed-after-eval"],
)
def test_layers_that_break_across_train_eval_train_fail(device, factory, message):
    with seeded_global_rng(0):
        module = factory(device)
    before = _state(module)
    with pytest.raises(PropertyViolation, match=message):
        check_train_eval_contract(module, _randn((4, 8), 50, device), seed=3)
    _assert_same_state(module, before)  # the parameter the forward overwrote is restored
    assert not hasattr(module, "fused")
    assert getattr(module, "p", 0.3) in (0.3, 0.5)


class UnbiasedOutputBatchNorm(nn.BatchNorm1d):
    """Bug: running statistics right, but the TRAINING output uses the unbiased variance."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        super().forward(x)  # the running statistics move as they should
        var, mean = torch.var_mean(x, dim=0, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class PerPixelOutputBatchNorm2d(nn.BatchNorm2d):
    """Bug: running statistics right, training statistics per (channel, pixel)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        super().forward(x)
        var, mean = torch.var_mean(x, dim=0, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize(
    ("cls", "shape"), [(UnbiasedOutputBatchNorm, (6, 4)), (PerPixelOutputBatchNorm2d, (3, 4, 2, 2))]
)
def test_batch_norm_training_output_is_compared_with_f_batch_norm(device, cls, shape):
    with seeded_global_rng(0):
        net = nn.Sequential(nn.Identity(), cls(4)).to(device)
    with pytest.raises(PropertyViolation, match=r"'1' .*does not compute F\.batch_norm .*in train"):
        check_train_eval_contract(net, _randn(shape, 51, device, offset=1.0))


class NoisyLinear(nn.Linear):
    """Gaussian weight noise in training (no ``p``); eval is the plain layer unless ``shrink``."""

    def __init__(self, *args, shrink: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shrink = shrink
        self.generator = make_generator(5, self.weight.device)

    def forward(self, x):
        if self.training:
            noise = torch.randn(
                self.weight.shape, generator=self.generator, device=x.device, dtype=x.dtype
            )
            return F.linear(x, self.weight * (1 + 0.1 * noise), self.bias)
        return F.linear(x, self.shrink * self.weight, self.bias)


def test_a_layer_random_in_train_is_recognized_by_behaviour(device):
    with seeded_global_rng(0):
        good = NoisyLinear(8, 5, device=device)
        bad = NoisyLinear(8, 5, shrink=0.9, device=device)
    result = check_train_eval_contract(good, _randn((4, 8), 52, device))
    assert result.details["dropout_like"] == {"module": "F.linear"}
    assert "plain layer" in result.details["random_in_train"]["module"]
    with pytest.raises(PropertyViolation, match=r"differs from F\.linear with its weights"):
        check_train_eval_contract(bad, _randn((4, 8), 52, device))
    # random without a derivable reference: reported, not judged (torch's RReLU is correct)
    result = check_train_eval_contract(nn.RReLU(), _randn((4, 8), 53, device))
    assert "no eval reference" in result.details["random_in_train"]["module"]
    assert result.details["dropout_like"] == {}


class GaussianDropout(nn.Module):
    """Multiplicative N(1, σ²) noise in training; eval scales by ``eval_scale`` (1 is correct)."""

    def __init__(self, sigma: float = 0.5, eval_scale: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.eval_scale = eval_scale

    def forward(self, x):
        if self.training:
            return x * (1 + self.sigma * torch.randn_like(x))
        return x * self.eval_scale


def test_declared_dropout_and_eval_reference(device):
    x = _randn((4, 8), 54, device)
    scaled = GaussianDropout(eval_scale=0.5)
    check_train_eval_contract(scaled, x)  # undeclared: random, no reference derivable
    with pytest.raises(PropertyViolation, match="is not the identity in eval mode"):
        check_train_eval_contract(scaled, x, kind="dropout")
    assert check_train_eval_contract(GaussianDropout(), x, kind="dropout").statistic == 0.0
    result = check_train_eval_contract(scaled, x, eval_reference=lambda t: 0.5 * t)
    assert result.details["scores"]["eval = eval_reference"] <= 1.0
    with pytest.raises(PropertyViolation, match=r"differs from eval_reference\(x\)") as exc:
        check_train_eval_contract(scaled, x, eval_reference=lambda t: t, seed=4)
    assert "eval_reference=...)" in str(exc.value)


class MyBatchNorm(nn.Module):
    """A user's BatchNorm whose statistics are not called running_mean/running_var."""

    def __init__(self, channels: int, unbiased: bool = False) -> None:
        super().__init__()
        self.eps = 1e-5
        self.unbiased = unbiased
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, channels))
        self.bias = nn.Parameter(torch.linspace(-0.5, 0.5, channels))
        self.register_buffer("mu", torch.zeros(channels))
        self.register_buffer("nu", torch.ones(channels))

    def forward(self, x):
        if not self.training:
            return F.batch_norm(x, self.mu, self.nu, self.weight, self.bias, False, 0.0, self.eps)
        var, mean = torch.var_mean(x, dim=0, correction=int(self.unbiased))
        with torch.no_grad():
            self.mu.lerp_(mean, 0.1)
            self.nu.lerp_(x.var(0), 0.1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def test_declared_batch_norm_gets_its_training_output_checked(device):
    x = _randn((6, 4), 55, device, offset=2.0)
    result = check_train_eval_contract(MyBatchNorm(4).to(device), x, kind="batch")
    assert result.details["batchnorm_train"] == {"module": "F.batch_norm with batch statistics"}
    assert result.details["stats_tracking"] == {"module": ["mu", "nu"]}
    assert "not in running_mean" in result.details["batchnorm_eval"]["module"]
    check_train_eval_contract(MyBatchNorm(4, unbiased=True).to(device), x)  # undeclared
    with pytest.raises(PropertyViolation, match=r"does not compute F\.batch_norm"):
        check_train_eval_contract(MyBatchNorm(4, unbiased=True).to(device), x, kind="batch")


class BatchStatsInstanceNorm(nn.InstanceNorm1d):
    """Bug: normalizes each channel over the batch too (BatchNorm's statistics)."""

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_with_running_statistics_keeps_the_contract(device, momentum):
    x = _randn((4, 3, 6), 56, device, offset=1.0)
    module = nn.InstanceNorm1d(3, affine=True, track_running_stats=True, momentum=momentum)
    result = check_train_eval_contract(module.to(device), x)
    assert result.details["batchnorm_train"] == {"module": "F.instance_norm with batch statistics"}
    assert "momentum" in result.details["batchnorm_like"]["module"]
    with pytest.raises(PropertyViolation, match=r"does not compute F\.instance_norm"):
        check_train_eval_contract(BatchStatsInstanceNorm(3).to(device), x)


@pytest.mark.parametrize(
    "factory",
    [
        lambda d: nn.Dropout1d(0.3),
        lambda d: nn.Sequential(nn.Unflatten(2, (2, 2)), nn.Dropout2d(0.3)),
        lambda d: nn.FeatureAlphaDropout(0.3),
        lambda d: nn.RReLU(),
        lambda d: nn.InstanceNorm1d(5, track_running_stats=True, device=d),
        lambda d: nn.GroupNorm(5, 5, device=d),
        lambda d: nn.RMSNorm(4, device=d),
        lambda d: torch.nn.utils.parametrizations.spectral_norm(nn.Linear(4, 4, device=d)),
        lambda d: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.2, batch_first=True, device=d),
    ],
    ids=[
        "Dropout1d",
        "Dropout2d",
        "FeatureAlphaDropout",
        "RReLU",
        "InstanceNorm1d-tracked",
        "GroupNorm",
        "RMSNorm",
        "spectral_norm",
        "TransformerEncoderLayer",
    ],
)
def test_more_torch_layers_keep_the_contract(device, factory):
    with seeded_global_rng(0):
        module = factory(device)
    before = _state(module)
    for seed in range(3):
        result = check_train_eval_contract(module, _randn((3, 5, 4), 57 + seed, device), seed=seed)
        assert result.statistic <= 1.0
    _assert_same_state(module, before)


def test_contract_declarations_are_validated():
    with pytest.raises(ValueError, match="kind must be one of 'dropout', 'batch', 'instance'"):
        check_train_eval_contract(nn.Identity(), torch.ones(2, 3), kind="layer")
    with pytest.raises(TypeError, match="eval_reference must be a callable"):
        check_train_eval_contract(nn.Identity(), torch.ones(2, 3), eval_reference=1.0)
    with pytest.raises(ValueError, match=r"eval_reference returned shape \(2,\)"):
        check_train_eval_contract(nn.Identity(), torch.ones(2, 3), eval_reference=lambda t: t[:, 0])
