"""Export a run's IMU recogniser as a model bundle: ONNX FP32 + INT8, TFLite FP32 + INT8, metadata."""

from __future__ import annotations

import argparse

from c3t_edge.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, metavar="BUNDLE_DIR")


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("'export' has not landed yet (issue #4)")
