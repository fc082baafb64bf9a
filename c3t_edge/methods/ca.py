"""``ca``: Contrastive Alignment. One vector per clip from each encoder (the mean of its temporal
latents), aligned across modalities by symmetric InfoNCE on the unlabelled paired set; one head,
trained on camera vectors of the labelled set, classifies IMU vectors at test time."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge.methods.alignment import info_nce
from c3t_edge.methods.augment import augment_camera
from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices
from c3t_edge.methods.camera import camera_augment_strength, frozen_camera_latents, train_camera_classifier


class ContrastiveAlignment(Method):
    """Camera encoder, IMU encoder and one shared head over L2-normalised clip vectors.

    ``extra["schedule"]``: ``"joint"`` (default) trains everything at once: cross-entropy of the head
    on labelled camera clips + ``align_weight`` x InfoNCE (temperature ``config.temperature``) between
    paired IMU and camera clip vectors; ``"staged"`` trains the camera side first, then aligns the IMU
    encoder to the frozen camera latents.

    ``extra``: ``schedule``, ``align_weight`` (1.0, joint), ``align_steps`` (staged), ``camera_augment``
    (labelled clips), ``paired_augment`` (False: whether paired camera clips are augmented too, joint).
    """

    name = "ca"
    head_kind = "pool"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.imu_encoder = self._new_imu_encoder()
        self.camera_head = self._head(n_classes)
        self.imu_head = self.camera_head  # one head, shared by both modalities

    def _head(self, n_classes: int):
        return self._new_head(n_classes, self.head_kind, normalize=True)

    def modules(self):
        modules = super().modules()
        modules.pop("imu_head", None)  # the same module as camera_head
        return modules

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict({k: v for k, v in state.items() if k != "imu_head"})

    def optimiser_steps(self) -> int:
        if self.config.extra.get("schedule", "joint") == "joint":
            return self.config.steps
        return self._camera_steps() + int(self.config.extra.get("align_steps", self.config.steps))

    def alignment_loss(self, imu_latents, camera_latents):
        return info_nce(imu_latents.mean(dim=1), camera_latents.mean(dim=1), self.config.temperature)

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        schedule = self.config.extra.get("schedule", "joint")
        if schedule == "joint":
            self._fit_joint(data, rng, progress)
        elif schedule == "staged":
            self._fit_staged(data, rng, progress)
        else:
            raise ValueError(f"unknown schedule {schedule!r}: expected 'joint' or 'staged'")

    def _fit_staged(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        """Camera encoder + shared head on labelled clips first; then the IMU encoder alone is aligned
        to the frozen camera latents of the paired set (``extra["align_steps"]``, default ``steps``)."""
        history = train_camera_classifier(self, data, rng, progress, desc=f"{self.name} camera")
        self.history_ = history + self._align_to_frozen_camera(data, progress)

    def _align_to_frozen_camera(self, data: MethodData, progress: bool) -> list[dict]:
        """Train the IMU encoder alone to match the frozen camera encoder's latents on the paired set."""
        cfg = self.config
        torch.manual_seed(cfg.seed + 1_000_003)
        rng = np.random.default_rng([cfg.seed, 1])
        camera = frozen_camera_latents(self, data, data.paired, jitter_s=cfg.jitter_s, misalign_s=cfg.misalign_s)

        def step(_):
            imu, camera_latents = camera.batch(data, sample_indices(data.paired, cfg.batch_size, rng), rng)
            return self.alignment_loss(self.imu_encoder(imu), camera_latents), {}

        steps = int(cfg.extra.get("align_steps", cfg.steps))
        return optimise([self.imu_encoder], steps, cfg, step, desc=f"{self.name} align", progress=progress)

    def _fit_joint(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg = self.config
        weight = float(cfg.extra.get("align_weight", 1.0))
        strength = camera_augment_strength(cfg)
        paired_strength = strength if cfg.extra.get("paired_augment", False) else 0.0

        def step(_):
            _imu, cam, labels = data.batch(sample_indices(data.labelled, cfg.batch_size, rng), rng,
                                           jitter_s=cfg.jitter_s)
            cam = augment_camera(cam, cfg.camera, strength)
            classify = F.cross_entropy(self.camera_head(self.camera_encoder(cam)), labels, label_smoothing=0.1)
            imu, cam_p, _hidden = data.batch(sample_indices(data.paired, cfg.batch_size, rng), rng,
                                             jitter_s=cfg.jitter_s, misalign_s=cfg.misalign_s)
            cam_p = augment_camera(cam_p, cfg.camera, paired_strength)
            align = self.alignment_loss(self.imu_encoder(imu), self.camera_encoder(cam_p))
            return classify + weight * align, {"classify": round(classify.item(), 4),
                                               "align": round(align.item(), 4)}

        self.history_ = optimise([self.camera_encoder, self.imu_encoder, self.camera_head], cfg.steps, cfg,
                                 step, desc=self.name, progress=progress)
