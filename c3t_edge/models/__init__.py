"""Encoders and heads (torch). Every encoder maps one modality's window to S temporal latent
vectors (n, S, d); heads map (n, S, d) to class logits (n, n_classes)."""

from c3t_edge.models.camera import SkeletonEncoder, VideoEncoder, build_camera_encoder
from c3t_edge.models.heads import PoolHead, TemporalAttentionHead, build_head
from c3t_edge.models.imu import ImuEncoder, ImuRecognizer

__all__ = [
    "ImuEncoder", "ImuRecognizer", "PoolHead", "SkeletonEncoder", "TemporalAttentionHead", "VideoEncoder",
    "build_camera_encoder", "build_head",
]
