"""Calibration of the training-dynamics checks by simulation (the tables of
docs/methods.md §4.9).

Not a test module: run it from the repository root,

    PYTHONPATH=.:tests python -m quality.calibration_dynamics --runs 1000 --alpha 0.01

It prints markdown tables:

1. false-failure rate of the checks with a stated α (dead_units, saturation,
   initial_loss) at a loosened α, on correctly initialized models (torch.nn and
   netprops.models), with a Clopper–Pearson 95 % upper bound;
2. the margins of the stated limits on the same models: the largest dead-unit count
   relative to its limit, ρ / ρ̂ of update_ratio, the steps can_overfit needed;
3. power: the kill rate of the mutants over ``--power-seeds`` seeds at the defaults.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from scipy import stats
from torch import nn

from netprops import PropertyViolation, make_generator, seeded_global_rng
from netprops.checks import (
    check_can_overfit,
    check_dead_units,
    check_initial_loss,
    check_saturation,
    check_update_ratio,
)
from netprops.init import init_network
from netprops.models import ResNet, create

from .mutants import CATALOG  # imports mutants_dynamics at its end (import it first)

Builder = Callable[[int], tuple[nn.Module, tuple[int, ...]]]


def _torch_mlp(act: type[nn.Module], init: str | None, gain: float = 1.0) -> Builder:
    def build(seed: int) -> tuple[nn.Module, tuple[int, ...]]:
        with seeded_global_rng(seed):
            model = nn.Sequential(
                nn.Linear(32, 128), act(), nn.Linear(128, 128), act(), nn.Linear(128, 10)
            )
        if init is not None:
            params = {"gain": gain} if init == "xavier" else {}
            init_network(model, init, generator=make_generator(seed), **params)
        return model, (16, 32)

    return build


def _torch_cnn(seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    with seeded_global_rng(seed):
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, 10),
        )  # fmt: skip
    return model, (16, 1, 12, 12)


def _zoo(name: str, shape: tuple[int, ...]) -> Builder:
    return lambda seed: (create(name, seed=seed), shape)


def _resnet8(seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    return ResNet("basic", (1, 1, 1), width=8, generator=make_generator(seed)), (16, 1, 12, 12)


RELU_MODELS: dict[str, Builder] = {
    "torch MLP (default init)": _torch_mlp(nn.ReLU, None),
    "torch MLP (He)": _torch_mlp(nn.ReLU, "he"),
    "torch CNN (default init)": _torch_cnn,
    "zoo mlp-784-128-64-10": _zoo("mlp-784-128-64-10", (16, 1, 28, 28)),
    "zoo cnn-2": _zoo("cnn-2", (16, 1, 28, 28)),
    "zoo ResNet-8 (BatchNorm)": _resnet8,
}
SATURATING_MODELS: dict[str, Builder] = {
    "torch tanh MLP (default init)": _torch_mlp(nn.Tanh, None),
    "torch tanh MLP (Xavier, gain 5/3)": _torch_mlp(nn.Tanh, "xavier", 5.0 / 3.0),
    "torch sigmoid MLP (Xavier)": _torch_mlp(nn.Sigmoid, "xavier"),
}


def _x(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=make_generator(seed + 10_000))


def _upper95(failures: int, runs: int) -> float:
    return 1.0 if failures == runs else float(stats.beta.ppf(0.975, failures + 1, runs - failures))


def false_failures(runs: int, alpha: float) -> list[str]:
    rows = [
        f"| check | model | runs | failures at α = {alpha:g} | rate | 95 % upper |",
        "|---|---|---|---|---|---|",
    ]
    plan = [
        (check_dead_units, RELU_MODELS),
        (check_initial_loss, {**RELU_MODELS, **SATURATING_MODELS}),
    ]
    plan.append((check_saturation, SATURATING_MODELS))
    for check, models in plan:
        for name, build in models.items():
            n = runs if "ResNet" not in name else max(runs // 5, 1)
            failed = 0
            for seed in range(n):
                model, shape = build(seed)
                try:
                    check(model, _x(shape, seed), alpha=alpha, seed=seed)
                except PropertyViolation:
                    failed += 1
            rows.append(
                f"| `{check.__name__}` | {name} | {n} | {failed} | {failed / n:.4f} | "
                f"{_upper95(failed, n):.4f} |"
            )
    return rows


def margins(runs: int) -> list[str]:
    rows = [
        "| model | runs | dead units: largest dead fraction | update_ratio: ρ/ρ̂ range | "
        "can_overfit: steps (max) |",
        "|---|---|---|---|---|",
    ]
    for name, build in {**RELU_MODELS, **SATURATING_MODELS}.items():
        n = max(runs // 10, 1)
        dead, ratios, steps, overfit_failures = 0.0, [], [], 0
        for seed in range(n):
            model, shape = build(seed)
            x = _x(shape, seed)
            if name in RELU_MODELS:
                result = check_dead_units(model, x, seed=seed)
                for text in result.details.values():
                    if isinstance(text, str) and " dead of " in text:
                        count, units = text.split(" units")[0].split(" dead of ")
                        dead = max(dead, int(count) / int(units))
            ratio = check_update_ratio(model, x, seed=seed)
            for key, text in ratio.details.items():
                if isinstance(text, str) and text.startswith("ρ = "):
                    rho = float(text.split()[2].rstrip(","))
                    low, high = (float(v) for v in text.split("[")[1].rstrip("]").split(", "))
                    ratios.append(rho / math.sqrt(low * high))
                del key
            try:
                steps.append(check_can_overfit(model, x, seed=seed).details["steps taken"])
            except PropertyViolation:
                overfit_failures += 1
        dead_text = f"{dead:.2f}" if name in RELU_MODELS else "n/a"
        rows.append(
            f"| {name} | {n} | {dead_text} | [{min(ratios):.2f}, {max(ratios):.2f}] | "
            f"{max(steps, default='—')} ({overfit_failures} failed) |"
        )
    return rows


def power(seeds: int) -> list[str]:
    rows = ["| mutant | killed by | kill rate |", "|---|---|---|"]
    for mutant in (m for m in CATALOG if m.family in ("dynamics", "structure")):
        killers: dict[str, int] = {}
        for seed in range(seeds):
            for probe in mutant.probes:
                try:
                    probe.run(mutant.build(seed, "cpu"), seed, "cpu")
                except PropertyViolation:
                    killers[probe.check] = killers.get(probe.check, 0) + 1
        best = max(killers.values(), default=0)
        names = ", ".join(f"`{k}` {v}/{seeds}" for k, v in killers.items())
        rows.append(f"| {mutant.name} | {names or '—'} | {best}/{seeds} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--power-seeds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    tables = (
        lambda: false_failures(args.runs, args.alpha),
        lambda: margins(args.runs),
        lambda: power(args.power_seeds),
    )
    for table in tables:  # printed as each is done: the whole run takes a while
        print("\n".join(table()), end="\n\n", flush=True)
    print(f"({time.time() - start:.0f} s, torch {torch.__version__})")


if __name__ == "__main__":
    main()
