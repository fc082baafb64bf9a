"""Train one method on camera (+IMU) data into a run directory (config.json, model.pt, metrics.json)."""

from __future__ import annotations

import argparse
import json
import sys


def add_common_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``train`` and ``evaluate``."""
    parser.add_argument("--data", metavar="DIR",
                        help="dataset folder (UTD-MHAD layout or manifest.csv); default $C3T_DATA or "
                             "../shared/datasets/utd-mhad")
    parser.add_argument("--camera", choices=("depth", "skeleton", "rgb"), default="depth")
    parser.add_argument("--placement", choices=("wrist", "thigh", "all"), default="all",
                        help="which UTD-MHAD actions are classes (wrist: 1-21, thigh: 22-27)")
    parser.add_argument("--channels", choices=("all", "acc"), default="all",
                        help="IMU channels the model reads: all (ax,ay,az in g, gx,gy,gz in deg/s) or acc "
                             "(the accelerometer alone, for devices without a gyroscope)")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="optimiser steps per training stage (default: the method's)")
    parser.add_argument("--split", choices=("development", "swapped", "all-subjects"), default="development",
                        help="development: train subjects 1,3,5, test 2,4,6; swapped: train 2,4,6, test 1,3,5; "
                             "all-subjects: ship a model")
    parser.add_argument("--set", action="append", default=[], metavar="[METHOD.]KEY=VALUE", dest="settings",
                        help="override one training option, e.g. temperature=0.3 or c3t.head_position=false "
                             "(a TrainConfig field or a method option; repeatable; METHOD. limits it to one "
                             "method)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to train: auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda; "
                             "under torchrun each process uses GPU LOCAL_RANK (README: Training on more than "
                             "one machine)")


def base_config(args: argparse.Namespace, method: str, seed: int = 0):
    from c3t_edge.methods import METHODS, TrainConfig, apply_setting, default_config

    config: TrainConfig = default_config(method, camera=args.camera, placement=args.placement, seed=seed,
                                         channels=args.channels)
    for setting in args.settings:
        target, dot, rest = setting.partition(".")
        if dot and target in METHODS and "=" not in target:
            if target == method:
                apply_setting(config, rest)
        else:
            apply_setting(config, setting)
    if args.steps is not None:
        if args.steps < 1:
            from c3t_edge.errors import C3TEdgeError

            raise C3TEdgeError("--steps must be at least 1")
        config.steps = args.steps
    return config


def method_name(text: str) -> str:
    """``--method`` value: a name in the method registry (argparse reports anything else as a wrong flag)."""
    from c3t_edge.methods import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(f"unknown method {text!r}: choose from {', '.join(METHODS)}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, metavar="NAME", type=method_name,
                        help="supervised, camera, st, ca, c3t, c3t-paired-head, distill-align, distill-align-warp, "
                             "ensemble-distill, ensemble-distill-align-warp (or a registered method)")
    add_common_training_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="RUN_DIR")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoint.pt after a crash (from the start when there is none)")
    parser.add_argument("--loader-workers", type=int, default=0, metavar="N",
                        help="DataLoader worker processes that cut the next batches from the memory-mapped trials "
                             "while a step computes (default 0: in the training process)")
    parser.add_argument("--checkpoint-every", type=int, default=100, metavar="K",
                        help="checkpoint every K optimiser steps (and at the end of each stage; default 100)")


def run(args: argparse.Namespace) -> int:
    from c3t_edge import distributed
    from c3t_edge.errors import C3TEdgeError
    from c3t_edge.training import train_run

    if args.checkpoint_every < 0 or args.loader_workers < 0:
        raise C3TEdgeError("--checkpoint-every and --loader-workers must not be negative")
    config = base_config(args, args.method, args.seed)
    context = distributed.init(args.device)
    try:
        metrics = train_run(config, args.data, args.out, split=args.split, progress=not args.quiet,
                            resume=args.resume, checkpoint_every=args.checkpoint_every,
                            loader_workers=args.loader_workers)
    finally:
        distributed.shutdown()
    if not context.is_main:
        return 0
    summary = {k: metrics[k] for k in ("method", "train_seconds", "parameters")}
    if "test" in metrics:
        summary.update(accuracy=round(metrics["test"]["accuracy"], 4),
                       macro_f1=round(metrics["test"]["macro_f1"], 4))
    for problem in metrics["problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    print(json.dumps({"run_dir": args.out, **summary}))
    return 0
