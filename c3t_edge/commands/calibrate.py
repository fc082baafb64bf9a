"""Estimate a sensor calibration profile from a port or a recording."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--port", metavar="PORT")
    src.add_argument("--recording", metavar="FILE")
    parser.add_argument("--out", required=True, metavar="PROFILE")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'calibrate' has not landed yet (issue #6)")
