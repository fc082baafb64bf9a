"""Estimate a calibration profile from a calibration session (a recording, or samples read live).

The session follows the procedure in ``calibration/README.md``:

1. **Six faces**: the device rests still (>= 2 s each, any order) with each of its six faces up, so
   that gravity lies along +x, -x, +y, -y, +z and -z of the sensor in turn.
2. **Three turns**, last in the session: the device, worn as it will be used, is turned about the
   model's +x, then +y, then +z axis by roughly +90 deg (right-hand rule), each turn started from
   and followed by >= 2 s still.

Segmentation is automatic: still stretches are found from the running spread of the gyro and the
accelerometer; faces are recognised by the sensor axis that carries gravity; the turns are the
last three motions (of >= 30 deg) between still stretches after all six faces were seen.

- accelerometer bias and scale per axis: an axis-aligned ellipsoid fit (Gauss-Newton) of the mean
  accelerometer vector of every still stretch to |g| = 1, started from the classic six-position
  formulas; insensitive to a few degrees of tilt of each face;
- gyro bias: the duration-weighted mean of the still stretches' median gyro;
- axis mapping: each turn's integrated (bias-corrected) gyro vector names the device axis, with
  its sign, that the model axis corresponds to;
- clock drift: a line fitted to device time against host receive time (the lower envelope over
  time bins, as link latency only ever adds), when the recording was made in real time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c3t_edge.calibration.profile import AXES, CalibrationProfile, format_axes
from c3t_edge.errors import CalibrationError
from c3t_edge.protocol import ChannelMap, DeviceInfo, SampleBatch, make_decoder

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
UNITS = ("g", "g", "g", "deg/s", "deg/s", "deg/s")
FACE_NAMES = ("+x", "-x", "+y", "-y", "+z", "-z")


@dataclass(frozen=True)
class StillnessConfig:
    """What counts as still: running std over ``window_s`` below these, for at least ``min_s``;
    ``trim_s`` is cut at both ends. Real wrist-held stillness (UTD-MHAD's quiet moments) has
    ~0.01 g and 1-3 deg/s; turns reach ~100 deg/s. With 4 deg/s and 0.03 g, the noisier half of the
    real quiet moments split holds and merged turns; 8 and 0.05 recover every fault there."""

    window_s: float = 0.5
    gyro_std_dps: float = 8.0
    acc_std_g: float = 0.05
    min_s: float = 0.8
    trim_s: float = 0.15
    min_turn_deg: float = 30.0
    min_axis_purity: float = 0.85  # |dominant component| / |rotation vector| (cos 32 deg)


@dataclass
class SessionData:
    """Samples of one calibration session: ``samples`` (n, 6) float64 raw ax..gz (g, deg/s, device
    axes), ``t`` (n,) device seconds; ``clock`` pairs (device time of a batch's last sample, host
    receive time of the bytes that completed it), for the drift fit."""

    samples: np.ndarray
    t: np.ndarray
    rate_hz: float
    info: DeviceInfo | None = None
    clock: list[tuple[float, float]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StillSegment:
    start: int
    stop: int
    acc: np.ndarray  # (3,) mean, g
    gyro: np.ndarray  # (3,) median, deg/s
    face: int  # index into FACE_NAMES (by the raw dominant axis)

    @property
    def n(self) -> int:
        return self.stop - self.start


class SessionCollector:
    """Decoded items (with their host receive times) -> :class:`SessionData`; uses the first boot."""

    def __init__(self, decoder=None) -> None:
        self.decoder = decoder or make_decoder("binary")
        self.info: DeviceInfo | None = None
        self._x: list[np.ndarray] = []
        self._t: list[np.ndarray] = []
        self.clock: list[tuple[float, float]] = []
        self.resets = 0
        self._index = None

    def feed(self, data: bytes, host_time_s: float) -> int:
        """Decode ``data``; returns the number of new samples kept."""
        return self._items(self.decoder.feed(data), host_time_s)

    def finish(self, host_time_s: float) -> int:
        return self._items(self.decoder.finish(), host_time_s)

    def _items(self, items, host_time_s: float) -> int:
        new = 0
        for item in items:
            if isinstance(item, DeviceInfo) and self.info is None:
                self.info = item
            elif isinstance(item, SampleBatch):
                if item.boot:
                    self.resets = item.boot
                    continue  # a reset mid-session: keep the first boot only
                if self._index is None:
                    self.info = self.info or item.info
                    self._index = ChannelMap.between(item.info, CHANNELS, UNITS)
                self._x.append(self._index.apply(np.asarray(item.samples, np.float64)))
                self._t.append(np.asarray(item.t, np.float64))
                self.clock.append((float(item.t[-1]), float(host_time_s)))
                new += len(item.t)
        return new

    @property
    def n_samples(self) -> int:
        return sum(len(t) for t in self._t)

    def session(self, **source: Any) -> SessionData:
        if not self._x:
            raise CalibrationError("no IMU samples in the calibration session")
        rate = float(self.info.sample_rate_hz) if self.info is not None else 0.0
        if not rate > 0:
            raise CalibrationError("the device did not declare its sample rate")
        return SessionData(np.concatenate(self._x), np.concatenate(self._t), rate, self.info, self.clock,
                           dict(source))

    def samples_since(self, n0: int) -> np.ndarray:
        x = np.concatenate(self._x) if self._x else np.empty((0, 6))
        return x[n0:]


def session_decoder(text_rate_hz: float | None = None):
    """The protocol decoder, or a text (Edge Impulse forwarder) one when ``text_rate_hz`` is given."""
    if text_rate_hz is None:
        return make_decoder("binary")
    if not text_rate_hz > 0:
        raise CalibrationError(f"--rate must be > 0 (got {text_rate_hz:g})")
    return make_decoder("text", sample_rate_hz=text_rate_hz, n_channels=6)


def read_recording(path: str | Path, *, text_rate_hz: float | None = None) -> SessionData:
    """A recording (docs/RECORDING.md) of a calibration session -> :class:`SessionData`
    (``text_rate_hz``: the device prints text lines at that rate)."""
    from c3t_edge.recording import RecordingReader

    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"recording {path} not found")
    col = SessionCollector(session_decoder(text_rate_hz))
    last = 0.0
    with RecordingReader(path) as reader:
        for host_time_s, data in reader.chunks():
            col.feed(data, host_time_s)
            last = host_time_s
    col.finish(last)
    return col.session(recording=path.name)


# ---------------------------------------------------------------------------------------- still
def _running_std(x: np.ndarray, w: int) -> np.ndarray:
    """(n - w + 1, C) std of each window of ``w`` samples."""
    c1 = np.cumsum(np.vstack((np.zeros((1, x.shape[1])), x)), axis=0)
    c2 = np.cumsum(np.vstack((np.zeros((1, x.shape[1])), x * x)), axis=0)
    m = (c1[w:] - c1[:-w]) / w
    v = (c2[w:] - c2[:-w]) / w - m * m
    return np.sqrt(np.maximum(v, 0.0))


def still_mask(samples: np.ndarray, rate_hz: float, cfg: StillnessConfig = StillnessConfig()) -> np.ndarray:
    """(n,) bool: the window centred on each sample is still."""
    n = len(samples)
    w = max(3, int(round(cfg.window_s * rate_hz)))
    mask = np.zeros(n, bool)
    if n < w:
        return mask
    sd = _running_std(samples, w)
    ok = (sd[:, :3].max(axis=1) < cfg.acc_std_g) & (sd[:, 3:].max(axis=1) < cfg.gyro_std_dps)
    mask[w // 2: w // 2 + len(ok)] = ok
    return mask


def find_still_segments(samples: np.ndarray, rate_hz: float,
                        cfg: StillnessConfig = StillnessConfig()) -> list[StillSegment]:
    """Still stretches of at least ``cfg.min_s`` (trimmed), in time order."""
    mask = still_mask(samples, rate_hz, cfg)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    trim = int(round(cfg.trim_s * rate_hz))
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        a, b = a + trim, b - trim
        if b - a < cfg.min_s * rate_hz:
            continue
        acc = samples[a:b, :3].mean(axis=0)
        j = int(np.argmax(np.abs(acc)))
        out.append(StillSegment(int(a), int(b), acc, np.median(samples[a:b, 3:], axis=0),
                                2 * j + (0 if acc[j] > 0 else 1)))
    return out


# ---------------------------------------------------------------------------------------- acc
def fit_accelerometer(segments: list[StillSegment]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Bias (g) and scale per device axis such that every still mean, corrected, has norm 1 g."""
    faces = {s.face for s in segments}
    missing = [FACE_NAMES[f] for f in range(6) if f not in faces]
    if missing:
        raise CalibrationError(
            f"the session has no still pose with gravity along the device's {', '.join(missing)} axis "
            f"({len(segments)} still stretch(es) found): hold each of the six faces up for >= 2 s")
    m = np.array([s.acc for s in segments])
    w = np.sqrt(np.array([s.n for s in segments], np.float64))
    first = {}
    for s in segments:  # the longest stretch of each face for the starting point
        if s.face not in first or s.n > first[s.face].n:
            first[s.face] = s
    up = np.array([first[2 * j].acc[j] for j in range(3)])
    down = np.array([first[2 * j + 1].acc[j] for j in range(3)])
    p = np.concatenate(((up + down) / 2, (up - down) / 2))
    if np.any(p[3:] <= 0.2):
        raise CalibrationError("the accelerometer does not see gravity flip between opposite faces")

    def resid(q: np.ndarray) -> np.ndarray:
        return w * (np.linalg.norm((m - q[:3]) / q[3:], axis=1) - 1.0)

    for _ in range(50):  # Gauss-Newton with a numerical Jacobian (6 unknowns, a handful of points)
        r = resid(p)
        jac = np.empty((len(r), 6))
        for k in range(6):
            d = np.zeros(6)
            d[k] = 1e-6
            jac[:, k] = (resid(p + d) - r) / 1e-6
        step, *_ = np.linalg.lstsq(jac, -r, rcond=None)
        p = p + step
        if np.max(np.abs(step)) < 1e-10:
            break
    norms = np.linalg.norm((m - p[:3]) / p[3:], axis=1)
    raw_norms = np.linalg.norm(m, axis=1)
    quality = {"still_stretches": len(segments),
               "gravity_norm_error_g_rms": float(np.sqrt(np.mean((norms - 1) ** 2))),
               "gravity_norm_error_g_rms_before": float(np.sqrt(np.mean((raw_norms - 1) ** 2)))}
    return p[:3], p[3:], quality


# ---------------------------------------------------------------------------------------- axes
def estimate_axes(samples: np.ndarray, rate_hz: float, segments: list[StillSegment], gyro_bias: np.ndarray,
                  cfg: StillnessConfig = StillnessConfig()) -> tuple[list[str], dict[str, Any]]:
    """The device axis (with sign) under each model axis, from the three turns after the six faces."""
    seen: set[int] = set()
    k6 = None
    for k, s in enumerate(segments):
        seen.add(s.face)
        if len(seen) == 6:
            k6 = k
            break
    if k6 is None:
        raise CalibrationError("the six faces were not all seen: the axis-mapping turns cannot be found")
    turns = []
    for a, b in zip(segments[k6:], segments[k6 + 1:], strict=False):
        rot = ((samples[a.stop:b.start, 3:] - gyro_bias).sum(axis=0) / rate_hz)
        if np.linalg.norm(rot) >= cfg.min_turn_deg:
            turns.append((a.stop, b.start, rot))
    turns = turns[-3:]  # the last three: whatever came between the faces and the turns is ignored
    if len(turns) < 3:
        raise CalibrationError(
            f"found {len(turns)} of the 3 axis-mapping turns after the six faces: turn the device about "
            f"the model's +x, +y, then +z axis by about 90 deg, holding still >= 2 s after each")
    src, sign, details = [], [], []
    for i, (a, b, rot) in enumerate(turns):
        j = int(np.argmax(np.abs(rot)))
        purity = abs(rot[j]) / np.linalg.norm(rot)
        off = math.degrees(math.acos(min(1.0, purity)))
        details.append({"model_axis": AXES[i], "device_axis": ("-" if rot[j] < 0 else "") + AXES[j],
                        "angle_deg": round(float(np.linalg.norm(rot)), 1), "off_axis_deg": round(off, 1),
                        "t_s": [round(a / rate_hz, 2), round(b / rate_hz, 2)]})
        if purity < cfg.min_axis_purity:
            raise CalibrationError(
                f"the turn about model {AXES[i]} ({a / rate_hz:.1f}-{b / rate_hz:.1f} s) was {off:.0f} deg away from "
                f"any device axis: turn about one axis only")
        src.append(j)
        sign.append(1 if rot[j] > 0 else -1)
    if len(set(src)) != 3:
        raise CalibrationError(f"the three turns map onto device axes {format_axes(tuple(src), tuple(sign))}: "
                               "each model axis needs its own device axis (turn about +x, +y, +z in that order)")
    return format_axes(tuple(src), tuple(sign)), {"turns": details}


# ---------------------------------------------------------------------------------------- clock
def estimate_clock_drift(clock: list[tuple[float, float]], *, bins: int = 40,
                         min_span_s: float = 2.0) -> tuple[float | None, dict[str, Any]]:
    """Drift of the device clock in ppm (> 0: fast) from (device time, host receive time) pairs.

    Link latency only adds, so in each of ``bins`` stretches of device time the pair with the
    smallest host-minus-device offset is kept (the lower envelope); a line is fitted to those,
    dropping, a few times over, the bins that lie well above it (a stretch in which the host was
    busy and every frame arrived late). Returns (None, reason) when not recorded in real time."""
    if len(clock) < 2 * bins:
        return None, {"reason": f"too few timed frames ({len(clock)})"}
    dev = np.array([c[0] for c in clock])
    host = np.array([c[1] for c in clock])
    dev_span, host_span = dev[-1] - dev[0], host[-1] - host[0]
    if dev_span < min_span_s or host_span < 0.5 * dev_span or len(np.unique(host)) < 2 * bins:
        return None, {"reason": "not recorded in real time (host receive times do not follow the device clock)"}
    off = (host - host[0]) - (dev - dev[0])
    edges = np.linspace(dev[0], dev[-1], bins + 1)
    pick = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        idx = np.flatnonzero((dev >= lo) & (dev <= hi))
        if len(idx):
            pick.append(idx[np.argmin(off[idx])])
    x, y = dev[pick] - dev[0], off[pick]
    keep = np.ones(len(x), bool)
    for _ in range(5):
        slope, icpt = np.polyfit(x[keep], y[keep], 1)
        r = y - (slope * x + icpt)
        mad = np.median(np.abs(r[keep] - np.median(r[keep])))
        new = r <= np.median(r[keep]) + 3.0 * 1.4826 * mad + 20e-6
        if new.sum() < max(6, len(x) // 3) or np.array_equal(new, keep):
            break
        keep = new
    slope, icpt = np.polyfit(x[keep], y[keep], 1)
    ppm = (1.0 / (1.0 + slope) - 1.0) * 1e6
    res = y[keep] - (slope * x[keep] + icpt)
    return float(ppm), {"frames": len(clock), "span_s": round(float(dev_span), 3),
                        "bins_used": int(keep.sum()), "bins": len(x),
                        "envelope_residual_us_rms": round(float(np.sqrt(np.mean(res ** 2))) * 1e6, 1),
                        "latency_median_ms": round(float(np.median(off - (slope * (dev - dev[0]) + icpt))) * 1e3, 3)}


# ---------------------------------------------------------------------------------------- all
def estimate_profile(session: SessionData, *, cfg: StillnessConfig = StillnessConfig(),
                     mounting: str | None = None) -> CalibrationProfile:
    """The whole estimate: acc bias/scale, gyro bias, axis mapping, clock drift."""
    x, rate = session.samples, session.rate_hz
    segments = find_still_segments(x, rate, cfg)
    acc_bias, acc_scale, quality = fit_accelerometer(segments)
    n = np.array([s.n for s in segments], np.float64)
    gyro_bias = (np.array([s.gyro for s in segments]) * n[:, None]).sum(axis=0) / n.sum()
    axes, axis_details = estimate_axes(x, rate, segments, gyro_bias, cfg)
    drift, clock_details = estimate_clock_drift(session.clock)
    still_gyro = np.concatenate([x[s.start:s.stop, 3:] - gyro_bias for s in segments])
    quality.update(axis_details)
    quality["gyro_noise_dps_rms"] = [round(float(v), 3) for v in still_gyro.std(axis=0)]
    quality["clock"] = clock_details
    quality["segments"] = [{"face": FACE_NAMES[s.face], "t_s": [round(s.start / rate, 2), round(s.stop / rate, 2)]}
                           for s in segments]
    info = session.info
    return CalibrationProfile(
        acc_bias_g=acc_bias, acc_scale=acc_scale, gyro_bias_dps=gyro_bias, axes=axes,
        device_id=(info.device_id or None) if info is not None else None,
        device_name=(info.name or None) if info is not None else None, sample_rate_hz=rate,
        clock_drift_ppm=drift, mounting=mounting, quality=quality,
        source={**session.source, "samples": int(len(x)), "duration_s": round(len(x) / rate, 2)})
