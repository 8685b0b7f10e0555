"""The confusion matrix of the best model a study run trained."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..results import Section, Table
from ..runs import Run, predict

__all__ = ["confusion_section"]


def confusion_section(best: Run, classes: Sequence[str]) -> Section:
    assert best.model is not None and best.test is not None
    preds = predict(best.model, best.test).cpu()
    labels = best.test.labels.cpu()
    k = len(classes)
    matrix = torch.zeros((k, k), dtype=torch.long)
    matrix.index_put_((labels, preds), torch.ones_like(labels), accumulate=True)
    m = matrix.tolist()
    rows = []
    for i, name in enumerate(classes):
        total = sum(m[i])
        off = [(m[i][j], classes[j]) for j in range(k) if j != i]
        count, other = max(off) if off else (0, "")
        rows.append(
            (name, total, m[i][i] / total if total else math.nan, other if count else "", count)
        )
    accuracy = sum(m[i][i] for i in range(k)) / max(1, sum(map(sum, m)))
    pairs = sorted(
        ((m[i][j] + m[j][i], classes[i], classes[j]) for i in range(k) for j in range(i + 1, k)),
        reverse=True,
    )
    table = Table(
        "confusion",
        "Per-class accuracy of the best model",
        ("class", "test images", "accuracy", "most often predicted instead", "count"),
        ("s", "d", ".4f", "s", "d"),
        tuple(rows),
        note=(
            f"Best model of this run: {best.scenario.name} (seed {best.seed}), test accuracy "
            f"{accuracy:.4f} on {len(labels):,} test images."
        ),
    )
    notes = []
    if pairs and pairs[0][0] > 0:
        n, a, b = pairs[0]
        notes.append(
            f"The most confused pair of classes: {a} and {b} ({n} test images mistaken either way)."
        )
    return Section(
        "confusion",
        "Confusion matrix of the best model",
        (
            f"The run with the highest final test accuracy in this study, {best.scenario.name} "
            f"({best.scenario.description}), seed {best.seed}; rows are true classes, columns "
            "predictions."
        ),
        tables=[table],
        data={
            "scenario": best.scenario.name,
            "seed": best.seed,
            "classes": list(classes),
            "matrix": m,
            "accuracy": accuracy,
        },
        notes=notes,
    )
