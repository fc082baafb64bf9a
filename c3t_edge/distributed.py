"""One training run over several processes: ``torchrun`` + DistributedDataParallel (gloo on CPU, NCCL on GPUs).

``torchrun --standalone --nproc_per_node=N -m c3t_edge train ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`init` joins them into one process group. A plain
``c3t-edge train`` has no ``WORLD_SIZE`` (or 1), so nothing here changes it: :func:`current` is then the
single-process context and every helper below is the identity.

How N processes with per-process batch B train the objective of one process with batch N*B:

- **Same global batch.** Every rank holds the same numpy generator (same seed) and draws the *global*
  batch - N*B trial indices, then N*B window shifts - exactly as one process with batch N*B would; each
  rank keeps rows ``rank*B .. rank*B + B`` (:func:`local_rows`). The generators stay in step because
  every rank makes the same draws.
- **Gradients averaged** by DistributedDataParallel (each step is one DDP forward: see
  ``c3t_edge.methods.base.optimise``); a loss that is a mean over the local rows then has the gradient of
  the mean over the global batch.
- **BatchNorm statistics over the global batch** (:func:`synchronise_batchnorm`): ``nn.SyncBatchNorm`` on
  GPUs; on CPU (which SyncBatchNorm does not support) :class:`GlobalBatchNorm`, the same computation:
  one all-reduce of the per-channel sums forward, one of the gradient sums backward, per layer.
- **Contrastive negatives from the global batch**: the alignment losses gather every rank's embeddings
  with gradients (:func:`gather_with_grad`, as open_clip's ``gather_features`` does) and compute the
  whole N*B-way loss on every rank; DDP's averaging then yields exactly its gradient.

What still differs from one process: dropout masks and camera augmentations come from each rank's own
torch generator (seeded per rank), so trajectories agree statistically, not bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from c3t_edge.errors import C3TEdgeError


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` processes, and the torch device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"   #: "cpu" or "cuda:<local_rank>"

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory, logs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_CONTEXT = Context()


def current() -> Context:
    """The context of this process (single-process CPU until :func:`init` says otherwise)."""
    return _CONTEXT


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is a clear error."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise C3TEdgeError(f"--device {name!r}: choose auto, cpu or cuda")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise C3TEdgeError("--device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)")
    return name


def init(device: str = "auto") -> Context:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1), or set up a
    single process on ``device``. NCCL on GPUs, gloo on CPU; each GPU process uses GPU ``LOCAL_RANK``."""
    import torch
    import torch.distributed as dist

    global _CONTEXT
    kind = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    where = "cpu"
    if kind == "cuda":
        if local >= torch.cuda.device_count():
            raise C3TEdgeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(local)
        where = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    _CONTEXT = Context(rank, world, local, where)
    return _CONTEXT


def shutdown() -> None:
    """Leave the process group (if any) and return to the single-process context."""
    import torch.distributed as dist

    global _CONTEXT
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = Context()


def barrier() -> None:
    if _CONTEXT.distributed:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------------- global batches

def local_rows(n_local: int) -> slice:
    """The rows of a global batch of ``n_local * world_size`` that this rank trains on."""
    return slice(_CONTEXT.rank * n_local, (_CONTEXT.rank + 1) * n_local)


def global_draw(draw: Callable[[int], np.ndarray], n_local: int) -> np.ndarray:
    """``draw(n)`` for the global batch (n = ``n_local * world_size``, the same draw on every rank),
    this rank's rows of it. With one process: ``draw(n_local)``, unchanged."""
    if not _CONTEXT.distributed:
        return draw(n_local)
    return draw(n_local * _CONTEXT.world_size)[local_rows(n_local)]


# ---------------------------------------------------------------------------- collectives with autograd

def _gather_function():
    import torch
    import torch.distributed as dist

    class GatherWithGrad(torch.autograd.Function):
        """Concatenate every rank's tensor along dim 0; the backward pass sums, over ranks, the
        gradients that reach this rank's part (each rank computes the whole loss)."""

        @staticmethod
        def forward(ctx, tensor):
            tensor = tensor.contiguous()
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor)
            ctx.rows = tensor.shape[0]
            return torch.cat(parts)

        @staticmethod
        def backward(ctx, grad):
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            return grad[dist.get_rank() * ctx.rows:(dist.get_rank() + 1) * ctx.rows]

    return GatherWithGrad


_GATHER: type | None = None


def gather_with_grad(tensor):
    """Every rank's ``tensor`` (n, ...) concatenated in rank order -> (world_size * n, ...), with gradients
    flowing back to this rank's rows (open_clip's ``gather_features(gather_with_grad=True)``). Identity
    with one process."""
    global _GATHER
    if not _CONTEXT.distributed:
        return tensor
    if _GATHER is None:
        _GATHER = _gather_function()
    return _GATHER.apply(tensor)


def mean_over_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise mean of ``values`` over ranks (for logged losses). Unchanged with one process."""
    if not _CONTEXT.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.float64, device=_CONTEXT.device)
    dist.all_reduce(tensor)
    return (tensor / _CONTEXT.world_size).tolist()


def all_gather_objects(value) -> list:
    """``value`` of every rank, in rank order (``[value]`` with one process)."""
    if not _CONTEXT.distributed:
        return [value]
    import torch.distributed as dist

    out: list = [None] * _CONTEXT.world_size
    dist.all_gather_object(out, value)
    return out


# ---------------------------------------------------------------------------------------- BatchNorm

def _global_batchnorm_class():
    import torch
    import torch.distributed as dist
    from torch import nn

    class GlobalBatchNormFunction(torch.autograd.Function):
        """Normalisation by given global statistics, whose backward pass adds the statistics' share of the
        gradient with **one** all-reduce of (sum dy, sum dy * (x - mean)) per channel - what
        ``nn.SyncBatchNorm`` does on GPUs. The loss it differentiates is the sum of every rank's loss."""

        @staticmethod
        def forward(ctx, input, weight, bias, mean, var, total, eps):
            ctx.save_for_backward(input, weight, mean, var)
            ctx.total, ctx.eps = total, eps
            return torch.batch_norm(input, weight, bias, mean, var, False, 0.0, eps, False)

        @staticmethod
        def backward(ctx, grad):
            input, weight, mean, var = ctx.saved_tensors
            channels = input.shape[1]
            shape = (1, channels) + (1,) * (input.dim() - 2)
            dims = [0, *range(2, input.dim())]
            invstd = torch.rsqrt(var + ctx.eps)
            centred = input - mean.view(shape)
            local = torch.cat([grad.sum(dims), (grad * centred).sum(dims)])
            sums = local.clone()
            dist.all_reduce(sums)
            sum_dy, sum_dy_centred = sums[:channels] / ctx.total, sums[channels:] / ctx.total
            scale = invstd if weight is None else invstd * weight
            grad_input = (grad - sum_dy.view(shape) - centred * (invstd * invstd * sum_dy_centred).view(shape)) \
                * scale.view(shape)
            grad_weight = local[channels:] * invstd if weight is not None and ctx.needs_input_grad[1] else None
            grad_bias = local[:channels] if ctx.needs_input_grad[2] else None
            return grad_input, grad_weight, grad_bias, None, None, None, None

    class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
        """BatchNorm whose training statistics are those of the global batch, for CPU process groups,
        where ``nn.SyncBatchNorm`` is not supported: one all-reduce of the per-channel (sum, sum of
        squares, count) forward, one of the gradient sums backward (:class:`GlobalBatchNormFunction`).
        Same parameters, buffers and state dict as the BatchNorm it replaces; in eval mode it is that
        BatchNorm."""

        def _check_input_dim(self, input):
            if input.dim() < 2:
                raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

        def forward(self, input):
            if not (self.training and _CONTEXT.distributed):
                return super().forward(input)
            channels = input.shape[1]
            dims = [0, *range(2, input.dim())]
            with torch.no_grad():
                stats = torch.cat([input.sum(dims), (input * input).sum(dims),
                                   input.new_tensor([input.numel() / channels])])
                dist.all_reduce(stats)
                total = stats[-1]
                mean = stats[:channels] / total
                var = (stats[channels:2 * channels] / total - mean * mean).clamp_min(0)
                if self.track_running_stats:
                    self.num_batches_tracked += 1
                    momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                    self.running_var.mul_(1 - momentum).add_(momentum * var * total / (total - 1).clamp_min(1))
            return GlobalBatchNormFunction.apply(input, self.weight, self.bias, mean, var, float(total), self.eps)

    return GlobalBatchNorm


_GLOBAL_BN: type | None = None


def global_batchnorm_class() -> type:
    global _GLOBAL_BN
    if _GLOBAL_BN is None:
        _GLOBAL_BN = _global_batchnorm_class()
    return _GLOBAL_BN


def synchronise_batchnorm(modules) -> Callable[[], None]:
    """Make every BatchNorm inside ``modules`` compute its training statistics over the global batch
    (``nn.SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` on CPU), in place - the modules keep their
    identity and their state. Returns a function that puts the original BatchNorm modules back.
    With one process nothing changes."""
    if not _CONTEXT.distributed:
        return lambda: None
    from torch import nn

    cls = nn.SyncBatchNorm if _CONTEXT.device.startswith("cuda") else global_batchnorm_class()
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for module in modules:
        for parent in module.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, cls):
                    replacement = _convert(child, cls)
                    setattr(parent, name, replacement)
                    swapped.append((parent, name, child))

    def restore() -> None:
        for parent, name, original in swapped:
            replacement = getattr(parent, name)
            original.load_state_dict(replacement.state_dict())
            original.train(replacement.training)
            setattr(parent, name, original)

    return restore


def _convert(bn, cls):
    """A ``cls`` BatchNorm sharing ``bn``'s parameters and buffers (so the optimiser's tensors stay)."""
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


# ------------------------------------------------------------------------------- independent runs

@contextmanager
def independent():
    """Inside this block this process trains on its own (world size 1, same device), while the process
    group stays up for :func:`spread` to collect the results."""
    global _CONTEXT
    outer = _CONTEXT
    _CONTEXT = Context(device=outer.device)
    try:
        yield
    finally:
        _CONTEXT = outer


def spread(tasks: Sequence[Callable[[], object]]) -> list:
    """Run independent ``tasks`` (each a complete, seeded training run or more) over the processes: task i
    on rank i mod world_size, each process training on its own; returns every task's result, in task order,
    on every rank. With one process: ``[task() for task in tasks]``. Results must be picklable."""
    if not _CONTEXT.distributed:
        return [task() for task in tasks]
    mine = {}
    rank, world = _CONTEXT.rank, _CONTEXT.world_size  # read before independent() makes this a world of one
    with independent():
        for i, task in enumerate(tasks):
            if i % world == rank:
                mine[i] = task()
    merged: dict = {}
    for part in all_gather_objects(mine):
        merged.update(part)
    return [merged[i] for i in range(len(tasks))]
