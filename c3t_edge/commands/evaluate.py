"""Compare methods over seeds on subjects never seen in training (IMU only); write JSON, table, plots."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from c3t_edge.commands.train import add_common_training_arguments, base_config

METHOD_NAMES = ("supervised", "camera", "st", "ca", "c3t")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_training_arguments(parser)
    parser.add_argument("--methods", default="supervised,camera", metavar="LIST",
                        help=f"comma-separated, from {','.join(METHOD_NAMES)}")
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 (default 3)")
    parser.add_argument("--distortion", action="append", default=[], choices=("shift", "misalign", "dilate"),
                        help="also test under this temporal distortion (repeatable)")
    parser.add_argument("--out", required=True, metavar="results/NAME.json")


def run(args: argparse.Namespace) -> int:
    from c3t_edge.errors import C3TEdgeError
    from c3t_edge.evaluation import format_table, run_evaluation, write_outputs
    from c3t_edge.methods import METHODS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        raise C3TEdgeError(f"--methods: unknown {unknown or 'empty list'}; choose from {','.join(METHOD_NAMES)}")
    missing = [m for m in methods if m not in METHODS]
    if missing:
        raise C3TEdgeError(f"--methods: {','.join(missing)} not available yet (issue #7)")
    if args.seeds < 1:
        raise C3TEdgeError("--seeds must be at least 1")
    configs = {m: base_config(args, m) for m in methods}
    command = "c3t-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_evaluation(configs, args.seeds, args.data, args.distortion, split=args.split,
                             command=command, progress=not args.quiet)
    print(format_table(results))
    for path in write_outputs(results, Path(args.out)):
        print(f"wrote {path}", file=sys.stderr)
    return 0
