"""The ``netprops study`` subcommand (registered by :func:`add_study_parser`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..data import DatasetCorruptError, DatasetNotFoundError, load_dataset
from .config import FULL, QUICK, STUDIES
from .figures import MissingReportDependency, check_report_dependencies
from .report import write_report
from .runner import run_study

__all__ = ["DEFAULT_OUT", "add_study_parser", "study_command"]

DEFAULT_OUT = "netprops-report"


def add_study_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``study`` on an argparse ``subparsers`` object; its ``func`` is :func:`study_command`."""
    parser = subparsers.add_parser(
        "study",
        help="run the studies (init, regularization, normalization, depth, architecture) "
        "and write a report",
        description=(
            "Train the scenario catalog's studies on Fashion-MNIST and write report.md, a "
            "self-contained report.html, PNG figures and results.json into --out. Every claim "
            "of the source coursework gets a verdict computed from this run's numbers. "
            "--quick takes about a minute on 2 CPU cores; the full study (5 seeds) about 20 minutes."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="two seeds, short trainings (about a minute on 2 CPU cores)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=STUDIES,
        metavar="NAME",
        help=f"run only these studies (from: {', '.join(STUDIES)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="CPU threads for torch (default: 1). The study's models are small: more threads "
        "help only the convolutional runs on an idle machine, and slow everything down many "
        "times over when other jobs share the cores",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never try to download Fashion-MNIST when no local copy is found",
    )
    parser.set_defaults(func=study_command)
    return parser


def study_command(args: argparse.Namespace) -> int:
    """Run the study for parsed ``args``; 0 when the report was written, 2 on a usage or data error."""
    config = QUICK if args.quick else FULL
    if args.threads < 1:
        print(f"netprops study: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        check_report_dependencies()
        data = load_dataset(
            "fashion-mnist", device=args.device, allow_download=not args.no_download
        )
    except (DatasetNotFoundError, DatasetCorruptError, MissingReportDependency) as exc:
        print(f"netprops study: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. --device cuda without CUDA
        print(f"netprops study: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:  # fail before hours of training, not after
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"netprops study: cannot create --out {str(out)!r}: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = run_study(data, config=config, only=args.only, device=args.device)
    files = write_report(result, out)
    for claim in result.claims:
        print(f"[{claim.verdict}] {claim.text}")
    print(f"study ({config.name}) took {time.perf_counter() - start:.1f} s; wrote:")
    for path in files.values():
        print(f"  {path}")
    return 0
