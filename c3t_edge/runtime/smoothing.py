"""From per-window class probabilities to action events: an activity gate, smoothing over recent
windows, hysteresis, and rejection below a confidence threshold (reported as "no action").

A recogniser trained on action clips has no "nothing happening" class, so it names an action for
every window, including a still wrist. Two checks keep it quiet:

- :class:`ActivityGate`: a window in which the wrist barely moves (few samples whose angular rate
  departs from the window's mean by more than ``gyro_dps``) is *idle* and is not sent to the model;
- :class:`ActionSmoother`: scores are averaged over the last ``history`` windows (an idle window
  votes for "no action"); an action starts when its smoothed score reaches ``enter``, lasts while it
  stays at or above ``exit`` (hysteresis: no flicker around one threshold), and a state whose best
  score is below ``enter`` is "no action".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateConfig:
    """Activity gate. A sample is *moving* when its angular rate (deg/s) departs from the window's
    mean by more than ``gyro_dps`` (or, without gyro channels, its acceleration by more than
    ``acc_g``); a window with fewer than ``min_moving_fraction`` moving samples is idle."""

    gyro_dps: float = 30.0
    acc_g: float = 0.08
    min_moving_fraction: float = 0.25
    enabled: bool = True


@dataclass(frozen=True)
class SmoothingConfig:
    """``history`` windows averaged; ``enter``/``exit`` thresholds on the smoothed score (0-1).

    Defaults chosen on held-out data: a bundle trained on subjects 1, 3, 5, sessions of subject 2
    (validation; bench/bench_runtime_accuracy.py); figures reported on subjects 4 and 6."""

    history: int = 3
    enter: float = 0.4
    exit: float = 0.25

    def __post_init__(self) -> None:
        if self.history < 1:
            raise ValueError("history must be >= 1")
        if not 0.0 <= self.exit <= self.enter <= 1.0:
            raise ValueError(f"need 0 <= exit <= enter <= 1 (got exit={self.exit}, enter={self.enter})")


class ActivityGate:
    """Which windows show enough motion to be worth classifying (see :class:`GateConfig`)."""

    def __init__(self, config: GateConfig, gyro_channels: list[int], acc_channels: list[int]) -> None:
        self.config = config
        if gyro_channels:
            self._channels, self._threshold = list(gyro_channels), config.gyro_dps
        else:
            self._channels, self._threshold = list(acc_channels), config.acc_g

    def moving_fraction(self, x: np.ndarray) -> np.ndarray:
        """(k,) fraction of moving samples in each window of ``x`` (k, W, C)."""
        if not self._channels:
            return np.ones(x.shape[0])
        sub = x[:, :, self._channels].astype(np.float32)
        dev = sub - sub.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.einsum("kwc,kwc->kw", dev, dev))
        return (norm > self._threshold).mean(axis=1)

    def active(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((k,) bool active, (k,) moving fraction) for windows ``x`` (k, W, C)."""
        frac = self.moving_fraction(x)
        if not self.config.enabled:
            return np.ones(x.shape[0], dtype=bool), frac
        return frac >= self.config.min_moving_fraction, frac


@dataclass(frozen=True, slots=True)
class Decision:
    """The smoother's state after one window: ``label`` index (None = no action), its smoothed
    ``score``, and whether this window changed the state."""

    label: int | None
    score: float
    changed: bool


class ActionSmoother:
    """Smoothing with hysteresis over per-window probabilities (see module docstring)."""

    def __init__(self, n_labels: int, config: SmoothingConfig | None = None) -> None:
        self.n_labels = int(n_labels)
        self.config = config or SmoothingConfig()
        self.reset()

    def reset(self) -> None:
        """Forget recent windows and return to "no action" (after a gap or a device reset)."""
        self._recent: deque[np.ndarray] = deque(maxlen=self.config.history)
        self._sum = np.zeros(self.n_labels + 1)
        self.state: int | None = None

    def update(self, probs: np.ndarray | None) -> Decision:
        """One window: ``probs`` (n_labels,) summing to 1, or None for an idle window."""
        vote = np.zeros(self.n_labels + 1)
        if probs is None:
            vote[-1] = 1.0
        else:
            vote[:-1] = probs
        if len(self._recent) == self._recent.maxlen:
            self._sum -= self._recent[0]
        self._recent.append(vote)
        self._sum += vote
        smoothed = self._sum[:-1] / len(self._recent)
        best = int(np.argmax(smoothed))
        cfg = self.config
        old = self.state
        if self.state is not None and smoothed[self.state] >= cfg.exit:
            pass  # hysteresis: the current action holds
        elif smoothed[best] >= cfg.enter:
            self.state = best
        else:
            self.state = None
        score = float(smoothed[self.state]) if self.state is not None else float(smoothed[best])
        return Decision(self.state, score, self.state != old)
