"""The architecture study: accuracy, parameters, training and inference time of MLP, CNN and ResNet."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...scenarios import Scenario, get
from ..claims import combine, compare_runs, mean, sd
from ..config import StudyConfig
from ..results import Claim, Section, Table
from ..runs import Context, Run, inference_ms_per_1000
from .common import (
    comparison_claim,
    describe_test_set,
    eval_every,
    metric,
    model_text,
    seeds_text,
)

__all__ = ["analyze", "plan"]

#: Architecture comparison: (catalog name, role); all trained with the same steps and batch size.
ARCH_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("arch-mlp", "MLP"),
    ("arch-cnn", "CNN"),
    ("resnet-basic", "ResNet"),
)


def plan(config: StudyConfig) -> list[Scenario]:
    """The scenarios this study trains under ``config`` (each with every seed)."""
    steps = config.arch_steps
    return [
        get(name).replace(
            steps=steps,
            batch_size=config.arch_batch_size,
            eval_every=eval_every(steps, config.evals),
            test_subset=config.conv_test_subset,
            downsample=1,  # the study compares the models on the original 28x28 images
        )
        for name, _ in ARCH_SCENARIOS
    ]


def analyze(ctx: Context, runs: Mapping[str, list[Run]]) -> Section:
    """The section: tables, claims with verdicts, and the data of the figures."""
    config = ctx.config
    role = dict(ARCH_SCENARIOS)
    n_infer = min(config.infer_images, len(ctx.data.test))
    x = ctx.data.test.float()[:n_infer]
    infer: dict[str, list[float]] = {}
    rows = []
    params: dict[str, int] = {}
    for name, lab in ARCH_SCENARIOS:
        rs = runs[name]
        infer[name] = [
            inference_ms_per_1000(r.model, x, repeats=config.infer_repeats)
            for r in rs  # type: ignore[arg-type]
        ]
        params[name] = rs[0].model.count_parameters()  # type: ignore[union-attr]
        acc = metric(rs, "final_accuracy")
        times = metric(rs, "train_time_s")
        rows.append(
            (
                f"{lab} ({model_text(rs[0].scenario)})",
                mean(acc),
                sd(acc),
                params[name],
                mean(times),
                mean(infer[name]),
            )
        )
    table = Table(
        "architecture",
        f"Architectures at the same budget ({config.arch_steps} steps, batch {config.arch_batch_size}, Adam 1e-3)",
        (
            "model",
            "test accuracy",
            "sd over seeds",
            "parameters",
            "train time (s)",
            "inference (ms / 1000 images)",
        ),
        ("s", ".4f", ".4f", "d", ".2f", ".1f"),
        tuple(rows),
        note=(
            f"Mean over {seeds_text(config)}; test set: {describe_test_set(runs)}. Train time: the "
            f"training steps only; inference: median of {config.infer_repeats} eval-mode "
            f"pass(es) over {n_infer} test images in batches of 500, after a warm-up, on "
            f"{ctx.device.type} with {torch.get_num_threads()} thread(s)."
        ),
    )
    acc = {n: metric(runs[n], "final_accuracy") for n, _ in ARCH_SCENARIOS}
    times = {n: metric(runs[n], "train_time_s") for n, _ in ARCH_SCENARIOS}
    claims = [
        comparison_claim(
            f"architecture.{role[n].lower()}-beats-mlp",
            f"The {role[n]} beats the fully connected network at the same budget: higher test "
            "accuracy.",
            acc[n],
            acc["arch-mlp"],
            (role[n], "MLP"),
            margin=config.accuracy_margin,
            what="test accuracy",
        )
        for n in ("arch-cnn", "resnet-basic")
    ]
    parts, evidence = [], []
    for n in ("arch-cnn", "resnet-basic"):
        for what, values in (("train time (s)", times), ("inference ms / 1000", infer)):
            c = compare_runs(
                values["arch-mlp"], values[n], margin=0.0, higher_is_better=False, what=what
            )
            parts.append(c.verdict)
            evidence.append(f"{what}: MLP {c.mean_a:.3g} vs {role[n]} {c.mean_b:.3g}")
    claims.append(
        Claim(
            "architecture.mlp-cheapest",
            "The fully connected network is the cheapest to train and to run.",
            "for training time and inference time, against the CNN and the ResNet: each "
            "comparison is supported when every MLP run is faster than every run of the other "
            "model (with >= 3 seeds: faster on average with a one-sided Welch p < 0.05); the "
            "claim needs all four",
            combine(parts),
            "; ".join(evidence),
            {"train_time_s": times, "inference_ms_per_1000": infer, "parameters": params},
        )
    )
    return Section(
        "architecture",
        "Architectures: MLP vs CNN vs ResNet",
        (
            "The coursework's comparison table: a fully connected network, a small CNN and a "
            f"ResNet trained with the same optimizer, steps ({config.arch_steps}) and batch size "
            f"({config.arch_batch_size}), {seeds_text(config)}."
        ),
        tables=[table],
        claims=claims,
        data={
            "models": {
                n: {
                    "label": f"{role[n]} ({model_text(runs[n][0].scenario)})",
                    "test_accuracy": acc[n],
                    "parameters": params[n],
                    "train_time_s": times[n],
                    "inference_ms_per_1000": infer[n],
                }
                for n, _ in ARCH_SCENARIOS
            }
        },
    )
