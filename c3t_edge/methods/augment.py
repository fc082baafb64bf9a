"""Training-time augmentation of camera clips (the teacher side; IMU windows are only jittered).

The labelled camera set is small (UTD-MHAD development protocol: 162 clips for 27 classes), so a
camera model memorises it within a few hundred steps unless each clip is varied. The same random
transform is applied to every step of a clip, so motion stays consistent through time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
