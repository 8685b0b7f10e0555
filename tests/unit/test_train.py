"""netprops.train: the short-training engine and its History."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netprops
import netprops.models
from netprops.data import Data, Split, synthetic_dataset
from netprops.train import OPTIMIZERS, History, _show_progress, evaluate, make_optimizer, train

N_TRAIN, N_TEST, SHAPE = 300, 100, (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> Data:
    return synthetic_dataset(n_train=N_TRAIN, n_test=N_TEST, image_shape=SHAPE, seed=0)


def small_mlp(seed: int = 0, hidden: int = 32, dtype: torch.dtype = torch.float32) -> nn.Module:
    with netprops.seeded_global_rng(seed):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        ).to(dtype)


class BatchRecorder(nn.Module):
    """Wraps a model and records every training batch it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batches.append(x.detach().clone())
        return self.inner(x)


def exact_or_close(a, b, device) -> None:
    """Bitwise on CPU; on CUDA reductions may reorder, so compare closely."""
    if torch.device(device).type == "cpu":
        assert a == b
    else:
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------- learning


def test_training_learns_above_chance(tiny, device):
    model = small_mlp()
    history = train(model, tiny, steps=60, lr=1e-2, device=device, eval_every=20)
    assert history.final_test_accuracy > 0.5  # chance is 0.1
    first, last = history.train_loss[:10], history.train_loss[-10:]
    assert sum(last) < 0.5 * sum(first)
    assert history.test_loss[-1] < history.test_loss[0]
    assert next(model.parameters()).device.type == torch.device(device).type


def test_end_metrics_match_an_independent_evaluation(tiny, device):
    model = small_mlp()
    history = train(model, tiny, steps=10, device=device, track=())
    assert model.training  # train() leaves the model in training mode
    test = tiny.test.to(device)
    assert evaluate(model, test) == (history.test_loss[-1], history.test_accuracy[-1])
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(test.float()).double()
    expected_loss = F.cross_entropy(logits, test.labels).item()
    expected_acc = (logits.argmax(1) == test.labels).double().mean().item()
    assert history.test_loss[-1] == pytest.approx(expected_loss, rel=1e-5)
    assert history.test_accuracy[-1] == pytest.approx(expected_acc, abs=1e-12)


# ------------------------------------------------------------ reproducibility


def test_same_seed_gives_identical_history(tiny, device):
    a_model, b_model = small_mlp(), small_mlp()
    a = train(a_model, tiny, steps=12, seed=5, device=device, eval_every=4)
    b = train(b_model, tiny, steps=12, seed=5, device=device, eval_every=4)
    exact_or_close(a.train_loss, b.train_loss, device)
    exact_or_close(a.test_loss, b.test_loss, device)
    exact_or_close(a.grad_norms["1"], b.grad_norms["1"], device)
    assert a.test_accuracy == b.test_accuracy
    assert a.eval_steps == b.eval_steps
    assert a.config == b.config
    if torch.device(device).type == "cpu":
        for p, q in zip(a_model.parameters(), b_model.parameters(), strict=True):
            assert torch.equal(p, q)


def test_different_seed_differs(tiny, device):
    a = train(small_mlp(), tiny, steps=6, seed=1, device=device, track=("loss",))
    b = train(small_mlp(), tiny, steps=6, seed=2, device=device, track=("loss",))
    assert a.train_loss[0] != b.train_loss[0]  # different first batch
    assert a.seed == 1
    assert b.seed == 2


# ---------------------------------------------------------------- semantics


def test_epochs_cover_every_example_once_per_epoch(tiny, device):
    model = BatchRecorder(small_mlp())
    history = train(model, tiny, epochs=2, batch_size=128, device=device, track=())
    assert history.steps == 6
    assert history.config["steps_per_epoch"] == 3
    assert [b.shape[0] for b in model.batches] == [128, 128, 44] * 2
    expected = tiny.train.to(device).float().flatten(1).sum(1).sort().values
    for epoch in range(2):
        seen = torch.cat(model.batches[3 * epoch : 3 * epoch + 3]).flatten(1).sum(1)
        torch.testing.assert_close(seen.sort().values, expected)
    assert not torch.equal(model.batches[0], model.batches[3])  # reshuffled


def test_steps_run_across_epochs(tiny, device):
    model = BatchRecorder(small_mlp())
    history = train(model, tiny, steps=4, batch_size=128, device=device, track=("loss",))
    assert [b.shape[0] for b in model.batches] == [128, 128, 44, 128]
    assert history.steps == 4
    assert len(history.train_loss) == 4
    assert history.samples_per_s > 0


@pytest.mark.parametrize(
    ("steps", "eval_every", "expected"),
    [(7, 3, [3, 6, 7]), (6, 3, [3, 6]), (5, None, [5]), (2, 10, [2])],
)
def test_evaluates_at_the_end(tiny, device, steps, eval_every, expected):
    history = train(small_mlp(), tiny, steps=steps, eval_every=eval_every, device=device)
    assert history.eval_steps == expected
    assert len(history.test_accuracy) == len(history.test_loss) == len(expected)
    assert len(history.train_accuracy) == len(expected)
    assert all(0.0 <= a <= 1.0 for a in history.train_accuracy)
    assert len(history.train_loss) == steps
    assert all(len(v) == steps for v in history.grad_norms.values())


def test_train_accuracy_counts_the_batches_since_last_eval(tiny, device):
    """A model that always predicts class 0 has train accuracy = share of label 0 seen."""

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([10.0] + [0.0] * 9))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 10)

    model = BatchRecorder(Constant())
    history = train(model, tiny, epochs=1, batch_size=100, lr=1e-9, device=device)
    labels0 = (tiny.train.labels == 0).double().mean().item()
    assert history.train_accuracy == [pytest.approx(labels0, abs=1e-12)]


def test_train_accuracy_across_epochs_and_mid_epoch_evaluations(tiny, device):
    """Each entry is the share of the examples seen since the previous evaluation that the
    (constant) model classifies right, whatever epoch boundaries lie in between."""

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([0.0, 0.0, 10.0] + [0.0] * 7))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 10)

    model = BatchRecorder(Constant())
    # 300 examples in batches of 64: 5 steps an epoch; evaluations at 4, 8 and 12 straddle
    # the epoch ends at 5 and 10.
    history = train(model, tiny, steps=12, batch_size=64, eval_every=4, lr=1e-9, device=device)
    split = tiny.train.to(device)
    label_of = {
        row.cpu().numpy().tobytes(): int(y)
        for row, y in zip(split.float(), split.labels, strict=True)
    }
    assert len(label_of) == len(split)  # every image is unique, so rows identify examples
    seen = [[label_of[row.cpu().numpy().tobytes()] for row in batch] for batch in model.batches]
    expected = [
        sum(label == 2 for batch in seen[s : s + 4] for label in batch)
        / sum(len(batch) for batch in seen[s : s + 4])
        for s in (0, 4, 8)
    ]
    assert history.eval_steps == [4, 8, 12]
    assert history.train_accuracy == pytest.approx(expected, abs=1e-12)
    assert len(set(expected)) > 1  # the entries are not all the same share


def test_track_nothing_records_only_evaluations(tiny, device):
    history = train(small_mlp(), tiny, steps=3, device=device, track=())
    assert history.train_loss == []
    assert history.train_accuracy == []
    assert history.grad_norms == {}
    assert history.eval_steps == [3]


def test_train_subset(tiny, device):
    model = BatchRecorder(small_mlp())
    history = train(model, tiny, epochs=1, batch_size=64, train_subset=100, device=device)
    assert history.config["n_train"] == 100
    assert [b.shape[0] for b in model.batches] == [64, 36]
    # The subset is fixed, whatever the seed.
    other = BatchRecorder(small_mlp())
    train(other, tiny, epochs=1, batch_size=64, train_subset=100, seed=9, device=device)
    rows = torch.cat(model.batches).flatten(1).sum(1).sort().values
    torch.testing.assert_close(torch.cat(other.batches).flatten(1).sum(1).sort().values, rows)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains(tiny, device, optimizer):
    model = small_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    history = train(model, tiny, steps=3, optimizer=optimizer, weight_decay=1e-4, device=device)
    assert all(math.isfinite(v) for v in history.train_loss)
    assert history.config["optimizer"] == optimizer
    assert any(
        not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters(), strict=True)
    )


def test_make_optimizer_kinds():
    params = [nn.Parameter(torch.zeros(3))]
    assert isinstance(make_optimizer("adamw", params, lr=0.1), torch.optim.AdamW)
    sgd = make_optimizer("sgd_momentum", params, lr=0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9
    assert make_optimizer("sgd", params, lr=0.1).defaults["momentum"] == 0


def test_float64_model_trains_on_float64_inputs(tiny, device):
    model = small_mlp(dtype=torch.float64)
    history = train(model, tiny, steps=3, device=device)
    assert history.config["dtype"] == "float64"
    assert math.isfinite(history.test_loss[-1])


# ------------------------------------------------------------- grad norms / clip


def test_grad_norm_keys_are_parameter_bearing_layers(tiny, device):
    history = train(small_mlp(), tiny, steps=2, device=device)
    assert set(history.grad_norms) == {"1", "3"}  # the two Linear layers of the Sequential


def test_grad_norms_match_a_reference_gradient(tiny, device):
    """With one full batch, step 1's gradient is the full-data gradient at init."""
    reference = small_mlp(seed=3).to(device)
    split = tiny.train.to(device)
    F.cross_entropy(reference(split.float()), split.labels).backward()
    expected = {
        name: torch.sqrt(sum(p.grad.double().square().sum() for p in module.parameters())).item()
        for name, module in reference.named_children()
        if list(module.parameters())
    }
    history = train(small_mlp(seed=3), tiny, steps=1, batch_size=N_TRAIN, device=device)
    for name, value in expected.items():
        assert history.grad_norms[name][0] == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize("clip", [1e-3, 0.05])
def test_grad_clip_limits_the_update(tiny, device, clip):
    """Plain SGD with lr=1 moves the parameters by exactly the clipped gradient."""

    def update_norm(grad_clip):
        model = small_mlp(seed=4).to(device)
        before = [p.detach().clone() for p in model.parameters()]
        history = train(
            model,
            tiny,
            steps=1,
            batch_size=N_TRAIN,
            optimizer="sgd",
            lr=1.0,
            grad_clip=grad_clip,
            device=device,
        )
        delta = torch.sqrt(
            sum(
                (p.detach() - b).double().square().sum()
                for p, b in zip(model.parameters(), before, strict=True)
            )
        ).item()
        raw = math.sqrt(sum(v[0] ** 2 for v in history.grad_norms.values()))
        return delta, raw

    unclipped, raw = update_norm(None)
    assert unclipped == pytest.approx(raw, rel=1e-4)
    assert raw > 0.05
    clipped, raw_again = update_norm(clip)
    assert raw_again == pytest.approx(raw, rel=1e-6)  # grad_norms are recorded before clipping
    assert clipped == pytest.approx(clip, rel=1e-3)


# ------------------------------------------------------------------ History


def test_history_json_round_trip(tiny, device):
    history = train(small_mlp(), tiny, steps=5, eval_every=2, device=device)
    again = History.from_json(history.to_json())
    assert again == history
    assert History.from_dict(history.to_dict()) == history
    assert again.train_loss == history.train_loss  # floats survive exactly


@pytest.mark.parametrize(
    "payload",
    [
        {"format": "something-else", "version": 1},
        {"format": "netprops.history", "version": 99},
        {"format": "netprops.history", "version": 1, "bogus_field": 1},
    ],
)
def test_history_from_dict_rejects_foreign_payloads(payload):
    with pytest.raises(ValueError, match="payload"):
        History.from_dict(payload)


def test_area_under_log_loss_is_mean_log_loss():
    history = History(train_loss=[2.0, 1.0, 0.5, 0.25])
    expected = torch.tensor(history.train_loss, dtype=torch.float64).log().mean().item()
    assert history.area_under_log_loss() == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(History(train_loss=[1.0, 0.0]).area_under_log_loss())
    with pytest.raises(ValueError, match="loss"):
        History().area_under_log_loss()


def test_steps_to_target():
    history = History(eval_steps=[10, 20, 30], test_accuracy=[0.5, 0.8, 0.79])
    assert history.steps_to_target(0.8) == 20
    assert history.steps_to_target(0.4) == 10
    assert history.steps_to_target(0.81) == math.inf
    with pytest.raises(ValueError, match="accuracy"):
        history.steps_to_target(1.5)


def test_history_str_is_readable(tiny, device):
    history = train(small_mlp(), tiny, steps=2, device=device)
    text = str(history)
    assert "2 steps" in text
    assert "test accuracy" in text
    with pytest.raises(ValueError, match="evaluation"):
        History().final_test_accuracy


# ---------------------------------------------------------------- progress


def test_progress_is_silent_under_pytest(tiny, device, capsys):
    assert _show_progress(None) is False
    train(small_mlp(), tiny, steps=2, device=device)
    assert capsys.readouterr().err == ""


def test_progress_bar_when_asked(tiny, device, capsys):
    pytest.importorskip("tqdm")
    train(small_mlp(), tiny, steps=2, device=device, progress=True)
    assert "train synthetic" in capsys.readouterr().err


# -------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 2, "epochs": 1}, ValueError, "exactly one of epochs and steps"),
        ({}, ValueError, "exactly one of epochs and steps"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"steps": -1}, ValueError, "steps"),
        ({"steps": 1.5}, TypeError, "steps"),
        ({"steps": 1, "batch_size": 0}, ValueError, "batch_size"),
        ({"steps": 1, "optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'adam'"),
        ({"steps": 1, "lr": 0.0}, ValueError, "lr"),
        ({"steps": 1, "lr": float("nan")}, ValueError, "lr"),
        ({"steps": 1, "weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"steps": 1, "seed": -1}, ValueError, "seed"),
        ({"steps": 1, "device": "tpu"}, ValueError, "device"),
        ({"steps": 1, "eval_every": 0}, ValueError, "eval_every"),
        ({"steps": 1, "grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"steps": 1, "track": ("loss", "bogus")}, ValueError, "track item"),
        ({"steps": 1, "track": "loss"}, TypeError, "track"),
        ({"steps": 1, "progress": "yes"}, TypeError, "progress"),
        ({"steps": 1, "train_subset": 0}, ValueError, "train_subset"),
        ({"steps": 1, "train_subset": N_TRAIN + 1}, ValueError, "train_subset"),
        ({"steps": 1, "monitor": 50}, TypeError, "monitor"),
    ],
)
def test_train_validates_arguments(tiny, kwargs, error, match):
    with pytest.raises(error, match=match):
        train(small_mlp(), tiny, **kwargs)


def test_evaluate_validates_arguments(tiny):
    with pytest.raises(TypeError, match="split"):
        evaluate(small_mlp(), tiny)
    with pytest.raises(TypeError, match="model"):
        evaluate(None, tiny.test)


def test_train_validates_model_and_data(tiny):
    with pytest.raises(TypeError, match="model"):
        train("mlp", tiny, steps=1)
    with pytest.raises(TypeError, match="data"):
        train(small_mlp(), (tiny.train, tiny.test), steps=1)
    with pytest.raises(ValueError, match="trainable parameters"):
        train(nn.Flatten(), tiny, steps=1)


class SometimesExtra(nn.Module):
    """An MLP plus a branch used only on some steps (its parameters then get no gradient)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.net = small_mlp(seed)
        with netprops.seeded_global_rng(seed + 1):
            self.extra = nn.Linear(64, 10)
        self.use_extra = True

    def forward(self, x):
        out = self.net(x)
        return out + self.extra(x.flatten(1)) if self.use_extra else out


@pytest.mark.parametrize(
    ("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
)
@pytest.mark.parametrize(
    "extra_on", [(True, True, True), (True, False, True), (False, False, True)]
)
def test_engine_adam_matches_torch_optim_bitwise(device, name, cls, extra_on):
    """The engine's direct fused-kernel Adam is torch.optim's fused Adam, minus bookkeeping,
    including parameters that get no gradient on some steps."""
    from netprops.train import _engine_optimizer

    def run(make):
        model = SometimesExtra(seed=6).to(device)
        params = list(model.parameters())
        opt = make(params)
        g = netprops.make_generator(0, device)
        for use in extra_on:
            model.use_extra = use
            x = torch.randn(16, 1, 8, 8, generator=g, device=device)
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
        return [p.detach() for p in params]

    ours = run(lambda ps: _engine_optimizer(name, ps, lr=1e-2, weight_decay=0.1)[0])
    reference = run(lambda ps: cls(ps, lr=1e-2, weight_decay=0.1, fused=True))
    for p, q in zip(ours, reference, strict=True):
        assert torch.equal(p, q)


class _WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        with netprops.seeded_global_rng(0):
            self.fc = nn.Linear(784, 10)
            self.unused = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_grad_norm_tracking_survives_a_parameter_without_gradient():
    data = synthetic_dataset(n_train=64, n_test=32, seed=0)
    history = train(_WithUnused(), data, steps=3, batch_size=32, seed=0)
    assert history.grad_norms["unused"] == [0.0, 0.0, 0.0]
    assert all(v > 0 for v in history.grad_norms["fc"])
    with netprops.seeded_global_rng(0):  # the same first Linear, without the unused layer
        alone = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    reference = train(alone, data, steps=3, batch_size=32, seed=0)
    assert history.grad_norms["fc"] == reference.grad_norms["1"]


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        with netprops.seeded_global_rng(0):
            self.a = nn.Linear(784, 64, bias=False)
            self.a2 = nn.Linear(784, 64, bias=False)
            self.b = nn.Linear(64, 10)
        self.a2.weight = self.a.weight  # one parameter owned by two modules

    def forward(self, x):
        x = x.flatten(1)
        return self.b(torch.relu(self.a(x)) + torch.relu(self.a2(x)))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_shared_parameter_is_stepped_once(optimizer):
    # one full-batch step must equal torch's optimizer on model.parameters() (deduplicated)
    data = synthetic_dataset(n_train=32, n_test=16, seed=1)
    ours, ref = _Tied(), _Tied()
    train(ours, data, steps=1, batch_size=32, optimizer=optimizer, lr=0.01, track=())
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(ref.parameters(), lr=0.01)
    x, y = data.train.float(), data.train.labels
    perm = torch.randperm(32, generator=netprops.make_generator(netprops.derive_seed(0, "shuffle")))
    torch.nn.functional.cross_entropy(ref(x[perm]), y[perm]).backward()
    opt.step()
    torch.testing.assert_close(ours.a.weight, ref.a.weight)
    torch.testing.assert_close(ours.b.weight, ref.b.weight)


def test_track_order_does_not_depend_on_the_collection():
    data = synthetic_dataset(n_train=64, n_test=32, seed=0)
    runs = [
        train(_WithUnused(), data, steps=2, batch_size=32, track=track).config["track"]
        for track in (
            {"grad_norms", "loss", "accuracy"},
            ("accuracy", "loss", "loss", "grad_norms"),
        )
    ]
    assert runs[0] == runs[1] == ["loss", "accuracy", "grad_norms"]


# ---------------------------------------------------------------- monitor


def test_without_a_monitor_no_hook_is_ever_attached(tiny, device):
    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hooked = 0

        def forward(self, x):
            self.hooked += bool(self._forward_hooks) or bool(
                nn.modules.module._global_forward_hooks
            )
            return x

    spy = Spy()
    model = nn.Sequential(spy, small_mlp())
    history = train(model, tiny, steps=12, device=device)
    assert spy.hooked == 0
    assert history.monitor is None and history.to_dict()["monitor"] is None


def test_an_unused_parameter_is_diagnosed_by_the_monitor(device):
    from netprops.monitor import Monitor

    data = synthetic_dataset(n_train=64, n_test=32, seed=0)
    history = train(
        _WithUnused(), data, steps=3, batch_size=32, device=device, monitor=Monitor(every=2)
    )
    flow = history.monitor.violation("gradients_flow")
    assert (flow.step, flow.layer) == (0, "unused.weight")
    assert history.monitor.steps == (0, 2)
    assert history.grad_norms["unused"] == [0.0, 0.0, 0.0]  # tracking unchanged by the monitor


def test_history_without_a_monitor_field_still_reads(tiny):
    payload = train(small_mlp(), tiny, steps=2).to_dict()
    del payload["monitor"]  # a History written before the monitor existed
    assert History.from_dict(payload).monitor is None


def test_empty_splits_and_a_last_batch_of_one_under_batchnorm_are_clear_errors():
    full = synthetic_dataset(n_train=129, n_test=32, seed=0)
    bn = netprops.models.create("mlp-784-128-64-10", seed=0, norm="batch")
    with pytest.raises(ValueError, match="leaves a last batch of 1 example out of 129"):
        train(bn, full, epochs=1, batch_size=128)
    train(bn, full, epochs=1, batch_size=100, track=())  # remainder 29 is fine
    empty = Split(full.train.images[:0], full.train.labels[:0], full.train.mean, full.train.std)
    with pytest.raises(ValueError, match="at least 1 training example"):
        train(_WithUnused(), dataclasses.replace(full, train=empty), steps=3)
    with pytest.raises(ValueError, match="at least 1 test example"):
        train(_WithUnused(), dataclasses.replace(full, test=empty), steps=3)


# ------------------------------------------------------- what train() caches between calls


def test_repeated_runs_on_a_subset_reuse_its_conversion(tiny):
    """train_subset draws the same subset object each time, so its float tensor is made once."""
    train(small_mlp(), tiny, steps=1, train_subset=50)
    subset = tiny.train.subset(50, seed=0)
    converted = subset.float()
    train(small_mlp(), tiny, steps=1, train_subset=50)
    assert tiny.train.subset(50, seed=0) is subset
    assert subset.float() is converted


def _normalized(split: Split) -> torch.Tensor:
    mean = torch.tensor(split.mean).view(1, -1, 1, 1)
    std = torch.tensor(split.std).view(1, -1, 1, 1)
    return (split.images.float() / 255.0 - mean) / std


def test_cached_conversions_are_rebuilt_after_in_place_writes():
    data = synthetic_dataset(n_train=40, n_test=8, image_shape=(1, 4, 4), seed=1)
    split = data.train
    first = split.float()
    first.add_(1.0)  # a caller scribbles on the shared tensor
    again = split.float()
    assert again is not first
    torch.testing.assert_close(again, _normalized(split), rtol=0, atol=0)

    subset = split.subset(10, seed=2)
    split.images[:, :, 0, 0] = 255  # the source images change in place
    torch.testing.assert_close(split.float(), _normalized(split), rtol=0, atol=0)
    fresh = split.subset(10, seed=2)
    assert fresh is not subset
    assert bool((fresh.images[:, :, 0, 0] == 255).all())
    fresh.labels.zero_()  # a derived split modified in place is not served again either
    assert split.subset(10, seed=2) is not fresh


def test_subset_cache_keeps_the_last_four():
    split = synthetic_dataset(n_train=40, n_test=8, image_shape=(1, 4, 4), seed=1).train
    subsets = [split.subset(5 + k, seed=0) for k in range(5)]
    assert all(split.subset(5 + k, seed=0) is subsets[k] for k in range(1, 5))
    assert split.subset(5, seed=0) is not subsets[0]  # the oldest was dropped
    assert torch.equal(split.subset(5, seed=0).images, subsets[0].images)


def test_moving_a_split_is_cached_per_device(tiny, device):
    assert tiny.train.to(device) is tiny.train.to(device)
    assert tiny.to(device).train is tiny.train.to(device)
