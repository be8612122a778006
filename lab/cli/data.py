"""``python -m lab data ...``: what datasets there are and whether they can be loaded now."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from lab.data import list_datasets


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data list`` on the top-level CLI (called lazily by lab/cli.py)."""
    parser = subparsers.add_parser("data", help="datasets: list them and their availability")
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    listing = commands.add_parser("list", help="every dataset, its size and availability")
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=run_list)
    return parser


def run_list(args: argparse.Namespace | None = None, out: TextIO | None = None) -> int:
    """Print one block per dataset; exit status 0."""

    out = out or sys.stdout
    for info in list_datasets():
        print(f"{info.name:<14} {info.availability:<15} {info.title}", file=out)
        print(f"{'':<14} size: {info.size}", file=out)
        print(f"{'':<14} {info.reason}", file=out)
    return 0
