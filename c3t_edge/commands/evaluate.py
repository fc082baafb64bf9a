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
    parser.add_argument("--methods",
                        default="supervised,camera,st,ca,c3t,c3t-paired-head,distill-align,distill-align-warp,"
                                "ensemble-distill,ensemble-distill-align-warp",
                        metavar="LIST",
                        help="comma-separated method names (default: every built-in method)")
    parser.add_argument("--seeds", type=int, default=5, metavar="N", help="test seeds 0..N-1 (default 5)")
    parser.add_argument("--no-tuning", action="store_true",
                        help="use each method's defaults instead of choosing from its search space on inner "
                             "folds (label-free; the default)")
    parser.add_argument("--selection-seeds", type=int, default=1, metavar="N",
                        help="seeds per candidate and fold in the label-free selection (default 1)")
    parser.add_argument("--distortion", action="append", default=[], choices=("shift", "misalign", "dilate"),
                        help="also test under this temporal distortion (repeatable)")
    parser.add_argument("--add-to", metavar="RESULTS.json",
                        help="add these methods to a results file made with the same split, camera, placement, "
                             "seeds and distortions (comparisons recomputed from its per-window predictions)")
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
    previous = _previous_results(args.add_to, args)
    configs = {m: base_config(args, m) for m in methods}
    command = "c3t-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    # Under torchrun the independent (method, seed, fold) runs are spread over the processes; rank 0 writes.
    from c3t_edge import distributed

    context = distributed.init(args.device)
    try:
        results = run_evaluation(configs, args.seeds, args.data, args.distortion, split=args.split,
                                 command=command, progress=not args.quiet and context.is_main,
                                 tune=not args.no_tuning, selection_seeds=range(args.selection_seeds))
    finally:
        distributed.shutdown()
    if not context.is_main:
        return 0
    if previous is not None:
        from c3t_edge.evaluation import add_to_results

        results = add_to_results(previous, results)
    print(format_table(results))
    for path in write_outputs(results, Path(args.out)):
        print(f"wrote {path}", file=sys.stderr)
    return 0


#: ``--distortion`` flag -> the key its figures have in a results file.
_DISTORTION_KEYS = {"shift": "shift_s", "dilate": "dilation", "misalign": "misalignment_s"}


def _previous_results(path: str | None, args: argparse.Namespace) -> dict | None:
    """The results file ``--add-to`` names (None without the flag); one clear error, before any
    training, if it is unreadable or was made with another split, camera, seeds or distortions
    (:func:`~c3t_edge.evaluation.add_to_results` checks the rest after the run)."""
    if path is None:
        return None
    import json

    from c3t_edge.errors import C3TEdgeError

    try:
        previous = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise C3TEdgeError(f"--add-to {path}: cannot read a results file ({error})") from None
    if not isinstance(previous, dict) or not {"methods", "predictions", "test_windows"} <= set(previous):
        raise C3TEdgeError(f"--add-to {path}: not a results file of 'c3t-edge evaluate' (no per-window predictions)")
    asked = {"split": args.split, "camera": args.camera, "seeds": list(range(args.seeds)),
             "distortions": sorted(_DISTORTION_KEYS[d] for d in set(args.distortion))}
    made = {"split": previous.get("split"), "camera": previous.get("camera"), "seeds": previous.get("seeds"),
            "distortions": sorted(previous.get("distortions", {}))}
    differing = [f"{key} {made[key]} (asked: {asked[key]})" for key in asked if asked[key] != made[key]]
    if differing:
        raise C3TEdgeError(f"--add-to {path}: made with another {'; '.join(differing)}")
    return previous
