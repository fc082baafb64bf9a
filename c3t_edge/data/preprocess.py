"""Preprocessing: IMU windows, camera clips, and the common time base that pairs them.

Shapes use ``n`` for windows, ``W`` for IMU samples per window, ``S`` for latent time steps per
window (one camera frame per step) and ``T`` / ``F`` for a whole trial's IMU samples / camera frames.

The camera and IMU of a trial cover the same span but at rates that differ from trial to trial
(UTD-MHAD: 2.4 to 4.5 IMU samples per depth frame), so time is expressed as a fraction of the trial:
IMU sample ``i`` sits at ``(i + 0.5) / T`` and camera frame ``j`` at ``(j + 0.5) / F``. An IMU window
of ``W`` samples is cut into ``S`` equal steps; step ``k`` is paired with the camera image
interpolated at that step's centre time. Outside the trial both streams repeat their edge values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from c3t_edge.data.actions import IMU_CHANNELS, IMU_UNITS

#: The IMU channel sets a model can read (``TrainConfig.channels``, ``--channels``): channel names in the
#: dataset's column order. ``all``: ax, ay, az (g) and gx, gy, gz (deg/s); ``acc``: the accelerometer
#: alone, for wearables without a gyroscope.
IMU_CHANNEL_SETS: dict[str, tuple[str, ...]] = {"all": IMU_CHANNELS, "acc": IMU_CHANNELS[:3]}


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that determines the preprocessed arrays (the cache key is its hash)."""

    imu_rate_hz: float = 50.0        #: IMU rate the model sees (Hz); other rates are resampled
    window_samples: int = 180        #: IMU samples per window (3.6 s at 50 Hz), as in streaming
    latent_steps: int = 12           #: S: temporal latent vectors per window = camera frames per window
    depth_size: int = 32             #: depth crops are resized to depth_size x depth_size pixels
    depth_margin: float = 0.1        #: extra border around the person's bounding box (fraction)
    code_version: int = 2            #: bump whenever preprocessing code changes (invalidates caches)

    def __post_init__(self) -> None:
        if self.window_samples % self.latent_steps:
            raise ValueError("window_samples must be a multiple of latent_steps")

    @property
    def samples_per_step(self) -> int:
        return self.window_samples // self.latent_steps

    def key(self) -> str:
        """A short stable hash of the configuration (used to key on-disk caches)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# --------------------------------------------------------------------------------------------- IMU

def imu_channels(channel_set: str) -> tuple[str, ...]:
    """The channel names of ``channel_set`` (a key of :data:`IMU_CHANNEL_SETS`), in input order."""
    try:
        return IMU_CHANNEL_SETS[channel_set]
    except KeyError:
        raise ValueError(f"unknown IMU channel set {channel_set!r}: choose from "
                         f"{', '.join(IMU_CHANNEL_SETS)}") from None


def imu_units(channels: tuple[str, ...]) -> tuple[str, ...]:
    """The units of ``channels`` (names of :data:`IMU_CHANNELS`), e.g. ``("g", "g", "g")``."""
    return tuple(IMU_UNITS[IMU_CHANNELS.index(name)] for name in channels)


def resample(signal: np.ndarray, n_out: int) -> np.ndarray:
    """Linearly resample ``signal`` (T, C) to (n_out, C), keeping the first and last sample."""
    n_in = signal.shape[0]
    if n_in == n_out:
        return signal.astype(np.float32, copy=False)
    x_out = np.linspace(0.0, n_in - 1, n_out)
    lo = np.floor(x_out).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (x_out - lo)[:, None]
    return ((1.0 - frac) * signal[lo] + frac * signal[hi]).astype(np.float32)


def resample_rate(imu: np.ndarray, rate_in_hz: float, rate_out_hz: float) -> np.ndarray:
    """Resample an IMU trial (T, C) from ``rate_in_hz`` to ``rate_out_hz``."""
    if abs(rate_in_hz - rate_out_hz) < 1e-9:
        return imu.astype(np.float32, copy=False)
    n_out = max(2, int(round(imu.shape[0] * rate_out_hz / rate_in_hz)))
    return resample(imu, n_out)


def dilate(imu: np.ndarray, factor: float) -> np.ndarray:
    """Time-stretch an IMU trial (T, C) by ``factor`` (>1 slower, longer) at the same sample rate."""
    return resample(imu, max(2, int(round(imu.shape[0] * factor))))


def centre_start(n_samples: int, window: int) -> int:
    """Start index of the centred window (negative when the trial is shorter than the window)."""
    return (n_samples - window) // 2


def take_window(imu: np.ndarray, start: int, window: int) -> np.ndarray:
    """Samples ``start .. start+window`` of ``imu`` (T, C), edge values repeated outside the trial."""
    index = np.clip(np.arange(start, start + window), 0, imu.shape[0] - 1)
    return imu[index]


def fit_clip(imu: np.ndarray, window: int) -> np.ndarray:
    """The ``clip_fit`` rule: centre crop a long clip, centre pad a short one with its edge values."""
    return take_window(imu, centre_start(imu.shape[0], window), window)


@dataclass(frozen=True)
class Standardizer:
    """Per-channel standardisation ``(x - mean) / std``, fitted on training windows only."""

    mean: np.ndarray  #: (C,) in the channels' units
    std: np.ndarray   #: (C,) in the channels' units

    @classmethod
    def fit(cls, windows: np.ndarray) -> Standardizer:
        """Fit on ``windows`` (n, W, C)."""
        flat = windows.reshape(-1, windows.shape[-1]).astype(np.float64)
        return cls(flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-6).astype(np.float32))

    @classmethod
    def fit_chunks(cls, chunks) -> Standardizer:
        """Fit on windows that come in pieces: ``chunks()`` returns a fresh iterable of (n_i, W, C)
        arrays (read twice: mean, then spread), so memory holds one piece at a time. Float64 sums; the
        same figures as :meth:`fit` on their concatenation up to float64 rounding."""
        total, count = 0.0, 0
        for windows in chunks():
            flat = windows.reshape(-1, windows.shape[-1]).astype(np.float64)
            total, count = total + flat.sum(0), count + len(flat)
        mean = total / count
        spread = 0.0
        for windows in chunks():
            flat = windows.reshape(-1, windows.shape[-1]).astype(np.float64)
            spread = spread + ((flat - mean) ** 2).sum(0)
        return cls(mean.astype(np.float32), np.maximum(np.sqrt(spread / count), 1e-6).astype(np.float32))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return ((windows - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> Standardizer:
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


# ------------------------------------------------------------------------------------------ camera

def preprocess_depth(depth: np.ndarray, size: int = 32, margin: float = 0.1) -> np.ndarray:
    """Person-centred depth clip: (F, H, W) uint16 mm -> (F, size, size) float32.

    The crop is the bounding box of the union of the person's pixels over the whole clip (UTD-MHAD's
    depth has its background removed: 0 = no person), enlarged by ``margin`` on each side and resized
    to a square (each axis on its own, so the person fills the frame). Pixel values are
    ``1 + (median person depth - depth) / 1000`` (near parts > 1, 1 unit per metre), 0 off the person,
    averaged over each output pixel's area.
    """
    frames = depth.astype(np.float32)
    person = frames > 0
    if not person.any():
        return np.zeros((frames.shape[0], size, size), np.float32)
    rows = np.nonzero(person.any(axis=(0, 2)))[0]
    cols = np.nonzero(person.any(axis=(0, 1)))[0]
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    pad_y, pad_x = int(np.ceil(height * margin)), int(np.ceil(width * margin))
    y0, x0 = rows[0] - pad_y, cols[0] - pad_x
    height, width = max(height + 2 * pad_y, size), max(width + 2 * pad_x, size)
    median = float(np.median(frames[person]))
    values = np.where(person, 1.0 + (median - frames) / 1000.0, 0.0).astype(np.float32)
    crop = np.zeros((frames.shape[0], height, width), np.float32)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + height, frames.shape[1]), min(x0 + width, frames.shape[2])
    crop[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = values[:, sy0:sy1, sx0:sx1]
    return _area_resize(crop, size)


def _area_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Average-pool (F, h, w) to (F, size, size) over near-equal pixel blocks (h, w >= size)."""
    rows = np.linspace(0, images.shape[1], size + 1).astype(np.int64)
    cols = np.linspace(0, images.shape[2], size + 1).astype(np.int64)
    summed = np.add.reduceat(np.add.reduceat(images, rows[:-1], axis=1), cols[:-1], axis=2)
    return summed / (np.diff(rows)[None, :, None] * np.diff(cols)[None, None, :]).astype(np.float32)


#: Kinect v1 joints used to centre and scale a skeleton (0-based, see Skeleton_joint_order.txt).
HIP_CENTER, SHOULDER_CENTER = 3, 1


def preprocess_skeleton(skeleton: np.ndarray) -> np.ndarray:
    """Body-centred, scale-normalised joints: (F, J, 3) metres -> (F, J * 3) float32.

    Each frame is centred on the hip centre; the clip is divided by its mean hip-to-shoulder-centre
    distance, so a value of 1 is one torso length.
    """
    centred = skeleton - skeleton[:, HIP_CENTER:HIP_CENTER + 1, :]
    torso = np.linalg.norm(skeleton[:, SHOULDER_CENTER] - skeleton[:, HIP_CENTER], axis=-1).mean()
    scaled = centred / max(float(torso), 1e-3)
    return scaled.reshape(skeleton.shape[0], -1).astype(np.float32)


def preprocess_rgb(rgb: np.ndarray, size: int = 32) -> np.ndarray:
    """RGB clip (F, H, W, 3) uint8 -> (F, 3, size, size) float32 in [0, 1], centre square crop."""
    frames, height, width = rgb.shape[:3]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    crop = rgb[:, y0:y0 + side, x0:x0 + side].astype(np.float32) / 255.0
    channels = np.moveaxis(crop, 3, 1).reshape(frames * 3, side, side)
    return _area_resize(channels, size).reshape(frames, 3, size, size)


# ---------------------------------------------------------------------------------------- pairing

def camera_positions(n_imu: int, n_frames: int, start: int, config: PreprocessConfig) -> np.ndarray:
    """Fractional camera frame index (S,) at the centre of each step of the IMU window at ``start``.

    ``n_imu`` IMU samples and ``n_frames`` camera frames cover the same span; ``start`` may be
    negative or run past the end (those steps see the edge frame).
    """
    centres = start + (np.arange(config.latent_steps) + 0.5) * config.samples_per_step
    return np.clip(centres / n_imu * n_frames - 0.5, 0.0, n_frames - 1.0)


def sample_frames(frames: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linearly interpolate camera frames (F, ...) at fractional ``positions`` (S,) -> (S, ...)."""
    lo = np.floor(positions).astype(np.int64)
    hi = np.minimum(lo + 1, frames.shape[0] - 1)
    frac = (positions - lo).reshape((-1,) + (1,) * (frames.ndim - 1)).astype(np.float32)
    return (1.0 - frac) * frames[lo] + frac * frames[hi]
