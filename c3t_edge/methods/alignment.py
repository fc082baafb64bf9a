"""Contrastive alignment losses between IMU and camera latents (CA: one vector per clip; C3T: one
per temporal step).

Under ``torchrun`` both contrastive losses first gather every process's rows with gradients
(:func:`c3t_edge.distributed.gather_with_grad`), so their negatives are those of the global batch and the
value is the one a single process with the global batch computes (with one process nothing changes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from c3t_edge.distributed import gather_with_grad


def info_nce(imu: torch.Tensor, camera: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLIP-style symmetric InfoNCE between L2-normalised rows of ``imu`` and ``camera`` (n, d):
    row i of each is the positive of the other's row i, every other row a negative (of the global batch
    under torchrun)."""
    imu, camera = gather_with_grad(imu), gather_with_grad(camera)
    logits = F.normalize(imu, dim=-1) @ F.normalize(camera, dim=-1).T / temperature
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def temporal_info_nce(imu: torch.Tensor, camera: torch.Tensor, temperature: float, *, negatives: str = "all",
                      positive_window: float = 0.0, tolerance: int = 0) -> torch.Tensor:
    """Per-step symmetric InfoNCE between IMU and camera latents (n, S, d) (C3T's alignment).

    ``negatives``: ``"step"`` - the other clips at the same step (S separate n-way problems);
    ``"all"`` - every other (clip, step) pair of the batch (one nS-way problem).
    ``positive_window`` > 0 (``"all"`` only) makes neighbouring steps of the same clip soft positives,
    weighted exp(-(ds / window)^2 / 2), so alignment tolerates small time offsets between streams.
    ``tolerance`` > 0 (``"all"`` only; replaces ``positive_window``) is shift-tolerant alignment: every
    step of the same clip within ``tolerance`` steps is a positive and the loss is -log of their summed
    probability, so each step may match whichever neighbour fits best (multi-positive InfoNCE).
    """
    a, b = F.normalize(gather_with_grad(imu), dim=-1), F.normalize(gather_with_grad(camera), dim=-1)
    n, steps, _ = a.shape
    if negatives == "step":
        logits = torch.einsum("asd,bsd->sab", a, b) / temperature  # (S, n, n)
        target = torch.arange(n, device=a.device).expand(steps, n)
        return 0.5 * (F.cross_entropy(logits.flatten(0, 1), target.flatten())
                      + F.cross_entropy(logits.transpose(1, 2).flatten(0, 1), target.flatten()))
    if negatives != "all":
        raise ValueError(f"unknown negatives {negatives!r}: expected 'step' or 'all'")
    logits = a.flatten(0, 1) @ b.flatten(0, 1).T / temperature  # (nS, nS)
    if tolerance > 0:
        ds = torch.arange(steps, device=a.device)
        near = (ds[:, None] - ds[None, :]).abs() <= tolerance
        same_clip = torch.eye(n, dtype=torch.bool, device=a.device)
        positive = (same_clip[:, None, :, None] & near[None, :, None, :]).reshape(n * steps, n * steps)
        return 0.5 * (_multi_positive_nll(logits, positive) + _multi_positive_nll(logits.T, positive.T))
    if positive_window <= 0:
        target = torch.arange(n * steps, device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    ds = torch.arange(steps, device=a.device, dtype=a.dtype)
    kernel = torch.exp(-0.5 * ((ds[:, None] - ds[None, :]) / positive_window) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    soft = torch.block_diag(*([kernel] * n)) if n * steps <= 4096 else _block(kernel, n)
    return 0.5 * (F.cross_entropy(logits, soft) + F.cross_entropy(logits.T, soft))


def _multi_positive_nll(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(sum of softmax(row) over the row's positives)."""
    return (torch.logsumexp(logits, dim=1)
            - torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)).mean()


def _block(kernel: torch.Tensor, n: int) -> torch.Tensor:
    steps = kernel.shape[0]
    eye = torch.eye(n, device=kernel.device, dtype=kernel.dtype)
    return (eye[:, None, :, None] * kernel[None, :, None, :]).reshape(n * steps, n * steps)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton distillation: KL(teacher || student) on temperature-softened predictions, times T^2."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1),
                    reduction="batchmean") * t * t


def scaled_normalize(latents: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis and scale to norm sqrt(d) (unit variance per component)."""
    return F.normalize(latents, dim=-1) * math.sqrt(latents.shape[-1])
