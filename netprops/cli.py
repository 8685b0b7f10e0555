"""``netprops`` command line: a thin argparse front over the library.

Exit status: 0 success / gate passed, 1 a check or gate failed, 2 usage or data error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (e.g. lr=5e-4), got {item!r}")
        overrides[key] = _parse_value(value)
    return overrides


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value


def _scenario_names(names: Sequence[str]) -> list[str]:
    from .scenarios import get, list_scenarios

    for name in names:
        get(name)  # ValueError listing the valid names
    return list(names) or list_scenarios()


def _cmd_baselines(args: argparse.Namespace) -> int:
    from . import baselines
    from .devices import resolve_device
    from .scenarios import get

    names = _scenario_names(args.scenarios)
    overrides = _parse_sets(args.set)
    if overrides and args.action not in ("record", "compare"):
        raise ValueError(f"--set is used by record and compare, not by {args.action}")
    if args.accept and args.action != "migrate":
        raise ValueError(f"--accept is used by migrate, not by {args.action}")
    if args.simulate and args.action != "show":
        raise ValueError(f"--simulate is used by show, not by {args.action}")
    device = resolve_device(args.device)  # ValueError for a bad kind or missing CUDA
    if args.action == "whatif":
        return _what_if_table(names, args)
    status = EXIT_OK
    regression = False
    verdicts = []
    for name in names:
        scenario = get(name)
        if args.action == "record":
            seeds = None if args.seeds is None else tuple(range(args.seeds))
            path = baselines.record(
                scenario.replace(**overrides) if overrides else scenario,
                device=args.device,
                seeds=seeds,
                root=args.root,
                overwrite=args.update,
                threads=args.threads,
            )
            print(f"recorded {path}")
        elif args.action == "compare":
            seeds = None
            if args.seeds is not None:
                seeds = tuple(scenario.fresh_seeds[0] + i for i in range(args.seeds))
            verdict = baselines.compare(
                scenario,
                device=args.device,
                seeds=seeds,
                root=args.root,
                threads=args.threads,
                across_environments=args.across_environments,
                **overrides,
            )
            print(verdict.message)
            verdicts.append(verdict)
            if verdict.passed is None:
                status = EXIT_USAGE
            elif not verdict.passed:
                regression = True
        elif args.action == "migrate":
            seeds = None if args.seeds is None else tuple(range(args.seeds))
            migration = baselines.migrate(
                scenario,
                device=args.device,
                seeds=seeds,
                root=args.root,
                threads=args.threads,
                accept=args.accept,
            )
            print(migration.message)
            if not migration.written:
                regression = True
        else:
            stored = baselines.read_baseline(baselines.baseline_path(name, device.type, args.root))
            print(_describe(stored))
            if args.simulate:
                print(_calibration(stored, args.simulate))
    if verdicts:
        from .plugin.reporting import append_step_summary

        # on GitHub Actions, the verdicts also go to the job's summary page
        summary = baselines.verdicts_markdown(verdicts)
        append_step_summary("### netprops convergence gate\n\n" + summary)
    # a regression anywhere is the answer, even if other scenarios could not be compared
    return EXIT_FAILED if regression else status


def _what_if_table(names: Sequence[str], args: argparse.Namespace) -> int:
    from . import baselines

    verdicts = {}
    for name in names:
        verdicts[name] = baselines.what_if_verdicts(
            name, device=args.device, root=args.root, threads=args.threads
        )
        for label, verdict in verdicts[name].items():
            logging.getLogger(__name__).info("%s", verdict.message if args.verbose else label)
    print(baselines.format_what_if_table(verdicts))
    dead = [
        name
        for name, row in verdicts.items()
        for label, verdict in row.items()
        if "dead" in label and verdict.passed is not False
    ]
    if dead:
        print(f"a dead network was not caught in: {', '.join(dead)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _describe(stored: Any) -> str:
    import numpy as np

    from .baselines import detectable_drops

    prov = stored.provenance
    lines = [
        f"{stored.scenario} on {stored.device_kind}: {len(stored.seeds)} seeds, recorded {prov.get('date')} "
        f"(torch {prov.get('torch')}, {prov.get('threads')} threads, commit {str(prov.get('git_commit'))[:10]})"
    ]
    if stored.previous:
        old = stored.previous.get("provenance", {})
        lines.append(
            f"  migrated from torch {old.get('torch')} ({old.get('threads')} threads, recorded "
            f"{old.get('date')})"
        )
    from .scenarios import get

    m = len(get(stored.scenario).fresh_seeds)  # show reads catalog scenarios only
    drops = detectable_drops(stored, m)
    floor = stored.config.get("chance_floor")
    for metric, values in stored.metrics.items():
        real = np.array([v for v in values if v is not None], dtype=float)
        missing = sum(v is None for v in values)
        if real.size:
            spread = f"mean {real.mean():.5g} sd {real.std(ddof=1) if real.size > 1 else 0:.3g} range {real.min():.5g}..{real.max():.5g}"
        else:
            spread = "no values"
        gate = ""
        if metric in drops:
            test, drop = drops[metric]
            gate = f"  [gated: {test} test, detectable drop {drop:.3g} with {m} fresh seeds"
            if metric == "final_accuracy" and floor is not None:
                gate += f", floor {floor:g}"
            gate += "]"
        lines.append(
            f"  {metric:22s} {spread}" + (f" ({missing} never reached)" if missing else "") + gate
        )
    return "\n".join(lines)


def _calibration(stored: Any, trials: int) -> str:
    from .baselines import simulated_calibration

    lines = [f"  simulated on the recorded distributions ({trials} gate runs, smoothed bootstrap):"]
    for metric, row in simulated_calibration(stored, trials=trials).items():
        text = (
            f"    {metric:20s} false alarms {row['false_alarm']:.2e} (nominal {row['nominal']:.1e}), "
            f"power at the detectable drop {row['power_at_drop']:.3f}"
        )
        if "power_at_2_points" in row:
            text += f", at 2 points {row['power_at_2_points']:.3f}"
        lines.append(text)
    return "\n".join(lines)


def _add_baselines_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "baselines",
        help="record, compare, show, migrate convergence baselines, or run the what-if table",
        description="Convergence baselines: record K seeded runs per scenario, gate fresh runs "
        "against them (compare), show them with the gate's detectable drop, migrate them to a "
        "new environment (an equivalence test of old vs new), or run the standard what-ifs "
        "against every scenario (whatif: a Markdown table). Exit status: 0 all passed, 1 a "
        "regression, a migration not shown equivalent or a dead network not caught (takes "
        "precedence), 2 usage/data error or an environment change that was not compared.",
    )
    parser.add_argument("action", choices=("record", "compare", "show", "migrate", "whatif"))
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="scenario names (default: all)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="number of seeds (record, migrate: K >= 2; compare: m)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field (what-if), e.g. --set lr=5e-4, --set frozen=[0], "
        "--set label_noise=0.2, --set init_scale=2",
    )
    parser.add_argument("--root", default="baselines", help="baseline folder (default ./baselines)")
    parser.add_argument(
        "--update", action="store_true", help="record: replace existing baseline files"
    )
    parser.add_argument(
        "--accept",
        action="store_true",
        help="migrate: write the new baseline even when it is not shown equivalent",
    )
    parser.add_argument(
        "--simulate",
        type=_positive_int,
        default=None,
        metavar="N",
        help="show: also simulate N gate runs on the recorded distributions (false alarms, power)",
    )
    parser.add_argument(
        "--across-environments",
        action="store_true",
        help="compare: run the gate even when the environment changed (informative only)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads during runs (default 1, recorded in provenance)",
    )
    parser.set_defaults(func=_cmd_baselines)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from .bench import add_bench_parser

    parser = argparse.ArgumentParser(
        prog="netprops",
        description="Verify the properties of PyTorch neural-network building blocks.",
    )
    parser.add_argument("--version", action="version", version=f"netprops {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_baselines_parser(subparsers)
    add_bench_parser(subparsers)
    try:
        from .study import add_study_parser
    except ImportError:  # the study package needs the report extras (matplotlib)
        pass
    else:
        add_study_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 1 check failed, 2 usage/data error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    from .baselines import BaselineError
    from .data import DatasetNotFoundError

    try:
        return int(args.func(args))
    except (ValueError, TypeError, BaselineError, DatasetNotFoundError, FileExistsError) as exc:
        print(f"netprops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
