"""``camera``: the camera model alone, trained on the labelled camera set and tested on camera clips
of the test subjects - the teacher's own accuracy (no IMU involved)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge.methods.augment import augment_camera
from c3t_edge.methods.base import Method, MethodData, _batched, optimise, sample_indices


def train_camera_classifier(method: Method, data: MethodData, rng: np.random.Generator, progress: bool,
                            desc: str = "camera") -> list[dict]:
    """Fit ``method.camera_encoder`` + ``method.camera_head`` by cross-entropy on the labelled set
    (camera clips augmented with ``config.extra["camera_augment"]``, see :func:`augment_camera`)."""
    cfg = method.config

    def step(_):
        _imu, cam, labels = data.batch(sample_indices(data.labelled, cfg.batch_size, rng), rng,
                                       jitter_s=cfg.jitter_s)
        cam = augment_camera(cam, cfg.camera, cfg.extra.get("camera_augment", 0.0))
        loss = F.cross_entropy(method.camera_head(method.camera_encoder(cam)), labels, label_smoothing=0.1)
        return loss, {}

    return optimise([method.camera_encoder, method.camera_head], cfg.steps, cfg, step, desc=desc,
                    progress=progress)


class CameraOnly(Method):
    """Camera encoder + pooled head; predicts from camera clips (n, S, ...)."""

    name = "camera"
    predicts_from = "camera"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        self.history_ = train_camera_classifier(self, data, rng, progress)

    @torch.no_grad()
    def predict_logits(self, imu: np.ndarray, camera: np.ndarray | None = None) -> np.ndarray:
        if camera is None:
            raise ValueError("the camera baseline predicts from camera clips")
        model = torch.nn.Sequential(self.camera_encoder, self.camera_head)
        return _batched(model, torch.from_numpy(np.ascontiguousarray(camera, np.float32)))
