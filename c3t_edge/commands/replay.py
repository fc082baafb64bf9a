"""Feed a recording through the streaming pipeline."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--model", default="default", metavar="BUNDLE")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'replay' has not landed yet (issue #5)")
