"""Compare method *variants* on the development protocol (how the UMA defaults were chosen).

Each ``--variant LABEL=METHOD[,KEY=VALUE...]`` is a method's default configuration with settings
applied (the same ``KEY=VALUE`` as ``c3t-edge train --set``). Variants of one process share the
camera model of a seed, so several C3T variants cost one camera training. Only development-protocol
test subjects (2, 4, 6) are used: never tune on anything a shipped model is judged on.

    python bench/tune_uma.py --seeds 0,1,2 --out /tmp/tune.json \\
        --variant st=st --variant ca=ca --variant c3t=c3t --variant c3t-nopos=c3t,head_position=false

Prints accuracy per variant and the drop under test-time IMU shifts; ``--merge A.json B.json``
prints the seed-weighted means of files written by runs with different seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def parse_variant(text: str, camera: str, placement: str):
    from c3t_edge.methods import apply_setting, default_config

    label, _, spec = text.partition("=")
    method, *settings = spec.split(",") if spec else [label]
    config = default_config(method, camera=camera, placement=placement)
    for setting in settings:
        apply_setting(config, setting)
    return label, config


def merge(paths: list[str]) -> str:
    accs: dict[str, list[float]] = {}
    shifts: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        results = json.loads(Path(path).read_text())
        for name, m in results["methods"].items():
            accs.setdefault(name, []).extend(m["accuracies"])
        for level, by_name in results.get("distortions", {}).get("shift_s", {}).items():
            for name, acc in by_name.items():
                shifts.setdefault(name, {}).setdefault(level, []).extend([acc] * len(results["seeds"]))
    levels = sorted({lv for s in shifts.values() for lv in s}, key=float)
    lines = [f"{'variant':>22} {'n':>2} {'acc':>6} {'std':>5}  " + " ".join(f"{lv:>6}" for lv in levels)
             + "   (shift: drop in points)"]
    for name, values in accs.items():
        mean = 100 * np.mean(values)
        drops = " ".join(f"{mean - 100 * np.mean(shifts[name][lv]):6.1f}" if lv in shifts.get(name, {})
                         else f"{'':>6}" for lv in levels)
        lines.append(f"{name:>22} {len(values):2d} {mean:6.1f} {100 * np.std(values):5.1f}  {drops}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=METHOD[,KEY=VALUE...]")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--camera", default="depth")
    parser.add_argument("--placement", default="all")
    parser.add_argument("--data", default=None)
    parser.add_argument("--no-shift", action="store_true", help="skip the test-time shift levels")
    parser.add_argument("--out", help="write the results JSON here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only print the merged table of these")
    args = parser.parse_args(argv)
    if args.merge:
        print(merge(args.merge))
        return 0
    from c3t_edge.evaluation import run_evaluation

    configs = dict(parse_variant(v, args.camera, args.placement) for v in args.variant)
    if not configs:
        parser.error("give at least one --variant")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = run_evaluation(configs, seeds, args.data, [] if args.no_shift else ["shift"],
                             command="python " + " ".join(sys.argv), progress=False)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        print(merge([args.out]))
    else:
        json.dump(results["methods"], sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
