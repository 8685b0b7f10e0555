"""Every deliberately broken layer in the catalog is caught by a public check at every one
of five seeds; the correct twins pass every applicable check for six other seeds.

The kill matrix (mutant × check: X killed at every seed, a digit k killed at k of
the seeds, - never, . not applicable) is printed in the terminal summary. A
mutant counts as killed at a seed only when a check raises ``PropertyViolation``
there; any other exception is an error of the catalog and fails the test.
"""

from __future__ import annotations

import pytest
from properties.conftest import register_seeded

from netprops import PropertyViolation

from .conftest import KILL_MATRIX
from .mutants import CATALOG, CHECK_ORDER, Mutant, Twin, twins

MUTANT_SEEDS = (0, 1, 2, 3, 4)
TWIN_SEEDS = (11, 12, 13, 14, 15, 16)
FAMILIES = {
    "init",
    "LayerNorm",
    "BatchNorm",
    "RMSNorm",
    "GroupNorm",
    "InstanceNorm",
    "Dropout",
    "DropConnect",
    "residual",
    "activation",
    "pooling",
    "clipping",
    "dynamics",
    "structure",
}


def _killed_at(mutant: Mutant, probe, device: str) -> frozenset[int]:
    """The seeds of MUTANT_SEEDS at which ``probe`` catches ``mutant``."""
    seeds = set()
    for seed in MUTANT_SEEDS:
        subject = mutant.build(seed, device)
        try:
            probe.run(subject, seed, device)
        except PropertyViolation:
            seeds.add(seed)
    return frozenset(seeds)


def _symbol(seeds: frozenset[int] | None) -> str:
    if seeds is None:
        return "."
    if len(seeds) == len(MUTANT_SEEDS):
        return "X"
    return str(len(seeds)) if seeds else "-"


def _render(matrix: dict[str, dict[str, frozenset[int]]]) -> list[str]:
    """Mutants as rows, checks as numbered columns (see the module docstring for symbols)."""
    columns = [c for c in CHECK_ORDER if any(c in row for row in matrix.values())]
    width = max(len(name) for name in matrix)
    header = "mutant".ljust(width) + " " + "".join(f"{i:>3}" for i in range(1, len(columns) + 1))
    lines = [header + "  kills", "-" * (len(header) + 7)]
    for name, row in matrix.items():
        cells = "".join(f"{_symbol(row.get(c)):>3}" for c in columns)
        kills = sum(len(v) == len(MUTANT_SEEDS) for v in row.values())
        lines.append(f"{name.ljust(width)} {cells}  {kills}/{len(row)}")
    lines.append("columns: " + ", ".join(f"{i} {c}" for i, c in enumerate(columns, start=1)))
    lines.append(
        f"X = killed (PropertyViolation) at each of seeds {list(MUTANT_SEEDS)}, k = at k of them, "
        "- = never, . = check not applicable"
    )
    killed = sum(not _escapes(row) for row in matrix.values())
    lines.append(
        f"{killed}/{len(matrix)} mutants killed by a public check at every one of "
        f"{len(MUTANT_SEEDS)} seeds"
    )
    return lines


def _escapes(row: dict[str, frozenset[int]]) -> list[int]:
    """The seeds at which no check catches the mutant."""
    caught = frozenset().union(*row.values())
    return [seed for seed in MUTANT_SEEDS if seed not in caught]


def test_catalog_covers_every_layer_family():
    assert len(CATALOG) >= 45
    assert {m.family for m in CATALOG} == FAMILIES
    assert len({m.name for m in CATALOG}) == len(CATALOG)
    for mutant in CATALOG:
        assert mutant.probes, mutant.name
        assert {p.check for p in mutant.probes} <= set(CHECK_ORDER)


def test_every_mutant_is_killed(device, request):
    matrix = {
        m.name: {probe.check: _killed_at(m, probe, device) for probe in m.probes} for m in CATALOG
    }
    lines = _render(matrix)
    # shown in the terminal summary (tests/quality/conftest.py); printed too, for -rP and
    # for pytest-xdist runs, whose controller does not load this directory's conftest
    request.config.stash.setdefault(KILL_MATRIX, {})[device] = lines
    print("\n".join(lines))
    survivors = {name: _escapes(row) for name, row in matrix.items() if _escapes(row)}
    assert not survivors, (
        "mutants no public check catches (at these seeds): "
        + ", ".join(f"{name} {seeds}" for name, seeds in survivors.items())
        + "\n"
        + "\n".join(lines)
    )


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.name)
def test_correct_twin_passes_every_applicable_check(device, twin: Twin):
    for seed in TWIN_SEEDS:
        for probe in twin.probes:
            probe.run(twin.build(seed, device), seed, device)  # raises on a violation


# α accounting: each (twin, statistical probe) pair runs once per seed at level <= ALPHA
register_seeded(
    test_correct_twin_passes_every_applicable_check,
    len(TWIN_SEEDS),
    cases=sum(p.statistical for t in twins() for p in t.probes),
)
