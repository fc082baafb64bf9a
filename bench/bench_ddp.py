"""DDP overhead on this machine: one training run as 2 processes x 1 torch thread (torchrun, gloo, batch B
each) against 1 process x 2 threads (batch 2B): the same global batch, the same optimiser steps.

Prints, per method, samples/s of each (training samples of the global batch per second of fit, every
stage), their ratio (target >= 0.90), and the share of the fit spent preparing batches (cutting,
jittering, standardising windows and looking up frozen camera outputs: the time a step waits for its
data - the batches are made in the training process, so any time spent there is time the step waits).
Rounds alternate the set-ups, so machine load hits them alike; the median round is reported. 1 process x
1 thread is printed as a reference (what a second core buys each way).

Run: .venv/bin/python bench/bench_ddp.py [--methods supervised,ca] [--steps 60] [--batch 32] [--rounds 3]
(data: $C3T_DATA or ../shared/datasets/utd-mhad; depth camera).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(method: str, steps: int, batch: int, threads: int) -> None:
    """One fit (inside torchrun or alone); rank 0 prints a JSON line of figures."""
    import torch

    from c3t_edge import distributed
    from c3t_edge.methods import base, default_config, frozen
    from c3t_edge.training import fit_method, load_arrays, make_split

    torch.set_num_threads(threads)
    context = distributed.init("cpu")
    waited = [0.0]

    def timed(function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                waited[0] += time.perf_counter() - start
        return wrapper

    base.MethodData.batch = timed(base.MethodData.batch)   # bench instrumentation only
    frozen.FrozenCameraOutputs.batch = timed(frozen.FrozenCameraOutputs.batch)
    config = default_config(method, steps=steps, batch_size=batch)
    arrays = load_arrays(None, config)
    split = make_split(arrays, "development")
    fitted, seconds = fit_method(config, arrays, split)
    samples = fitted.optimiser_steps() * batch * context.world_size
    if context.is_main:
        print(json.dumps({"samples_per_s": samples / seconds, "seconds": seconds, "data_share": waited[0] / seconds,
                          "steps": fitted.optimiser_steps(), "global_batch": batch * context.world_size}), flush=True)
    distributed.shutdown()


def _run(command: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"bench_ddp: {' '.join(command[:3])} failed:\n{result.stderr[-2000:]}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="supervised,ca")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per stage")
    parser.add_argument("--batch", type=int, default=32, help="per-process batch B (one process: 2B)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "STEPS", "BATCH", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, steps, batch, threads = args.worker
        worker(method, int(steps), int(batch), int(threads))
        return
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    for method in args.methods.split(","):
        ddp, single, serial = [], [], []
        for _ in range(args.rounds):
            ddp.append(_run([torchrun, "--standalone", "--nproc_per_node=2", str(HERE), "--worker", method,
                             str(args.steps), str(args.batch), "1"], 1))
            single.append(_run([sys.executable, str(HERE), "--worker", method, str(args.steps),
                                str(2 * args.batch), "2"], 2))
            serial.append(_run([sys.executable, str(HERE), "--worker", method, str(args.steps),
                                str(2 * args.batch), "1"], 1))
        ratios = [d["samples_per_s"] / s["samples_per_s"] for d, s in zip(ddp, single, strict=True)]
        d, s, one = (sorted(x, key=lambda r: r["samples_per_s"])[len(x) // 2] for x in (ddp, single, serial))
        print(f"{method}: {d['steps']} steps, global batch {d['global_batch']}, {args.rounds} rounds (median)")
        print(f"  2 processes x 1 thread : {d['samples_per_s']:7.1f} samples/s, data wait {100 * d['data_share']:.1f}% "
              f"of the fit ({d['seconds']:.1f} s)")
        print(f"  1 process  x 2 threads : {s['samples_per_s']:7.1f} samples/s, data wait {100 * s['data_share']:.1f}% "
              f"of the fit ({s['seconds']:.1f} s)")
        print(f"  1 process  x 1 thread  : {one['samples_per_s']:7.1f} samples/s (reference)")
        print(f"  ratio DDP / one process: {statistics.median(ratios):.2f} (per round: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.90)")


if __name__ == "__main__":
    main()
