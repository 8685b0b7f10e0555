"""``netprops`` command line: a thin argparse front over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser (subcommands register themselves here)."""
    parser = argparse.ArgumentParser(
        prog="netprops",
        description="Verify the properties of PyTorch neural-network building blocks.",
    )
    parser.add_argument("--version", action="version", version=f"netprops {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 1 check failed, 2 usage/data error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
