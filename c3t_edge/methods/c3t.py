"""``c3t``: Cross-modal Transfer Through Time (Kamboj, Nguyen, Do; arXiv 2407.16803).

Both encoders keep their S temporal latent vectors; alignment is contrastive per time step across
modalities on the unlabelled paired set; one temporal head (self-attention with a class token over
the S steps) is trained on camera latents of the labelled set and classifies IMU latents at test time.
"""

from __future__ import annotations

from c3t_edge.methods.alignment import temporal_info_nce
from c3t_edge.methods.ca import ContrastiveAlignment


class CrossModalTransferThroughTime(ContrastiveAlignment):
    """As :class:`ContrastiveAlignment`, trained jointly, but step by step.

    ``extra``: ``negatives`` (``"all"``: every other (clip, step) of the batch; ``"step"``: the other
    clips at the same step), ``positive_window`` (steps; > 0 makes neighbouring steps soft positives),
    ``head_position`` (True: the head has a position embedding), plus CA's options.
    The head kind is ``config.head`` (``attention`` by default for c3t).
    """

    name = "c3t"

    def _head(self, n_classes: int):
        return self._new_head(n_classes, normalize=True, position=self.config.extra.get("head_position", True))

    def alignment_loss(self, imu_latents, camera_latents):
        extra = self.config.extra
        return temporal_info_nce(imu_latents, camera_latents, self.config.temperature,
                                 negatives=extra.get("negatives", "all"),
                                 positive_window=float(extra.get("positive_window", 0.0)))
