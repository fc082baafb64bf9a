"""Recognise actions live from an IMU on a serial port, a BLE device or a recording."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, metavar="PORT")
    parser.add_argument("--model", default="default", metavar="BUNDLE")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'stream' has not landed yet (issue #5)")
