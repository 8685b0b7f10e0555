"""The calibration (false-failure) and power tables of docs/methods.md §Calibration and power.

Run from the repository root::

    PYTHONPATH=.:tests python -m quality.calibration_table --runs 10000 --power-runs 200
    PYTHONPATH=.:tests python -m quality.calibration_table --sweep-runs 200 \\
        --skip-calibration --skip-power

Every statistical check runs on correct subjects at a loosened level (``--alpha``,
default 1e-2), ``--runs`` seeds each: the measured rate with its 95 % exact
interval must sit at or under alpha. Then on broken subjects (the kill-matrix
mutants and a few subtler bugs) at the checks' default level 1e-9: the rate is
the power. Each run draws a fresh subject (weights and input from the seed)
and a fresh check seed, so the rate is over both. ``--only`` selects rows by a
substring of their name. Not a test module: the cheap version of these
measurements runs in tests/properties (``*_false_failure_rate``).
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netprops import make_generator
from netprops.checks.calibration import calibrate
from netprops.checks.stats import DEFAULT_ALPHA
from netprops.checks.stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
)
from netprops.checks.variance import (
    check_init_distribution,
    check_model_variance,
    check_variance_preserved,
)
from netprops.init import NetworkInitializer, he_normal_, xavier_normal_, xavier_uniform_
from netprops.layers.dropout import DropConnectLinear

from .mutants import (
    BatchSharedDropout,
    ExactVarianceDropout,
    KeepProbabilityDropout,
    NoRescaleDropConnect,
    he_fan_out_,
    he_without_sqrt2_,
)
from .mutants_stochastic import (
    LEAKY_SLOPE,
    TN_BOUND,
    TN_STD,
    CachedMaskDropout,
    DropPath,
    NonInvertedDropout,
    NoRescaleDropout2d,
    NoRescaleDropPath,
    OverReportingDropConnect,
    _trunc_normal,
    he_leaky_gain_without_square_,
    xavier_uniform_half_variance_,
)


@dataclass(frozen=True)
class Case:
    name: str
    check: Callable[..., Any]
    make: Callable[[int], Any]
    options: dict[str, Any]


def _x(shape, seed, dtype=torch.float32):
    return torch.randn(shape, generator=make_generator(seed + 10_000), dtype=dtype)


def _module(build, shape, dtype=torch.float32):
    return lambda seed: (build(seed), _x(shape, seed, dtype))


def _dropconnect(cls=DropConnectLinear, p=0.3, per_sample=False):
    def build(seed):
        return cls(8, 6, p=p, per_sample=per_sample, generator=make_generator(seed))

    return build


class HiddenVarianceDropConnect(DropConnectLinear):
    """DropConnect without ``output_variance``: multi-valued outputs on the sample path."""

    output_variance = property(lambda self: _raise_attribute())  # hasattr(...) is False


def _raise_attribute():
    raise AttributeError("output_variance")


class ScaledDropout(nn.Module):
    """Dropout whose training output is ``factor`` times too small (a subtle spread bias)."""

    def __init__(self, p: float, factor: float) -> None:
        super().__init__()
        self.p = p
        self.factor = factor

    def forward(self, x):
        return nn.functional.dropout(x, self.p, self.training) * self.factor


class WrongRateDropout(nn.Module):
    """Drops with probability ``actual`` while claiming ``p``."""

    def __init__(self, p: float, actual: float) -> None:
        super().__init__()
        self.p = p
        self.actual = actual

    def forward(self, x):
        return (
            nn.functional.dropout(x, self.actual, self.training) * (1 - self.actual) / (1 - self.p)
        )


def _init(fn, shape, std, law, **extra):
    return {"shape": shape, "expected_std": std, "distribution": law, **extra}, (lambda seed: fn)


def _init_case(name, fn, shape, std, law, **extra):
    options, make = _init(fn, shape, std, law, **extra)
    return Case(name, check_init_distribution, make, options)


def _mlp(init_fn_name, sizes, **params):
    def make(seed):
        model = NetworkInitializer("relu", init_fn_name, sizes, **params).build(
            make_generator(seed)
        )
        return model, _x((32, sizes[0]), seed)

    return make


XAVIER_STD = math.sqrt(2 / (64 + 256))
HE_STD = math.sqrt(2 / 256)
LEAKY_STD = math.sqrt(2 / (1 + LEAKY_SLOPE**2)) / math.sqrt(256)
FEATURES = (4, 8, 3, 3)

CALIBRATION: list[Case] = [
    Case(
        "expectation: Dropout p=0.05 (skewed)",
        check_expectation_equal,
        _module(lambda s: nn.Dropout(0.05), (4, 8)),
        {},
    ),
    Case(
        "expectation: Dropout p=0.5",
        check_expectation_equal,
        _module(lambda s: nn.Dropout(0.5), (4, 8)),
        {},
    ),
    Case(
        "expectation: Dropout p=0.95 (skewed)",
        check_expectation_equal,
        _module(lambda s: nn.Dropout(0.95), (4, 8)),
        {},
    ),
    Case(
        "expectation: Dropout2d p=0.3 (one draw per channel)",
        check_expectation_equal,
        _module(lambda s: nn.Dropout2d(0.3), FEATURES),
        {},
    ),
    Case(
        "expectation: drop-path p=0.2 (one draw per example)",
        check_expectation_equal,
        _module(lambda s: DropPath(0.2, make_generator(s)), (8, 16)),
        {},
    ),
    Case(
        "expectation: DropConnect per-sample p=0.3 (reported variance)",
        check_expectation_equal,
        _module(_dropconnect(per_sample=True), (4, 8)),
        {},
    ),
    Case(
        "expectation: DropConnect shared mask p=0.05 (reported variance, skewed)",
        check_expectation_equal,
        _module(_dropconnect(p=0.05), (4, 8)),
        {},
    ),
    Case(
        "expectation: DropConnect p=0.3, variance not reported (Bennett)",
        check_expectation_equal,
        _module(_dropconnect(HiddenVarianceDropConnect), (4, 8)),
        {},
    ),
    Case(
        "drop_rate: Dropout p=0.05",
        check_drop_rate,
        _module(lambda s: nn.Dropout(0.05), (4, 8)),
        {},
    ),
    Case(
        "drop_rate: Dropout2d p=0.3 (counted per channel)",
        check_drop_rate,
        _module(lambda s: nn.Dropout2d(0.3), FEATURES),
        {},
    ),
    Case(
        "drop_rate: DropConnect p=0.3 (weight masks)",
        check_drop_rate,
        lambda s: _dropconnect()(s),
        {},
    ),
    Case(
        "masks_independent: Dropout p=0.5",
        check_masks_independent,
        _module(lambda s: nn.Dropout(0.5), (1, 8)),
        {},
    ),
    Case(
        "masks_independent: DropConnect per-sample p=0.2",
        check_masks_independent,
        _module(_dropconnect(p=0.2, per_sample=True), (1, 8)),
        {},
    ),
    _init_case(
        "init_distribution: normal (xavier_normal_)",
        xavier_normal_,
        (64, 256),
        XAVIER_STD,
        "normal",
    ),
    _init_case(
        "init_distribution: uniform (xavier_uniform_)",
        xavier_uniform_,
        (64, 256),
        XAVIER_STD,
        "uniform",
    ),
    _init_case(
        "init_distribution: truncated normal ±2σ (declared)",
        _trunc_normal(TN_STD, TN_BOUND),
        (64, 256),
        TN_STD,
        "truncated_normal",
        truncation=(-TN_BOUND, TN_BOUND),
    ),
    _init_case(
        "init_distribution: truncated normal ±2σ (recognized)",
        _trunc_normal(TN_STD, TN_BOUND),
        (64, 256),
        TN_STD,
        None,
    ),
    _init_case(
        "init_distribution: uniform (recognized)", xavier_uniform_, (64, 256), XAVIER_STD, None
    ),
    _init_case(
        "init_distribution: normal (recognized)", xavier_normal_, (64, 256), XAVIER_STD, None
    ),
    Case(
        "variance_preserved: ReLU, width 64 (exact depth law)",
        check_variance_preserved,
        lambda s: he_normal_,
        {"nonlinearity": "relu", "width": 64, "depth": 8, "n_networks": 8},
    ),
    Case(
        "variance_preserved: linear, width 64 (exact depth law)",
        check_variance_preserved,
        lambda s: xavier_normal_,
        {"nonlinearity": "linear", "width": 64, "depth": 8, "n_networks": 8},
    ),
    Case(
        "variance_preserved: leaky ReLU 0.2, width 64 (normal approximation)",
        check_variance_preserved,
        lambda s: functools.partial(he_normal_, a=LEAKY_SLOPE, nonlinearity="leaky_relu"),
        {
            "nonlinearity": "leaky_relu",
            "negative_slope": LEAKY_SLOPE,
            "width": 64,
            "depth": 8,
            "n_networks": 8,
        },
    ),
    Case(
        "model_variance: He ReLU MLP 64-128x3-10, batch 32 (derived bands)",
        check_model_variance,
        _mlp("he", (64, 128, 128, 128, 10)),
        {},
    ),
]

POWER: list[Case] = [
    Case(
        "expectation: non-inverted dropout",
        check_expectation_equal,
        _module(lambda s: NonInvertedDropout(0.3, generator=make_generator(s)), (4, 8)),
        {},
    ),
    Case(
        "expectation: keeps with probability p",
        check_expectation_equal,
        _module(lambda s: KeepProbabilityDropout(0.3, generator=make_generator(s)), (4, 8)),
        {},
    ),
    Case(
        "expectation: mask cached across calls",
        check_expectation_equal,
        _module(lambda s: CachedMaskDropout(0.3, generator=make_generator(s)), (4, 8)),
        {},
    ),
    Case(
        "expectation: Dropout2d without rescale",
        check_expectation_equal,
        _module(lambda s: NoRescaleDropout2d(0.3), FEATURES),
        {},
    ),
    Case(
        "expectation: drop-path without rescale",
        check_expectation_equal,
        _module(lambda s: NoRescaleDropPath(0.2, make_generator(s)), (8, 16)),
        {},
    ),
    Case(
        "expectation: DropConnect without rescale",
        check_expectation_equal,
        _module(_dropconnect(NoRescaleDropConnect), (4, 8)),
        {},
    ),
    Case(
        "expectation: DropConnect over-reporting its variance 1/p",
        check_expectation_equal,
        _module(_dropconnect(OverReportingDropConnect), (4, 8)),
        {},
    ),
    Case(
        "expectation: dropout 3 % low on 16x64 outputs (spread test)",
        check_expectation_equal,
        _module(lambda s: ScaledDropout(0.3, 0.97), (16, 64)),
        {},
    ),
    Case(
        "expectation: dropout 1 % low on 16x64 outputs (spread test)",
        check_expectation_equal,
        _module(lambda s: ScaledDropout(0.3, 0.99), (16, 64)),
        {},
    ),
    Case(
        "expectation: exact-variance dropout 3 % low on 16x64",
        check_expectation_equal,
        _module(lambda s: _ScaledExactDropout(0.3, 0.97), (16, 64)),
        {},
    ),
    Case(
        "drop_rate: drops 0.32 claiming 0.3",
        check_drop_rate,
        _module(lambda s: WrongRateDropout(0.3, 0.32), (4, 8)),
        {},
    ),
    Case(
        "drop_rate: Dropout2d without rescale",
        check_drop_rate,
        _module(lambda s: NoRescaleDropout2d(0.3), FEATURES),
        {},
    ),
    Case(
        "masks_independent: one mask shared by the batch",
        check_masks_independent,
        _module(lambda s: BatchSharedDropout(0.3, generator=make_generator(s)), (2, 4)),
        {},
    ),
    Case(
        "masks_independent: DropConnect with a batch-shared mask",
        check_masks_independent,
        _module(_dropconnect(), (1, 8)),
        {},
    ),
    _init_case(
        "init_distribution: Xavier uniform, half the variance",
        xavier_uniform_half_variance_,
        (64, 256),
        XAVIER_STD,
        "uniform",
    ),
    _init_case("init_distribution: He from fan_out", he_fan_out_, (64, 256), HE_STD, "normal"),
    _init_case(
        "init_distribution: leaky gain √(2/(1+a))",
        he_leaky_gain_without_square_,
        (64, 256),
        LEAKY_STD,
        "normal",
    ),
    _init_case(
        "init_distribution: truncated at ±σ, declared ±2σ",
        _trunc_normal(TN_STD, TN_STD),
        (64, 256),
        TN_STD,
        "truncated_normal",
        truncation=(-TN_BOUND, TN_BOUND),
    ),
    _init_case(
        "init_distribution: truncated normal with σ/2",
        _trunc_normal(TN_STD / 2, TN_BOUND),
        (64, 256),
        TN_STD,
        "truncated_normal",
        truncation=(-TN_BOUND, TN_BOUND),
    ),
    Case(
        "variance_preserved: He without √2 (ReLU, width 64)",
        check_variance_preserved,
        lambda s: he_without_sqrt2_,
        {"nonlinearity": "relu", "width": 64, "depth": 8, "n_networks": 8},
    ),
    Case(
        "variance_preserved: leaky gain √(2/(1+a)) (width 64)",
        check_variance_preserved,
        lambda s: he_leaky_gain_without_square_,
        {
            "nonlinearity": "leaky_relu",
            "negative_slope": LEAKY_SLOPE,
            "width": 64,
            "depth": 8,
            "n_networks": 8,
        },
    ),
    Case(
        "model_variance: Xavier under ReLU, MLP 64-256x6-10",
        check_model_variance,
        _mlp("xavier", (64, *([256] * 6), 10)),
        {},
    ),
    Case(
        "model_variance: He without √2, MLP 64-256x6-10",
        check_model_variance,
        _mlp("he", (64, *([256] * 6), 10), nonlinearity="linear"),
        {},
    ),
]


def _no_rescale(module: nn.Module) -> nn.Module:
    """``module`` with its 1/(1 − p) undone in training."""

    class NoRescale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module
            self.p = module.p

        def forward(self, x):
            return self.inner(x) * (1 - self.p) if self.training else x

    return NoRescale()


SWEEP_SHAPES = {"Dropout2d": (8, 16, 4, 4), "Dropout1d": (8, 16, 10), "path": (16, 32)}

#: issue #12's sweep: shared draws at the default alpha (correct ones must pass every seed)
SWEEP: list[Case] = [
    Case(
        "expectation: torch Dropout2d p=0.3",
        check_expectation_equal,
        _module(lambda s: nn.Dropout2d(0.3), SWEEP_SHAPES["Dropout2d"]),
        {},
    ),
    Case(
        "expectation: torch Dropout1d p=0.3",
        check_expectation_equal,
        _module(lambda s: nn.Dropout1d(0.3), SWEEP_SHAPES["Dropout1d"]),
        {},
    ),
    Case(
        "expectation: drop-path p=0.2",
        check_expectation_equal,
        _module(lambda s: DropPath(0.2, make_generator(s)), SWEEP_SHAPES["path"]),
        {},
    ),
    Case(
        "expectation: per-sample DropConnectLinear(32, 24, p=0.3)",
        check_expectation_equal,
        lambda s: (
            DropConnectLinear(32, 24, p=0.3, per_sample=True, generator=make_generator(s)),
            _x(SWEEP_SHAPES["path"], s),
        ),
        {},
    ),
    Case(
        "drop_rate: torch Dropout2d p=0.3",
        check_drop_rate,
        _module(lambda s: nn.Dropout2d(0.3), SWEEP_SHAPES["Dropout2d"]),
        {},
    ),
    Case(
        "drop_rate: torch Dropout1d p=0.3",
        check_drop_rate,
        _module(lambda s: nn.Dropout1d(0.3), SWEEP_SHAPES["Dropout1d"]),
        {},
    ),
    Case(
        "drop_rate: drop-path p=0.2",
        check_drop_rate,
        _module(lambda s: DropPath(0.2, make_generator(s)), SWEEP_SHAPES["path"]),
        {},
    ),
    Case(
        "expectation: Dropout2d without rescale",
        check_expectation_equal,
        _module(lambda s: _no_rescale(nn.Dropout2d(0.3)), SWEEP_SHAPES["Dropout2d"]),
        {},
    ),
    Case(
        "expectation: Dropout1d without rescale",
        check_expectation_equal,
        _module(lambda s: _no_rescale(nn.Dropout1d(0.3)), SWEEP_SHAPES["Dropout1d"]),
        {},
    ),
    Case(
        "expectation: drop-path without rescale",
        check_expectation_equal,
        _module(lambda s: NoRescaleDropPath(0.2, make_generator(s)), SWEEP_SHAPES["path"]),
        {},
    ),
    Case(
        "expectation: per-sample DropConnect without rescale",
        check_expectation_equal,
        lambda s: (
            NoRescaleDropConnect(32, 24, p=0.3, per_sample=True, generator=make_generator(s)),
            _x(SWEEP_SHAPES["path"], s),
        ),
        {},
    ),
]


class _ScaledExactDropout(ExactVarianceDropout):
    """Our exact-variance dropout, ``factor`` times too small in training."""

    def __init__(self, p: float, factor: float) -> None:
        super().__init__(p)
        self.factor = factor

    def forward(self, x):
        return super().forward(x) * (self.factor if self.training else 1.0)


def _row(case: Case, runs: int, alpha: float) -> str:
    start = time.perf_counter()
    result = calibrate(case.check, case.make, runs=runs, alpha=alpha, **case.options)
    seconds = time.perf_counter() - start
    return (
        f"| {case.name} | {result.runs} | {result.failures} | {result.rate:.4f} | "
        f"[{result.low:.4f}, {result.high:.4f}] | {seconds:.0f} s |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--alpha", type=float, default=1e-2)
    parser.add_argument("--power-runs", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip-power", action="store_true")
    parser.add_argument("--skip-calibration", action="store_true")
    parser.add_argument("--sweep-runs", type=int, default=0, help="seeds of the shared-draw sweep")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def chosen(cases):
        return [c for c in cases if not args.only or any(o in c.name for o in args.only)]

    header = "| case | runs | rejections | rate | 95 % interval | time |\n|---|---|---|---|---|---|"
    if args.sweep_runs:
        print(f"Shared draws at the default alpha = {DEFAULT_ALPHA:g}\n\n{header}")
        for case in chosen(SWEEP):
            print(_row(case, args.sweep_runs, DEFAULT_ALPHA), flush=True)
        print()
    if not args.skip_calibration:
        print(f"False failures of correct subjects at alpha = {args.alpha:g}\n\n{header}")
        for case in chosen(CALIBRATION):
            print(_row(case, args.runs, args.alpha), flush=True)
    if not args.skip_power:
        print(
            f"\nPower against broken subjects at the default alpha = {DEFAULT_ALPHA:g}\n\n{header}"
        )
        for case in chosen(POWER):
            print(_row(case, args.power_runs, DEFAULT_ALPHA), flush=True)


if __name__ == "__main__":
    main()
