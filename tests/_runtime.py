"""Helpers for the runtime tests: a transparent stand-in model and synthetic sessions.

:class:`AxisModel` names the gyro axis that moves most in a window ("x", "y", "z"), so a test knows
exactly which events a stream must give; the real default bundle is exercised by the replay tests
on real UTD-MHAD trials."""

from __future__ import annotations

import numpy as np

from c3t_edge.runtime.model import ModelSpec
from c3t_edge.runtime.sessions import Session, TruthSegment

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
UNITS = ("g", "g", "g", "deg/s", "deg/s", "deg/s")


class AxisModel:
    """Probabilities from the variance of gx, gy, gz in the window (sharpened softmax)."""

    def __init__(self, rate_hz: float = 50.0, window: int = 100, hop: int = 25) -> None:
        self.spec = ModelSpec(("x", "y", "z"), rate_hz, window, hop, CHANNELS, UNITS, "axis-model")
        self.calls = 0
        self.windows_seen = 0

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        assert windows.ndim == 3 and windows.shape[1:] == (self.spec.window, 6)
        self.calls += 1
        self.windows_seen += len(windows)
        v = windows[:, :, 3:6].astype(np.float64).std(axis=1)
        z = np.log(v + 1e-3) * 4.0
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def synthetic_session(moves: list[tuple[str, float]], *, rate_hz: float = 50.0, rest_s: float = 3.0,
                      amplitude: float = 200.0, seed: int = 0, t0_s: float = 1.0) -> Session:
    """Rest, then for each (axis, seconds) a 1.5 Hz rotation about that axis, then rest; truth aligned."""
    rng = np.random.default_rng(seed)
    pose = np.array([-1.0, -0.2, 0.1, -2.0, 1.0, -2.5], np.float32)
    noise = np.array([0.006, 0.017, 0.015, 2.0, 0.8, 1.2], np.float32)

    def rest(n):
        return pose + rng.normal(0, 1, (n, 6)).astype(np.float32) * noise

    parts, truth, n = [rest(int(rest_s * rate_hz))], [], int(rest_s * rate_hz)
    for axis, seconds in moves:
        m = int(seconds * rate_hz)
        x = rest(m)
        tt = np.arange(m) / rate_hz
        x[:, 3 + "xyz".index(axis)] += amplitude * np.sin(2 * np.pi * 1.5 * tt)
        parts.append(x)
        truth.append(TruthSegment(axis, t0_s + n / rate_hz, t0_s + (n + m - 1) / rate_hz))
        n += m
        r = int(rest_s * rate_hz)
        parts.append(rest(r))
        n += r
    return Session(np.concatenate(parts), rate_hz, t0_s, truth, noise)


# ----------------------------------------------------------------------------------- real sessions
def real_trials(dataset, actions, *, subjects, trials):
    """(label, samples, source, subject) for each 1-based wrist action number, subjects and trial
    numbers taken in turn (the nearest available trial where one is missing)."""
    from c3t_edge.data.actions import UTD_MHAD_ACTIONS

    out = []
    for i, number in enumerate(actions):
        label = UTD_MHAD_ACTIONS[number - 1]
        subject = subjects[i % len(subjects)]
        want = trials[i % len(trials)]
        found = sorted((r for r in dataset.trials if r.label == label and r.subject == subject),
                       key=lambda r: abs(r.trial - want))
        rec = found[0]
        out.append((label, dataset.read(rec, "imu"), f"a{number}_s{subject}_t{rec.trial}", subject))
    return out


def run_recording(path, model, *, config=None, speed=None):
    """Events and summary of replaying a recording through a fresh pipeline (in process)."""
    import asyncio

    from c3t_edge.runtime import ListSink, StreamPipeline
    from c3t_edge.runtime.runner import PortOptions, run_port

    sink = ListSink()
    pipeline = StreamPipeline(model, config=config)
    asyncio.run(run_port(f"replay://{path}", pipeline, sink, options=PortOptions(speed=speed),
                         handle_signals=False))
    return sink.events, sink.final


def require_default_bundle():
    """Fails (never skips) when the default bundle, which the package ships, is missing."""
    from c3t_edge.bundle import default_bundle_path

    path = default_bundle_path() / "metadata.json"
    assert path.is_file(), f"the shipped default bundle is missing ({path})"
