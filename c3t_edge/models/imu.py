"""The IMU encoder and the exportable IMU recogniser."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv1d + BatchNorm + ReLU with 'same'-style padding (length / stride)."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class ImuEncoder(nn.Module):
    """Temporal-conv encoder: standardised IMU windows (n, W, C) -> latents (n, S, d).

    Strides 3 and 5 reduce W = 180 samples (3.6 s at 50 Hz) to S = 12 steps of 15 samples (0.3 s);
    each step's receptive field spans about 1.3 s around it. ~137k parameters with the defaults.
    """

    def __init__(self, channels: int = 6, latent_dim: int = 128, window_samples: int = 180,
                 latent_steps: int = 12, dropout: float = 0.1):
        super().__init__()
        if window_samples // latent_steps != 15:
            raise ValueError("ImuEncoder's strides (3 x 5) need 15 samples per latent step")
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            conv_block(channels, 48, 7),
            conv_block(48, 96, 5, stride=3),
            nn.Dropout(dropout),
            conv_block(96, latent_dim, 5, stride=5),
            nn.Dropout(dropout),
            nn.Conv1d(latent_dim, latent_dim, 3, padding=1),
        )

    def forward(self, imu: torch.Tensor) -> torch.Tensor:
        return self.net(imu.transpose(1, 2)).transpose(1, 2)


class ImuRecognizer(nn.Module):
    """What a bundle exports: standardised IMU windows (n, W, C) -> logits (n, n_classes).

    Standardisation stays *outside* the graph (the bundle's metadata carries mean and std), so int8
    inputs quantize well: every channel has unit scale.
    """

    def __init__(self, encoder: ImuEncoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, imu: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(imu))
