"""Describe a model bundle: labels, rate, window, channels, files, accuracy, parity."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", metavar="BUNDLE")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'info' has not landed yet (issue #4)")
