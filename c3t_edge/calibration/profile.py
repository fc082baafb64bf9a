"""Sensor calibration profiles: what a device's IMU gets wrong, and how to undo it.

A profile corrects samples that arrive in the model's channel order and units (``ax, ay, az`` in g,
``gx, gy, gz`` in deg/s, as the device names its axes) into the model's frame::

    acc_dev  = (raw_acc  - acc.bias_g)     / acc.scale        # per device axis
    gyro_dev = (raw_gyro - gyro.bias_dps)  / gyro.scale
    model[i] = sign_i * dev[axis_i]        for i = x, y, z    # axes = ["y", "-x", "z"] ...

so bias and scale are stated in the device's own axes (what its datasheet calls x, y, z), and
``axes[i]`` names the device axis (with its sign) that gives the model's axis ``i``. The same
mapping applies to the accelerometer and the gyroscope (one rigid mount). The clock part
(``clock.drift_ppm``, positive when the device clock runs fast) is informational: the runtime
resamples only when the device rate is off by more than 1 %.

No torch: this runs on the streaming path.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c3t_edge.errors import CalibrationError

#: The ``format`` field of every profile file.
PROFILE_FORMAT = "c3t-edge-calibration"
#: The profile version this module writes; readers accept this major version.
PROFILE_VERSION = 1
AXES = ("x", "y", "z")
CONVENTION = ("model[i] = sign_i * dev[axis_i], dev = (raw - bias) / scale per device axis; "
              "raw in g and deg/s as the device reports them; clock.drift_ppm > 0: device clock fast")


def parse_axes(spec: str | list[str] | tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``"y,-x,z"`` (or a list of the three items) -> (source axis index, sign) per model axis.

    Raises :class:`CalibrationError` unless it is a signed permutation of x, y, z."""
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    src, sign = [], []
    for item in items:
        s = -1 if item.startswith("-") else 1
        name = item.lstrip("+-")
        if name not in AXES:
            break
        src.append(AXES.index(name))
        sign.append(s)
    if len(items) != 3 or len(src) != 3 or sorted(src) != [0, 1, 2]:
        raise CalibrationError(f"axes {spec!r}: expected a signed permutation of x, y, z such as 'y,-x,z'")
    return tuple(src), tuple(sign)


def format_axes(src: tuple[int, ...], sign: tuple[int, ...]) -> list[str]:
    return [("-" if s < 0 else "") + AXES[a] for a, s in zip(src, sign, strict=True)]


def invert_axes(spec: str | list[str]) -> list[str]:
    """The mapping that undoes ``spec``: if reported = map(physical), physical = inverse(reported)."""
    src, sign = parse_axes(spec)
    inv_src, inv_sign = [0, 0, 0], [1, 1, 1]
    for i, (a, s) in enumerate(zip(src, sign, strict=True)):
        inv_src[a], inv_sign[a] = i, s
    return format_axes(tuple(inv_src), tuple(inv_sign))


def _vec(value: Any, n: int, what: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default, np.float64)
    try:
        v = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"profile field {what}: expected {n} numbers") from None
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise CalibrationError(f"profile field {what}: expected {n} finite numbers, got {value!r}")
    return v


def format_device_id(device_id: int | None) -> str | None:
    return None if not device_id else f"0x{device_id:016x}"


@dataclass
class CalibrationProfile:
    """One device's calibration (see the module docstring for the convention).

    ``acc_bias_g``, ``acc_scale``, ``gyro_bias_dps``, ``gyro_scale``: (3,) float64 in the device's
    axes. ``axes``: e.g. ``["y", "-x", "z"]``. ``device_id``: the 64-bit hardware id the profile
    was measured on (None: any device). ``clock_drift_ppm``: None when not measured.
    """

    acc_bias_g: np.ndarray = field(default_factory=lambda: np.zeros(3))
    acc_scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    gyro_bias_dps: np.ndarray = field(default_factory=lambda: np.zeros(3))
    gyro_scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    axes: list[str] = field(default_factory=lambda: ["x", "y", "z"])
    device_id: int | None = None
    device_name: str | None = None
    sample_rate_hz: float | None = None
    clock_drift_ppm: float | None = None
    mounting: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        self.acc_bias_g = _vec(self.acc_bias_g, 3, "acc.bias_g", 0.0)
        self.acc_scale = _vec(self.acc_scale, 3, "acc.scale", 1.0)
        self.gyro_bias_dps = _vec(self.gyro_bias_dps, 3, "gyro.bias_dps", 0.0)
        self.gyro_scale = _vec(self.gyro_scale, 3, "gyro.scale", 1.0)
        if np.any(self.acc_scale <= 0) or np.any(self.gyro_scale <= 0):
            raise CalibrationError("profile scales must be > 0 (a negative axis belongs in 'axes')")
        self._src, self._sign = parse_axes(self.axes)
        self.axes = format_axes(self._src, self._sign)
        self._prepare()

    @property
    def name(self) -> str:
        return f"profile {Path(self.path).name}" if self.path else "calibration profile"

    def _prepare(self) -> None:
        # (raw - b) / s then a signed permutation == raw * gain[col] + offset, columns permuted
        src = np.array(self._src)
        sign = np.array(self._sign, np.float64)
        bias = np.concatenate((self.acc_bias_g, self.gyro_bias_dps))
        scale = np.concatenate((self.acc_scale, self.gyro_scale))
        self._cols = np.concatenate((src, src + 3))
        self._gain = (np.concatenate((sign, sign)) / scale[self._cols]).astype(np.float32)
        self._offset = (-bias[self._cols] * np.concatenate((sign, sign)) / scale[self._cols]).astype(np.float32)

    # ------------------------------------------------------------------ runtime
    def apply(self, samples: np.ndarray) -> np.ndarray:
        """(n, 6) float32 raw ``ax..gz`` (g, deg/s, device axes) -> corrected, in the model's frame."""
        if samples.ndim != 2 or samples.shape[1] != 6:
            raise CalibrationError(f"a calibration profile corrects (n, 6) acc+gyro samples, got {samples.shape}")
        return (samples[:, self._cols] * self._gain + self._offset).astype(np.float32, copy=False)

    def device_warning(self, info: Any) -> str | None:
        """A one-line warning when ``info`` (a DeviceInfo) is not the device this profile was made on."""
        dev = getattr(info, "device_id", 0) or 0
        if self.device_id and dev and dev != self.device_id:
            return (f"calibration {self.name} was measured on device {format_device_id(self.device_id)}"
                    f"{' (' + self.device_name + ')' if self.device_name else ''} but this is device "
                    f"{format_device_id(dev)}: its corrections may be wrong for this sensor")
        return None

    def true_rate_hz(self, declared_hz: float) -> float:
        """The device's real sample rate (host seconds) given its declared one and the measured drift."""
        return declared_hz * (1.0 + (self.clock_drift_ppm or 0.0) * 1e-6)

    # ------------------------------------------------------------------ file
    def as_dict(self) -> dict[str, Any]:
        def r(v: np.ndarray, nd: int) -> list[float]:
            return [round(float(x), nd) for x in v]

        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "convention": CONVENTION,
            "device": {"device_id": format_device_id(self.device_id), "name": self.device_name,
                       "sample_rate_hz": self.sample_rate_hz},
            "mounting": self.mounting,
            "axes": list(self.axes),
            "acc": {"bias_g": r(self.acc_bias_g, 6), "scale": r(self.acc_scale, 6)},
            "gyro": {"bias_dps": r(self.gyro_bias_dps, 4), "scale": r(self.gyro_scale, 6)},
            "clock": {"drift_ppm": None if self.clock_drift_ppm is None else round(self.clock_drift_ppm, 2)},
            "quality": self.quality,
            "source": self.source,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self.path = str(path)
        return path

    @classmethod
    def from_dict(cls, doc: Any, path: str | None = None) -> CalibrationProfile:
        where = f"{path}: " if path else ""
        if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
            raise CalibrationError(f"{where}not a c3t-edge calibration profile (no \"format\": \"{PROFILE_FORMAT}\")")
        version = doc.get("version")
        if not isinstance(version, int) or version != PROFILE_VERSION:
            raise CalibrationError(f"{where}profile version {version!r} is not supported (this c3t-edge reads "
                                   f"version {PROFILE_VERSION})")
        try:
            device = doc.get("device") or {}
            dev_id = device.get("device_id")
            acc, gyro, clock = doc.get("acc") or {}, doc.get("gyro") or {}, doc.get("clock") or {}
            drift = clock.get("drift_ppm")
            return cls(
                acc_bias_g=acc.get("bias_g"), acc_scale=acc.get("scale"),
                gyro_bias_dps=gyro.get("bias_dps"), gyro_scale=gyro.get("scale"),
                axes=doc.get("axes") or ["x", "y", "z"],
                device_id=int(dev_id, 0) if isinstance(dev_id, str) else (dev_id or None),
                device_name=device.get("name"), sample_rate_hz=device.get("sample_rate_hz"),
                clock_drift_ppm=None if drift is None else float(drift),
                mounting=doc.get("mounting"), quality=doc.get("quality") or {},
                source=doc.get("source") or {}, path=path)
        except CalibrationError as exc:
            raise CalibrationError(f"{where}{exc}") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{where}malformed calibration profile ({exc})") from None


def load_profile(path: str | os.PathLike[str]) -> CalibrationProfile:
    """Read a profile file (JSON); :class:`CalibrationError` with one clear line when it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"calibration profile {p} not found")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{p}: cannot read the calibration profile ({exc})") from None
    return CalibrationProfile.from_dict(doc, str(p))


def rotation_angle_deg(axes: list[str]) -> float:
    """How far (degrees) a signed-permutation mounting is from the identity (0 for x,y,z; NaN if a mirror)."""
    src, sign = parse_axes(axes)
    m = np.zeros((3, 3))
    for i, (a, s) in enumerate(zip(src, sign, strict=True)):
        m[i, a] = s
    if np.linalg.det(m) < 0:
        return math.nan
    return math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(m) - 1) / 2))))
