"""Compare camera-teacher variants on inner folds of the training subjects, with camera labels only.

The label-free methods are bounded by their camera teacher (the winners reach 96-98% of it), so a
better teacher is the lever for all of them. The teacher is the one model trained *with* labels -
camera labels of the labelled set, which a team has - so its variants can be compared by accuracy,
as long as no test subject and no IMU label is touched: each training subject of the split (1, 3, 5
for the development split) is held out in turn, every variant's camera model is trained on the
labelled camera clips of the other two, and scored on the held-out subject's *labelled* camera clips.

Each ``--variant LABEL[=KEY=VALUE[,KEY=VALUE...]]`` is the ``camera`` method's defaults with those
settings (``c3t-edge train --set`` syntax). With ``--ensemble``, the seeds' class probabilities are
averaged into one prediction (a teacher made of several camera models); without it, each seed is
scored on its own and the mean is printed.

    python bench/tune_camera_teacher.py --placement wrist --seeds 0,1 --ensemble \\
        --variant defaults --variant longer=camera_steps=1200

Prints one row per variant: the mean accuracy over folds and the per-fold figures (in %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_variant(text: str, camera: str, placement: str, seed: int):
    """(label, TrainConfig) of the ``camera`` method for ``LABEL[=KEY=VALUE[,KEY=VALUE...]]``."""
    from c3t_edge.methods import apply_setting, default_config

    label, _, spec = text.partition("=")
    config = default_config("camera", camera=camera, placement=placement, seed=seed)
    for setting in filter(None, spec.split(",") if "=" in spec else []):
        apply_setting(config, setting)
    return label, config


def held_out_labelled_folds(arrays, split):
    """(fold split, held-out subject's labelled trials) per training subject of ``split``."""
    from c3t_edge.data.splits import subject_split

    labelled_trials = tuple(int(t) for t in np.unique(arrays.trials[split.labelled_camera]))
    paired_trials = tuple(int(t) for t in np.unique(arrays.trials[split.paired]))
    for held_out in split.train_subjects:
        rest = tuple(s for s in split.train_subjects if s != held_out)
        fold = subject_split(arrays.subjects, arrays.trials, rest, (held_out,), labelled_trials, paired_trials,
                             name=f"{split.name}/without-{held_out}")
        yield fold, fold.test[np.isin(arrays.trials[fold.test], labelled_trials)]


def probabilities(method, arrays, index: np.ndarray) -> np.ndarray:
    """Softmax (n, n_classes) of a camera model on the centred camera clips of trials ``index``."""
    imu, camera = arrays.windows(index, with_camera=True)
    logits = method.predict_logits(imu, camera)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL[=KEY=VALUE,...]")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds per variant and fold")
    parser.add_argument("--ensemble", action="store_true", help="average the seeds' probabilities into one teacher")
    parser.add_argument("--camera", default="depth")
    parser.add_argument("--placement", default="wrist")
    parser.add_argument("--split", default="development", help="whose training subjects give the folds")
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, help="optimiser steps for every variant (default: the method's)")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    from dataclasses import replace

    from c3t_edge.training import fit_method, load_arrays, make_split

    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.variant:
        parser.error("give at least one --variant")
    arrays = load_arrays(args.data, parse_variant("defaults", args.camera, args.placement, 0)[1])
    split = make_split(arrays, args.split)
    folds = list(held_out_labelled_folds(arrays, split))
    rows = []
    print(f"{'variant':>24} {'accuracy':>9}  per fold (held-out training subject's labelled clips)")
    for text in args.variant:
        started = time.perf_counter()
        per_fold, label = [], text
        for fold, test in folds:
            seed_probabilities = []
            for seed in seeds:
                label, config = parse_variant(text, args.camera, args.placement, seed)
                if args.steps:
                    config = replace(config, steps=args.steps)
                seed_probabilities.append(probabilities(fit_method(config, arrays, fold)[0], arrays, test))
            truth = arrays.labels[test]
            if args.ensemble:
                per_fold.append(float(np.mean(np.mean(seed_probabilities, 0).argmax(1) == truth)))
            else:
                per_fold.append(float(np.mean([np.mean(p.argmax(1) == truth) for p in seed_probabilities])))
        row = {"label": label, "variant": text, "accuracy": float(np.mean(per_fold)), "per_fold": per_fold,
               "folds": [fold.name for fold, _ in folds], "seeds": seeds, "ensemble": args.ensemble,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(f"{label:>24} {100 * row['accuracy']:8.1f}%  {[round(100 * a, 1) for a in per_fold]}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "split": args.split,
                                              "placement": args.placement, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
