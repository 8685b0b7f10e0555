"""What-ifs against the recorded baselines: which standard changes the gate catches.

Default run (cheap): a network that does not learn (lr × 1e-5) is caught in every scenario,
by the chance floor, shown on a short dead run (10 steps, 1,000 test images: its weights
move by at most ~10·3.2·lr·1e-5 either way, so it is the same untrained network the
full-length dead run evaluates); one cheap scenario runs every standard what-if at full length and must
match its row of the README's what-if table.

Opt-in (slow, about half an hour on 2 cores): ``NETPROPS_WHATIF_TABLE=1 pytest
tests/regression/test_whatif.py -n 2`` runs every what-if against every scenario and checks
the whole README table; ``netprops baselines whatif`` prints the table itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netprops import baselines
from netprops.gate import GATE_ALPHA, gate_metric
from netprops.scenarios import GATED_METRICS, get, list_scenarios, run_scenario

pytestmark = pytest.mark.convergence

README = Path(__file__).resolve().parents[2] / "README.md"
CHEAP = "reg-none"
FULL_TABLE = os.environ.get("NETPROPS_WHATIF_TABLE", "") not in ("", "0")


def _readme_table() -> list[str]:
    """The lines of the README's what-if table (header first)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\| scenario \| lr ÷ 2 ", line))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _readme_row(name: str) -> str:
    rows = [line for line in _readme_table() if line.startswith(f"| {name} |")]
    assert len(rows) == 1, f"the README's what-if table must hold one row for {name}: {rows}"
    return rows[0]


@pytest.mark.parametrize("name", list_scenarios())
def test_a_dead_network_is_caught_by_the_floor(name, stored, fashion_cpu):
    scenario = get(name)
    dead = scenario.replace(lr=scenario.lr * 1e-5, steps=10, cooldown=0.0, test_subset=1000)
    fresh = [
        run_scenario(dead, seed, data=fashion_cpu).metrics["final_accuracy"]
        for seed in scenario.fresh_seeds
    ]
    recorded = [v for v in stored(name).metrics["final_accuracy"] if v is not None]
    result = gate_metric(
        "final_accuracy",
        recorded,
        fresh,
        alpha=GATE_ALPHA / len(GATED_METRICS),
        floor=scenario.chance_floor,
    )
    assert result.floor_hit and not result.passed, f"{name}: a dead network passes: {result}"


def _check_row(name, root, data):
    verdicts = baselines.what_if_verdicts(name, root=root, data=data)
    dead = verdicts["lr × 1e-5 (dead)"]
    assert dead.passed is False, dead.message
    # a red gate says why: the live monitor watched the fresh runs and saw them stall
    assert "what the monitor saw:" in dead.message
    assert dead.diagnosis.count("update_ratio") == len(dead.fresh["final_accuracy"])
    assert "stalled" in dead.diagnosis and "from step 0" in dead.diagnosis
    table = baselines.format_what_if_table({name: verdicts})
    assert table.splitlines()[-1] == _readme_row(name), (
        "the README's what-if table is out of date; regenerate it with "
        "`netprops baselines whatif > table.md`:\n" + table
    )


def test_every_what_if_of_a_cheap_scenario_matches_the_readme(baselines_root, fashion_cpu):
    _check_row(CHEAP, baselines_root, fashion_cpu)


@pytest.mark.skipif(
    not FULL_TABLE,
    reason="opt-in: set NETPROPS_WHATIF_TABLE=1 (slow: about half an hour on 2 cores)",
)
@pytest.mark.parametrize("name", [n for n in list_scenarios() if n != CHEAP])
def test_the_readme_what_if_table(name, baselines_root, fashion_cpu):
    _check_row(name, baselines_root, fashion_cpu)


def test_readme_table_lists_every_scenario_and_the_standard_what_ifs():
    from netprops.scenarios import what_ifs

    table = _readme_table()
    assert table[0] == "| scenario | " + " | ".join(what_ifs(CHEAP)) + " |"
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[2:]] == list_scenarios()
    dead = [line.split(" | ")[2] for line in table[2:]]
    assert all(cell.startswith("caught") for cell in dead), "a dead network missed in the README"
