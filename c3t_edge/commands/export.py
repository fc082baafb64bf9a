"""Export a run's IMU recogniser as a model bundle: ONNX FP32 + INT8, TFLite FP32 + INT8, metadata.

INT8 activation ranges come from real quantization data: windows of the trials whose IMU the run's
model was trained on (the paired trials for a label-free method; never a test subject), from the
run's dataset or --quant-data DIR. The parity section compares every file with torch on the run's
test subjects. TFLite files need the optional 'tflite' extra; without it the ONNX files are still
written. --out must be new or empty; an existing bundle is replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from c3t_edge.export.targets import get_target, target_names

    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by 'c3t-edge train'")
    parser.add_argument("--out", required=True, metavar="BUNDLE_DIR",
                        help="bundle directory to write: new or empty (an existing bundle needs --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it holds a bundle (a directory that is not a bundle is never deleted)")
    parser.add_argument("--quant-data", metavar="DIR",
                        help="dataset folder for the INT8 quantization data (its training side) and parity (its "
                             "test subjects); default: the run's dataset")
    parser.add_argument("--calibration-data", dest="calibration_data", metavar="DIR", help=argparse.SUPPRESS)
    described = "; ".join(f"{name}: {get_target(name).help}" for name in target_names())
    defaults = " and ".join(name for name in target_names() if get_target(name).default)
    always = " and ".join(name for name in target_names() if get_target(name).required)
    parser.add_argument("--target", action="append", choices=target_names(), default=None, metavar="TARGET",
                        help=f"write this target and what it needs (repeatable; default: {defaults}; {always} is "
                             f"always written). {described}")
    parser.add_argument("--hop", type=int, default=None, metavar="SAMPLES",
                        help="suggested streaming hop in samples (default 0.5 s)")
    parser.add_argument("--held-out-reference", metavar="BUNDLE",
                        help="a bundle of the same recipe exported from a development-split run: its accuracy on "
                             "unseen subjects goes into this bundle's metadata (for all-subjects models)")
    parser.add_argument("--note", metavar="TEXT", help="free text stored in the metadata")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _quant_data(args: argparse.Namespace) -> str | None:
    """--quant-data, or its old spelling --calibration-data (with a one-line notice)."""
    if args.calibration_data is None:
        return args.quant_data
    print("c3t-edge export: --calibration-data is deprecated, use --quant-data (a calibration is a sensor "
          "profile)", file=sys.stderr)
    return args.quant_data or args.calibration_data


def run(args: argparse.Namespace) -> int:
    from c3t_edge.export import export_bundle

    quant_data, targets = _quant_data(args), tuple(args.target) if args.target else None
    log = None if args.quiet else (lambda msg: print(f"export: {msg}", file=sys.stderr, flush=True))
    meta = export_bundle(args.run_dir, args.out, quant_data=quant_data, targets=targets, overwrite=args.overwrite,
                         hop_samples=args.hop, held_out_reference=args.held_out_reference, note=args.note, log=log)
    summary = {"bundle": args.out, "files": {n: e["bytes"] for n, e in meta["files"].items()},
               "accuracy": meta["accuracy"],
               "max_abs_logit_diff": {n: round(p["max_abs_logit_diff"], 7) for n, p in meta["parity"].items()},
               "evaluated_on": meta["evaluation"]["data"]}
    if meta.get("missing_files"):
        summary["missing_files"] = meta["missing_files"]
    print(json.dumps(summary))
    return 0
