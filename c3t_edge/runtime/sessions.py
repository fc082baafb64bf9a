"""Scripted sessions: real trials with rest between them, as protocol recordings with ground truth,
and the scoring of recognised events against that truth.

A session is what a wrist IMU would send while its wearer performs a list of actions with still
pauses between them: each action is one real recorded trial (unchanged samples), and each pause is
a *rest segment* that holds the wrist still - it moves slowly from the pose that ends one trial to
the pose that starts the next, plus sensor noise with a per-channel standard deviation measured on
the still starts of real trials. Sessions become byte-exact protocol streams (DEVICE_INFO, then
IMU_SAMPLES frames, as ``c3t-imu-sim`` sends them) stored in the recording format, one frame per
chunk, host times following the device clock. Used by ``scripts/make_demo_recording.py`` (the
recording ``c3t-edge demo`` replays) and by the replay tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from c3t_edge.protocol.frames import default_imu_info, encode_imu_frame, encode_info_frame, wire


@dataclass(frozen=True)
class TruthSegment:
    """One performed action: ``label``, device times ``start_s``..``end_s`` (its first and last
    sample), and where the samples come from."""

    label: str
    start_s: float
    end_s: float
    source: str = ""
    subject: int | None = None


@dataclass
class Session:
    """``samples`` (n, C) float32 in g and deg/s at ``rate_hz``, the first at device time ``t0_s``."""

    samples: np.ndarray
    rate_hz: float
    t0_s: float
    truth: list[TruthSegment]
    rest_noise_std: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate_hz


def rest_noise_std(trials: Sequence[np.ndarray], head: int = 8, quantile: float = 0.25) -> np.ndarray:
    """Per-channel sensor noise of a still wrist, from the first ``head`` samples of real trials
    (subjects start still): the ``quantile`` over trials of their per-channel std, so that trials
    whose start already moves do not count."""
    stds = np.array([np.asarray(t[:head], np.float64).std(axis=0) for t in trials])
    return np.quantile(stds, quantile, axis=0)


def rest_segment(n: int, start_pose: np.ndarray, end_pose: np.ndarray, noise_std: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a still wrist drifting (smoothstep) from one pose to the next, plus noise."""
    s = np.linspace(0.0, 1.0, n)[:, None]
    s = s * s * (3 - 2 * s)
    pose = start_pose[None, :] * (1 - s) + end_pose[None, :] * s
    return (pose + rng.normal(0.0, 1.0, pose.shape) * noise_std[None, :]).astype(np.float32)


def compose_session(trials: Sequence[tuple[str, np.ndarray, str, int | None]], *, rate_hz: float = 50.0,
                    rest_s: float = 2.0, lead_s: float | None = None, t0_s: float = 1.0,
                    noise_std: np.ndarray | None = None, seed: int = 0, edge: int = 5) -> Session:
    """Join trials ``(label, samples (T, C), source, subject)`` with rest of ``rest_s`` seconds
    between them and before the first / after the last (``lead_s``, default ``rest_s``)."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(t[1], np.float32) for t in trials]
    noise = rest_noise_std(arrays) if noise_std is None else np.asarray(noise_std, np.float64)
    n_rest = int(round(rest_s * rate_hz))
    n_lead = int(round((rest_s if lead_s is None else lead_s) * rate_hz))
    parts: list[np.ndarray] = []
    truth: list[TruthSegment] = []
    n = 0
    prev_end = arrays[0][:edge].mean(axis=0)
    for i, ((label, _, source, subject), x) in enumerate(zip(trials, arrays, strict=True)):
        gap = n_lead if i == 0 else n_rest
        parts.append(rest_segment(gap, prev_end, x[:edge].mean(axis=0), noise, rng))
        n += gap
        truth.append(TruthSegment(label, t0_s + n / rate_hz, t0_s + (n + len(x) - 1) / rate_hz, source, subject))
        parts.append(x)
        n += len(x)
        prev_end = x[-edge:].mean(axis=0)
    parts.append(rest_segment(n_lead, prev_end, prev_end, noise, rng))
    return Session(np.concatenate(parts).astype(np.float32), float(rate_hz), float(t0_s), truth, noise)


def wrist_session(dataset: Any, subject: int, trial: int, *, rest_s: float = 2.0) -> Session:
    """A session of every UTD-MHAD wrist action's trial ``trial`` by ``subject`` (those present), in a
    random order seeded by ``subject * 10 + trial``, with ``rest_s`` seconds of rest between them.

    ``dataset`` is a :class:`c3t_edge.data.Dataset` of the UTD-MHAD layout (IMU read in g and deg/s).
    """
    from c3t_edge.data.actions import UTD_MHAD_ACTIONS, WRIST_ACTION_NUMBERS

    chosen = []
    for number in WRIST_ACTION_NUMBERS:
        label = UTD_MHAD_ACTIONS[number - 1]
        record = next((r for r in dataset.trials if r.label == label and r.subject == subject
                       and r.trial == trial), None)
        if record is not None:
            chosen.append((label, dataset.read(record, "imu"), record.name, subject))
    seed = subject * 10 + trial
    order = np.random.default_rng(seed).permutation(len(chosen))
    return compose_session([chosen[i] for i in order], rest_s=rest_s, seed=seed)


def session_stream(session: Session, *, samples_per_frame: int = 10, acc_range_g: float = 16.0,
                   gyro_range_dps: float = 2000.0, name: str = "c3t-demo-wrist") -> list[tuple[float, bytes]]:
    """The protocol byte stream a device sends for ``session``: ``(device time of the frame's last
    sample in s, frame bytes)``, a DEVICE_INFO frame first. Samples are quantised to int16 counts
    with the declared scales, exactly as firmware would."""
    info = default_imu_info(session.rate_hz, acc_range_g, gyro_range_dps,
                            samples_per_frame=samples_per_frame, name=name)
    scales = info.scales.astype(np.float64)
    counts = np.clip(np.round(session.samples / scales), -32768, 32767).astype(np.int16)
    out = [(session.t0_s, wire(encode_info_frame(0, int(session.t0_s * 1e6), info)))]
    seq = 1
    for start in range(0, len(counts), samples_per_frame):
        block = counts[start:start + samples_per_frame]
        t_first = session.t0_s + start / session.rate_hz
        frame = wire(encode_imu_frame(seq, int(round(t_first * 1e6)), block))
        out.append((t_first + (len(block) - 1) / session.rate_hz, frame))
        seq += 1
    return out


def write_session_recording(session: Session, path: str | Path, *, start_wall_time_s: float = 1.7e9,
                            link_delay_s: float = 0.002, extra: Mapping[str, Any] | None = None,
                            **stream_kwargs: Any) -> Path:
    """Store ``session``'s byte stream as a recording (one frame per chunk, host time = device
    time + ``link_delay_s``); deterministic for a given session and ``start_wall_time_s``."""
    from c3t_edge.recording import RecordingWriter

    path = Path(path)
    stream = session_stream(session, **stream_kwargs)
    with RecordingWriter(path, port="session://" + path.stem, start_wall_time_s=start_wall_time_s,
                         overwrite=True, fsync_interval_s=None, extra=dict(extra or {})) as writer:
        for t, data in stream:
            writer.write_chunk(data, start_wall_time_s + (t - session.t0_s) + link_delay_s)
    return path


def truth_document(session: Session, **provenance: Any) -> dict[str, Any]:
    """The JSON that ships beside a session recording: the true actions and how it was made."""
    return {
        "rate_hz": session.rate_hz,
        "t0_s": session.t0_s,
        "duration_s": round(session.duration_s, 3),
        "rest_noise_std": [round(float(v), 6) for v in session.rest_noise_std],
        "actions": [asdict(seg) for seg in session.truth],
        **provenance,
    }


def load_truth(path: str | Path) -> list[TruthSegment]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [TruthSegment(**a) for a in doc["actions"]]


# ---------------------------------------------------------------------------------------- scoring

@dataclass
class Score:
    """Event-level scoring of recognised actions against the true ones.

    An event *belongs* to the true action whose interval ``[start_s, end_s + slack_s]`` holds its
    time ``t`` (the nearest one if several do). A true action is ``detected`` when at least one event
    belongs to it and ``correct`` when its first event names it; ``false_events`` belong to none,
    ``extra_events`` are further events within an action. ``delays_s``: first event time minus the
    action's end, for the correct ones."""

    n_true: int
    detected: int
    correct: int
    false_events: int
    extra_events: int
    delays_s: list[float]
    matches: list[dict[str, Any]]

    @property
    def accuracy(self) -> float:
        """Correct first events / true actions (missed actions count as wrong)."""
        return self.correct / self.n_true if self.n_true else 0.0

    @property
    def precision(self) -> float:
        n_events = self.detected + self.false_events + self.extra_events
        return self.correct / n_events if n_events else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("matches", "delays_s")}
        d["accuracy"] = round(self.accuracy, 4)
        d["precision"] = round(self.precision, 4)
        if self.delays_s:
            d["delay_median_s"] = round(float(np.median(self.delays_s)), 3)
            d["delay_max_s"] = round(float(np.max(self.delays_s)), 3)
        return d


def score_events(events: Sequence[Any], truth: Sequence[TruthSegment], slack_s: float) -> Score:
    """Score action events (objects or dicts with ``t`` and ``label``; "no action" ones ignored)."""
    def get(e: Any, key: str) -> Any:
        return e[key] if isinstance(e, Mapping) else getattr(e, key)

    acts = [(float(get(e, "t")), get(e, "label")) for e in events if get(e, "label") is not None]
    owner: list[int | None] = []
    for t, _ in acts:
        inside = [i for i, seg in enumerate(truth) if seg.start_s <= t <= seg.end_s + slack_s]
        if not inside:
            owner.append(None)
        else:
            owner.append(min(inside, key=lambda i: abs(t - (truth[i].start_s + truth[i].end_s) / 2)))
    detected = correct = extra = 0
    delays: list[float] = []
    matches = []
    for i, seg in enumerate(truth):
        mine = [a for a, o in zip(acts, owner, strict=True) if o == i]
        first = mine[0] if mine else None
        ok = first is not None and first[1] == seg.label
        detected += first is not None
        correct += ok
        extra += max(0, len(mine) - 1)
        if ok:
            delays.append(first[0] - seg.end_s)
        matches.append({"true": seg.label, "start_s": seg.start_s, "end_s": seg.end_s,
                        "events": [{"t": round(t, 3), "label": lab} for t, lab in mine], "correct": ok})
    false = sum(1 for o in owner if o is None)
    return Score(len(truth), detected, correct, false, extra, delays, matches)
