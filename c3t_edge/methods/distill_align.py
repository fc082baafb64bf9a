"""``distill-align``: one IMU student that learns both what the camera teacher *says* and what it
*sees*. Beyond the paper: ST's distillation and C3T's step-wise alignment in one objective.

ST copies the teacher's predictions and nothing else; C3T copies the teacher's step latents and
then trusts a head that only ever saw camera latents. Their errors differ (ST misses what a soft
label cannot say about motion, C3T inherits the remaining camera/IMU gap at its head), so the
student here is trained on both signals at once, through one model of the shape every other IMU
method exports (IMU encoder + pooled head).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from c3t_edge.methods.alignment import distillation_loss, temporal_info_nce
from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices
from c3t_edge.methods.camera import frozen_camera_latents, train_camera_classifier


class DistillAlign(Method):
    """Stage 1: the shared camera model (camera encoder + pooled head, cross-entropy on the labelled
    camera clips), exactly as ``camera``/``st``/``ca`` train it.
    Stage 2: IMU encoder + head on the unlabelled paired windows, minimising

        distillation(student logits, teacher logits; ``config.temperature``)
        + ``align_weight`` x step-wise InfoNCE(IMU step latents, camera step latents; ``align_temperature``)

    where the teacher's logits and step latents (n, S, d) come from the frozen camera model on the
    paired camera clip of the same (jittered, possibly misaligned) window. No IMU label is read.

    ``extra``: ``align_weight`` (1.0), ``align_temperature`` (0.2), ``negatives`` (``"all"``),
    ``head_from_teacher`` (True: the student's head starts as a copy of the teacher's head, which
    already reads the camera latent space the alignment pulls the IMU into), ``student_steps``
    (default ``steps``), ``imu_augment`` (0: the student's IMU windows turned and scaled,
    :func:`~c3t_edge.methods.augment.augment_imu`; the teacher's outputs are those of the unturned clip).
    """

    name = "distill-align"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)
        self.imu_encoder = self._new_imu_encoder()
        self.imu_head = self._new_head(n_classes)

    def optimiser_steps(self) -> int:
        return self._camera_steps() + int(self.config.extra.get("student_steps", self.config.steps))

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg, extra = self.config, self.config.extra
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        history = train_camera_classifier(self, data, rng, progress, desc=f"{self.name} teacher")
        self.camera_encoder.eval()
        self.camera_head.eval()
        if extra.get("head_from_teacher", True):
            self.imu_head.load_state_dict(copy.deepcopy(self.camera_head.state_dict()))
        history += self._prepare_teacher(data, progress)
        # Seeded on its own, so the student does not depend on whether the teacher was cached.
        torch.manual_seed(cfg.seed + 1_000_003)
        rng = np.random.default_rng([cfg.seed, 1])
        camera = frozen_camera_latents(self, data, data.paired, jitter_s=cfg.jitter_s, misalign_s=cfg.misalign_s)
        weight = float(extra.get("align_weight", 1.0))
        align_temperature = float(extra.get("align_temperature", 0.2))
        negatives = extra.get("negatives", "all")
        imu_augment = float(extra.get("imu_augment", 0.0))

        def step(_):
            index = sample_indices(data.paired, cfg.batch_size, rng)
            imu, camera_latents = camera.batch(data, index, rng, imu_augment=imu_augment)
            with torch.no_grad():
                teacher_logits = self._teacher_logits(imu, self.camera_head(camera_latents))
            imu_latents = self.imu_encoder(imu)
            distill = distillation_loss(self.imu_head(imu_latents), teacher_logits, cfg.temperature)
            align = temporal_info_nce(imu_latents, camera_latents, align_temperature, negatives=negatives)
            extra_loss, logs = self._extra_student_loss(data, index, teacher_logits, rng)
            logs.update(distill=round(distill.item(), 4), align=round(align.item(), 4))
            return distill + weight * align + extra_loss, logs

        steps = int(extra.get("student_steps", cfg.steps))
        history += optimise([self.imu_encoder, self.imu_head], steps, cfg, step, desc=f"{self.name} student",
                            progress=progress)
        self.history_ = history

    def _prepare_teacher(self, data: MethodData, progress: bool) -> list[dict]:
        """Called once the camera model is trained, before the student stage: whatever more the
        student's teacher needs (nothing here). Returns history rows."""
        return []

    def _teacher_logits(self, imu: torch.Tensor, camera_logits: torch.Tensor) -> torch.Tensor:
        """The logits the student distils on one batch: the frozen camera model's ``camera_logits``
        (n, n_classes) of the paired camera clips here; ``imu`` (n, W, 6) is the student's input."""
        return camera_logits

    def _extra_student_loss(self, data: MethodData, index: np.ndarray, teacher_logits: torch.Tensor,
                            rng: np.random.Generator) -> tuple[torch.Tensor | float, dict]:
        """A further term of the student's loss for paired trials ``index`` whose teacher logits are
        ``teacher_logits`` (n, n_classes): none here (0.0); subclasses add one."""
        return 0.0, {}
