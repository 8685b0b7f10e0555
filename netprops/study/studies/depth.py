"""The depth study: per-layer gradient norms through training, plain vs residual deep CNN."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from torch import nn

from ...scenarios import Scenario, get
from ..claims import compare_runs, mean
from ..config import StudyConfig
from ..results import Claim, Section, Table
from ..runs import Context, Run
from .common import (
    comparison_claim,
    describe_test_set,
    eval_every,
    fmt,
    geomean,
    init_text,
    metric,
    model_text,
    seeds_text,
)

__all__ = ["analyze", "plan"]

DEPTH_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("depth-depth8", "plain CNN"),
    ("depth-depth8-residual", "residual CNN"),
)


def plan(config: StudyConfig) -> list[Scenario]:
    """The scenarios this study trains under ``config`` (each with every seed)."""
    steps = config.depth_steps
    return [
        get(name).replace(
            steps=steps,
            eval_every=eval_every(steps, config.evals),
            test_subset=config.conv_test_subset,
            downsample=1,  # the study trains on the original 28x28 images
        )
        for name, _ in DEPTH_SCENARIOS
    ]


def _conv_layers(run: Run) -> list[str]:
    assert run.history is not None and run.model is not None
    modules = dict(run.model.named_modules())
    return [k for k in run.history.grad_norms if isinstance(modules.get(k), nn.Conv2d)]


def analyze(ctx: Context, runs: Mapping[str, list[Run]]) -> Section:
    """The section: tables, claims with verdicts, and the data of the figures."""
    config = ctx.config
    label = dict(DEPTH_SCENARIOS)
    window = max(1, config.depth_steps // 10)
    ratios: dict[str, list[float]] = {}
    rows = []
    series: dict[str, Any] = {}
    for name, lab in DEPTH_SCENARIOS:
        firsts, lasts, rs = [], [], []
        for run in runs[name]:
            convs = _conv_layers(run)
            norms = run.history.grad_norms  # type: ignore[union-attr]
            first = statistics.median(norms[convs[0]][:window])
            last = statistics.median(norms[convs[-1]][:window])
            firsts.append(first)
            lasts.append(last)
            rs.append(first / last if last > 0 else math.nan)
        ratios[name] = rs
        first_run = runs[name][0]
        series[name] = {
            "label": lab,
            "layers": list(first_run.history.grad_norms),  # type: ignore[union-attr]
            "conv_layers": _conv_layers(first_run),
            "grad_norms": {s.seed: s.history.grad_norms for s in runs[name]},  # type: ignore[union-attr]
            "test_accuracy": metric(runs[name], "final_accuracy"),
        }
        rows.append(
            (
                lab,
                mean(metric(runs[name], "final_accuracy")),
                mean(firsts),
                mean(lasts),
                geomean(rs),
                mean(metric(runs[name], "train_time_s")),
            )
        )
    table = Table(
        "depth",
        f"Deep plain vs residual CNN ({config.depth_steps} steps)",
        (
            "network",
            "test accuracy",
            "first-conv grad norm",
            "last-conv grad norm",
            "first/last",
            "train time (s)",
        ),
        ("s", ".4f", ".3g", ".3g", ".3g", ".2f"),
        tuple(rows),
        note=(
            f"Gradient norms: median over the first {window} step(s) of each layer's parameter "
            f"gradient L2 norm; mean over {seeds_text(config)} (first/last: geometric mean). "
            f"Test set: {describe_test_set(runs)}."
        ),
    )
    plain, res = "depth-depth8", "depth-depth8-residual"
    log_ratio = {n: [math.log10(r) for r in ratios[n] if r > 0] for n in ratios}
    c = compare_runs(
        log_ratio[res],
        log_ratio[plain],
        margin=math.log10(2),
        what="log10 first/last gradient ratio",
        names=(label[res], label[plain]),
    )
    claims = [
        Claim(
            "depth.gradient-flow",
            "Without skip connections the gradient vanishes toward the input of a deep CNN; "
            "residual connections carry it back to the first layers.",
            c.rule + " (margin log10 2: the ratio must be more than twice as large)",
            c.verdict,
            f"first-conv / last-conv gradient norm over the first {window} step(s): "
            f"{label[res]} {fmt(ratios[res])} vs {label[plain]} {fmt(ratios[plain])}",
            {"ratio_residual": ratios[res], "ratio_plain": ratios[plain], **c.numbers()},
        ),
        comparison_claim(
            "depth.trains",
            "Adding residual connections improves the training of the deep CNN: higher test "
            f"accuracy after the same {config.depth_steps} steps.",
            metric(runs[res], "final_accuracy"),
            metric(runs[plain], "final_accuracy"),
            (label[res], label[plain]),
            margin=config.accuracy_margin,
            what="test accuracy",
        ),
    ]
    sample = runs[plain][0]
    width = getattr(sample.model, "width", None)
    return Section(
        "depth",
        "Depth: plain vs residual deep CNN",
        (
            f"{model_text(sample.scenario)} and {model_text(runs[res][0].scenario)}: "
            f"{len(_conv_layers(sample))} conv layers"
            + (f" of {width} channels" if width else "")
            + f", the same except for the identity skips, with {init_text(sample.scenario)}; "
            f"{config.depth_steps} steps of Adam at batch {sample.scenario.batch_size}, "
            f"recording every layer's gradient norm at every step ({seeds_text(config)})."
        ),
        tables=[table],
        claims=claims,
        data={"series": series, "window": window},
    )
