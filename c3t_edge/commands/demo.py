"""The whole story on the embedded defaults: a shipped recording through the default bundle, no hardware."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'demo' has not landed yet (issue #5)")
