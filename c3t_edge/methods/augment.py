"""Training-time augmentation: camera clips (the teacher side) and, optionally, the students' IMU windows.

The labelled camera set is small (UTD-MHAD development protocol: 162 clips for 27 classes), so a
camera model memorises it within a few hundred steps unless each clip is varied. The same random
transform is applied to every step of a clip, so motion stays consistent through time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from c3t_edge import distributed


def augment_camera(clips: torch.Tensor, modality: str, strength: float) -> torch.Tensor:
    """Randomly transformed copy of camera ``clips`` (n, S, ...); ``strength`` 0 returns them unchanged.

    depth / rgb (n, S, [C,] H, W): per-clip random scale (1 +- 0.15 s), translation (+-0.12 s of the
    frame), rotation (+-10 s degrees) and depth-value gain (1 +- 0.1 s). No horizontal flip: it would
    turn "swipe left" into "swipe right". skeleton (n, S, J*3): rotation about the vertical axis
    (+-20 s degrees), scale (1 +- 0.1 s) and joint noise (0.02 s torso lengths).
    """
    if strength <= 0:
        return clips
    n = clips.shape[0]
    device = clips.device

    def uniform(scale: float) -> torch.Tensor:
        return (torch.rand(n, device=device) * 2 - 1) * scale * strength

    if modality == "skeleton":
        angle = uniform(math.radians(20))
        cos, sin = torch.cos(angle), torch.sin(angle)
        joints = clips.reshape(n, clips.shape[1], -1, 3)
        x, y, z = joints.unbind(-1)
        cos, sin = cos[:, None, None], sin[:, None, None]
        rotated = torch.stack([cos * x + sin * z, y, -sin * x + cos * z], dim=-1)
        rotated = rotated * (1 + uniform(0.1))[:, None, None, None]
        rotated = rotated + torch.randn_like(rotated) * 0.02 * strength
        return rotated.reshape(clips.shape)
    squeeze = clips.dim() == 4
    video = clips.unsqueeze(2) if squeeze else clips
    steps, channels, height, width = video.shape[1:]
    scale = 1 + uniform(0.15)
    angle = uniform(math.radians(10))
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = torch.cos(angle) / scale
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 2] = uniform(0.24)  # normalised coordinates span 2: 0.24 = 12% of the frame
    theta[:, 1, 2] = uniform(0.24)
    flat = video.reshape(n, steps * channels, height, width)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if modality == "depth":
        warped = warped * (1 + uniform(0.1))[:, None, None, None]
    warped = warped.reshape(video.shape)
    return warped.squeeze(2) if squeeze else warped


#: The IMU triads a rotation turns together (the names of ``TrialArrays.channels``).
IMU_TRIADS = (("ax", "ay", "az"), ("gx", "gy", "gz"))


def augment_imu(windows: np.ndarray, channels: tuple[str, ...], strength: float, rng: np.random.Generator
                ) -> np.ndarray:
    """Randomly turned and scaled copy of raw IMU ``windows`` (n, W, C) with columns ``channels``
    (g and deg/s, before standardisation); ``strength`` 0 returns them unchanged and draws nothing.

    Per window: one rotation about a random axis by up to 15 ``strength`` degrees, applied to the
    accelerometer and the gyroscope triads alike (the sensor sits a little differently on every wrist),
    and one amplitude gain in 1 +- 0.1 ``strength`` (people move more or less vigorously). Under
    torchrun the draws are made for the global batch, as the window offsets are.
    """
    if strength <= 0:
        return windows
    n = len(windows)
    axis = distributed.global_draw(lambda size: rng.normal(size=(size, 3)), n)
    angle = distributed.global_draw(lambda size: rng.uniform(-1, 1, size), n) * math.radians(15) * strength
    gain = 1 + distributed.global_draw(lambda size: rng.uniform(-1, 1, size), n) * 0.1 * strength
    axis = axis / np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-9)
    # Rodrigues: R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of the axis
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    rotation = np.eye(3) + np.sin(angle)[:, None, None] * k + (1 - np.cos(angle))[:, None, None] * (k @ k)
    out = np.array(windows, dtype=np.float32, copy=True)
    for triad in IMU_TRIADS:
        if all(name in channels for name in triad):
            columns = [channels.index(name) for name in triad]
            out[:, :, columns] = np.einsum("nij,nwj->nwi", rotation, out[:, :, columns])
    return (out * gain[:, None, None]).astype(np.float32)
