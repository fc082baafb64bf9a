"""Record the raw bytes a port sends, with host receive times, into a crash-safe file."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, metavar="PORT")
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--duration", type=float, metavar="S")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'record' has not landed yet (issue #5)")
