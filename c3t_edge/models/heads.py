"""Classification heads: latents (n, S, d) -> logits (n, n_classes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis, scaled to norm sqrt(d): the space contrastive alignment works in."""
    return F.normalize(x, dim=-1) * math.sqrt(x.shape[-1])


class PoolHead(nn.Module):
    """Mean over the S steps, then a linear layer (one vector per clip).

    With ``normalize`` the clip vector is L2-normalised first (CA aligns normalised vectors, so the
    head must not depend on a modality's embedding norm).
    """

    def __init__(self, latent_dim: int, n_classes: int, dropout: float = 0.2, normalize: bool = False):
        super().__init__()
        self.normalize = normalize
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, n_classes))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        pooled = latents.mean(dim=1)
        return self.classify(_unit(pooled) if self.normalize else pooled)


class TemporalAttentionHead(nn.Module):
    """Self-attention over the S steps with a class token (C3T's temporal head).

    A learned position embedding tells the steps apart (``position=False`` leaves it out: the head is
    then blind to where in the window a step is, which helps under time shift); one pre-norm
    transformer layer; the class token's output is classified. With ``normalize`` each step vector
    is L2-normalised first (C3T aligns normalised step vectors).
    """

    def __init__(self, latent_dim: int, n_classes: int, steps: int = 12, heads: int = 4,
                 dropout: float = 0.1, normalize: bool = False, position: bool = True):
        super().__init__()
        self.normalize = normalize
        self.cls = nn.Parameter(torch.zeros(1, 1, latent_dim))
        self.position = nn.Parameter(torch.zeros(1, steps + 1, latent_dim), requires_grad=position)
        if position:
            nn.init.trunc_normal_(self.position, std=0.02)
        self.layer = nn.TransformerEncoderLayer(latent_dim, heads, 2 * latent_dim, dropout,
                                                batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(latent_dim)
        self.classify = nn.Linear(latent_dim, n_classes)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            latents = _unit(latents)
        tokens = torch.cat([self.cls.expand(latents.shape[0], -1, -1), latents], dim=1) + self.position
        return self.classify(self.norm(self.layer(tokens)[:, 0]))


def build_head(kind: str, latent_dim: int, n_classes: int, steps: int, **options) -> nn.Module:
    """``pool`` or ``attention``; ``options``: ``normalize`` (both), ``position`` (attention)."""
    if kind == "pool":
        return PoolHead(latent_dim, n_classes, normalize=options.get("normalize", False))
    if kind == "attention":
        return TemporalAttentionHead(latent_dim, n_classes, steps, normalize=options.get("normalize", False),
                                     position=options.get("position", True))
    raise ValueError(f"unknown head {kind!r}")
