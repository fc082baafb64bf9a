"""Classification heads: latents (n, S, d) -> logits (n, n_classes)."""

from __future__ import annotations

import torch
from torch import nn


class PoolHead(nn.Module):
    """Mean over the S steps, then a linear layer (one vector per clip)."""

    def __init__(self, latent_dim: int, n_classes: int, dropout: float = 0.2):
        super().__init__()
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, n_classes))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.classify(latents.mean(dim=1))


class TemporalAttentionHead(nn.Module):
    """Self-attention over the S steps with a class token (C3T's temporal head).

    A learned position embedding tells the steps apart; one pre-norm transformer layer; the class
    token's output is classified.
    """

    def __init__(self, latent_dim: int, n_classes: int, steps: int = 12, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, latent_dim))
        self.position = nn.Parameter(torch.zeros(1, steps + 1, latent_dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.layer = nn.TransformerEncoderLayer(latent_dim, heads, 2 * latent_dim, dropout,
                                                batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(latent_dim)
        self.classify = nn.Linear(latent_dim, n_classes)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.cls.expand(latents.shape[0], -1, -1), latents], dim=1) + self.position
        return self.classify(self.norm(self.layer(tokens)[:, 0]))


def build_head(kind: str, latent_dim: int, n_classes: int, steps: int) -> nn.Module:
    """``pool`` or ``attention``."""
    if kind == "pool":
        return PoolHead(latent_dim, n_classes)
    if kind == "attention":
        return TemporalAttentionHead(latent_dim, n_classes, steps)
    raise ValueError(f"unknown head {kind!r}")
