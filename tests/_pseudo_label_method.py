"""A small extra UMA method, written the way docs/EXTENDING.md says (the test registers it).

``pseudo-label``: a camera classifier trained on the labelled camera clips labels each paired
trial with its hard prediction; the IMU model is trained on the paired IMU with those labels. It
reads no IMU label (``uses_imu_labels`` stays False, so ``MethodData`` hides them anyway).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices


class PseudoLabel(Method):
    """Camera teacher's hard labels on the paired trials -> IMU encoder + head by cross-entropy."""

    name = "pseudo-label"

    def build_modules(self, n_classes: int, camera_step_shape: tuple[int, ...] | None = None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)
        self.imu_encoder = self._new_imu_encoder()
        self.imu_head = self._new_head(n_classes)

    def optimiser_steps(self) -> int:
        return 2 * self.config.steps  # the camera stage, then the IMU stage

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg = self.config
        self.build_modules(data.n_classes, data.arrays.camera_shape)

        def camera_step(_):
            _imu, cam, labels = data.batch(sample_indices(data.labelled, cfg.batch_size, rng), rng,
                                           jitter_s=cfg.jitter_s)
            return F.cross_entropy(self.camera_head(self.camera_encoder(cam)), labels), {}

        history = optimise([self.camera_encoder, self.camera_head], cfg.steps, cfg, camera_step,
                           desc="pseudo-label camera", progress=progress)
        with torch.no_grad():  # one label per paired trial, from its centred camera window
            _imu, cam, _hidden = data.batch(data.paired, rng, jitter_s=0.0)
            self.pseudo_labels_ = self.camera_head(self.camera_encoder(cam)).argmax(1)

        def imu_step(_):
            pick = rng.integers(0, len(data.paired), cfg.batch_size)
            imu, _cam, _hidden = data.batch(data.paired[pick], rng, jitter_s=cfg.jitter_s, with_camera=False)
            return F.cross_entropy(self.imu_head(self.imu_encoder(imu)), self.pseudo_labels_[pick]), {}

        self.history_ = history + optimise([self.imu_encoder, self.imu_head], cfg.steps, cfg, imu_step,
                                           desc="pseudo-label imu", progress=progress)
