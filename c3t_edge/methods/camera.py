"""``camera``: the camera model alone, trained on the labelled camera set and tested on camera clips
of the test subjects - the teacher's own accuracy (no IMU involved)."""

from __future__ import annotations

import copy
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge import distributed
from c3t_edge.methods.augment import augment_camera
from c3t_edge.methods.base import Method, MethodData, _batched, optimise, sample_indices
from c3t_edge.methods.frozen import FrozenCameraOutputs

#: Fitted camera models of this process, so that ``evaluate`` trains the teacher of a seed once for
#: ``camera`` and ``st`` (and ``st``'s misalignment retrains): key -> (the arrays, state dicts, history).
_FITTED: dict[tuple, tuple[weakref.ref, dict, list[dict]]] = {}
#: Oldest out first: 16 holds an evaluation's 3 folds x 3 selection seeds + 5 test seeds (about 1 MB each).
_FITTED_MAX = 16


def camera_augment_strength(config) -> float:
    """``extra["camera_augment_<modality>"]`` if set, else ``extra["camera_augment"]`` (0: none)."""
    extra = config.extra
    return float(extra.get(f"camera_augment_{config.camera}", extra.get("camera_augment", 0.0)))


def _camera_key(method: Method, data: MethodData) -> tuple:
    cfg = method.config
    extra = tuple(sorted((k, repr(v)) for k, v in cfg.extra.items() if k.startswith("camera_")))
    return (id(data.arrays), data.labelled.tobytes(), data.labels(data.labelled).tobytes(), cfg.camera,
            cfg.seed, cfg.steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.latent_dim, cfg.jitter_s,
            extra, repr(cfg.preprocess),
            type(method.camera_encoder).__name__, type(method.camera_head).__name__,
            getattr(method.camera_head, "normalize", None),
            getattr(getattr(method.camera_head, "position", None), "requires_grad", None))


def train_camera_classifier(method: Method, data: MethodData, rng: np.random.Generator, progress: bool,
                            desc: str = "camera") -> list[dict]:
    """Fit ``method.camera_encoder`` + ``method.camera_head`` by cross-entropy on the labelled set
    (camera clips augmented with ``config.extra["camera_augment"]``, see :func:`augment_camera`) for
    ``config.extra["camera_steps"]`` steps (default ``config.steps``).

    With ``config.extra["camera_pseudo_weight"]`` > 0 (default 0: off) the second half of the steps
    also self-trains on the unlabelled paired clips: a batch of them is predicted unaugmented, and
    each prediction at least ``camera_pseudo_threshold`` (0.8) confident becomes the cross-entropy
    label of an augmented view of the same clip (strength max(``camera_augment``, 1)), weighted by
    ``camera_pseudo_weight``. Their labels stay hidden (-1); no IMU is read.

    The camera model is re-initialised and trained from its own seed, so it is a function of the
    configuration alone, and a fit with the same key in this process is reused; ``rng`` is not used
    (callers seed their next stage themselves).
    """
    cfg = method.config
    key = _camera_key(method, data)
    method.camera_fit_key_ = key
    cached = _FITTED.get(key)
    if cached is not None and cached[0]() is data.arrays:
        _ref, state, history = cached
        method.camera_encoder.load_state_dict(state["camera_encoder"])
        method.camera_head.load_state_dict(state["camera_head"])
        device = distributed.current().device  # where the stages after this one train
        method.camera_encoder.to(device).eval()
        method.camera_head.to(device).eval()
        return [dict(h) for h in history]
    # Seeded and initialised here, so the camera model depends on its configuration only - not on which
    # method builds it or what that method created first - and can be shared between methods.
    torch.manual_seed(cfg.seed * 7919 + 11)
    rng = np.random.default_rng([cfg.seed, 3])
    for module in (*method.camera_encoder.modules(), *method.camera_head.modules()):
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()

    steps = int(cfg.extra.get("camera_steps", cfg.steps))
    pseudo_weight = float(cfg.extra.get("camera_pseudo_weight", 0.0))
    pseudo_threshold = float(cfg.extra.get("camera_pseudo_threshold", 0.8))
    pseudo_from = steps // 2

    def model(clips):
        return method.camera_head(method.camera_encoder(clips))

    def step(i):
        _imu, cam, labels = data.batch(sample_indices(data.labelled, cfg.batch_size, rng), rng,
                                       jitter_s=cfg.jitter_s)
        cam = augment_camera(cam, cfg.camera, camera_augment_strength(cfg))
        loss = F.cross_entropy(model(cam), labels, label_smoothing=0.1)
        if pseudo_weight <= 0 or i < pseudo_from:
            return loss, {}
        # Self-training on the unlabelled paired clips (their labels are hidden: -1): the model's own
        # confident prediction of a clip, unaugmented, is the label of an augmented view of it.
        _imu, paired, _hidden = data.batch(sample_indices(data.paired, cfg.batch_size, rng), rng,
                                           jitter_s=cfg.jitter_s)
        with torch.no_grad():
            confidence, pseudo = torch.softmax(model(paired), dim=-1).max(dim=-1)
        keep = (confidence >= pseudo_threshold).float()
        strong = augment_camera(paired, cfg.camera, max(camera_augment_strength(cfg), 1.0))
        pseudo_loss = (F.cross_entropy(model(strong), pseudo, reduction="none") * keep).mean()
        return loss + pseudo_weight * pseudo_loss, {"pseudo_kept": round(keep.mean().item(), 3)}

    history = optimise([method.camera_encoder, method.camera_head], steps, cfg, step, desc=desc,
                       progress=progress)
    if len(_FITTED) >= _FITTED_MAX:
        _FITTED.pop(next(iter(_FITTED)))
    state = {"camera_encoder": copy.deepcopy(method.camera_encoder.state_dict()),
             "camera_head": copy.deepcopy(method.camera_head.state_dict())}
    # a copy: callers append their own stages' rows to the list they get
    _FITTED[key] = (weakref.ref(data.arrays), state, [dict(h) for h in history])
    return history


_LATENTS: dict[tuple, tuple[weakref.ref, FrozenCameraOutputs]] = {}
_LATENTS_MAX = 12


def frozen_camera_latents(method: Method, data: MethodData, index: np.ndarray, *, jitter_s: float,
                          misalign_s: float = 0.0) -> FrozenCameraOutputs:
    """:class:`FrozenCameraOutputs` of ``method.camera_encoder`` (fitted by
    :func:`train_camera_classifier` and not changed since) for trials ``index``; reused in this process
    by every method that shares the same camera model."""
    key = (getattr(method, "camera_fit_key_", None), index.tobytes(), jitter_s, misalign_s)
    cached = _LATENTS.get(key)
    if key[0] is not None and cached is not None and cached[0]() is data.arrays:
        return cached[1]
    outputs = FrozenCameraOutputs(method.camera_encoder, data, index, jitter_s=jitter_s, misalign_s=misalign_s)
    if key[0] is not None:
        if len(_LATENTS) >= _LATENTS_MAX:
            _LATENTS.pop(next(iter(_LATENTS)))
        _LATENTS[key] = (weakref.ref(data.arrays), outputs)
    return outputs


class CameraOnly(Method):
    """Camera encoder + pooled head; predicts from camera clips (n, S, ...)."""

    name = "camera"
    predicts_from = "camera"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)

    def optimiser_steps(self) -> int:
        return self._camera_steps()

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        self.history_ = train_camera_classifier(self, data, rng, progress)

    @torch.no_grad()
    def predict_logits(self, imu: np.ndarray, camera: np.ndarray | None = None) -> np.ndarray:
        if camera is None:
            raise ValueError("the camera baseline predicts from camera clips")
        model = torch.nn.Sequential(self.camera_encoder, self.camera_head)
        return _batched(model, torch.from_numpy(np.ascontiguousarray(camera, np.float32)))
