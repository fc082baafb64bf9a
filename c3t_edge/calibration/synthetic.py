"""Calibration sessions built from real IMU noise, for tests and benchmarks (no hardware needed).

The motion is exact rigid-body kinematics (gravity seen from a turning body); the sensor noise is
real: it is cut from the quietest fraction of a second of real trials (UTD-MHAD wrist recordings), its mean
removed, so the session looks to the estimator like a person holding a real sensor still.
Values are physical, in the model's frame (acc in g as specific force, gyro in deg/s); feed them
through ``c3t-imu-sim --axes/--scale/--bias/--rate-error`` to get a miscalibrated device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from c3t_edge.calibration.estimate import FACE_NAMES

#: Faces in an order where no two consecutive ones are opposite (each transition is one turn).
FACE_ORDER = ("+z", "+x", "+y", "-z", "-x", "-y")


def quiet_noise(trials: Sequence[np.ndarray], rate_hz: float = 50.0, window_s: float = 0.4,
                keep: float = 0.1) -> np.ndarray:
    """(n, 6) zero-mean real sensor noise: the quietest ``window_s`` of each trial (least gyro
    spread), linear trend removed, from the ``keep`` fraction of trials whose quietest stretch is
    quietest (people in these trials are rarely still for long: short pieces, strictly chosen)."""
    w = int(round(window_s * rate_hz))
    scored = []
    for x in trials:
        x = np.asarray(x, np.float64)
        if len(x) < w:
            continue
        sds = [x[a:a + w, 3:].std(axis=0).sum() for a in range(0, len(x) - w + 1)]
        a = int(np.argmin(sds))
        scored.append((sds[a], x[a:a + w]))
    if not scored:
        raise ValueError("no trial is long enough to cut noise from")
    scored.sort(key=lambda p: p[0])
    tt = np.arange(w) - (w - 1) / 2
    pieces = []
    for _, seg in scored[:max(1, int(round(keep * len(scored))))]:
        slope = (tt @ (seg - seg.mean(axis=0))) / (tt @ tt)
        pieces.append(seg - seg.mean(axis=0) - tt[:, None] * slope[None, :])
    return np.concatenate(pieces)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: ``v`` (3,) rotated about unit ``axis`` by each of ``angle`` (n,) radians -> (n, 3)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c + np.cross(axis, v) * s + axis * (axis @ v) * (1 - c)


@dataclass
class SyntheticSession:
    """``samples`` (n, 6) physical values in the model frame; ``segments``: (what, start, stop) samples."""

    samples: np.ndarray
    rate_hz: float
    segments: list[tuple[str, int, int]] = field(default_factory=list)


class _Builder:
    def __init__(self, rate_hz: float, noise: np.ndarray, rng: np.random.Generator) -> None:
        self.rate = rate_hz
        self.noise = noise
        self.rng = rng
        self.parts: list[np.ndarray] = []
        self.segments: list[tuple[str, int, int]] = []
        self.n = 0
        self.u = np.array([0.0, 0.0, 1.0])  # specific force (gravity reaction) in the body frame, g

    def _emit(self, what: str, acc: np.ndarray, gyro: np.ndarray) -> None:
        x = np.hstack((acc, gyro))
        self.parts.append(x)
        self.segments.append((what, self.n, self.n + len(x)))
        self.n += len(x)

    def hold(self, what: str, seconds: float) -> None:
        m = int(round(seconds * self.rate))
        self._emit(what, np.tile(self.u, (m, 1)), np.zeros((m, 3)))

    def turn(self, what: str, axis: np.ndarray, angle_deg: float, seconds: float) -> None:
        """Turn the body by ``angle_deg`` about body ``axis`` (right-hand rule): gyro = rate * axis."""
        m = int(round(seconds * self.rate))
        axis = axis / np.linalg.norm(axis)
        tt = (np.arange(m) + 0.5) / m
        theta = np.radians(angle_deg) * (1 - np.cos(np.pi * tt)) / 2
        rate_dps = angle_deg * np.pi / (2 * seconds) * np.sin(np.pi * tt)
        # a world-fixed vector seen from a body turning by +theta turns by -theta
        acc = _rotate(self.u, axis, -theta)
        self._emit(what, acc, rate_dps[:, None] * axis[None, :])
        self.u = _rotate(self.u, axis, -np.array([np.radians(angle_deg)]))[0]

    def turn_to(self, what: str, target: np.ndarray, seconds: float) -> None:
        axis = np.cross(target, self.u)  # turning the body about u x target... sign: see turn()
        if np.linalg.norm(axis) < 1e-9:
            axis = np.cross(self.u, [1.0, 0.3, 0.1])
        angle = np.degrees(np.arccos(np.clip(self.u @ target / np.linalg.norm(target), -1, 1)))
        self.turn(what, axis, angle, seconds)

    def build(self) -> np.ndarray:
        x = np.concatenate(self.parts)
        reps = int(np.ceil(len(x) / len(self.noise)))
        start = int(self.rng.integers(len(self.noise)))
        noise = np.roll(np.tile(self.noise, (reps, 1)), -start, axis=0)[:len(x)]
        return x + noise


def calibration_session(noise: np.ndarray, *, rate_hz: float = 50.0, face_s: float = 2.5, move_s: float = 1.0,
                        turn_s: float = 1.2, hold_s: float = 2.0, tilt_deg: float = 3.0,
                        seed: int = 0) -> SyntheticSession:
    """The procedure of ``calibration/README.md``: six faces still (each tilted by up to
    ``tilt_deg``), a repositioning move, then turns of +90 deg about the model's x, y, z with holds."""
    rng = np.random.default_rng(seed)
    b = _Builder(rate_hz, np.asarray(noise, np.float64), rng)
    b.hold("start", hold_s)
    for face in FACE_ORDER:
        j = "xyz".index(face[1])
        target = np.zeros(3)
        target[j] = 1.0 if face[0] == "+" else -1.0
        tilt = rng.normal(0, 1, 3)
        tilt -= (tilt @ target) * target
        tilt *= np.tan(np.radians(tilt_deg)) / max(np.linalg.norm(tilt), 1e-9)
        target = (target + tilt) / np.linalg.norm(target + tilt)
        b.turn_to(f"to {face}", target, move_s)
        b.hold(f"face {face}", face_s)
    assert {s[0].split()[-1] for s in b.segments if s[0].startswith("face")} == set(FACE_NAMES)
    # put it on: something irregular that the estimator must ignore
    b.turn("reposition", np.array([0.3, -1.0, 0.5]), 70.0, 1.5)
    b.hold("worn", hold_s)
    for i, name in enumerate("xyz"):
        axis = np.zeros(3)
        axis[i] = 1.0
        b.turn(f"turn +{name}", axis, 90.0, turn_s)
        b.hold(f"after +{name}", hold_s if i < 2 else hold_s + 1.0)
    return SyntheticSession(b.build(), rate_hz, b.segments)
