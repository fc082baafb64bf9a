"""Training across processes (torchrun, gloo on CPU) and resuming after a crash.

- One DDP step is exact: 2 processes x batch B give the weights of 1 process x batch 2B (no dropout).
- The contrastive losses see the negatives of the global batch (counted).
- Whole ``c3t-edge train`` runs under ``torchrun --nproc_per_node=2`` with batch B follow the loss
  trajectory of one process with batch 2B for ``supervised``, ``ca`` and ``c3t``. They cannot be equal
  step for step: dropout masks and camera augmentations come from each process's own generator. Measured
  on UTD-MHAD skeletons, 20 steps per stage: mean |difference| 0.04-0.06, largest 0.2-0.23 (losses
  2-3.5). Tolerances: mean <= 0.12, each step <= 0.4, and the first step of every stage <= 0.1 -
  negatives of the local batch only would put the first alignment step log(2) = 0.69 lower.
- A crash injected after global step k, then ``--resume``: the same final weights as a run that never
  stopped, exactly (one process and two: same generators, same arithmetic).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "_ddp_worker.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _env(cache: Path | None = None, **extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    if cache is not None:
        env["C3T_CACHE"] = str(cache)
    return env


def torchrun(args: list[str], env: dict, processes: int = 2) -> subprocess.CompletedProcess:
    if not TORCHRUN.is_file():
        pytest.fail(f"torchrun not found beside {sys.executable} (it comes with torch)")
    result = subprocess.run([str(TORCHRUN), "--standalone", f"--nproc_per_node={processes}", *args],
                            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_negatives_are_those_of_the_global_batch(tmp_path):
    """Identical embeddings make each loss log(candidates): 2 processes x 5 rows see 9 negatives per
    anchor (10 - 1), and 10 x 12 - 1 = 119 for C3T's (clip, step) negatives - not 4 and 59."""
    out = tmp_path / "negatives.json"
    torchrun([str(WORKER), "negatives", str(out), "5"], _env())
    counts = json.loads(out.read_text())
    assert counts["processes"] == 2
    assert counts["info_nce"] == pytest.approx(9, abs=1e-3)
    assert counts["temporal_all"] == pytest.approx(2 * 5 * 12 - 1, abs=1e-2)
    assert counts["temporal_step"] == pytest.approx(9, abs=1e-3)


def test_ddp_steps_equal_one_process_with_the_global_batch(tmp_path):
    """Gradient averaging, global BatchNorm statistics, gathered negatives and the sharded global batch
    together: 3 AdamW steps of 2 x 4 rows give the weights of 1 x 8 rows (float32 reduction order only)."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, str(WORKER), "steps", str(one), "8"], check=True, env=_env(), timeout=120)
    torchrun([str(WORKER), "steps", str(two), "4"], _env())
    a, b = torch.load(one), torch.load(two)
    for part in ("imu", "camera", "head"):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key].float(), value.float(), atol=1e-5, rtol=1e-5, msg=key)
    assert [h["loss"] for h in b["history"]] == pytest.approx([h["loss"] for h in a["history"]], abs=1e-4)


def test_a_ddp_step_makes_two_all_reduces_per_batchnorm_layer_and_one_for_the_gradients(tmp_path):
    """On small CPU models each collective is a latency-bound synchronisation that costs about as much as
    a layer's compute (bench/bench_ddp.py --profile), so a step makes only the necessary ones: per
    BatchNorm layer one all-reduce forward (global statistics) and one backward (their gradient), one for
    the gradients (a single DDP bucket), one per logged row for the logged loss - and no broadcast of
    buffers (equal on every rank). Counted on real runs (torch profiler): 6 steps minus 2 steps."""
    out = tmp_path / "collectives.json"
    torchrun([str(WORKER), "collectives", str(out), "4"], _env())
    short, long = json.loads(out.read_text()).values()
    assert long["batchnorms"] == 3
    steps, rows = 6 - 2, long["logged"] - short["logged"]
    assert long["all_reduce"] - short["all_reduce"] == steps * (2 * long["batchnorms"] + 1) + rows
    assert long["broadcast"] == short["broadcast"]


def test_spread_runs_each_task_on_exactly_one_process(tmp_path):
    """``spread`` (evaluate's independent fits over torchrun processes): task i runs on rank i mod 2 only,
    and every rank gets every result. (It once read the rank inside its own one-process block, so every
    rank ran every task: the same results, twice the work.)"""
    out = tmp_path / "spread.json"
    torchrun([str(WORKER), "spread", str(out), "5"], _env())
    assert json.loads(out.read_text()) == [0, 1, 0, 1, 0]
    ran = {rank: (tmp_path / f"spread.json.{rank}").read_text().split() for rank in (0, 1)}
    assert ran == {0: ["0", "2", "4"], 1: ["1", "3"]}


def _train(method: str, out: Path, batch: int, cache: Path, data: Path, *, processes: int = 1,
           extra: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    args = ["train", "--method", method, "--camera", "skeleton", "--steps", "20", "--set", f"batch_size={batch}",
            "--data", str(data), "--out", str(out), "--quiet", "--device", "cpu", *extra]
    env = env or _env(cache)
    if processes > 1:
        return torchrun(["-m", "c3t_edge", *args], env, processes)
    return subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def _losses(run: Path) -> list[tuple[int, float]]:
    """(step, loss) of every history row (20-step stages log every step)."""
    return [(h["step"], h["loss"]) for h in json.loads((run / "metrics.json").read_text())["history"]]


@pytest.mark.parametrize("method", ["supervised", "ca", "c3t"])
def test_two_processes_follow_one_process_with_twice_the_batch(method, tmp_path, utd_mhad_dir, _isolated_cache):
    one, two = tmp_path / "one", tmp_path / "two"
    result = _train(method, one, 16, _isolated_cache, utd_mhad_dir)
    assert result.returncode == 0, result.stderr
    _train(method, two, 8, _isolated_cache, utd_mhad_dir, processes=2)
    assert {p.name for p in two.iterdir()} == {"config.json", "model.pt", "metrics.json"}  # rank 0 only
    assert json.loads((two / "config.json").read_text())["processes"] == 2
    a, b = _losses(one), _losses(two)
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) == 20 * {"supervised": 1, "ca": 2, "c3t": 3}[method]
    diffs = [abs(x - y) for (_, x), (_, y) in zip(a, b, strict=True)]
    assert sum(diffs) / len(diffs) <= 0.12, diffs
    assert max(diffs) <= 0.4, diffs
    firsts = [d for d, (step, _) in zip(diffs, a, strict=True) if step == 0]
    assert max(firsts) <= 0.1, firsts
    if method != "supervised":  # the alignment stage starts near log(global candidates), not log(local)
        align_start = b[-20][1]
        assert align_start > math.log(8) + 0.3, align_start


@pytest.mark.parametrize("processes", [1, 2])
def test_resume_after_a_crash_gives_the_same_weights(processes, tmp_path, utd_mhad_dir, _isolated_cache):
    """ca (two stages, 20 steps each), checkpoint every 5 steps, crash after global step 27 (in the
    alignment stage, 2 steps after a checkpoint): resumed, the weights equal the uninterrupted run's,
    exactly - with one process and with two (every rank's torch generator is in the checkpoint)."""
    batch = 16 // processes
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    every = ("--checkpoint-every", "5")
    assert _train("ca", straight, batch, _isolated_cache, utd_mhad_dir, processes=processes).returncode == 0
    crash_env = _env(_isolated_cache, C3T_CRASH_AT_STEP="27")
    if processes == 1:
        result = _train("ca", crashed, batch, _isolated_cache, utd_mhad_dir, extra=every, env=crash_env)
        assert result.returncode != 0 and "crash injected after global step 27" in result.stderr
    else:
        args = ["train", "--method", "ca", "--camera", "skeleton", "--steps", "20", "--set", f"batch_size={batch}",
                "--data", str(utd_mhad_dir), "--out", str(crashed), "--quiet", "--device", "cpu", *every]
        result = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "c3t_edge", *args],
                                capture_output=True, text=True, env=crash_env, timeout=300, cwd=ROOT)
        assert result.returncode != 0 and "crash injected after global step 27" in result.stderr
    assert {p.name for p in crashed.iterdir()} == {"checkpoint.pt"}
    saved = torch.load(crashed / "checkpoint.pt", weights_only=False)
    assert saved["global_step"] == 25 and saved["current"]["step"] == 5 and len(saved["stages"]) == 1
    assert len(saved["current"]["torch_rng"]) == processes
    result = _train("ca", crashed, batch, _isolated_cache, utd_mhad_dir, processes=processes,
                    extra=(*every, "--resume"))
    assert result.returncode == 0, result.stderr
    assert not (crashed / "checkpoint.pt").exists()
    a, b = torch.load(straight / "model.pt"), torch.load(crashed / "model.pt")
    for module, state in a.items():
        for key, value in state.items():
            assert torch.equal(b[module][key], value), f"{module}.{key}"
    assert [h["loss"] for h in json.loads((crashed / "metrics.json").read_text())["history"]] == \
        [h["loss"] for h in json.loads((straight / "metrics.json").read_text())["history"]]


def test_resume_refuses_another_run(tmp_path, utd_mhad_dir, _isolated_cache):
    run = tmp_path / "run"
    _train("supervised", run, 16, _isolated_cache, utd_mhad_dir, extra=("--checkpoint-every", "5"),
           env=_env(_isolated_cache, C3T_CRASH_AT_STEP="7"))
    assert (run / "checkpoint.pt").is_file()
    result = _train("supervised", run, 12, _isolated_cache, utd_mhad_dir, extra=("--resume",))
    assert result.returncode == 1 and "belongs to another run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    shutil.rmtree(run)


def test_evaluate_results_are_the_same_with_two_processes(tmp_path, utd_mhad_dir, _isolated_cache):
    """``evaluate`` spreads its independent runs (each method's label-free selection, each seed's test
    fit) over the processes: the results file equals the one-process file apart from timings, the
    command line and the machine (both runs use one torch thread per process)."""
    args = ["evaluate", "--data", str(utd_mhad_dir), "--camera", "skeleton", "--methods", "st,ca", "--seeds", "2",
            "--steps", "6", "--quiet", "--device", "cpu"]
    one, two = tmp_path / "one" / "r.json", tmp_path / "two" / "r.json"
    result = subprocess.run([sys.executable, "-m", "c3t_edge", *args, "--out", str(one)], capture_output=True,
                            text=True, env=_env(_isolated_cache), timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    torchrun(["-m", "c3t_edge", *args, "--out", str(two)], _env(_isolated_cache))
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["machine"]["processes"] == 2 and a["machine"]["processes"] == 1
    for results in (a, b):
        for key in ("machine", "evaluation_seconds", "command"):
            results.pop(key)
        for entry in results["methods"].values():
            entry.pop("train_seconds_mean")
    assert a == b
    assert set(a["selection"]) == {"st", "ca"} and len(a["predictions"]["ca"]) == 2
