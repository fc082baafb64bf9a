"""``c3t``: Cross-modal Transfer Through Time (Kamboj, Nguyen, Do; arXiv 2407.16803).

Both encoders keep their S temporal latent vectors; alignment is contrastive per time step across
modalities on the unlabelled paired set; one temporal head (self-attention with a class token over
the S steps) is trained on camera latents of the labelled set and classifies IMU latents at test time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge.methods.alignment import distillation_loss, temporal_info_nce
from c3t_edge.methods.base import MethodData, optimise, sample_indices
from c3t_edge.methods.ca import ContrastiveAlignment
from c3t_edge.methods.camera import frozen_camera_latents, train_camera_classifier


class CrossModalTransferThroughTime(ContrastiveAlignment):
    """As :class:`ContrastiveAlignment`, trained jointly, but step by step.

    ``extra``: ``negatives`` (``"all"``: every other (clip, step) of the batch; ``"step"``: the other
    clips at the same step), ``positive_window`` (steps; > 0 makes neighbouring steps soft positives),
    ``tolerance`` (steps; > 0: shift-tolerant alignment, any camera step that near is a positive),
    ``head_position`` (True: the head has a position embedding), ``head_noise`` (0: Gaussian noise of
    that size relative to each step vector's RMS, added to camera latents while the head trains),
    plus CA's options.
    The head kind is ``config.head`` (``attention`` by default for c3t).
    """

    name = "c3t"

    def _head(self, n_classes: int):
        return self._new_head(n_classes, normalize=True, position=self.config.extra.get("head_position", True))

    def _fit_staged(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        """``extra["camera_model"]``: ``"own"`` trains the camera encoder through the temporal head (as
        CA's staged schedule does); ``"shared"`` (default) trains it with a pooled head exactly as
        ``camera``, ``st`` and ``ca`` do (one camera model for every method of a seed), then trains the
        temporal head on its frozen latents of the labelled set. Then the IMU encoder is aligned."""
        cfg = self.config
        if cfg.extra.get("camera_model", "shared") == "own":
            super()._fit_staged(data, rng, progress)
            return
        temporal_head = self.camera_head
        self.camera_head = self._new_head(data.n_classes, "pool", normalize=True)
        history = train_camera_classifier(self, data, rng, progress, desc=f"{self.name} camera")
        pooled_head = self.camera_head.eval()  # the camera teacher's head (as st's)
        self.camera_head = self.imu_head = temporal_head
        torch.manual_seed(cfg.seed + 2_000_003)
        rng = np.random.default_rng([cfg.seed, 2])
        labelled = frozen_camera_latents(self, data, data.labelled, jitter_s=cfg.jitter_s)

        noise = float(cfg.extra.get("head_noise", 0.0))
        paired_weight = float(cfg.extra.get("head_paired_weight", 0.0))
        if paired_weight > 0:  # the camera latents of the paired clips, to be labelled by the teacher's head
            paired = frozen_camera_latents(self, data, data.paired, jitter_s=cfg.jitter_s)

        def noisy(latents: torch.Tensor) -> torch.Tensor:
            if noise <= 0:
                return latents
            # stand-in for the gap between aligned IMU latents and camera latents
            scale = latents.norm(dim=-1, keepdim=True) / latents.shape[-1] ** 0.5
            return latents + noise * scale * torch.randn_like(latents)

        def step(_):
            index = sample_indices(data.labelled, cfg.batch_size, rng)
            _none, latents = labelled.batch(data, index, rng, with_imu=False)
            labels = torch.from_numpy(data.labels(index)).to(latents.device)
            loss = F.cross_entropy(temporal_head(noisy(latents)), labels, label_smoothing=0.1)
            if paired_weight <= 0:
                return loss, {}
            _none, latents = paired.batch(data, sample_indices(data.paired, cfg.batch_size, rng), rng,
                                          with_imu=False)
            with torch.no_grad():
                soft = pooled_head(latents)
            distill = distillation_loss(temporal_head(noisy(latents)), soft, 1.0)
            return loss + paired_weight * distill, {"classify": round(loss.item(), 4),
                                                   "paired": round(distill.item(), 4)}

        steps = int(cfg.extra.get("head_steps", cfg.steps))
        history += optimise([temporal_head], steps, cfg, step, desc=f"{self.name} head", progress=progress)
        self.history_ = history + self._align_to_frozen_camera(data, progress)

    def optimiser_steps(self) -> int:
        extra = self.config.extra
        if extra.get("schedule", "joint") == "joint" or extra.get("camera_model", "shared") == "own":
            return super().optimiser_steps()
        return super().optimiser_steps() + int(extra.get("head_steps", self.config.steps))

    def alignment_loss(self, imu_latents, camera_latents):
        extra = self.config.extra
        return temporal_info_nce(imu_latents, camera_latents, self.config.temperature,
                                 negatives=extra.get("negatives", "all"),
                                 positive_window=float(extra.get("positive_window", 0.0)),
                                 tolerance=int(extra.get("tolerance", 0)))


class C3TPairedHead(CrossModalTransferThroughTime):
    """``c3t`` whose temporal head also learns from the unlabelled paired set. Beyond the paper.

    The paper's head sees only the labelled camera clips (126-162 on the development split) and then
    classifies IMU latents it never saw. Here each head step also takes a batch of paired camera
    clips and distils the camera teacher's prediction of them (the pooled head that ``st``'s
    teacher uses, temperature 1) into the temporal head, ``head_paired_weight`` x that loss (1.0).
    The paired clips are those the IMU encoder is aligned on, so the head learns the latent region
    the IMU will land in. No IMU label is read; the model is the same shape as ``c3t``'s.
    """

    name = "c3t-paired-head"
