"""Every deliberately broken layer in the catalog is caught by a public check; the correct
twins pass every applicable check for several seeds.

The kill matrix (mutant × check: X killed / - survived / . not applicable) is
printed in the terminal summary. A mutant counts as killed only when a check
raises ``PropertyViolation``; any other exception is an error of the catalog
and fails the test.
"""

from __future__ import annotations

import pytest
from properties.conftest import register_seeded

from netprops import PropertyViolation

from .conftest import KILL_MATRIX
from .mutants import CATALOG, CHECK_ORDER, Mutant, Twin, twins

MUTANT_SEED = 0
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


def _outcome(mutant: Mutant, probe, device: str) -> str:
    subject = mutant.build(MUTANT_SEED, device)
    try:
        probe.run(subject, MUTANT_SEED, device)
    except PropertyViolation:
        return "KILLED"
    return "survived"


def _render(matrix: dict[str, dict[str, str]]) -> list[str]:
    """Mutants as rows, checks as numbered columns: X killed, - survived, . not applicable."""
    columns = [c for c in CHECK_ORDER if any(c in row for row in matrix.values())]
    symbol = {"KILLED": "X", "survived": "-"}
    width = max(len(name) for name in matrix)
    header = "mutant".ljust(width) + " " + "".join(f"{i:>3}" for i in range(1, len(columns) + 1))
    lines = [header + "  kills", "-" * (len(header) + 7)]
    for name, row in matrix.items():
        cells = "".join(f"{symbol.get(row.get(c, ''), '.'):>3}" for c in columns)
        kills = sum(v == "KILLED" for v in row.values())
        lines.append(f"{name.ljust(width)} {cells}  {kills}/{len(row)}")
    lines.append("columns: " + ", ".join(f"{i} {c}" for i, c in enumerate(columns, start=1)))
    lines.append("X = killed (PropertyViolation), - = survived, . = check not applicable")
    killed = sum("KILLED" in row.values() for row in matrix.values())
    lines.append(f"{killed}/{len(matrix)} mutants killed by at least one public check")
    return lines


def test_catalog_covers_every_layer_family():
    assert len(CATALOG) >= 12
    assert {m.family for m in CATALOG} == FAMILIES
    assert len({m.name for m in CATALOG}) == len(CATALOG)
    for mutant in CATALOG:
        assert mutant.probes, mutant.name
        assert {p.check for p in mutant.probes} <= set(CHECK_ORDER)


def test_every_mutant_is_killed(device, request):
    matrix = {
        m.name: {probe.check: _outcome(m, probe, device) for probe in m.probes} for m in CATALOG
    }
    lines = _render(matrix)
    # shown in the terminal summary (tests/quality/conftest.py); printed too, for -rP and
    # for pytest-xdist runs, whose controller does not load this directory's conftest
    request.config.stash.setdefault(KILL_MATRIX, {})[device] = lines
    print("\n".join(lines))
    survivors = [name for name, row in matrix.items() if "KILLED" not in row.values()]
    assert not survivors, (
        "mutants no public check catches: " + ", ".join(survivors) + "\n" + ("\n".join(lines))
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
