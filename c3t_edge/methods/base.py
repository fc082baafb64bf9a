"""One interface for every UMA method (``supervised``, ``camera``, ``st``, ``ca``, ``c3t``).

A method is configured by a :class:`TrainConfig`, fitted on a :class:`MethodData` (the training side
of a split: labelled camera windows, unlabelled paired windows, and - only for ``supervised`` - IMU
labels), and then predicts from standardised IMU windows alone (``camera`` predicts from camera
clips: it is the teacher's own accuracy, not an IMU model). Public ``fit`` validates and calls the
method's private ``_fit``, as scikit-learn estimators do.
"""

from __future__ import annotations

import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from c3t_edge import checkpoint, distributed
from c3t_edge.data.arrays import TrialArrays
from c3t_edge.data.loader import Call, WindowPrefetcher
from c3t_edge.data.preprocess import PreprocessConfig, Standardizer, imu_channels
from c3t_edge.models import ImuEncoder, ImuRecognizer, build_camera_encoder, build_head


@dataclass
class TrainConfig:
    """Every choice that defines a training run (saved as the run's ``config.json``)."""

    method: str
    camera: str = "depth"            #: depth | skeleton | rgb
    placement: str = "all"           #: wrist | thigh | all (which actions are classes)
    seed: int = 0
    steps: int = 1500                #: optimiser steps per training stage
    batch_size: int = 64
    lr: float = 2e-3                 #: peak one-cycle learning rate (AdamW)
    weight_decay: float = 1e-2
    latent_dim: int = 128            #: d, width of each temporal latent vector
    head: str = "pool"               #: pool | attention
    jitter_s: float = 0.4            #: training windows start up to +-jitter_s from the centred window
    misalign_s: float = 0.0          #: training-time random offset between paired camera and IMU (s)
    temperature: float = 0.1         #: InfoNCE temperature (ca, c3t) / distillation temperature (st)
    channels: str = "all"            #: IMU channels the model reads: all (ax..gz) | acc (ax, ay, az)
    extra: dict = field(default_factory=dict)  #: method-specific options
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["preprocess"] = PreprocessConfig(**data.get("preprocess", {}))
        return cls(**data)


class MethodData:
    """The training side of a split, as a method sees it.

    ``labelled`` trials carry camera clips and labels, ``paired`` trials camera + IMU and - unless the
    method is ``supervised`` - **no labels** (they are -1 here, so a method cannot read them). The
    labelled set's IMU is never used either, except by ``supervised``: its windows come out as NaN, and
    the ``standardizer`` is fitted on the paired IMU only (on all training IMU for ``supervised``).
    For the other methods ``arrays`` is a view in which the labelled set's IMU is NaN
    (:meth:`TrialArrays.with_imu_hidden`), so no path to it exists.
    """

    def __init__(self, arrays: TrialArrays, labelled: np.ndarray, paired: np.ndarray, *,
                 reveal_paired_labels: bool, standardizer: Standardizer | None = None, loader_workers: int = 0):
        self.labelled = np.asarray(labelled, dtype=np.int64)
        self.paired = np.asarray(paired, dtype=np.int64)
        if not reveal_paired_labels:  # the labelled camera set's IMU reads as NaN on every path
            arrays = arrays.with_imu_hidden(np.setdiff1d(self.labelled, self.paired))
        self.arrays = arrays
        self.config = arrays.config
        self._labels = arrays.labels.copy()
        if not reveal_paired_labels:
            self._labels[self.paired] = -1
        self.n_classes = len(arrays.class_names)
        self.imu_supervised = reveal_paired_labels
        imu_trials = np.concatenate([self.labelled, self.paired]) if reveal_paired_labels else self.paired
        if standardizer is None:
            standardizer = fit_standardizer(arrays, imu_trials)
        self.standardizer = standardizer
        #: with ``loader_workers`` > 0, DataLoader workers cut the predicted next batches ahead of time
        self._prefetch = WindowPrefetcher(arrays, standardizer, _draw_request, workers=loader_workers) \
            if loader_workers > 0 else None

    def close(self) -> None:
        """Stop the loader workers, if any."""
        if self._prefetch is not None:
            self._prefetch.close()

    def _call_of(self, index: np.ndarray, rng: np.random.Generator, jitter: int, misalign: int,
                 with_camera: bool) -> Call | None:
        """The draws that made this batch, for the prefetcher: the last ``sample_indices`` from ``rng``
        (None without a prefetcher or when ``index`` came from elsewhere)."""
        if self._prefetch is None or _LAST_SAMPLE is None or _LAST_SAMPLE[2] is not rng \
                or len(index) != _LAST_SAMPLE[1]:
            return None
        return Call(_LAST_SAMPLE[0], _LAST_SAMPLE[1], jitter, misalign, with_camera)

    def labels(self, index: np.ndarray) -> np.ndarray:
        """Labels of trials ``index`` (-1 where hidden)."""
        return self._labels[index]

    def batch(self, index: np.ndarray, rng: np.random.Generator, *, jitter_s: float, misalign_s: float = 0.0,
              with_camera: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Augmented training windows of trials ``index``: IMU (n, W, C) standardised, camera
        (n, S, ...) or None, labels (n,) (-1 where hidden). Both streams shift together by up to
        ``jitter_s``; the camera additionally by up to ``misalign_s``."""
        rate = self.config.imu_rate_hz
        jitter, misalign = int(jitter_s * rate), int(misalign_s * rate)
        shift, offset = draw_offsets(rng, len(index), jitter, misalign)
        call = self._call_of(index, rng, jitter, misalign, with_camera)
        prefetched = self._prefetch.take(call, (index, shift, offset, with_camera)) if call else None
        if prefetched is None:
            imu, cam = self.arrays.windows(index, shift_samples=shift, camera_offset_samples=offset,
                                           with_camera=with_camera)
            imu = self.standardizer(imu)
        else:
            imu, cam = prefetched
        if call is not None:
            self._prefetch.after(call, rng, hit=prefetched is not None)
        device = distributed.current().device
        imu_t = torch.from_numpy(imu).to(device)
        cam_t = torch.from_numpy(cam).to(device) if cam is not None else None
        return imu_t, cam_t, torch.from_numpy(self._labels[index]).to(device)


#: Trials per piece when windows are cut in pieces (standardiser fits and evaluation of large datasets),
#: so memory does not grow with the dataset; a multiple of the prediction batch (256).
WINDOW_CHUNK = 1024


def fit_standardizer(arrays: TrialArrays, trials: np.ndarray) -> Standardizer:
    """The standardiser of the centred IMU windows of ``trials``: all at once up to :data:`WINDOW_CHUNK`
    trials (as always), in pieces beyond (:meth:`Standardizer.fit_chunks`), so that a dataset larger
    than memory is standardised with bounded memory."""
    if len(trials) <= WINDOW_CHUNK:
        return Standardizer.fit(arrays.windows(trials, with_camera=False)[0])

    def chunks():
        for start in range(0, len(trials), WINDOW_CHUNK):
            yield arrays.windows(trials[start:start + WINDOW_CHUNK], with_camera=False)[0]

    return Standardizer.fit_chunks(chunks)


class Method(ABC):
    """Base class of the UMA methods. Subclasses set ``name`` and implement ``_fit``."""

    name: ClassVar[str]
    uses_imu_labels: ClassVar[bool] = False   #: only ``supervised`` may read IMU labels
    predicts_from: ClassVar[str] = "imu"      #: ``imu``, or ``camera`` for the teacher-only baseline

    def __init__(self, config: TrainConfig):
        self.config = config
        self.imu_encoder: ImuEncoder | None = None
        self.imu_head: nn.Module | None = None
        self.camera_encoder: nn.Module | None = None
        self.camera_head: nn.Module | None = None
        self.standardizer_: Standardizer | None = None
        self.history_: list[dict] = []

    # ----------------------------------------------------------------------------- construction
    def _new_imu_encoder(self) -> ImuEncoder:
        p = self.config.preprocess
        return ImuEncoder(len(self.imu_channels()), self.config.latent_dim, p.window_samples, p.latent_steps)

    def imu_channels(self) -> tuple[str, ...]:
        """Names of the IMU channels the model reads, in input order (``config.channels``)."""
        return imu_channels(self.config.channels)

    def _new_camera_encoder(self, camera_step_shape: tuple[int, ...] | None) -> nn.Module:
        return build_camera_encoder(self.config.camera, camera_step_shape, self.config.latent_dim,
                                    **camera_encoder_options(self.config))

    def _new_head(self, n_classes: int, kind: str | None = None, **options) -> nn.Module:
        """A head of ``kind`` (default ``config.head``); ``normalize`` defaults to
        ``config.extra["head_normalize"]`` (False)."""
        options.setdefault("normalize", bool(self.config.extra.get("head_normalize", False)))
        return build_head(kind or self.config.head, self.config.latent_dim, n_classes,
                          self.config.preprocess.latent_steps, **options)

    # ------------------------------------------------------------------------------- public API
    def fit(self, data: MethodData, progress: bool = False) -> Method:
        """Train on ``data``; returns self. Seeds torch and numpy from ``config.seed``."""
        if data.arrays.camera_modality != self.config.camera and self.needs_camera():
            raise ValueError(f"{self.name} needs {self.config.camera} clips, data has "
                             f"{data.arrays.camera_modality}")
        if data.arrays.channels != self.imu_channels():
            raise ValueError(f"{self.name} reads IMU channels {','.join(self.imu_channels())}, data has "
                             f"{','.join(data.arrays.channels)} (TrialArrays.with_channels selects them)")
        torch.manual_seed(self.config.seed)
        self.standardizer_ = data.standardizer
        self._fit(data, np.random.default_rng(self.config.seed), progress)
        for module in self.modules().values():
            module.eval()
            module.cpu()  # trained on distributed.current().device; predicted and exported on the CPU
        return self

    def needs_camera(self) -> bool:
        return True

    def optimiser_steps(self) -> int:
        """Optimiser steps one fit of this configuration takes over all its stages, the camera model
        included even when a shared one is reused (the tuning budget counts it)."""
        return self.config.steps

    def _camera_steps(self) -> int:
        return int(self.config.extra.get("camera_steps", self.config.steps))

    @abstractmethod
    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None: ...

    def imu_recognizer(self) -> ImuRecognizer:
        """The IMU-only model (standardised (n, W, C) -> logits, C = ``len(imu_channels())``), as
        exported in a bundle."""
        if self.imu_encoder is None or self.imu_head is None:
            raise ValueError(f"method {self.name!r} has no IMU model")
        return ImuRecognizer(self.imu_encoder, self.imu_head).eval()

    @torch.no_grad()
    def predict_logits(self, imu: np.ndarray, camera: np.ndarray | None = None) -> np.ndarray:
        """Logits (n, n_classes) from standardised IMU windows (n, W, C) - or from camera clips for
        the ``camera`` baseline."""
        model = self.imu_recognizer()
        return _batched(model, torch.from_numpy(np.ascontiguousarray(imu, np.float32)))

    def modules(self) -> dict[str, nn.Module]:
        names = ("imu_encoder", "imu_head", "camera_encoder", "camera_head")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def parameters_count(self) -> int:
        """Parameters of the model that is evaluated (the IMU recogniser, or the camera model)."""
        if self.predicts_from == "camera":
            return _count(self.camera_encoder) + _count(self.camera_head)
        return _count(self.imu_encoder) + _count(self.imu_head)

    def state_dict(self) -> dict:
        return {name: module.state_dict() for name, module in self.modules().items()}

    def build_modules(self, n_classes: int, camera_step_shape: tuple[int, ...] | None) -> None:
        """Create untrained modules with the shapes ``_fit`` would create (for loading a run)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        for name, module_state in state.items():
            getattr(self, name).load_state_dict(module_state)
        for module in self.modules().values():
            module.eval()


def camera_encoder_options(config: TrainConfig) -> dict:
    """Camera encoder options from ``config.extra`` (keys ``camera_width``, ``camera_dropout``,
    ``camera_motion``, ``camera_frame_dropout``, ``camera_hidden``, ``camera_stem_stride``), for
    :func:`build_camera_encoder`."""
    names = {"camera_width": "width", "camera_dropout": "dropout", "camera_motion": "motion",
             "camera_frame_dropout": "frame_dropout", "camera_hidden": "hidden",
             "camera_stem_stride": "stem_stride"}
    return {option: config.extra[key] for key, option in names.items() if key in config.extra}


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def _batched(model: nn.Module, inputs: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    return torch.cat([model(inputs[i:i + batch]) for i in range(0, len(inputs), batch)]).numpy()


def optimise(modules: Sequence[nn.Module], steps: int, config: TrainConfig,
             loss_fn: Callable[[int], tuple[torch.Tensor, dict]], *, desc: str, progress: bool) -> list[dict]:
    """Run ``steps`` AdamW steps with a one-cycle schedule on ``loss_fn(step) -> (loss, logs)``.

    Returns a short history (every ~5% of steps) of the logged values. Under ``torchrun``
    (:mod:`c3t_edge.distributed`) each step is one DistributedDataParallel forward of ``loss_fn`` (the
    gradients are averaged over the processes), BatchNorm statistics are those of the global batch and
    the logged values are means over the processes. Inside a checkpoint session
    (:mod:`c3t_edge.checkpoint`) the stage is checkpointed and, when resuming, restored.
    """
    context = distributed.current()
    for module in modules:
        module.to(context.device)
    stage = checkpoint.begin_stage(desc, steps)
    if stage is not None and stage.finished is not None:
        history = stage.restore_finished(modules)
        for module in modules:
            module.eval()
        return history
    restore_batchnorm = distributed.synchronise_batchnorm(modules)
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps,
                                                   pct_start=0.15)
    for module in modules:
        module.train()
    run_step = _step_runner(modules, loss_fn, context)
    start, history = 0, []
    if stage is not None and stage.partial is not None:
        start, history = stage.restore_partial(modules, optimizer, schedule)
    every = max(1, steps // 20)
    bar = _progress_bar(steps, desc, progress and context.is_main, start)
    started = time.perf_counter()
    for step in range(start, steps):
        loss, logs = run_step(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        schedule.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        if step % every == 0 or step == steps - 1:
            history.append(_logged(step, loss, logs, started, context))
        if bar is not None:
            bar.update(1)
            if step % every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if stage is not None:
            stage.step_done(step, modules, optimizer, schedule, history)
    if bar is not None:
        bar.close()
    restore_batchnorm()
    for module in modules:
        module.eval()
    if stage is not None:
        stage.finish(modules, history)
    return history


def _progress_bar(steps: int, desc: str, enabled: bool, initial: int = 0):
    """A tqdm bar on stderr (None when disabled or tqdm is missing)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=steps, initial=initial, desc=desc, unit="step", file=sys.stderr, leave=False)


def _logged(step: int, loss: torch.Tensor, logs: dict, started: float, context) -> dict:
    """One history row: the loss and the numeric logs (means over the processes under torchrun)."""
    if not context.distributed:
        return {"step": step, "loss": round(loss.item(), 5), "seconds": round(time.perf_counter() - started, 2),
                **logs}
    numeric = [k for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    means = distributed.mean_over_ranks([loss.item(), *(logs[k] for k in numeric)])
    logs = {**logs, **{k: round(v, 4) for k, v in zip(numeric, means[1:], strict=True)}}
    return {"step": step, "loss": round(means[0], 5), "seconds": round(time.perf_counter() - started, 2), **logs}


class _TrainingStep(nn.Module):
    """The modules of one stage and its loss function as one module, so that a whole training step is one
    DistributedDataParallel forward: DDP then averages the gradients of every module the loss uses."""

    def __init__(self, modules: Sequence[nn.Module], loss_fn: Callable[[int], tuple[torch.Tensor, dict]]):
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.loss_fn = loss_fn

    def forward(self, step: int) -> tuple[torch.Tensor, dict]:
        return self.loss_fn(step)


def _step_runner(modules: Sequence[nn.Module], loss_fn, context) -> Callable[[int], tuple[torch.Tensor, dict]]:
    """``loss_fn`` itself with one process; under torchrun, ``loss_fn`` run as a DDP forward, with this
    rank's torch generator forked from the shared one (dropout and augmentation differ per rank)."""
    if not context.distributed:
        return loss_fn
    from torch.nn.parallel import DistributedDataParallel

    seed = int(torch.randint(0, 2**62, (1,)).item())
    torch.manual_seed(seed + 7_919 * context.rank)
    device_ids = [context.local_rank] if context.device.startswith("cuda") else None
    # broadcast_buffers=False: BatchNorm's running statistics are those of the global batch, equal on every
    # rank already, so the per-step broadcast of rank 0's buffers (one more collective a step) is not needed
    return DistributedDataParallel(_TrainingStep(modules, loss_fn), device_ids=device_ids, broadcast_buffers=False)


def draw_offsets(rng: np.random.Generator, n: int, jitter: int, misalign: int) -> tuple[np.ndarray, np.ndarray]:
    """Random window shifts (n,) in -jitter..jitter samples and camera offsets (n,) in -misalign..misalign
    for a batch of ``n`` windows. Under torchrun both are drawn for the global batch (the same draws on
    every rank) and this rank's rows are returned (:func:`c3t_edge.distributed.global_draw`)."""
    shift = distributed.global_draw(lambda size: rng.integers(-jitter, jitter + 1, size=size), n)
    offset = distributed.global_draw(lambda size: rng.integers(-misalign, misalign + 1, size=size), n)
    return shift, offset


def sample_indices(pool: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A random batch from ``pool`` (without replacement when the pool is large enough).

    Under torchrun ``batch_size`` is per process: the global batch of ``batch_size * world_size`` is
    drawn (as one process with that batch would) and this rank's ``batch_size`` rows are returned.
    """
    global _LAST_SAMPLE
    checkpoint.track_rng(rng)
    _LAST_SAMPLE = (pool, batch_size, rng)
    return _choose(pool, batch_size, rng)


#: (pool, batch_size, rng) of the last ``sample_indices`` call (the prefetcher replays it).
_LAST_SAMPLE: tuple | None = None


def _choose(pool: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    return distributed.global_draw(lambda size: rng.choice(pool, size=size, replace=len(pool) < size), batch_size)


def _draw_request(rng: np.random.Generator, call: Call) -> tuple:
    """The draws of one ``sample_indices`` + ``MethodData.batch`` call (the prefetcher's prediction)."""
    index = _choose(call.pool, call.batch_size, rng)
    shift, offset = draw_offsets(rng, len(index), call.jitter, call.misalign)
    return index, shift, offset, call.with_camera
