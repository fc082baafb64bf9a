"""Compare methods over seeds on subjects never seen in training (IMU only): label-free selection on
inner folds, one test, paired statistics; write JSON (with per-window predictions), table, plots."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from c3t_edge.commands.train import add_common_training_arguments, base_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_training_arguments(parser)
    parser.add_argument("--methods", default="supervised,camera,st,ca,c3t,distill-align", metavar="LIST",
                        help="comma-separated method names (default: every built-in method)")
    parser.add_argument("--seeds", type=int, default=5, metavar="N", help="test seeds 0..N-1 (default 5)")
    parser.add_argument("--no-tuning", action="store_true",
                        help="use each method's defaults instead of choosing from its search space on inner "
                             "folds (label-free; the default)")
    parser.add_argument("--selection-seeds", type=int, default=1, metavar="N",
                        help="seeds per candidate and fold in the label-free selection (default 1)")
    parser.add_argument("--distortion", action="append", default=[], choices=("shift", "misalign", "dilate"),
                        help="also test under this temporal distortion (repeatable)")
    parser.add_argument("--out", required=True, metavar="results/NAME.json")


def run(args: argparse.Namespace) -> int:
    from c3t_edge.errors import C3TEdgeError
    from c3t_edge.evaluation import format_table, run_evaluation, write_outputs
    from c3t_edge.methods import METHODS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise C3TEdgeError(f"--methods: unknown {unknown or 'empty list'}; choose from {','.join(METHODS)}")
    if args.seeds < 1 or args.selection_seeds < 1:
        raise C3TEdgeError("--seeds and --selection-seeds must be at least 1")
    if args.split == "all-subjects":
        raise C3TEdgeError("--split all-subjects has no test subjects to evaluate on: use development or swapped")
    configs = {m: base_config(args, m) for m in methods}
    command = "c3t-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_evaluation(configs, args.seeds, args.data, args.distortion, split=args.split,
                             command=command, progress=not args.quiet, tune=not args.no_tuning,
                             selection_seeds=range(args.selection_seeds))
    print(format_table(results))
    for path in write_outputs(results, Path(args.out)):
        print(f"wrote {path}", file=sys.stderr)
    return 0
