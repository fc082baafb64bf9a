"""``supervised``: the IMU encoder trained with IMU labels - the upper bound, for evaluation only."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices


class Supervised(Method):
    """IMU encoder + pooled head trained by cross-entropy on every training trial's IMU."""

    name = "supervised"
    uses_imu_labels = True

    def needs_camera(self) -> bool:
        return False

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.imu_encoder = self._new_imu_encoder()
        self.imu_head = self._new_head(n_classes)

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg = self.config
        self.build_modules(data.n_classes)
        pool = np.concatenate([data.labelled, data.paired])
        if (data.labels(pool) < 0).any():
            raise ValueError("supervised needs IMU labels for every training trial")

        def step(_):
            imu, _cam, labels = data.batch(sample_indices(pool, cfg.batch_size, rng), rng,
                                           jitter_s=cfg.jitter_s, with_camera=False)
            loss = F.cross_entropy(self.imu_head(self.imu_encoder(imu)), labels, label_smoothing=0.1)
            return loss, {}

        self.history_ = optimise([self.imu_encoder, self.imu_head], cfg.steps, cfg, step,
                                 desc="supervised", progress=progress)
