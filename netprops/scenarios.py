"""The catalog of short trainings that the convergence gate and the study run.

A scenario is data only: a model from the zoo, an init scheme, a data subset,
the optimizer and its settings, the number of steps and the seeds. Running one
(:func:`run_scenario`) returns the metrics the baselines store.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
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
from .init import INIT_SCHEMES, init_network
from .models import create, list_models
from .seeding import derive_seed, make_generator
from .train import OPTIMIZERS, History, train

__all__ = [
    "GATED_METRICS",
    "RunResult",
    "Scenario",
    "get",
    "list_scenarios",
    "run_scenario",
]

#: Metrics the gate compares, with True where higher is better.
GATED_METRICS: Mapping[str, bool] = {"final_accuracy": True, "auc_log_loss": False}


@dataclass(frozen=True)
class Scenario:
    """One short training, defined entirely by data.

    ``model_args`` are overrides for :func:`netprops.models.create`; ``init``
    (with ``init_params``) re-initializes every Linear/Conv weight after
    construction. ``train_subset``/``test_subset`` restrict the data (fixed
    subsets, the same for every seed). ``baseline_seeds`` are recorded;
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
    dataset: str = "fashion-mnist"
    train_subset: int | None = None
    test_subset: int | None = 2000
    steps: int = 200
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int | None = None
    target_accuracy: float | None = None
    track_grad_norms: bool = False
    baseline_seeds: tuple[int, ...] = tuple(range(10))
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
        for name in ("train_subset", "test_subset", "eval_every"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        check_positive_float("weight_decay", self.weight_decay, allow_zero=True)
        if self.target_accuracy is not None:
            target = check_probability("target_accuracy", self.target_accuracy, allow_one=True)
            if target == 0:
                raise ValueError("target_accuracy must be in (0, 1] or None, got 0")
        check_type("track_grad_norms", self.track_grad_norms, bool)
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
        data["baseline_seeds"] = list(self.baseline_seeds)
        data["fresh_seeds"] = list(self.fresh_seeds)
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
_CATALOG: dict[str, Scenario] = {}


def _add(scenario: Scenario) -> None:
    if scenario.name in _CATALOG:
        raise ValueError(f"scenario {scenario.name!r} is defined twice")
    _CATALOG[scenario.name] = scenario


# Initialization (the coursework's study): deep tanh/ReLU nets, plain N(0, 1) vs Xavier/He.
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
            steps=100,
            eval_every=20,
            test_subset=1000,
            target_accuracy=0.75,
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
            test_subset=1000,
            steps=150,
            batch_size=100,
            eval_every=50,
        )
    )

# Normalization: none / LayerNorm / BatchNorm at a tiny and a usual batch size.
for _norm in ("none", "layer", "batch"):
    for _batch, _steps in ((4, 240), (128, 120)):
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
                test_subset=1000,
                eval_every=_steps // 3,
            )
        )

# Architecture: MLP vs CNN at the same budget (final evaluation only: CNN evaluation is costly on CPU).
for _model, _what in (("mlp-784-256-10", "784-256-10 ReLU MLP"), ("cnn-2", "2-conv CNN")):
    _add(
        Scenario(
            name=f"arch-{_model.split('-')[0]}",
            group="architecture",
            description=_what,
            model=_model,
            steps=60,
            batch_size=32,
            test_subset=1000,
        )
    )

# Depth: a deep plain CNN vs its residual version (first-layer gradient norm recorded).
for _variant in ("cnn-depth8", "cnn-depth8-residual"):
    _add(
        Scenario(
            name=f"depth-{_variant.removeprefix('cnn-')}",
            group="depth",
            description=f"{_variant} (width 8): 8 conv layers{' with skips' if 'residual' in _variant else ''}",
            model=_variant,
            model_args={"width": 8},
            steps=60,
            batch_size=32,
            test_subset=1000,
            track_grad_norms=True,
        )
    )

# Residual block families, narrow so the gate stays within its CPU budget.
for _name, _model, _args in (
    ("basic", "resnet20", {"width": 4}),
    ("bottleneck", "resnet-bottleneck", {"width": 16}),
    ("wide", "wrn-16-4", {"width": 4}),
):
    _add(
        Scenario(
            name=f"resnet-{_name}",
            group="resnet",
            description=f"{_model} {_args} on 28×28 Fashion-MNIST",
            model=_model,
            model_args=_args,
            steps=40,
            batch_size=16,
            test_subset=500,
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


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, device: str) -> Data:
    return load_dataset(name, device=device)


def _restrict(data: Data, scenario: Scenario) -> Data:
    if scenario.test_subset is None or scenario.test_subset >= len(data.test):
        return data
    return dataclasses.replace(data, test=data.test.subset(scenario.test_subset, seed=0))


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


def run_scenario(
    scenario: Scenario | str,
    seed: int,
    *,
    device: str | torch.device = "cpu",
    data: Data | None = None,
    progress: bool | None = False,
) -> RunResult:
    """Train ``scenario`` once with ``seed`` and return its metrics.

    Metrics: ``final_accuracy`` (test accuracy at the end), ``auc_log_loss``
    (mean log training loss, the low-noise convergence metric),
    ``steps_to_target`` (None when never reached or no target),
    ``train_accuracy`` (full pass over the training subset, eval mode, when the
    subset has at most 10,000 images), ``train_test_gap`` and, with
    ``track_grad_norms``, ``first_layer_grad_norm`` (mean over steps).
    ``progress`` is passed to :func:`netprops.train.train` (False: no bar).
    """
    if isinstance(scenario, str):
        scenario = get(scenario)
    seed = check_int("seed", seed, min_value=0)
    device = torch.device(device)
    if data is None:
        data = _cached_dataset(scenario.dataset, str(device))
    data = _restrict(data.to(device), scenario)
    model = create(
        scenario.model, seed=derive_seed(seed, scenario.name, "model"), **scenario.model_args
    )
    if scenario.init is not None:
        init_network(
            model,
            scenario.init,
            generator=make_generator(derive_seed(seed, scenario.name, "init")),
            **scenario.init_params,
        )
    track = (
        ("loss", "accuracy", "grad_norms") if scenario.track_grad_norms else ("loss", "accuracy")
    )
    history = train(
        model,
        data,
        steps=scenario.steps,
        batch_size=scenario.batch_size,
        optimizer=scenario.optimizer,
        lr=scenario.lr,
        weight_decay=scenario.weight_decay,
        seed=seed,
        device=device,
        eval_every=scenario.eval_every,
        track=track,
        progress=progress,
        train_subset=scenario.train_subset,
    )
    metrics: dict[str, float | None] = {
        "final_accuracy": history.final_test_accuracy,
        "auc_log_loss": history.area_under_log_loss(),
    }
    if scenario.target_accuracy is not None:
        steps = history.steps_to_target(scenario.target_accuracy)
        metrics["steps_to_target"] = None if math.isinf(steps) else float(steps)
    if scenario.train_subset is not None and scenario.train_subset <= 10_000:
        train_split = data.train.subset(scenario.train_subset, seed=0)
        metrics["train_accuracy"] = _accuracy(model, train_split)
        metrics["train_test_gap"] = metrics["train_accuracy"] - metrics["final_accuracy"]
    if scenario.track_grad_norms and history.grad_norms:
        first = next(iter(history.grad_norms.values()))
        metrics["first_layer_grad_norm"] = sum(first) / len(first)
    return RunResult(scenario.name, seed, metrics, history, model, data.test)
