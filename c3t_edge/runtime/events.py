"""What the runtime reports: recognised actions and their end, gaps, link changes, and a summary.

Every event has ``as_dict()``, the object ``--json`` prints (one per line, key ``type`` first).
Device times ``t`` are seconds on the device clock (the decoder's, unwrapped); host times are Unix s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """The recognised state changed: ``label`` started (None: back to "no action").

    ``t``: device time (s) of the last sample of the window that decided it; ``window``: that
    window's first and last sample times; ``confidence``: the smoothed score (0-1) of ``label``
    (for "no action": of the best action, which was too low); ``latency_ms``: from the arrival of
    the bytes that completed the window to this event (host clock)."""

    t: float
    label: str | None
    confidence: float
    latency_ms: float
    window: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {"type": "action" if self.label is not None else "no_action", "t": round(self.t, 4),
                "label": self.label, "confidence": round(self.confidence, 4),
                "latency_ms": round(self.latency_ms, 3),
                "window": [round(self.window[0], 4), round(self.window[1], 4)]}


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window's outcome (reported only on request: ``--windows``)."""

    t: float
    window: tuple[float, float]
    active: bool
    moving_fraction: float
    top_label: str | None
    top_probability: float
    state: str | None
    score: float
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        d = {"type": "window", **asdict(self)}
        d["window"] = [round(self.window[0], 4), round(self.window[1], 4)]
        for key in ("t", "moving_fraction", "top_probability", "score"):
            d[key] = round(d[key], 4)
        d["latency_ms"] = round(self.latency_ms, 3)
        return d


@dataclass(frozen=True, slots=True)
class GapEvent:
    """Samples are missing between device times ``t_from`` and ``t_to`` (lost frames, a link
    outage, a device reset). ``filled``: short gaps are interpolated and recognition goes on;
    otherwise windows and smoothing restart after it. ``cause``: lost, link, reset, time. After a
    reset ``t_from`` and ``t_to`` are on two different clocks (the device's before and after its
    restart), so the gap has no duration (``duration_s`` is null in JSON)."""

    t_from: float
    t_to: float
    cause: str
    lost_frames: int
    filled: bool

    def as_dict(self) -> dict[str, Any]:
        return {"type": "gap", "t": round(self.t_to, 4), "t_from": round(self.t_from, 4),
                "duration_s": None if self.cause == "reset" else round(self.t_to - self.t_from, 4),
                "cause": self.cause,
                "lost_frames": self.lost_frames, "filled": self.filled}


@dataclass(frozen=True, slots=True)
class LinkNotice:
    """The transport lost (``disconnected``) or regained (``reconnected``) the device, or gave up.
    ``host_time_s`` Unix s; ``gap_s`` the outage's length for ``reconnected``."""

    state: str
    port: str
    host_time_s: float
    reason: str
    gap_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "link", "state": self.state, "port": self.port,
                             "host_time": round(self.host_time_s, 3), "reason": self.reason}
        if self.gap_s is not None:
            d["gap_s"] = round(self.gap_s, 3)
        return d


@dataclass(frozen=True, slots=True)
class DeviceNotice:
    """The device described itself (first time, or changed): name, rate, channels, resampling."""

    name: str
    sample_rate_hz: float
    channels: tuple[str, ...]
    firmware: str
    resampled_to_hz: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"type": "device", "name": self.name, "sample_rate_hz": self.sample_rate_hz,
                "channels": list(self.channels), "firmware": self.firmware,
                "resampled_to_hz": self.resampled_to_hz}


@dataclass(frozen=True, slots=True)
class Notice:
    """A hint for the user (e.g. nothing decodable has arrived yet)."""

    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": "notice", "message": self.message}


@dataclass
class Summary:
    """Counters of a whole run (printed on exit or Ctrl-C)."""

    frames: int = 0
    samples: int = 0
    lost: int = 0
    corrupt: int = 0
    resets: int = 0
    windows: int = 0
    idle_windows: int = 0
    events: int = 0
    gaps: int = 0
    link_gaps: int = 0
    device_seconds: float = 0.0
    wall_seconds: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    first_window_after_s: float | None = None
    max_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"type": "summary", **asdict(self)}
        extra = d.pop("extra")
        for key, value in d.items():
            if isinstance(value, float):
                d[key] = round(value, 4)
        d.update(extra)
        return d

    def text(self) -> str:
        lat = ("n/a" if self.latency_p50_ms is None
               else f"p50 {self.latency_p50_ms:.2f} ms, p99 {self.latency_p99_ms:.2f} ms")
        if self.extra.get("latency_basis") == "batch":
            lat += " per batch of records (as fast as possible)"
        speed = (f" ({self.device_seconds / self.wall_seconds:.0f}x real time)"
                 if self.wall_seconds > 0 and self.device_seconds > 0 else "")
        return (f"summary: {self.frames} frames, {self.samples} samples ({self.device_seconds:.1f} s of device "
                f"time in {self.wall_seconds:.1f} s{speed}), lost {self.lost}, corrupt {self.corrupt}, "
                f"resets {self.resets}, gaps {self.gaps}; {self.windows} windows ({self.idle_windows} idle), "
                f"{self.events} events; latency {lat}"
                + (f"; {self.extra['frames_without_device_info']} frames dropped before the device described "
                   "itself" if self.extra.get("frames_without_device_info") else "")
                + ("; mqtt: {published} published, {dropped} dropped, {waiting} waiting".format(**self.extra["mqtt"])
                   if "mqtt" in self.extra else ""))
