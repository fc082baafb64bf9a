"""A worker for tests/test_distributed.py, run as one plain process or under ``torchrun``.

``python tests/_ddp_worker.py negatives OUT.json B``: each process holds B identical embeddings, so every
candidate scores the same and each contrastive loss is log(number of candidates); the negatives per
anchor it saw, exp(loss) - 1, are written by rank 0.

``python tests/_ddp_worker.py steps OUT.pt B``: three real ``optimise`` steps of two BatchNorm encoders (no
dropout) on a contrastive + classification loss, batches drawn with ``sample_indices`` / ``draw_offsets``
from a fixed pool (per-process batch B); rank 0 writes the weights and the logged losses.

``python tests/_ddp_worker.py collectives OUT.json B``: real ``optimise`` runs of 2 and of 6 steps of an IMU
encoder + head, under the torch profiler; rank 0 writes how many gloo all-reduces and broadcasts each made,
its logged rows and the encoder's BatchNorm layers.

``python tests/_ddp_worker.py spread OUT.json N``: ``distributed.spread`` of N tasks; each process logs the
tasks it ran (OUT.json.RANK) and rank 0 writes which rank ran each task.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from c3t_edge import distributed
from c3t_edge.methods import TrainConfig
from c3t_edge.methods.alignment import info_nce, temporal_info_nce
from c3t_edge.methods.base import draw_offsets, optimise, sample_indices
from c3t_edge.models import ImuEncoder

STEPS, WIDTH = 12, 16


def negatives(out: str, batch: int) -> None:
    same = torch.ones(batch, STEPS, WIDTH)
    losses = {
        "info_nce": info_nce(same[:, 0], same[:, 0], 0.1),
        "temporal_all": temporal_info_nce(same, same, 0.1, negatives="all"),
        "temporal_step": temporal_info_nce(same, same, 0.1, negatives="step"),
    }
    counts = {name: round(math.exp(loss.item()) - 1, 3) for name, loss in losses.items()}
    if distributed.current().is_main:
        json.dump({**counts, "processes": distributed.current().world_size, "batch_per_process": batch},
                  open(out, "w"))


def steps(out: str, batch: int) -> None:
    torch.manual_seed(0)
    data = np.random.default_rng(1)
    pool_imu = torch.from_numpy(data.standard_normal((40, 200, 6)).astype(np.float32))
    pool_cam = torch.from_numpy(data.standard_normal((40, 200, 6)).astype(np.float32))
    labels = torch.from_numpy(data.integers(0, 3, 40))
    imu_encoder = ImuEncoder(6, WIDTH, 180, STEPS, dropout=0.0)
    camera_encoder = ImuEncoder(6, WIDTH, 180, STEPS, dropout=0.0)
    head = nn.Linear(WIDTH, 3)
    rng = np.random.default_rng(2)
    config = TrainConfig(method="supervised", lr=1e-3)

    def loss_fn(_step):
        index = torch.from_numpy(sample_indices(np.arange(40), batch, rng))
        shift, _ = draw_offsets(rng, len(index), 10, 0)
        imu = torch.stack([pool_imu[i, 10 + s:190 + s] for i, s in zip(index.tolist(), shift.tolist(), strict=True)])
        cam = pool_cam[index, 10:190]
        a, b = imu_encoder(imu), camera_encoder(cam)
        align = info_nce(a.mean(1), b.mean(1), 0.2) + temporal_info_nce(a, b, 0.2, positive_window=1.0)
        classify = F.cross_entropy(head(b.mean(1)), labels[index])
        return align + classify, {"align": align.item()}

    history = optimise([imu_encoder, camera_encoder, head], 3, config, loss_fn, desc="test", progress=False)
    if distributed.current().is_main:
        torch.save({"imu": imu_encoder.state_dict(), "camera": camera_encoder.state_dict(),
                    "head": head.state_dict(), "history": history}, out)


def collectives(out: str, batch: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    counts = {}
    for steps_run in (2, 6):
        torch.manual_seed(0)
        encoder, head = ImuEncoder(6, WIDTH, 180, STEPS, dropout=0.0), nn.Linear(WIDTH, 3)
        windows, labels = torch.randn(batch, 180, 6), torch.randint(0, 3, (batch,))

        def loss_fn(_step, encoder=encoder, head=head, windows=windows, labels=labels):
            return F.cross_entropy(head(encoder(windows).mean(1)), labels), {}

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            history = optimise([encoder, head], steps_run, TrainConfig(method="supervised"), loss_fn, desc="test",
                               progress=False)
        calls = Counter(event.name for event in profiler.events())
        counts[steps_run] = {"all_reduce": calls["gloo:all_reduce"], "broadcast": calls["gloo:broadcast"],
                             "logged": len(history),
                             "batchnorms": sum(isinstance(m, nn.BatchNorm1d) for m in encoder.modules())}
    if distributed.current().is_main:
        json.dump(counts, open(out, "w"))


def spread_tasks(out: str, n_tasks: int) -> None:
    """``distributed.spread`` of ``n_tasks`` tasks, each returning the rank (of the process group) that
    ran it; every rank appends one line per task it ran to ``out``.RANK, and rank 0 writes the results."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0

    def task(i):
        with open(f"{out}.{rank}", "a") as log:
            log.write(f"{i}\n")
        return rank

    results = distributed.spread([lambda i=i: task(i) for i in range(n_tasks)])
    if distributed.current().is_main:
        json.dump(results, open(out, "w"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, path, per_process = sys.argv[1], sys.argv[2], int(sys.argv[3])
    distributed.init("cpu")
    try:
        {"negatives": negatives, "steps": steps, "collectives": collectives,
         "spread": spread_tasks}[mode](path, per_process)
    finally:
        distributed.shutdown()
