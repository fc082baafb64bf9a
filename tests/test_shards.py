"""The data path streams: preprocessed trials live in memory-mapped shard files, so training memory does not
grow with the dataset.

Synthetic datasets in the folder format, 5x and 20x UTD-MHAD's 864 trial slots (27 actions x 4 trials x
40 / 160 subjects), are made from the real trials: each synthetic trial mixes two real trials of its action
(random weight 0.2-0.8) after time-stretching both by one random factor (0.85-1.15); IMU and skeleton are
stretched alike, so they stay paired. Each trains `ca` (joint schedule, skeleton camera, all subjects, one
DataLoader worker cutting the batches) in a child process, preprocessing included; the peak memory of that
process is compared between the two sizes.

Peak memory is the peak anonymous resident memory (RssAnon, sampled every 10 ms): what the process itself
holds. Pages of the memory-mapped shards are file-backed - the kernel drops them under pressure - and are
reported (VmHWM counts them) but not bounded. Measured: the preprocessed data grows by 250 MB from 5x to
20x (83 -> 333 MB) and peak anonymous memory by 17 MB (262 -> 280 MB: per-trial bookkeeping - file
records, names, array views - for the 13 000 extra trials; VmHWM 405 -> 475 MB). Bound: 30 MB (an
in-memory data path grows by at least the data, 250 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from c3t_edge.data import load_trial_arrays, open_dataset
from c3t_edge.data import preprocess as pp
from c3t_edge.data.arrays import _read_cache

ROOT = Path(__file__).resolve().parents[1]
UTD_SLOTS = 27 * 8 * 4     # actions x subjects x trials of UTD-MHAD


def real_trials(utd_mhad_dir: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """label -> [(imu (T, 6), skeleton (F, 20, 3))] of every real trial that has both."""
    dataset = open_dataset(utd_mhad_dir)
    out: dict[str, list] = defaultdict(list)
    for record in dataset.trials:
        if record.has("imu") and record.has("skeleton"):
            out[record.label].append((dataset.read(record, "imu"), dataset.read(record, "skeleton")))
    return out


def make_synthetic(real: dict, root: Path, factor: int, seed: int = 0) -> int:
    """A folder-format dataset of ``factor`` x UTD-MHAD's trial slots; returns its preprocessed bytes
    (IMU at 50 Hz + skeleton, float32)."""
    rng = np.random.default_rng(seed)
    labels = sorted(real)
    rows = ["file,subject,trial,label,imu_rate_hz,camera_fps"]
    (root / "trials").mkdir(parents=True)
    size = 0
    for subject in range(1, 8 * factor + 1):
        for number, label in enumerate(labels):
            for trial in range(1, 5):
                first, second = rng.choice(len(real[label]), size=2)
                (imu_a, sk_a), (imu_b, sk_b) = real[label][first], real[label][second]
                stretch, weight = rng.uniform(0.85, 1.15), rng.uniform(0.2, 0.8)
                n_imu, n_frames = int(len(imu_a) * stretch), int(len(sk_a) * stretch)
                imu = weight * pp.resample(imu_a, n_imu) + (1 - weight) * pp.resample(imu_b, n_imu)
                joints = [pp.resample(s.reshape(len(s), -1), n_frames) for s in (sk_a, sk_b)]
                skeleton = (weight * joints[0] + (1 - weight) * joints[1]).reshape(n_frames, -1, 3)
                name = f"trials/a{number + 1}_s{subject}_t{trial}.npz"
                np.savez(root / name, imu=imu.astype(np.float32), skeleton=skeleton.astype(np.float32))
                rows.append(f"{name},{subject},{trial},{label},50,30")
                size += imu.size * 4 + skeleton.size * 4
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "labels.txt").write_text("\n".join(labels) + "\n")
    return size


def train_and_measure(data: Path, cache: Path, out: Path) -> dict:
    """Train in a child process; its peak anonymous RSS (sampled) and VmHWM, in MB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "C3T_CACHE": str(cache)}
    command = [sys.executable, "-m", "c3t_edge", "train", "--method", "ca", "--set", "schedule=joint",
               "--camera", "skeleton", "--split", "all-subjects", "--steps", "30", "--data", str(data),
               "--out", str(out), "--quiet", "--device", "cpu", "--loader-workers", "1"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    peak = {"anon": 0, "hwm": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                status = Path(f"/proc/{child.pid}/status").read_text()
            except OSError:
                return
            for line in status.splitlines():
                for key, field in (("anon", "RssAnon:"), ("hwm", "VmHWM:")):
                    if line.startswith(field):
                        peak[key] = max(peak[key], int(line.split()[1]))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate(timeout=900)
    done.set()
    sampler.join()
    assert child.returncode == 0, stderr.decode()[-2000:]
    return {"anon_mb": peak["anon"] / 1024, "vm_hwm_mb": peak["hwm"] / 1024}


def _mapped(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a memory-mapped file."""
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base if isinstance(array.base, np.ndarray) else None
    return False


def test_shards_are_memory_mapped_and_equal_to_the_preprocessing(tmp_path, utd_mhad_dir):
    dataset = open_dataset(utd_mhad_dir)
    cache = tmp_path / "cache"
    first = load_trial_arrays(dataset, camera="skeleton", cache_dir=cache)
    again = load_trial_arrays(dataset, camera="skeleton", cache_dir=cache)
    uncached = load_trial_arrays(dataset, camera="skeleton", cache_dir=None)
    for arrays in (first, again):
        assert all(np.array_equal(a, b) for a, b in zip(arrays.imu, uncached.imu, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(arrays.camera, uncached.camera, strict=True))
        assert all(_mapped(a) for a in arrays.camera[:5] + arrays.imu[:5])
        assert not any(a.flags.writeable for a in arrays.imu[:5])
    index = next(cache.glob("skeleton-*.npz"))
    names, _ = _read_cache(index)
    assert len(names) == len(uncached)
    assert len(list(cache.glob("skeleton-*.shards/*.npy"))) >= 1


def test_peak_memory_does_not_grow_with_the_dataset(tmp_path, utd_mhad_dir):
    real = real_trials(utd_mhad_dir)
    figures = {}
    for factor in (5, 20):
        data = tmp_path / f"x{factor}"
        data_bytes = make_synthetic(real, data, factor)
        measured = train_and_measure(data, tmp_path / f"cache{factor}", tmp_path / f"run{factor}")
        figures[factor] = {"trials": factor * UTD_SLOTS, "data_mb": data_bytes / 2**20, **measured}
    print({f: {k: round(v, 1) for k, v in x.items()} for f, x in figures.items()})
    growth = figures[20]["anon_mb"] - figures[5]["anon_mb"]
    data_growth = figures[20]["data_mb"] - figures[5]["data_mb"]
    assert data_growth > 150, figures        # the test means something: the data really grows
    assert growth < 30, (growth, figures)


@pytest.mark.parametrize("method", ["supervised", "ca", "c3t"])
def test_loader_workers_prefetch_the_same_batches(method, utd_mhad_dir):
    """With a DataLoader worker cutting the predicted next batches, training is bit for bit the same as
    without, and the predictions are used (all but the first calls of each stage)."""
    import torch

    from c3t_edge.methods import camera as camera_module
    from c3t_edge.methods import default_config
    from c3t_edge.training import build_method, load_arrays, make_split, method_data

    torch.set_num_threads(1)
    config = default_config(method, camera="skeleton", steps=12, batch_size=16)
    arrays = load_arrays(utd_mhad_dir, config)
    split = make_split(arrays, "development")
    states, hits = [], []
    for workers in (0, 1):
        camera_module._FITTED.clear()   # train the camera stage both times (it is cached otherwise)
        camera_module._LATENTS.clear()
        fitted = build_method(config)
        data = method_data(fitted, arrays, split, loader_workers=workers)
        fitted.fit(data)
        data.close()
        states.append(fitted.state_dict())
        hits.append(data._prefetch.hits if workers else None)
    for module, state in states[0].items():
        for key, value in state.items():
            assert torch.equal(states[1][module][key], value), f"{module}.{key}"
    assert hits[1] >= 12 - 2, hits         # the calls after the first cycle were prefetched


def test_frozen_camera_outputs_beyond_the_table_budget_run_per_batch(monkeypatch):
    """Many paired trials: no table (memory would grow with them); the frozen model runs on each batch's
    camera windows and gives the table's values (float rounding aside) for the same draws."""
    import torch
    from test_methods import tiny_arrays

    from c3t_edge.data.splits import development_split
    from c3t_edge.methods import MethodData, frozen
    from c3t_edge.models import SkeletonEncoder

    arrays = tiny_arrays("skeleton")
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    torch.manual_seed(0)
    encoder, head = SkeletonEncoder(60, 16).eval(), torch.nn.Linear(16, 3)
    outputs, default = {}, frozen.TABLE_BUDGET_BYTES
    for budget in (default, 0):
        monkeypatch.setattr(frozen, "TABLE_BUDGET_BYTES", budget)
        made = frozen.FrozenCameraOutputs(encoder, data, split.paired, jitter_s=0.2, misalign_s=0.1)
        outputs[budget] = (made.table is not None, made.map(lambda latents: head(latents.mean(1))))
    assert outputs[default][0] and not outputs[0][0]
    for seed in range(3):
        index = split.paired[np.random.default_rng(seed).choice(len(split.paired), 8)]
        (imu_a, a), (imu_b, b) = (outputs[k][1].batch(data, index, np.random.default_rng(seed)) for k in outputs)
        assert torch.equal(imu_a, imu_b)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
