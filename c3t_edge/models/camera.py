"""Camera encoders: video (per-frame 2D conv + temporal conv, no Conv3d) and skeleton."""

from __future__ import annotations

import torch
from torch import nn

from c3t_edge.models.imu import conv_block


class VideoEncoder(nn.Module):
    """Per-frame Conv2d + temporal Conv1d: clips (n, S, H, W) or (n, S, C, H, W) -> (n, S, d).

    ``in_channels`` is 1 for depth, 3 for RGB. With ``motion`` the difference to the previous step is
    appended as extra channels (a motion image; zero at the first step), so every frame's 2D
    convolutions see how the person moves, not only the pose. Conv3d is avoided on purpose: it does
    not quantize in TFLite, and per-frame 2D + temporal 1D convolutions export everywhere.
    """

    def __init__(self, in_channels: int = 1, latent_dim: int = 128, width: int = 16, dropout: float = 0.1,
                 motion: bool = False, frame_dropout: float = 0.0, stem_stride: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.motion = motion
        c_in = 2 * in_channels if motion else in_channels

        def block(c_in: int, c_out: int, stride: int = 2) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        # stem_stride 1: one full-resolution convolution, then four stride-2 ones (32 x 32 -> 2 x 2);
        # stem_stride 2: the first convolution has stride 2 (about 4x cheaper on a CPU). Global average.
        stem = [block(c_in, width, 1), block(width, width)] if stem_stride == 1 else [block(c_in, width, 2)]
        self.frame = nn.Sequential(
            *stem, block(width, 2 * width), block(2 * width, 4 * width), block(4 * width, 8 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(frame_dropout),
        )
        self.temporal = nn.Sequential(
            nn.Dropout(dropout), conv_block(8 * width, latent_dim, 3), conv_block(latent_dim, latent_dim, 3),
            nn.Conv1d(latent_dim, latent_dim, 1),
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() == 4:
            clips = clips.unsqueeze(2)
        if self.motion:
            diff = torch.cat([torch.zeros_like(clips[:, :1]), clips[:, 1:] - clips[:, :-1]], dim=1)
            clips = torch.cat([clips, diff], dim=2)
        n, steps = clips.shape[:2]
        features = self.frame(clips.flatten(0, 1)).view(n, steps, -1)
        return self.temporal(features.transpose(1, 2)).transpose(1, 2)


class SkeletonEncoder(nn.Module):
    """Temporal conv over normalised joint coordinates: (n, S, J*3) -> (n, S, d)."""

    def __init__(self, in_features: int = 60, latent_dim: int = 128, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            conv_block(in_features, hidden, 3), nn.Dropout(dropout), conv_block(hidden, latent_dim, 3),
            conv_block(latent_dim, latent_dim, 3), nn.Conv1d(latent_dim, latent_dim, 1),
        )

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        return self.net(joints.transpose(1, 2)).transpose(1, 2)


def build_camera_encoder(modality: str, step_shape: tuple[int, ...], latent_dim: int = 128,
                         **options) -> nn.Module:
    """The encoder for ``modality`` (depth, rgb, skeleton) given one step's input shape.

    ``options`` go to the video encoder (``width``, ``dropout``, ``motion``, ``frame_dropout``, ``stem_stride``) or the
    skeleton encoder (``hidden``, ``dropout``); options the chosen encoder does not take are ignored.
    """
    if modality in ("depth", "rgb"):
        keys = ("width", "dropout", "motion", "frame_dropout", "stem_stride")
        return VideoEncoder(1 if modality == "depth" else 3, latent_dim,
                            **{k: v for k, v in options.items() if k in keys})
    if modality == "skeleton":
        keys = ("hidden", "dropout")
        return SkeletonEncoder(step_shape[-1], latent_dim, **{k: v for k, v in options.items() if k in keys})
    raise ValueError(f"unknown camera modality {modality!r}")
