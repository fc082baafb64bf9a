"""``distill-align-warp``: ``distill-align`` whose student also learns the teacher's prediction from
time-warped IMU windows. Beyond the paper.

A recogniser in a stream sees the action wherever the sliding window happens to cut it, and people
perform the same action faster or slower; the paired set shows each action at one pace, centred.
Each training step therefore also draws, for the same paired trials, an IMU window moved by up to
``warp_shift_s`` and time-stretched by a factor in 1 +- ``warp_dilation``, and distils the teacher's
prediction of the (unwarped) camera clip into it: the action is the same, so the soft label is too.
The alignment term stays on the unwarped window, whose steps do line up with the camera's. No IMU
label is read; the exported model is the same shape as ``distill-align``'s.
"""

from __future__ import annotations

import numpy as np
import torch

from c3t_edge import distributed
from c3t_edge.methods.alignment import distillation_loss
from c3t_edge.methods.augment import augment_imu
from c3t_edge.methods.base import MethodData
from c3t_edge.methods.distill_align import DistillAlign


class DistillAlignWarp(DistillAlign):
    """:class:`DistillAlign` plus ``warp_weight`` x distillation on a time-warped view of each window.

    ``extra`` (besides distill-align's): ``warp_shift_s`` (1.0: the warped window starts up to this
    many seconds before or after the centred one), ``warp_dilation`` (0.2: one stretch factor per
    step, uniform in 1 +- this; > 1 is slower), ``warp_weight`` (1.0).
    """

    name = "distill-align-warp"

    def _extra_student_loss(self, data: MethodData, index: np.ndarray, teacher_logits: torch.Tensor,
                            rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        extra, rate = self.config.extra, data.config.imu_rate_hz
        reach = int(round(float(extra.get("warp_shift_s", 1.0)) * rate))
        spread = float(extra.get("warp_dilation", 0.2))
        # drawn for the global batch under torchrun (the same draws on every rank), like the jitter
        shift = distributed.global_draw(lambda n: rng.integers(-reach, reach + 1, size=n), len(index))
        factor = float(rng.uniform(1 - spread, 1 + spread))
        windows, _ = data.arrays.windows(index, shift_samples=shift, dilation=factor, with_camera=False)
        windows = augment_imu(windows, data.arrays.channels, float(extra.get("imu_augment", 0.0)), rng)
        warped = torch.from_numpy(data.standardizer(windows)).to(teacher_logits.device)
        loss = distillation_loss(self.imu_head(self.imu_encoder(warped)), teacher_logits, self.config.temperature)
        return float(extra.get("warp_weight", 1.0)) * loss, {"warp": round(loss.item(), 4)}
