"""Signal stages between the decoder and the windows: calibration, and resampling when the device
rate differs from the model's (the channel mapping before them is :class:`c3t_edge.protocol.ChannelMap`)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from c3t_edge.errors import DeviceMismatchError

#: Device rates within this relative tolerance of the model's are used as they are (no resampling).
RATE_TOLERANCE = 0.01
#: Resampling is refused beyond these ratios of device rate to model rate: below, the device cannot
#: see the motion the model was trained on; above, plain linear interpolation would alias badly.
MIN_RATE_RATIO = 0.8
MAX_RATE_RATIO = 8.0


class Calibration(Protocol):
    """A sensor calibration stage: samples (n, C) in model channel order and units -> corrected."""

    def apply(self, samples: np.ndarray) -> np.ndarray: ...


class IdentityCalibration:
    """No correction (the stage where a calibration profile plugs in)."""

    name = "identity"

    def apply(self, samples: np.ndarray) -> np.ndarray:
        return samples


def check_rate(device_hz: float, model_hz: float) -> bool:
    """True when samples must be resampled; raises :class:`DeviceMismatchError` when that is not sound."""
    if not device_hz > 0:
        raise DeviceMismatchError(f"the device declares a sample rate of {device_hz} Hz")
    ratio = device_hz / model_hz
    if abs(ratio - 1.0) <= RATE_TOLERANCE:
        return False
    if not MIN_RATE_RATIO <= ratio <= MAX_RATE_RATIO:
        raise DeviceMismatchError(
            f"the device samples at {device_hz:g} Hz and the model at {model_hz:g} Hz: resampling is "
            f"supported for device rates from {MIN_RATE_RATIO * model_hz:g} to {MAX_RATE_RATIO * model_hz:g} Hz")
    return True


class LinearResampler:
    """Streaming resampling onto a regular grid of ``rate_hz``, by linear interpolation between
    device samples (times from the device clock). Above the target rate, each output sample is
    first averaged over a box of one output period (a simple anti-aliasing filter).

    The grid starts at the first sample's time; ``push(t, x)`` returns the grid samples that the
    new input brackets, so the output is the same for any split of the input."""

    def __init__(self, in_rate_hz: float, rate_hz: float) -> None:
        self.in_rate_hz = float(in_rate_hz)
        self.rate_hz = float(rate_hz)
        self._box = max(1, int(round(in_rate_hz / rate_hz)))
        self.reset()

    def reset(self) -> None:
        self._t: np.ndarray | None = None  # the last input samples kept (box filter + bracketing)
        self._x: np.ndarray | None = None
        self._next: float | None = None  # time of the next output sample

    def push(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._t is not None:
            t = np.concatenate((self._t, t))
            x = np.concatenate((self._x, x))
        if self._box > 1:  # causal moving average over one output period
            c = np.cumsum(np.concatenate((np.zeros((1, x.shape[1])), x.astype(np.float64))), axis=0)
            k = self._box
            xf = np.empty_like(x, dtype=np.float64)
            xf[k - 1:] = (c[k:] - c[:-k]) / k
            xf[: k - 1] = x[: k - 1]
            # centre the causal average: shift the times back by half a box
            tf = t - (k - 1) / (2 * self.in_rate_hz)
        else:
            xf, tf = x.astype(np.float64), t
        if self._next is None:
            self._next = float(tf[0])
        last = float(tf[-1])
        n = int(np.floor((last - self._next) * self.rate_hz + 1e-9)) + 1 if last >= self._next else 0
        t_out = self._next + np.arange(n) / self.rate_hz
        if n:
            x_out = np.stack([np.interp(t_out, tf, xf[:, c]) for c in range(xf.shape[1])], axis=1)
            self._next = float(t_out[-1] + 1.0 / self.rate_hz)
        else:
            x_out = np.empty((0, x.shape[1]))
        # the last samples are fed again with the next input: the filter needs their history and
        # the next grid point lies after the last one
        keep = self._box + 1
        self._t, self._x = t[-keep:], x[-keep:]
        return t_out, x_out.astype(np.float32)
