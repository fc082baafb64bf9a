"""Sliding windows over a sample stream: the model's window length and hop, in samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class WindowBatch:
    """Windows completed by one :meth:`SlidingWindow.push`.

    ``x``: float32 (k, W, C) samples; ``t``: float64 (k, W) device seconds of each sample;
    ``end_index``: (k,) index (samples since the last reset, exclusive) where each window ends.
    """

    x: np.ndarray
    t: np.ndarray
    end_index: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


class SlidingWindow:
    """Cuts a stream of samples into windows of ``window`` samples every ``hop`` samples.

    The first window ends at sample ``window`` (once it is full), the next at ``window + hop``, and
    so on. ``push(t, x)`` accepts any number of samples (t (n,) seconds, x (n, C)) and returns every
    window they complete, at once (a fast replay infers them as one batch). ``reset()`` starts over
    after a gap: a window never spans a discontinuity.
    """

    def __init__(self, window: int, hop: int, channels: int) -> None:
        if window < 1 or hop < 1:
            raise ValueError(f"window and hop must be >= 1 (got {window}, {hop})")
        self.window = int(window)
        self.hop = int(hop)
        self.channels = int(channels)
        self.reset()

    def reset(self) -> None:
        self._x = np.empty((0, self.channels), dtype=np.float32)
        self._t = np.empty((0,), dtype=np.float64)
        self._base = 0  # stream index of self._x[0]
        self._count = 0  # samples pushed since the reset
        self._next_end = self.window

    @property
    def samples_since_reset(self) -> int:
        return self._count

    @property
    def samples_to_next_window(self) -> int:
        return self._next_end - self._count

    def push(self, t: np.ndarray, x: np.ndarray) -> WindowBatch | None:
        """Append samples; the windows they complete (None when none)."""
        n = int(x.shape[0])
        if n == 0:
            return None
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        self._x = np.concatenate((self._x, np.asarray(x, dtype=np.float32)))
        self._t = np.concatenate((self._t, np.asarray(t, dtype=np.float64)))
        self._count += n
        out = None
        if self._count >= self._next_end:
            k = (self._count - self._next_end) // self.hop + 1
            ends = self._next_end + self.hop * np.arange(k)
            starts = ends - self.window - self._base  # buffer positions
            idx = starts[:, None] + np.arange(self.window)[None, :]
            out = WindowBatch(self._x[idx], self._t[idx], ends)
            self._next_end = int(ends[-1]) + self.hop
        keep_from = self._next_end - self.window  # the next window's first sample
        drop = keep_from - self._base
        if drop > 0:
            self._x = self._x[drop:]
            self._t = self._t[drop:]
            self._base += drop
        return out
