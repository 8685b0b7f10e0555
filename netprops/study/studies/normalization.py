"""The normalization study: no normalization, LayerNorm and BatchNorm at batch sizes 1, 4, 32, 128."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...scenarios import Scenario, get
from ..claims import every_sample, mean
from ..config import NORM_BATCH_SIZES, StudyConfig
from ..results import Claim, Section, Table
from ..runs import Context, Run
from .common import (
    comparison_claim,
    describe_test_set,
    eval_every,
    fmt,
    init_text,
    metric,
    seeds_text,
)

__all__ = ["analyze", "plan"]

NORMS: tuple[tuple[str, str], ...] = (
    ("none", "none"),
    ("layer", "LayerNorm"),
    ("batch", "BatchNorm"),
)
_LN_BATCH1_ACCURACY = 0.5  # "trains at batch size 1": 5× chance on 10 classes


def _norm_name(norm: str, batch: int) -> str:
    return f"norm-{norm}-b{batch}"


def plan(config: StudyConfig) -> list[Scenario]:
    """The scenarios this study trains under ``config`` (each with every seed)."""
    plan = []
    for norm, _ in NORMS:
        base = get(_norm_name(norm, 128))
        for batch in NORM_BATCH_SIZES:
            steps = config.norm_steps[batch]
            plan.append(
                base.replace(
                    name=_norm_name(norm, batch),
                    description=base.description.replace("batch 128", f"batch {batch}"),
                    batch_size=batch,
                    steps=steps,
                    eval_every=eval_every(steps, config.evals),
                    test_subset=config.test_subset,
                )
            )
    return plan


def analyze(ctx: Context, runs: Mapping[str, list[Run]]) -> Section:
    """The section: tables, claims with verdicts, and the data of the figures."""
    config = ctx.config
    cannot = "cannot train"
    rows = []
    grid: dict[str, dict[str, Any]] = {}
    for norm, lab in NORMS:
        cells: list[Any] = [lab]
        grid[norm] = {"label": lab, "accuracy": {}, "errors": {}}
        for batch in NORM_BATCH_SIZES:
            rs = runs[_norm_name(norm, batch)]
            acc = metric(rs, "final_accuracy")
            errors = [r.error for r in rs if r.error is not None]
            grid[norm]["accuracy"][str(batch)] = acc
            grid[norm]["errors"][str(batch)] = errors
            cells.append(mean(acc) if acc else cannot)
        rows.append(tuple(cells))
    steps_text = ", ".join(f"batch {b}: {config.norm_steps[b]}" for b in NORM_BATCH_SIZES)
    table = Table(
        "normalization",
        "Test accuracy by normalization and batch size",
        ("normalization", *(f"batch {b}" for b in NORM_BATCH_SIZES)),
        ("s", *(".4f" for _ in NORM_BATCH_SIZES)),
        tuple(rows),
        note=(
            f"Mean over {seeds_text(config)}; steps per batch size ({steps_text}); "
            f"test set: {describe_test_set(runs)}. Compare along a column: within a column every "
            "normalization saw the same images."
        ),
    )
    bn1 = runs[_norm_name("batch", 1)]
    failed = [r.error is not None for r in bn1]
    reason = next((r.error for r in bn1 if r.error), None)
    claims = [
        Claim(
            "normalization.batchnorm-batch1",
            "BatchNorm cannot train at batch size 1 (a batch holds one value per channel).",
            "supported when training BatchNorm at batch size 1 fails with torch's 'Expected more "
            "than 1 value per channel when training' in every seed, not supported when it trains "
            "in every seed, inconclusive otherwise",
            every_sample(failed),
            f"failed in {sum(failed)}/{len(failed)} seed(s)"
            + (f": {reason.splitlines()[0]}" if reason else ""),
            {"failed": sum(failed), "seeds": len(failed)},
        )
    ]
    ln1 = metric(runs[_norm_name("layer", 1)], "final_accuracy")
    claims.append(
        Claim(
            "normalization.layernorm-batch1",
            "LayerNorm works with any batch size, even 1.",
            f"supported when LayerNorm at batch size 1 reaches test accuracy >= "
            f"{_LN_BATCH1_ACCURACY:g} (chance: 0.1) in every seed, not supported when in none",
            every_sample([a >= _LN_BATCH1_ACCURACY for a in ln1]),
            f"LayerNorm at batch size 1 ({config.norm_steps[1]} steps): test accuracy "
            f"{fmt(ln1, '.4f')}",
            {"accuracy": ln1, "threshold": _LN_BATCH1_ACCURACY},
        )
    )
    claims.append(
        comparison_claim(
            "normalization.small-batch",
            "LayerNorm outperforms BatchNorm with small batches (batch size 4).",
            metric(runs[_norm_name("layer", 4)], "final_accuracy"),
            metric(runs[_norm_name("batch", 4)], "final_accuracy"),
            ("LayerNorm", "BatchNorm"),
            margin=config.accuracy_margin,
            what="test accuracy at batch 4",
        )
    )
    notes = []
    if reason:
        notes.append(
            f"BatchNorm at batch size 1: {cannot} — torch raised: {reason.splitlines()[0]}"
        )
    sample = get(_norm_name("none", 128))
    return Section(
        "normalization",
        "Normalization: LayerNorm vs BatchNorm across batch sizes",
        (
            f"{sample.model} with {init_text(sample)} and no normalization, LayerNorm or "
            f"BatchNorm after each hidden linear layer, trained at batch sizes "
            f"{', '.join(map(str, NORM_BATCH_SIZES))} ({seeds_text(config)}); BatchNorm "
            "evaluates with its running statistics."
        ),
        tables=[table],
        claims=claims,
        data={
            "grid": grid,
            "batch_sizes": list(NORM_BATCH_SIZES),
            "steps": {str(b): config.norm_steps[b] for b in NORM_BATCH_SIZES},
        },
        notes=notes,
    )
