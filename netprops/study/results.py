"""What a study produces: tables, claims with verdicts, sections, and their JSON form.

A :class:`Section` is pure data (numbers, tables, claims); the figures and
the report are rendered from it, so every number shown in ``report.md`` is
also in ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INCONCLUSIVE",
    "NOT_SUPPORTED",
    "RESULTS_FORMAT",
    "RESULTS_VERSION",
    "SUPPORTED",
    "VERDICTS",
    "Claim",
    "FigureRef",
    "Section",
    "StudyResult",
    "Table",
    "format_cell",
    "json_ready",
]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported by this run"
INCONCLUSIVE = "inconclusive"
VERDICTS: tuple[str, ...] = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)

RESULTS_FORMAT = "netprops.study"
RESULTS_VERSION = 1

Cell = str | int | float | None

_MISSING = "—"


def format_cell(value: Cell, fmt: str) -> str:
    """Render one table cell.

    ``fmt`` is ``"s"`` (text), ``"d"`` (integer with thousands separators) or
    a float format spec such as ``".4f"`` / ``".3g"``. ``None`` and NaN render
    as an em dash; a string is shown as is whatever the format (a failed run
    puts its reason in a numeric column).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, str) or fmt == "s":
        return str(value)
    if fmt == "d":
        return f"{int(value):,}"
    return format(float(value), fmt)


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists, NaN/inf floats as None and mapping keys as str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class Table:
    """A table of the report.

    Attributes
    ----------
    key : str
        Identifier (unique within the report), used in ``results.json``.
    title : str
    columns : tuple of str
    formats : tuple of str
        One :func:`format_cell` format per column.
    rows : tuple of tuples
        Raw cell values (the first cell labels the row).
    note : str
        A sentence under the table (how the numbers were measured).
    """

    key: str
    title: str
    columns: tuple[str, ...]
    formats: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.formats) != len(self.columns):
            raise ValueError(
                f"table {self.key!r}: {len(self.formats)} formats for {len(self.columns)} columns"
            )
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.key!r}: row {row!r} has {len(row)} cells, "
                    f"expected {len(self.columns)}"
                )

    def formatted_rows(self) -> list[list[str]]:
        """Every row as display strings."""
        return [
            [format_cell(v, f) for v, f in zip(row, self.formats, strict=True)] for row in self.rows
        ]

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "key": self.key,
                "title": self.title,
                "columns": self.columns,
                "formats": self.formats,
                "rows": self.rows,
                "note": self.note,
            }
        )


@dataclass(frozen=True)
class Claim:
    """A statement the study tests, the rule that decides it, and the verdict.

    Attributes
    ----------
    key : str
        Identifier, e.g. ``"init.he-forward"``.
    text : str
        The claim, as the source material makes it.
    rule : str
        How the verdict was computed from the run's numbers.
    verdict : str
        One of :data:`VERDICTS`; computed, never fixed in advance.
    evidence : str
        The numbers behind the verdict, in words.
    numbers : mapping
        The same numbers, for ``results.json``.
    """

    key: str
    text: str
    rule: str
    verdict: str
    evidence: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def __str__(self) -> str:
        return f"[{self.verdict}] {self.text} — {self.evidence}"

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "key": self.key,
                "text": self.text,
                "rule": self.rule,
                "verdict": self.verdict,
                "evidence": self.evidence,
                "numbers": dict(self.numbers),
            }
        )


@dataclass(frozen=True)
class FigureRef:
    """A figure file written next to the report, and its caption."""

    filename: str
    caption: str


@dataclass
class Section:
    """One study's results.

    Attributes
    ----------
    name : str
        The study's name (``init``, ``regularization`` ...).
    title : str
    intro : str
        What was run (models, steps, seeds, data).
    tables, claims : lists
    data : dict
        Raw series the figures are drawn from (curves, profiles, matrices).
    notes : list of str
        Observations that are not claims (e.g. a configuration that could not run).
    figures : list of FigureRef
        Filled in when the figures are rendered.
    elapsed_s : float
        Wall time of the study.
    """

    name: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "name": self.name,
                "title": self.title,
                "intro": self.intro,
                "elapsed_s": self.elapsed_s,
                "tables": [t.to_dict() for t in self.tables],
                "claims": [c.to_dict() for c in self.claims],
                "notes": list(self.notes),
                "figures": [{"file": f.filename, "caption": f.caption} for f in self.figures],
                "data": self.data,
            }
        )


@dataclass
class StudyResult:
    """Everything one study run produced: its configuration, environment and sections."""

    config: dict[str, Any]
    environment: dict[str, Any]
    sections: list[Section]
    elapsed_s: float = 0.0

    @property
    def claims(self) -> list[Claim]:
        """Every claim of every section, in report order."""
        return [c for s in self.sections for c in s.claims]

    def section(self, name: str) -> Section:
        """The section called ``name``; KeyError listing the names otherwise."""
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(f"no section {name!r}; sections: {[s.name for s in self.sections]}")

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "format": RESULTS_FORMAT,
                "version": RESULTS_VERSION,
                "config": self.config,
                "environment": self.environment,
                "elapsed_s": self.elapsed_s,
                "sections": [s.to_dict() for s in self.sections],
            }
        )
