"""Decode protocol frames into samples (protocol debugging)."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--text", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'decode' has not landed yet (issue #3)")
