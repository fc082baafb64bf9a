"""Outputs of a frozen camera model, computed once per paired trial and camera displacement.

ST's student stage and the staged variants of CA / C3T train only the IMU side against a camera
model that no longer changes. Its output for a training window depends only on the trial and on
where the camera window sits (IMU shift + camera/IMU misalignment, whole samples), so it is
tabulated once instead of being recomputed at every step: on a CPU the camera encoder dominates
the cost of a step. The table gives exactly what running the camera model on the fly would.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from c3t_edge.methods.base import MethodData, draw_offsets


class FrozenCameraOutputs:
    """``model`` outputs for trials ``index`` at camera displacements -D..D samples, where D covers
    ``jitter_s`` + ``misalign_s``; :meth:`batch` then samples training windows as
    :meth:`MethodData.batch` does (same random draws) and looks the camera side up."""

    def __init__(self, model: nn.Module, data: MethodData, index: np.ndarray, *, jitter_s: float,
                 misalign_s: float, batch_clips: int = 256):
        rate = data.config.imu_rate_hz
        self.jitter = int(jitter_s * rate)
        self.misalign = int(misalign_s * rate)
        self.span = self.jitter + self.misalign
        self.rows = {int(i): row for row, i in enumerate(index)}
        model.eval()
        device = next(model.parameters(), torch.empty(0)).device  # a parameter-free model runs on the CPU
        tables = []
        with torch.no_grad():
            for displacement in range(-self.span, self.span + 1):
                _imu, cam = data.arrays.windows(index, camera_offset_samples=displacement)
                cam_t = torch.from_numpy(cam).to(device)
                tables.append(torch.cat([model(cam_t[i:i + batch_clips])
                                         for i in range(0, len(cam_t), batch_clips)]))
        self.table = torch.stack(tables, dim=1)  # (n_trials, 2D + 1, ...)

    def map(self, function) -> FrozenCameraOutputs:
        """A copy whose table is ``function(table rows)`` (e.g. a head turning latents into logits)."""
        mapped = object.__new__(FrozenCameraOutputs)
        mapped.__dict__.update(self.__dict__)
        with torch.no_grad():
            mapped.table = torch.stack([function(self.table[:, k]) for k in range(self.table.shape[1])], dim=1)
        return mapped

    def batch(self, data: MethodData, index: np.ndarray, rng: np.random.Generator, *, with_imu: bool = True
              ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Standardised IMU windows (n, W, 6) of trials ``index`` (None without ``with_imu``) and the
        camera model's outputs for the same windows."""
        shift, offset = draw_offsets(rng, len(index), self.jitter, self.misalign)
        imu = None
        if with_imu:
            windows, _ = data.arrays.windows(index, shift_samples=shift, with_camera=False)
            imu = torch.from_numpy(data.standardizer(windows)).to(self.table.device)
        rows = torch.as_tensor([self.rows[int(i)] for i in index], device=self.table.device)
        return imu, self.table[rows, torch.from_numpy(shift + offset + self.span).to(self.table.device)]
