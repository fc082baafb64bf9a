"""Outputs of a frozen camera model, computed once per paired trial and camera displacement.

ST's student stage and the staged variants of CA / C3T train only the IMU side against a camera
model that no longer changes. Its output for a training window depends only on the trial and on
where the camera window sits (IMU shift + camera/IMU misalignment, whole samples), so it is
tabulated once instead of being recomputed at every step: on a CPU the camera encoder dominates
the cost of a step. The table gives exactly what running the camera model on the fly would.

A table larger than :data:`TABLE_BUDGET_BYTES` (a dataset with many paired trials) is not built: the
frozen model (a copy) then runs on each batch's camera windows instead - the same outputs up to float
rounding - so memory does not grow with the number of paired trials.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from c3t_edge.methods.augment import augment_imu
from c3t_edge.methods.base import MethodData, draw_offsets

#: The largest table built (bytes); beyond it the outputs are computed batch by batch.
TABLE_BUDGET_BYTES = 512 << 20


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
        self.device, self.model, self.functions = device, None, []
        tables = []
        with torch.no_grad():
            for displacement in range(-self.span, self.span + 1):
                _imu, cam = data.arrays.windows(index, camera_offset_samples=displacement)
                cam_t = torch.from_numpy(cam).to(device)
                tables.append(torch.cat([model(cam_t[i:i + batch_clips])
                                         for i in range(0, len(cam_t), batch_clips)]))
                if tables[0].nbytes * (2 * self.span + 1) > TABLE_BUDGET_BYTES:  # too big: run it per batch
                    self.model, self.table = copy.deepcopy(model).eval(), None
                    return
        self.table = torch.stack(tables, dim=1)  # (n_trials, 2D + 1, ...)

    def map(self, function) -> FrozenCameraOutputs:
        """A copy whose table is ``function(table rows)`` (e.g. a head turning latents into logits)."""
        mapped = object.__new__(FrozenCameraOutputs)
        mapped.__dict__.update(self.__dict__)
        if self.table is None:  # applied per batch; a module is copied as it is now (frozen, like a table)
            mapped.functions = [*self.functions, copy.deepcopy(function) if isinstance(function, nn.Module)
                                else function]
            return mapped
        with torch.no_grad():
            mapped.table = torch.stack([function(self.table[:, k]) for k in range(self.table.shape[1])], dim=1)
        return mapped

    def batch(self, data: MethodData, index: np.ndarray, rng: np.random.Generator, *, with_imu: bool = True,
              imu_augment: float = 0.0) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Standardised IMU windows (n, W, 6) of trials ``index`` (None without ``with_imu``; turned and
        scaled by :func:`~c3t_edge.methods.augment.augment_imu` at ``imu_augment`` > 0) and the camera
        model's outputs for the same windows."""
        shift, offset = draw_offsets(rng, len(index), self.jitter, self.misalign)
        imu = None
        if with_imu:
            windows, _ = data.arrays.windows(index, shift_samples=shift, with_camera=False)
            windows = augment_imu(windows, data.arrays.channels, imu_augment, rng)
            imu = torch.from_numpy(data.standardizer(windows)).to(self.device)
        if self.table is None:
            return imu, self._run(data, index, shift, offset)
        rows = torch.as_tensor([self.rows[int(i)] for i in index], device=self.table.device)
        return imu, self.table[rows, torch.from_numpy(shift + offset + self.span).to(self.table.device)]

    @torch.no_grad()
    def _run(self, data: MethodData, index: np.ndarray, shift: np.ndarray, offset: np.ndarray) -> torch.Tensor:
        """The frozen model (then the mapped functions) on the camera windows of one batch: the camera at
        shift + offset, as the table's displacement column would hold it."""
        _imu, cam = data.arrays.windows(index, shift_samples=shift, camera_offset_samples=offset)
        outputs = self.model(torch.from_numpy(cam).to(self.device))
        for function in self.functions:
            outputs = function(outputs)
        return outputs
