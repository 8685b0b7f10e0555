"""The catalog of short trainings that the convergence gate and the study run.

A scenario is data only: a model from the zoo, an init scheme, a data subset,
the optimizer and its settings, the number of steps and the seeds. Running one
(:func:`run_scenario`) returns the metrics the baselines store.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import DATASET_NAMES, Data, Split, load_dataset
from .errors import (
    check_choice,
    check_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_seeds,
    check_type,
)
from .init import INIT_SCHEMES, init_network, initializable_modules
from .models import create, list_models
from .models.base import STANDARD_INPUT_SHAPES
from .monitor import Monitor
from .seeding import derive_seed, make_generator
from .train import OPTIMIZERS, History, train

__all__ = [
    "GATED_METRICS",
    "RunResult",
    "Scenario",
    "build_model",
    "get",
    "list_scenarios",
    "run_scenario",
    "scenario_data",
    "what_ifs",
]

#: Metrics the gate compares, with True where higher is better.
GATED_METRICS: Mapping[str, bool] = {"final_accuracy": True, "auc_log_loss": False}


@dataclass(frozen=True)
class Scenario:
    """One short training, defined entirely by data.

    ``model_args`` are overrides for :func:`netprops.models.create`; ``init``
    (with ``init_params``) re-initializes every Linear/Conv weight after
    construction, and ``init_scale`` then multiplies those weights (a what-if
    knob: 2 doubles the initial std). ``frozen`` lists weight layers (indexes
    into :func:`netprops.init.initializable_modules`, negative from the end)
    whose parameters are never trained. ``train_subset``/``test_subset``
    restrict the data (fixed subsets, the same for every seed; ``None``: the
    whole split); ``downsample`` average-pools the images by that factor (a
    budget knob for the convolutional scenarios); ``label_noise`` shuffles the
    labels of that fraction of the training images among themselves (a fixed
    set, the same for every seed).

    Training takes ``steps`` optimizer steps; the last ``floor(cooldown·steps)``
    of them run at ``lr·cooldown_factor`` (a fresh optimizer, as a step
    schedule would), which removes most of the end-point noise of a constant
    learning rate from the final metrics.

    ``working`` marks a scenario whose point is a configuration that trains
    well (held to mean test accuracy >= 0.75 and a 2-point detectable drop);
    ``chance_floor`` is the test accuracy at or below which the gate fails a
    fresh run whatever the baseline spread. ``baseline_seeds`` are recorded;
    ``fresh_seeds`` are what the gate runs against them (disjoint from the
    baseline seeds, so the gate measures seed-to-seed noise honestly).
    """

    name: str
    group: str
    description: str
    model: str
    model_args: Mapping[str, Any] = field(default_factory=dict)
    init: str | None = None
    init_params: Mapping[str, Any] = field(default_factory=dict)
    init_scale: float = 1.0
    frozen: tuple[int, ...] = ()
    dataset: str = "fashion-mnist"
    train_subset: int | None = None
    test_subset: int | None = None
    downsample: int = 1
    label_noise: float = 0.0
    steps: int = 400
    cooldown: float = 0.25
    cooldown_factor: float = 0.1
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int | None = None
    target_accuracy: float | None = None
    track_grad_norms: bool = False
    working: bool = True
    chance_floor: float = 0.2
    baseline_seeds: tuple[int, ...] = tuple(range(30))
    fresh_seeds: tuple[int, ...] = (1000, 1001, 1002)

    def __post_init__(self) -> None:
        # Every field is checked here, so a what-if override (--set key=value) with a
        # wrong type or value fails at once, naming the field, before any training.
        for name in ("name", "group", "description"):
            check_type(name, getattr(self, name), str)
        check_choice("model", self.model, list_models())
        check_choice("dataset", self.dataset, DATASET_NAMES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("model_args", "init_params"):
            check_type(name, getattr(self, name), Mapping)
        if self.init is not None:
            check_choice("init", self.init, INIT_SCHEMES)
        check_positive_float("init_scale", self.init_scale)
        if isinstance(self.frozen, (str, bytes)) or not isinstance(self.frozen, Sequence):
            raise TypeError(
                f"frozen must be a sequence of weight-layer indexes (ints), got {self.frozen!r}"
            )
        frozen = tuple(check_int(f"frozen[{i}]", v) for i, v in enumerate(self.frozen))
        if len(set(frozen)) != len(frozen):
            raise ValueError(f"frozen must list distinct layer indexes, got {list(frozen)}")
        object.__setattr__(self, "frozen", frozen)
        for name in ("train_subset", "test_subset", "eval_every"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("downsample", self.downsample)
        check_probability("label_noise", self.label_noise)
        check_positive_int("steps", self.steps)
        check_probability("cooldown", self.cooldown)
        check_probability("cooldown_factor", self.cooldown_factor, allow_one=True)
        if self.cooldown_factor == 0:
            raise ValueError("cooldown_factor must be in (0, 1], got 0")
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        check_positive_float("weight_decay", self.weight_decay, allow_zero=True)
        if self.target_accuracy is not None:
            target = check_probability("target_accuracy", self.target_accuracy, allow_one=True)
            if target == 0:
                raise ValueError("target_accuracy must be in (0, 1] or None, got 0")
        check_type("track_grad_norms", self.track_grad_norms, bool)
        check_type("working", self.working, bool)
        check_probability("chance_floor", self.chance_floor)
        seeds = {}
        for name, min_count in (("baseline_seeds", 2), ("fresh_seeds", 1)):
            values = check_seeds(name, getattr(self, name), min_count=min_count)
            object.__setattr__(self, name, values)  # lists (from JSON) become tuples
            seeds[name] = set(values)
        shared = seeds["baseline_seeds"] & seeds["fresh_seeds"]
        if shared:
            raise ValueError(
                f"fresh_seeds must be disjoint from baseline_seeds (the gate would compare "
                f"recorded runs with themselves), both hold {sorted(shared)}"
            )

    @property
    def cooldown_steps(self) -> int:
        """Steps at ``lr·cooldown_factor`` at the end of training."""
        return math.floor(self.cooldown * self.steps)

    def replace(self, **overrides: Any) -> Scenario:
        """A copy with fields replaced (what-if runs); unknown fields raise ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown scenario field(s) {unknown}; valid fields: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model_args"] = dict(self.model_args)
        data["init_params"] = dict(self.init_params)
        for name in ("frozen", "baseline_seeds", "fresh_seeds"):
            data[name] = list(getattr(self, name))
        return data


@dataclass(frozen=True)
class RunResult:
    """Metrics of one seeded run of a scenario, its :class:`History`, the trained model and the test split used."""

    scenario: str
    seed: int
    metrics: Mapping[str, float | None]
    history: History
    model: nn.Module | None = None
    test: Split | None = None


_SEED_NET = "mlp-784-500-100-100-10"
_THREE_FRESH = (1000, 1001, 1002)
_FOUR_FRESH = (1000, 1001, 1002, 1003)
_CATALOG: dict[str, Scenario] = {}


def _add(scenario: Scenario) -> None:
    if scenario.name in _CATALOG:
        raise ValueError(f"scenario {scenario.name!r} is defined twice")
    _CATALOG[scenario.name] = scenario


# Every scenario trains until it is clearly learning in every seed (mean test accuracy
# >= 0.75 on the whole 10,000-image test split) and ends with a cool-down, so its final
# metrics vary little from seed to seed: the gate then detects a 2-point drop with 3 fresh
# seeds (4 for the noisiest), see docs/methods.md §5.2. The convolutional ones see 14x14 images (downsample=2): a
# budget knob (about 4x cheaper on a CPU) that the study overrides.

# Initialization (the coursework's study): deep tanh/ReLU nets, plain N(0, 1) vs Xavier/He.
# N(0, 1) is the bad configuration: it still learns something, slowly, in every seed.
for _act, _scheme, _params in [
    ("tanh", "normal", {"std": 1.0}),
    ("tanh", "xavier", {}),
    ("relu", "normal", {"std": 1.0}),
    ("relu", "he", {}),
]:
    _add(
        Scenario(
            name=f"init-{_act}-{_scheme}",
            group="init",
            description=f"784-500-100-100-10 {_act} MLP initialized with {_scheme} {_params or ''}".strip(),
            model=_SEED_NET,
            model_args={"activation": _act},
            init=_scheme,
            init_params=_params,
            steps=400,
            working=_scheme != "normal",
        )
    )

# Regularization on a reduced training set, so over-fitting shows in the train-test gap.
for _name, _args in [
    ("none", {}),
    ("dropout", {"dropout": 0.5}),
    ("dropconnect", {"dropconnect": 0.5}),
]:
    _add(
        Scenario(
            name=f"reg-{_name}",
            group="regularization",
            description=f"784-128-64-10 ReLU MLP, {_name}, 1000 training images",
            model="mlp-784-128-64-10",
            model_args=_args,
            init="he",
            train_subset=1000,
            steps=400,
            batch_size=100,
        )
    )

# Normalization: none / LayerNorm / BatchNorm at a tiny and a usual batch size.
for _norm in ("none", "layer", "batch"):
    for _batch, _steps in ((4, 2000), (128, 400)):
        _add(
            Scenario(
                name=f"norm-{_norm}-b{_batch}",
                group="normalization",
                description=f"784-128-64-10 ReLU MLP, norm={_norm}, batch {_batch}",
                model="mlp-784-128-64-10",
                model_args={"norm": None if _norm == "none" else _norm},
                init="he",
                steps=_steps,
                batch_size=_batch,
                # BatchNorm at batch 4 is the noisiest MLP scenario: a fourth fresh seed
                # keeps its detectable accuracy drop under 2 points
                fresh_seeds=_FOUR_FRESH if (_norm, _batch) == ("batch", 4) else _THREE_FRESH,
            )
        )

# Architecture: MLP vs CNN at the same budget, both on 14x14 images.
for _model, _what in (("mlp-784-256-10", "196-256-10 ReLU MLP"), ("cnn-2", "2-conv CNN")):
    _add(
        Scenario(
            name=f"arch-{_model.split('-')[0]}",
            group="architecture",
            description=f"{_what} on 14x14 Fashion-MNIST",
            model=_model,
            downsample=2,
            steps=600,
            batch_size=32,
        )
    )

# Depth: a deep plain CNN vs its residual version, both He-initialized (the residual
# branches start at zero, so the residual net starts as a shallow one); the gradient
# norms per layer are recorded.
for _variant, _args in (
    ("cnn-depth8", {"width": 16, "init": "he"}),
    ("cnn-depth8-residual", {"width": 16, "init": "he", "zero_init_residual": True}),
):
    _add(
        Scenario(
            name=f"depth-{_variant.removeprefix('cnn-')}",
            group="depth",
            description=f"{_variant} (width 16, He init{', zero-initialized residual branches' if 'residual' in _variant else ''}): 8 conv layers{' with skips' if 'residual' in _variant else ''}, 14x14 images",
            model=_variant,
            model_args=_args,
            downsample=2,
            steps=600,
            batch_size=32,
            track_grad_norms=True,
            # the plain one is the noisier: a fourth fresh seed keeps its detectable drop < 2 points
            fresh_seeds=_THREE_FRESH if "residual" in _variant else _FOUR_FRESH,
        )
    )

# Residual block families, one block per stage, on 14x14 images (the CPU budget).
for _name, _model, _args in (
    ("basic", "resnet20", {"width": 8, "layers": (1, 1, 1)}),
    ("bottleneck", "resnet-bottleneck", {"width": 32, "layers": (1, 1, 1)}),
    ("wide", "wrn-16-4", {"width": 4, "layers": (1, 1, 1)}),
):
    _add(
        Scenario(
            name=f"resnet-{_name}",
            group="resnet",
            description=f"{_model} {_args} on 14x14 Fashion-MNIST",
            model=_model,
            model_args=_args,
            downsample=2,
            steps=600,
            batch_size=32,
            lr=2e-3,
        )
    )


def list_scenarios(group: str | None = None) -> list[str]:
    """Names of the catalog's scenarios (of one ``group`` if given), in catalog order."""
    if group is not None:
        check_choice("group", group, sorted({s.group for s in _CATALOG.values()}))
    return [name for name, s in _CATALOG.items() if group is None or s.group == group]


def get(name: str) -> Scenario:
    """The scenario called ``name``; ValueError listing the valid names otherwise."""
    check_choice("scenario", name, list(_CATALOG))
    return _CATALOG[name]


def what_ifs(scenario: Scenario | str) -> dict[str, dict[str, Any]]:
    """The standard what-ifs for ``scenario``: label -> field overrides.

    ``lr ÷ 2`` (slower convergence), ``lr × 1e-5`` (a network that does not
    learn: the gate must fail it in every scenario), ``init std × 2``, ``first
    layer frozen`` and ``20 % labels shuffled``. Each is a valid
    :meth:`Scenario.replace` (and ``--set``) override.
    """
    if isinstance(scenario, str):
        scenario = get(scenario)
    check_type("scenario", scenario, Scenario)
    return {
        "lr ÷ 2": {"lr": scenario.lr / 2},
        "lr × 1e-5 (dead)": {"lr": scenario.lr * 1e-5},
        "init std × 2": {"init_scale": scenario.init_scale * 2},
        "first layer frozen": {"frozen": (0,)},
        "20 % labels shuffled": {"label_noise": 0.2},
    }


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, device: str) -> Data:
    return load_dataset(name, device=device)


@functools.lru_cache(maxsize=8)
def _downsampled(data: Data, factor: int) -> Data:
    """``data`` with every image average-pooled by ``factor`` (rounded back to uint8)."""

    def pool(split: Split) -> Split:
        _, _, height, width = split.images.shape
        if height % factor or width % factor:
            raise ValueError(
                f"downsample must divide the image size {height}x{width}, got {factor}"
            )
        images = F.avg_pool2d(split.images.float(), factor).round_().to(torch.uint8)
        return Split(images, split.labels, split.mean, split.std)

    return dataclasses.replace(data, train=pool(data.train), test=pool(data.test))


@functools.lru_cache(maxsize=8)
def _noisy_labels(data: Data, fraction: float) -> Data:
    """``data`` with the labels of a fixed ``fraction`` of its training images shuffled among them."""
    train = data.train
    n = round(fraction * len(train))
    generator = make_generator(derive_seed(0, "label_noise"))
    chosen = torch.randperm(len(train), generator=generator)[:n]
    shuffled = chosen[torch.randperm(n, generator=generator)]
    labels = train.labels.clone()
    labels[chosen.to(labels.device)] = train.labels[shuffled.to(labels.device)]
    # same images: the replaced split shares the normalized-image cache
    return dataclasses.replace(data, train=dataclasses.replace(train, labels=labels))


def scenario_data(scenario: Scenario, data: Data) -> Data:
    """``data`` as ``scenario`` trains and tests on it (downsampled, noisy labels, test subset).

    The training subset is left to :func:`netprops.train.train` (``train_subset``).
    """
    check_type("scenario", scenario, Scenario)
    check_type("data", data, Data)
    if scenario.downsample > 1:
        data = _downsampled(data, scenario.downsample)
    if scenario.label_noise > 0:
        data = _noisy_labels(data, scenario.label_noise)
    if scenario.test_subset is not None and scenario.test_subset < len(data.test):
        data = dataclasses.replace(data, test=data.test.subset(scenario.test_subset, seed=0))
    return data


def build_model(scenario: Scenario | str, seed: int, image_shape: Sequence[int]) -> nn.Module:
    """The network ``scenario`` trains with ``seed``, as it is before the first step.

    Built from the zoo with ``derive_seed(seed, name, "model")``, re-initialized
    with ``init`` (generator ``derive_seed(seed, name, "init")``), its weight
    layers scaled by ``init_scale`` and those listed in ``frozen`` set to
    ``requires_grad=False``. ``image_shape`` is the ``(C, H, W)`` of the
    images it will see (after ``downsample``).

    Raises
    ------
    ValueError
        for a ``frozen`` index outside the model's weight layers.
    """
    if isinstance(scenario, str):
        scenario = get(scenario)
    seed = check_int("seed", seed, min_value=0)
    args = dict(scenario.model_args)
    if tuple(image_shape) != STANDARD_INPUT_SHAPES[0]:
        args.setdefault("input_shape", tuple(image_shape))
    model = create(scenario.model, seed=derive_seed(seed, scenario.name, "model"), **args)
    if scenario.init is not None:
        init_network(
            model,
            scenario.init,
            generator=make_generator(derive_seed(seed, scenario.name, "init")),
            **scenario.init_params,
        )
    layers = [module for _, module in initializable_modules(model)]
    if scenario.init_scale != 1:
        with torch.no_grad():
            for module in layers:
                module.weight.mul_(scenario.init_scale)
    for index in scenario.frozen:
        if not -len(layers) <= index < len(layers):
            raise ValueError(
                f"frozen index {index} is outside the {len(layers)} weight layers of "
                f"{scenario.model} (valid: {-len(layers)}..{len(layers) - 1})"
            )
        layers[index].requires_grad_(False)
    return model


def _chain(first: History, second: History, *, keep_first_evals: bool) -> History:
    """One History for two consecutive :func:`train` calls on the same model."""
    offset = first.steps
    evals = (
        (first.eval_steps, first.test_accuracy, first.test_loss, first.train_accuracy)
        if keep_first_evals
        else ([], [], [], [])
    )
    norms = {k: [*first.grad_norms.get(k, []), *v] for k, v in second.grad_norms.items()}
    train_time = first.train_time_s + second.train_time_s
    samples = first.samples_per_s * first.train_time_s + second.samples_per_s * second.train_time_s
    return History(
        train_loss=[*first.train_loss, *second.train_loss],
        eval_steps=[*evals[0], *(offset + s for s in second.eval_steps)],
        test_accuracy=[*evals[1], *second.test_accuracy],
        test_loss=[*evals[2], *second.test_loss],
        train_accuracy=[*evals[3], *second.train_accuracy],
        grad_norms=norms,
        steps=first.steps + second.steps,
        wall_time_s=first.wall_time_s + second.wall_time_s,
        train_time_s=train_time,
        samples_per_s=samples / train_time if train_time > 0 else math.inf,
        seed=first.seed,
        config={**first.config, "cooldown": second.config},
        monitor=first.monitor,
    )


@torch.no_grad()
def _accuracy(model: nn.Module, split: Split, batch: int = 1000) -> float:
    was_training = model.training
    model.eval()
    x, y = split.float(next(model.parameters()).dtype), split.labels
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
        for i in range(0, len(y), batch)
    )
    model.train(was_training)
    return correct / len(y)


def _grad_metrics(history: History) -> dict[str, float]:
    """First-layer gradient norm (mean over steps) and log10 of first/last layer norms early on."""
    layers = list(history.grad_norms.values())
    if not layers or not layers[0]:
        return {}
    first, last = layers[0], layers[-1]
    window = max(1, len(first) // 10)
    ratios = [a / b for a, b in zip(first[:window], last[:window], strict=True) if b > 0]
    metrics = {"first_layer_grad_norm": sum(first) / len(first)}
    if ratios and statistics.median(ratios) > 0:
        metrics["grad_ratio_log10"] = math.log10(statistics.median(ratios))
    return metrics


def run_scenario(
    scenario: Scenario | str,
    seed: int,
    *,
    device: str | torch.device = "cpu",
    data: Data | None = None,
    progress: bool | None = False,
    monitor: Monitor | None = None,
) -> RunResult:
    """Train ``scenario`` once with ``seed`` and return its metrics.

    Metrics: ``final_accuracy`` and ``final_test_loss`` (on the scenario's test
    split at the end), ``auc_log_loss`` (mean log training loss over all
    steps, the low-noise convergence metric), ``steps_to_target`` (None when
    never reached or no target), ``train_accuracy`` (full pass over the
    training subset, eval mode, when the subset has at most 10,000 images),
    ``train_test_gap`` and, with ``track_grad_norms``, ``first_layer_grad_norm``
    (mean over steps) and ``grad_ratio_log10`` (log10 of the first over the last
    weight layer's gradient norm, median over the first tenth of the steps).
    ``progress`` is passed to :func:`netprops.train.train` (False: no bar).
    ``monitor`` (:class:`netprops.monitor.Monitor`) watches the main phase of the
    training (not the cool-down); its report is ``result.history.monitor``.
    """
    if isinstance(scenario, str):
        scenario = get(scenario)
    seed = check_int("seed", seed, min_value=0)
    device = torch.device(device)
    if data is None:
        data = _cached_dataset(scenario.dataset, str(device))
    data = scenario_data(scenario, data.to(device))
    model = build_model(scenario, seed, data.image_shape)
    track = (
        ("loss", "accuracy", "grad_norms") if scenario.track_grad_norms else ("loss", "accuracy")
    )
    common = {
        "batch_size": scenario.batch_size,
        "optimizer": scenario.optimizer,
        "weight_decay": scenario.weight_decay,
        "device": device,
        "track": track,
        "progress": progress,
        "train_subset": scenario.train_subset,
    }
    cool = scenario.cooldown_steps
    main_steps = scenario.steps - cool
    # Without a curve to draw, the first phase is "evaluated" on one image, not the test split.
    first_data = (
        data
        if scenario.eval_every is not None or cool == 0
        else dataclasses.replace(data, test=data.test.subset(1, seed=0))
    )
    history = train(
        model,
        first_data,
        steps=main_steps,
        lr=scenario.lr,
        seed=seed,
        eval_every=scenario.eval_every,
        monitor=monitor,
        **common,
    )
    if cool:
        cooled = train(
            model,
            data,
            steps=cool,
            lr=scenario.lr * scenario.cooldown_factor,
            seed=derive_seed(seed, "cooldown"),
            **common,
        )
        history = _chain(history, cooled, keep_first_evals=first_data is data)
    metrics: dict[str, float | None] = {
        "final_accuracy": history.final_test_accuracy,
        "final_test_loss": history.test_loss[-1],
        "auc_log_loss": history.area_under_log_loss(),
    }
    if scenario.target_accuracy is not None:
        steps = history.steps_to_target(scenario.target_accuracy)
        metrics["steps_to_target"] = None if math.isinf(steps) else float(steps)
    if scenario.train_subset is not None and scenario.train_subset <= 10_000:
        train_split = data.train.subset(scenario.train_subset, seed=0)
        metrics["train_accuracy"] = _accuracy(model, train_split)
        metrics["train_test_gap"] = metrics["train_accuracy"] - metrics["final_accuracy"]
    if scenario.track_grad_norms:
        metrics.update(_grad_metrics(history))
    return RunResult(scenario.name, seed, metrics, history, model, data.test)
