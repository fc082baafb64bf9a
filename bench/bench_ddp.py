"""DDP overhead on this machine: one training run as 2 processes x 1 torch thread (torchrun, gloo, batch B
each) against 1 process x 2 threads (batch 2B): the same global batch, the same optimiser steps.

Prints, per method, samples/s of each in the **steady state** (training samples of the global batch per
second over every stage's steps after its first ``--warmup`` ones: the figure that sets how long a real
600-step run takes) and over the **whole fit** (every stage, with its set-up: DDP construction, tables of
frozen camera outputs, the first steps), their ratios (target >= 0.90), and the share of the fit spent
preparing batches (cutting, jittering, standardising windows and looking up frozen camera outputs: the
time a step waits for its data - the batches are made in the training process, so any time spent there is
time the step waits). Rounds alternate the set-ups, so machine load hits them alike; the median round is
reported. 1 process x 1 thread is printed as a reference (what a second core buys each way). Each DDP
rank is pinned to its own core (``--no-pin``: left to the scheduler); the one-process runs are not pinned.

``--profile`` then runs each set-up once more with timers around the phases of a step and prints, per
rank, milliseconds (and calls) per step in each: data, forward and backward compute, the global-BatchNorm
all-reduces (forward and backward), the all-gather of contrastive embeddings, the gradient all-reduce of
DDP (made synchronous by a comm hook, so that it can be timed), logging, optimiser. Times are exclusive
(a collective inside the forward pass is not counted in the forward's compute). A collective's time
includes the wait for the slower rank. Last, the wall and CPU time of one small all-reduce between the two
processes, back to back (the floor of each BatchNorm collective).

Run: .venv/bin/python bench/bench_ddp.py [--methods supervised,ca] [--steps 200] [--batch 32] [--rounds 3]
[--warmup 10] [--profile] (data: $C3T_DATA or ../shared/datasets/utd-mhad; depth camera).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve()

#: caller of a collective (``co_qualname``) -> the phase it is counted in
COLLECTIVE_PHASES = {
    "_global_batchnorm_class.<locals>.GlobalBatchNorm.forward": "BatchNorm all-reduce (forward)",
    "_global_batchnorm_class.<locals>.GlobalBatchNormFunction.backward": "BatchNorm all-reduce (backward)",
    "_gather_function.<locals>.GatherWithGrad.forward": "embedding all-gather (forward)",
    "_gather_function.<locals>.GatherWithGrad.backward": "embedding all-gather (backward)",
    "mean_over_ranks": "logged-loss all-reduce",
    "_timed_comm_hook": "DDP gradient all-reduce",
}


class PhaseTimer:
    """Exclusive wall time per phase: a phase entered inside another is subtracted from the outer one."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[float] = []

    def wrap(self, phase, function):
        """``function`` timed as ``phase`` (a name, or a function of the call's caller frame -> name)."""
        def timed(*args, **kwargs):
            name = phase if isinstance(phase, str) else phase(sys._getframe(1))
            start = time.perf_counter()
            self._children.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[name] += elapsed - self._children.pop()
                self.calls[name] += 1
                if self._children:
                    self._children[-1] += elapsed
        return timed


def _timed_comm_hook(state, bucket):
    """DDP comm hook: the bucket's all-reduce, synchronous (so its time is measurable), then the mean."""
    import torch
    import torch.distributed as dist

    buffer = bucket.buffer()
    dist.all_reduce(buffer)
    buffer.div_(dist.get_world_size())
    future = torch.futures.Future()
    future.set_result(buffer)
    return future


def _instrument(profile: bool):
    """Patch the training code of this process (bench instrumentation only); returns (timer, step starts:
    list of (step, (perf_counter, process_time)) at the start of every optimiser step)."""
    import torch
    import torch.distributed as dist

    from c3t_edge.methods import base, frozen

    timer, starts = PhaseTimer(), []
    base.MethodData.batch = timer.wrap("data", base.MethodData.batch)
    frozen.FrozenCameraOutputs.batch = timer.wrap("data", frozen.FrozenCameraOutputs.batch)
    runner = base._step_runner

    def step_runner(modules, loss_fn, context):
        run = runner(modules, loss_fn, context)
        if profile and context.distributed:
            run.register_comm_hook(None, _timed_comm_hook)
        run = timer.wrap("forward", run) if profile else run

        def step(index):
            starts.append((index, (time.perf_counter(), time.process_time())))
            return run(index)
        return step

    base._step_runner = step_runner
    if profile:
        frozen.FrozenCameraOutputs.__init__ = timer.wrap("frozen camera table", frozen.FrozenCameraOutputs.__init__)
        for name in ("all_reduce", "all_gather"):
            setattr(dist, name, timer.wrap(lambda frame: COLLECTIVE_PHASES.get(frame.f_code.co_qualname,
                                                                               frame.f_code.co_qualname),
                                           getattr(dist, name)))
        torch.Tensor.backward = timer.wrap("backward", torch.Tensor.backward)
        torch.nn.utils.clip_grad_norm_ = timer.wrap("optimiser", torch.nn.utils.clip_grad_norm_)
        torch.optim.AdamW.step = timer.wrap("optimiser", torch.optim.AdamW.step)
    return timer, starts


def steady_seconds(starts: list[tuple[int, tuple[float, float]]], warmup: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the process (all its threads) and steps from the start of each stage's
    step ``warmup`` to the start of its last step (stages are told apart by the step index starting again
    at 0)."""
    wall, cpu, steps, stage = 0.0, 0.0, 0, []
    for index, start in [*starts, (0, None)]:
        if index == 0 and stage:
            kept = [t for i, t in stage if i >= warmup]
            if len(kept) > 1:
                wall, cpu = wall + kept[-1][0] - kept[0][0], cpu + kept[-1][1] - kept[0][1]
                steps += len(kept) - 1
            stage = []
        stage.append((index, start))
    return wall, cpu, steps


def worker(method: str, steps: int, batch: int, threads: int, warmup: int, profile: bool) -> None:
    """One fit (inside torchrun or alone); every rank writes its figures to ``$BENCH_OUT/rank<R>.json``."""
    import torch

    from c3t_edge import distributed
    from c3t_edge.methods import default_config
    from c3t_edge.training import fit_method, load_arrays, make_split

    torch.set_num_threads(threads)
    if os.environ.get("BENCH_PIN"):  # before the process group starts its threads, which inherit it
        os.sched_setaffinity(0, {int(os.environ["LOCAL_RANK"]) % os.cpu_count()})
    context = distributed.init("cpu")
    timer, starts = _instrument(profile)
    config = default_config(method, steps=steps, batch_size=batch)
    arrays = load_arrays(None, config)
    split = make_split(arrays, "development")
    fitted, seconds = fit_method(config, arrays, split)
    global_batch = batch * context.world_size
    steady, steady_cpu, steady_steps = steady_seconds(starts, warmup)
    figures = {"rank": context.rank, "samples_per_s": fitted.optimiser_steps() * global_batch / seconds,
               "steady_samples_per_s": steady_steps * global_batch / steady, "seconds": seconds,
               "data_share": timer.seconds["data"] / seconds, "steps": fitted.optimiser_steps(),
               "global_batch": global_batch}
    if profile:
        figures["ms_per_step"] = {k: 1000 * v / len(starts) for k, v in timer.seconds.items()}
        figures["calls_per_step"] = {k: v / len(starts) for k, v in timer.calls.items()}
        figures["steady_ms_per_step"] = 1000 * steady / steady_steps
        figures["steady_cpu_ms_per_step"] = 1000 * steady_cpu / steady_steps
    Path(os.environ["BENCH_OUT"], f"rank{context.rank}.json").write_text(json.dumps(figures))
    distributed.shutdown()


def latency_worker(floats: int, repeats: int) -> None:
    """Under torchrun: wall and CPU (this process, all threads) microseconds of one all-reduce of ``floats``
    float32 values, mean over ``repeats`` back to back; every rank writes its figures."""
    import torch

    from c3t_edge import distributed

    torch.set_num_threads(1)
    if os.environ.get("BENCH_PIN"):
        os.sched_setaffinity(0, {int(os.environ["LOCAL_RANK"]) % os.cpu_count()})
    context = distributed.init("cpu")
    import torch.distributed as dist

    tensor = torch.ones(floats)
    for _ in range(50):
        dist.all_reduce(tensor)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        dist.all_reduce(tensor)
    figures = {"rank": context.rank, "wall_us": 1e6 * (time.perf_counter() - wall) / repeats,
               "cpu_us": 1e6 * (time.process_time() - cpu) / repeats}
    Path(os.environ["BENCH_OUT"], f"rank{context.rank}.json").write_text(json.dumps(figures))
    distributed.shutdown()


def latency(args) -> None:
    """Prints what one small all-reduce costs between the two (pinned) processes: the floor of every
    BatchNorm collective."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    for floats in (257, 140_000):
        ranks = _run([torchrun, "--standalone", "--nproc_per_node=2", str(HERE), "--latency-worker", str(floats),
                      "1000"], 1, pin=args.pin)
        print(f"all-reduce of {floats} floats between 2 processes: "
              + ", ".join(f"rank {r['rank']} {r['wall_us']:.0f} us wall, {r['cpu_us']:.0f} us CPU" for r in ranks))


def _run(command: list[str], threads: int, pin: bool = False) -> list[dict]:
    """The figures every process of ``command`` wrote, in rank order."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENCH_PIN": "1" if pin else "", "BENCH_OUT": out}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        if result.returncode != 0:
            sys.exit(f"bench_ddp: {' '.join(command[:3])} failed:\n{result.stderr[-2000:]}")
        return [json.loads(path.read_text()) for path in sorted(Path(out).glob("rank*.json"))]


def _commands(method: str, args, profile: bool) -> dict[str, tuple[list[str], int]]:
    """Set-up name -> (command, threads per process)."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    def worker_args(batch: int, threads: int) -> list[str]:
        return [str(HERE), "--worker", method, str(args.steps), str(batch), str(threads), str(args.warmup),
                "1" if profile else "0"]

    return {"ddp": ([torchrun, "--standalone", "--nproc_per_node=2", *worker_args(args.batch, 1)], 1),
            "single": ([sys.executable, *worker_args(2 * args.batch, 2)], 2),
            "serial": ([sys.executable, *worker_args(2 * args.batch, 1)], 1)}


def _median(runs: list[dict], key: str) -> dict:
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def compare(method: str, args) -> None:
    """Alternating rounds of the three set-ups; prints the medians and the ratios."""
    runs: dict[str, list[dict]] = {"ddp": [], "single": [], "serial": []}
    for _ in range(args.rounds):
        for name, (command, threads) in _commands(method, args, profile=False).items():
            runs[name].append(_run(command, threads, pin=name == "ddp" and args.pin)[0])
    print(f"{method}: {runs['ddp'][0]['steps']} steps, global batch {runs['ddp'][0]['global_batch']}, "
          f"{args.rounds} rounds (median), load average at the end {os.getloadavg()[0]:.2f}")
    labels = {"ddp": "2 processes x 1 thread", "single": "1 process  x 2 threads", "serial": "1 process  x 1 thread "}
    for name, label in labels.items():
        s, w = _median(runs[name], "steady_samples_per_s"), _median(runs[name], "samples_per_s")
        print(f"  {label}: steady {s['steady_samples_per_s']:7.1f} samples/s; whole fit {w['samples_per_s']:7.1f} "
              f"samples/s ({w['seconds']:.1f} s), data wait {100 * w['data_share']:.1f}% of the fit")
    for key, what in (("steady_samples_per_s", "steady state"), ("samples_per_s", "whole fit")):
        ratios = [d[key] / s[key] for d, s in zip(runs["ddp"], runs["single"], strict=True)]
        print(f"  ratio DDP / one process, {what}: {statistics.median(ratios):.2f} (per round: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.90)")


def profile(method: str, args) -> None:
    """One timed run of each set-up: milliseconds per step in each phase, per rank."""
    commands = _commands(method, args, profile=True)
    ddp = _run(*commands["ddp"], pin=args.pin)
    single, serial = _run(*commands["single"]), _run(*commands["serial"])
    columns = [("DDP rank 0", ddp[0]), ("DDP rank 1", ddp[1]), ("1 x 2 threads", single[0]),
               ("1 x 1 thread", serial[0])]
    phases = sorted({p for _, f in columns for p in f["ms_per_step"]}, key=lambda p: -ddp[0]["ms_per_step"].get(p, 0))
    print(f"{method} profile (ms per optimiser step, mean over {ddp[0]['steps']} steps; global batch "
          f"{ddp[0]['global_batch']}):")
    print(f"  {'phase':36s}" + "".join(f"{name:>15s}" for name, _ in columns) + "  calls/step (DDP)")
    for phase in phases:
        print(f"  {phase:36s}" + "".join(f"{f['ms_per_step'].get(phase, 0.0):15.2f}" for _, f in columns)
              + f"  {ddp[0]['calls_per_step'].get(phase, 0.0):10.2f}")
    print(f"  {'steady-state step (wall)':36s}" + "".join(f"{f['steady_ms_per_step']:15.2f}" for _, f in columns))
    print(f"  {'steady-state step (CPU, all threads)':36s}"
          + "".join(f"{f['steady_cpu_ms_per_step']:15.2f}" for _, f in columns))
    for name, figures in columns[:2]:
        comm = sum(v for k, v in figures["ms_per_step"].items() if k in COLLECTIVE_PHASES.values())
        total = sum(figures["ms_per_step"].values())
        print(f"  {name}: collectives {comm:.1f} of {total:.1f} ms timed per step ({100 * comm / total:.0f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="supervised,ca")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps per stage")
    parser.add_argument("--batch", type=int, default=32, help="per-process batch B (one process: 2B)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="first steps of each stage left out of the steady state")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave DDP ranks to the scheduler")
    parser.add_argument("--profile", action="store_true", help="then time the phases of a step (see above)")
    parser.add_argument("--profile-only", action="store_true", help="only the profile, no comparison")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--latency-worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_worker:
        latency_worker(*args.latency_worker)
        return
    if args.worker:
        method, steps, batch, threads, warmup, timed = args.worker
        worker(method, int(steps), int(batch), int(threads), int(warmup), timed == "1")
        return
    for method in args.methods.split(","):
        if not args.profile_only:
            compare(method, args)
        if args.profile or args.profile_only:
            profile(method, args)
    if args.profile or args.profile_only:
        latency(args)


if __name__ == "__main__":
    main()
