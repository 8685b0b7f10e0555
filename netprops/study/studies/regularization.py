"""The regularization study: the train–test gap with no regularization, Dropout and DropConnect."""

from __future__ import annotations

from collections.abc import Mapping

from ...scenarios import Scenario, get
from ..claims import mean, sd
from ..config import StudyConfig
from ..results import Section, Table
from ..runs import Context, Run
from .common import (
    comparison_claim,
    curves,
    describe_test_set,
    eval_every,
    init_text,
    metric,
    model_text,
    seeds_text,
)

__all__ = ["analyze", "plan"]

REG_SCENARIOS: tuple[str, ...] = ("reg-none", "reg-dropout", "reg-dropconnect")


def _label(scenario: Scenario) -> str:
    args = scenario.model_args
    if args.get("dropconnect"):
        return f"DropConnect p={args['dropconnect']:g}"
    if args.get("dropout"):
        return f"Dropout p={args['dropout']:g}"
    return "none"


def plan(config: StudyConfig) -> list[Scenario]:
    """The scenarios this study trains under ``config`` (each with every seed)."""
    steps = config.reg_steps
    return [
        get(name).replace(
            steps=steps,
            eval_every=eval_every(steps, config.evals),
            test_subset=config.test_subset,
        )
        for name in REG_SCENARIOS
    ]


def analyze(ctx: Context, runs: Mapping[str, list[Run]]) -> Section:
    """The section: tables, claims with verdicts, and the data of the figures."""
    config = ctx.config
    label = {n: _label(runs[n][0].scenario) for n in REG_SCENARIOS}
    sample = runs["reg-none"][0].scenario
    rows = []
    for name in REG_SCENARIOS:
        lab = label[name]
        rows.append(
            (
                lab,
                mean(metric(runs[name], "train_accuracy")),
                mean(metric(runs[name], "final_accuracy")),
                mean(metric(runs[name], "train_test_gap")),
                sd(metric(runs[name], "train_test_gap")),
                mean(metric(runs[name], "train_time_s")),
            )
        )
    table = Table(
        "regularization",
        f"Train–test gap after {config.reg_steps} steps on {sample.train_subset:,} training images",
        ("regularization", "train accuracy", "test accuracy", "gap", "gap sd", "train time (s)"),
        ("s", ".4f", ".4f", ".4f", ".4f", ".2f"),
        tuple(rows),
        note=(
            f"Mean over {seeds_text(config)}. Train accuracy: a full pass over the "
            f"{sample.train_subset:,} training images in eval mode; test set: {describe_test_set(runs)}."
        ),
    )
    gaps = {n: metric(runs[n], "train_test_gap") for n in REG_SCENARIOS}
    accs = {n: metric(runs[n], "final_accuracy") for n in REG_SCENARIOS}
    claims = [
        comparison_claim(
            f"regularization.{short}",
            f"{label[name]} reduces over-fitting: a smaller train–test accuracy gap than no "
            "regularization.",
            gaps[name],
            gaps["reg-none"],
            (label[name], "no regularization"),
            margin=config.gap_margin,
            what="train–test gap",
            higher_is_better=False,
        )
        for name, short in (("reg-dropout", "dropout"), ("reg-dropconnect", "dropconnect"))
    ]
    claims.append(
        comparison_claim(
            "regularization.dropconnect-vs-dropout",
            "DropConnect keeps more information than Dropout (it drops single connections, "
            "not whole units): higher test accuracy.",
            accs["reg-dropconnect"],
            accs["reg-dropout"],
            (label["reg-dropconnect"], label["reg-dropout"]),
            margin=config.accuracy_margin,
            what="test accuracy",
        )
    )
    return Section(
        "regularization",
        "Regularization: DropConnect vs Dropout vs none",
        (
            f"{model_text(sample)} with {init_text(sample)}, trained {config.reg_steps} steps "
            f"(batch {sample.batch_size}) on a fixed subset of {sample.train_subset:,} training "
            f"images, so that it over-fits; {seeds_text(config)}."
        ),
        tables=[table],
        claims=claims,
        data={
            "methods": {
                n: {
                    "label": label[n],
                    "train_accuracy": metric(runs[n], "train_accuracy"),
                    "test_accuracy": accs[n],
                    "gap": gaps[n],
                }
                for n in REG_SCENARIOS
            },
            "curves": {n: {"label": label[n], "runs": curves(runs[n])} for n in REG_SCENARIOS},
        },
    )
