"""Issue 2 targets: supervised IMU and camera models on the development protocol, 3 seeds.

Prints mean/std accuracy over seeds and seconds per full training run (default step budgets).
Run: .venv/bin/python bench/bench_training.py [--camera depth|skeleton] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

from c3t_edge.evaluation import format_table, run_evaluation
from c3t_edge.methods import default_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--camera", default="depth")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default="supervised,camera")
    args = parser.parse_args()
    configs = {m: default_config(m, camera=args.camera) for m in args.methods.split(",")}
    start = time.perf_counter()
    results = run_evaluation(configs, args.seeds, None, [], progress=False)
    print(format_table(results))
    for name, m in results["methods"].items():
        print(f"{name}: {100 * m['accuracy_mean']:.1f}% +- {100 * m['accuracy_std']:.1f} over {args.seeds} seeds "
              f"({m['tested_on']}), {m['train_seconds_mean']:.0f} s per training run "
              f"({configs[name].steps} steps)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
