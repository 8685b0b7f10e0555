"""The studies: each module has ``plan(config)`` (the trainings) and ``analyze(ctx, runs)`` (the section)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...scenarios import Scenario
from ..config import STUDIES, StudyConfig
from ..results import Section
from ..runs import Context, Run
from . import architecture, depth, initialization, normalization, regularization
from .confusion import confusion_section
from .diagnostics import diagnostics_section

__all__ = ["REGISTRY", "Study", "confusion_section", "diagnostics_section"]


@dataclass(frozen=True)
class Study:
    """A study: which trainings to run, and how to turn their runs into a section."""

    plan: Callable[[StudyConfig], list[Scenario]]
    analyze: Callable[[Context, Mapping[str, list[Run]]], Section]


REGISTRY: dict[str, Study] = {
    "init": Study(initialization.plan, initialization.analyze),
    "regularization": Study(regularization.plan, regularization.analyze),
    "normalization": Study(normalization.plan, normalization.analyze),
    "depth": Study(depth.plan, depth.analyze),
    "architecture": Study(architecture.plan, architecture.analyze),
}
"""Study name -> :class:`Study`, in report order."""

assert tuple(REGISTRY) == STUDIES
