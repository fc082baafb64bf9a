"""Export a run's IMU recogniser as a model bundle: ONNX FP32 + INT8, TFLite FP32 + INT8, metadata.

INT8 files are calibrated on real windows from the run's training subjects (its dataset, or
--calibration-data DIR); the parity section compares every file with torch on the run's test
subjects. TFLite files need the optional 'tflite' extra; without it the ONNX files are still written.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by 'c3t-edge train'")
    parser.add_argument("--out", required=True, metavar="BUNDLE_DIR",
                        help="bundle directory to write (replaced if it already holds a bundle)")
    parser.add_argument("--calibration-data", metavar="DIR",
                        help="dataset folder for INT8 calibration (its training subjects) and parity (its test "
                             "subjects); default: the run's dataset")
    parser.add_argument("--engine", choices=("onnxruntime", "tflite", "all"), default="all",
                        help="which engines' files to write (ONNX is always written; default all)")
    parser.add_argument("--target", choices=("mcu",), default=None,
                        help="also write mcu/: the INT8 TFLite model as a C array, its TFLite Micro op list "
                             "and an arena estimate")
    parser.add_argument("--hop", type=int, default=None, metavar="SAMPLES",
                        help="suggested streaming hop in samples (default 0.5 s)")
    parser.add_argument("--held-out-reference", metavar="BUNDLE",
                        help="a bundle of the same recipe exported from a development-split run: its accuracy on "
                             "unseen subjects goes into this bundle's metadata (for all-subjects models)")
    parser.add_argument("--note", metavar="TEXT", help="free text stored in the metadata")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from c3t_edge.errors import C3TEdgeError

    if args.target == "mcu" and args.engine == "onnxruntime":
        raise C3TEdgeError("--target mcu needs the INT8 TFLite file: drop --engine onnxruntime")
    from c3t_edge.export import export_bundle

    engines = ("onnxruntime",) if args.engine == "onnxruntime" else ("onnxruntime", "tflite")
    log = None if args.quiet else (lambda msg: print(f"export: {msg}", file=sys.stderr, flush=True))
    meta = export_bundle(args.run_dir, args.out, calibration_data=args.calibration_data, engines=engines,
                         target=args.target, hop_samples=args.hop, held_out_reference=args.held_out_reference,
                         note=args.note, log=log)
    summary = {"bundle": args.out, "files": {n: e["bytes"] for n, e in meta["files"].items()},
               "accuracy": meta["accuracy"],
               "max_abs_logit_diff": {n: round(p["max_abs_logit_diff"], 7) for n, p in meta["parity"].items()},
               "evaluated_on": meta["evaluation"]["data"]}
    if meta.get("missing_files"):
        summary["missing_files"] = meta["missing_files"]
    print(json.dumps(summary))
    return 0
