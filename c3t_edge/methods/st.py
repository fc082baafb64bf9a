"""``st``: Student-Teacher. A camera teacher learns the labelled camera set; an IMU student learns
the teacher's temperature-softened predictions on the unlabelled paired set (no IMU label read)."""

from __future__ import annotations

import numpy as np
import torch

from c3t_edge.methods.alignment import distillation_loss
from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices
from c3t_edge.methods.camera import frozen_camera_latents, train_camera_classifier


class StudentTeacher(Method):
    """Stage 1: camera encoder + head by cross-entropy on labelled clips (``config.steps``).
    Stage 2: IMU encoder + head by distillation (temperature ``config.temperature``) on paired windows,
    the frozen teacher seeing the camera clip of the same (jittered, possibly misaligned) window
    (tabulated once, :func:`frozen_camera_latents`).

    ``extra``: ``student_steps`` (default ``steps``), ``student_head`` (default ``config.head``),
    ``imu_augment`` (0: the student's IMU windows turned and scaled, :func:`~c3t_edge.methods.augment.augment_imu`).
    """

    name = "st"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)
        self.imu_encoder = self._new_imu_encoder()
        self.imu_head = self._new_head(n_classes, self.config.extra.get("student_head"))

    def optimiser_steps(self) -> int:
        return self._camera_steps() + int(self.config.extra.get("student_steps", self.config.steps))

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg = self.config
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        history = train_camera_classifier(self, data, rng, progress, desc="st teacher")
        self.camera_encoder.eval()
        self.camera_head.eval()
        # The student stage is seeded on its own, so it does not depend on whether the teacher was cached.
        torch.manual_seed(cfg.seed + 1_000_003)
        rng = np.random.default_rng([cfg.seed, 1])

        latents = frozen_camera_latents(self, data, data.paired, jitter_s=cfg.jitter_s, misalign_s=cfg.misalign_s)
        teacher = latents.map(self.camera_head)

        imu_augment = float(cfg.extra.get("imu_augment", 0.0))

        def step(_):
            imu, teacher_logits = teacher.batch(data, sample_indices(data.paired, cfg.batch_size, rng), rng,
                                                imu_augment=imu_augment)
            student = self.imu_head(self.imu_encoder(imu))
            return distillation_loss(student, teacher_logits, cfg.temperature), {}

        steps = int(cfg.extra.get("student_steps", cfg.steps))
        history += optimise([self.imu_encoder, self.imu_head], steps, cfg, step, desc="st student",
                            progress=progress)
        self.history_ = history
