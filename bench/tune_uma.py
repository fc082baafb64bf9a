"""Compare method *variants* label-free, on inner folds of the training subjects (how variants are explored).

Each ``--variant LABEL=METHOD[,KEY=VALUE...]`` is a method's default configuration with settings
applied (the same ``KEY=VALUE`` as ``c3t-edge train --set``). Every variant is trained on the
leave-one-subject-out folds inside the split's training subjects (1, 3, 5 for the development
split) and scored by its IMU model's **agreement with the camera teacher** on the held-out
subject's paired clips - no IMU label, no test subject. The fold accuracy is printed beside it for
the record; never choose on it. Test subjects are touched by ``c3t-edge evaluate`` only, once.

    python bench/tune_uma.py --seeds 0 --out /tmp/tune.json \\
        --variant st=st --variant c3t=c3t --variant c3t-nopos=c3t,head_position=false

Variants of one process share the camera teacher of a fold. Prints one row per variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def parse_variant(text: str, camera: str, placement: str):
    from c3t_edge.methods import apply_setting, default_config

    label, _, spec = text.partition("=")
    method, *settings = spec.split(",") if spec else [label]
    config = default_config(method, camera=camera, placement=placement)
    for setting in settings:
        apply_setting(config, setting)
    return label, config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=METHOD[,KEY=VALUE...]")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (per fold)")
    parser.add_argument("--camera", default="depth")
    parser.add_argument("--placement", default="all")
    parser.add_argument("--split", default="development", help="whose training subjects give the folds")
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, help="optimiser steps per stage for every variant and the teacher")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    from c3t_edge.methods import default_config
    from c3t_edge.selection import score_configs
    from c3t_edge.training import fit_method, load_arrays, make_split

    configs = dict(parse_variant(v, args.camera, args.placement) for v in args.variant)
    if not configs:
        parser.error("give at least one --variant")
    steps = {"steps": args.steps} if args.steps else {}
    configs = {label: replace(config, **steps) for label, config in configs.items()}
    base = next(iter(configs.values()))
    arrays = load_arrays(args.data, replace(base, method="camera"))
    split = make_split(arrays, args.split)
    teacher = default_config("camera", camera=args.camera, placement=args.placement, **steps)
    teachers: dict = {}

    def fit(config, fold):
        if config.method != "camera":
            return fit_method(config, arrays, fold)[0]
        key = (config.seed, fold.name)
        if key not in teachers:
            teachers[key] = fit_method(config, arrays, fold)[0]
        return teachers[key]

    rows = score_configs(configs, teacher, arrays, split, fit, seeds=[int(s) for s in args.seeds.split(",")])
    print(f"{'variant':>24} {'agreement':>9} {'fold acc (not used)':>20}  per fold")
    for row in rows:
        print(f"{row['label']:>24} {100 * row['teacher_agreement']:8.1f}% {100 * row['fold_accuracy_not_used']:19.1f}%"
              f"  {row['per_fold_agreement']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "split": args.split,
                                              "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
