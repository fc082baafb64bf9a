"""The guided calibration procedure, live on a device (``c3t-edge calibrate --port PORT``).

The steps are printed on stderr; each one advances by itself when the samples show it was done
(a new face held still; a motion, then still, for putting the device on and for each turn).
Progress is recomputed from all samples received so far with the estimator's own segmentation, so
it does not depend on how the bytes were chunked (a slow start that delivers seconds at once is
fine). Everything received is kept (and optionally recorded, link events included), and the
profile is estimated from the whole session by
:func:`c3t_edge.calibration.estimate.estimate_profile`, so a live session and its recording give
the same profile. The port is driven by the one live-session driver (:mod:`c3t_edge.live`): the
device is greeted on start and again after every reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from c3t_edge.calibration.estimate import (
    FACE_NAMES,
    SessionCollector,
    SessionData,
    StillnessConfig,
    find_still_segments,
)
from c3t_edge.errors import CalibrationError
from c3t_edge.live import ENDED, LiveSession

#: A hold counts once its still stretch (trimmed) is this long; users are asked for 2 s.
HOLD_S = 1.2
#: A motion between two holds counts as a turn (or as putting the device on) above this gyro rate.
MOTION_DPS = 30.0
#: After the last turn, wait this much more so that its still stretch is long enough to use.
LAST_HOLD_S = 1.0

STEPS_TEXT = """\
calibrate: guided procedure (calibration/README.md). Keep the device away from vibration.
  1. six faces: lay the device on each of its six faces in turn (any order), still for 2 s each
  2. put it on as it will be worn, hold still for 2 s
  3. turn it about the model's +x, then +y, then +z axis by about 90 deg (right-hand rule),
     holding still for 2 s after each turn"""


@dataclass(frozen=True)
class Progress:
    faces: tuple[int, ...]  # faces seen, in order (indices into FACE_NAMES)
    worn: bool
    turns: int
    tail_s: float  # seconds received after the last step was recognised

    @property
    def step(self) -> str:
        return "faces" if len(self.faces) < 6 else "worn" if not self.worn else "turns" if self.turns < 3 \
            else "last hold"


def progress(x: np.ndarray, rate_hz: float, cfg: StillnessConfig) -> Progress:
    """Where the procedure stands, from all samples so far ``x`` (n, 6)."""
    segs = [s for s in find_still_segments(x, rate_hz, cfg) if s.n >= HOLD_S * rate_hz]
    faces: list[int] = []
    k = 0
    while k < len(segs) and len(faces) < 6:
        if segs[k].face not in faces:
            faces.append(segs[k].face)
        k += 1
    worn, turns, done_at = False, 0, segs[k - 1].stop if k else 0
    if len(faces) == 6:
        prev = segs[k - 1]
        bias = np.median(np.array([s.gyro for s in segs]), axis=0)
        for s in segs[k:]:
            if turns == 3:
                break
            moved = prev.stop < s.start and np.abs(x[prev.stop:s.start, 3:] - bias).max() > MOTION_DPS
            if moved:
                if not worn:
                    worn = True
                else:
                    turns += 1
                done_at = s.start + int(HOLD_S * rate_hz)
            prev = s
    return Progress(tuple(faces), worn, turns, (len(x) - done_at) / rate_hz)


class GuidedSteps:
    """The guided procedure as the consumer of a :class:`~c3t_edge.live.LiveSession`: every chunk
    goes into the collector; the steps are announced as the samples show them done; the session is
    stopped with reason ``"done"`` after the last hold, or ``"timeout"`` when a step takes longer
    than ``step_timeout_s`` seconds."""

    def __init__(self, session: LiveSession, collector: SessionCollector, cfg: StillnessConfig,
                 say: Callable[[str], None], step_timeout_s: float) -> None:
        self.session = session
        self.collector = collector
        self.cfg = cfg
        self.say = say
        self.step_timeout_s = step_timeout_s
        self.shown = Progress((), False, 0, 0.0)
        self.done = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.say(STEPS_TEXT)
        self.say("calibrate: step 1, six faces: waiting for the first face (held still 2 s)")
        self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _arm(self) -> None:
        self.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.step_timeout_s, self.session.stop, "timeout")

    def __call__(self, chunk) -> None:  # chunk: c3t_edge.transports.Chunk
        # every chunk counts (also those drained after the end): the profile of a live session
        # and of its recording are then the same
        if not self.collector.feed(chunk.data, chunk.host_time_s) or self.done:
            return
        now = progress(self.collector.samples_since(0), self.collector.session().rate_hz, self.cfg)
        self._announce(self.shown, now)
        if (now.faces, now.worn, now.turns) != (self.shown.faces, self.shown.worn, self.shown.turns):
            self._arm()
        self.shown = now
        if now.step == "last hold" and now.tail_s >= LAST_HOLD_S:
            self.done = True
            self.cancel()
            self.session.stop("done")

    def _announce(self, shown: Progress, now: Progress) -> None:
        say = self.say
        for f in now.faces[len(shown.faces):]:
            left_faces = [FACE_NAMES[g] for g in range(6) if g not in now.faces[:now.faces.index(f) + 1]]
            n = now.faces.index(f) + 1
            say(f"calibrate: face {FACE_NAMES[f]} up: got it ({n}/6)"
                + (f"; still to do: {', '.join(left_faces)}" if left_faces else
                   "\ncalibrate: step 2: put the device on as it will be worn and hold still"))
        if now.worn and not shown.worn:
            say("calibrate: step 3: turn about the model's +x axis by about 90 deg, then hold still")
        for t in range(shown.turns, now.turns):
            say(f"calibrate: turn about +{'xyz'[t]}: got it"
                + (f"; now turn about the model's +{'xyz'[t + 1]} axis by about 90 deg, then hold still"
                   if t < 2 else "; hold still one second more"))

    def outcome(self, reason: str) -> None:
        """Raise the CalibrationError that ``reason`` (why the session stopped) means, if any."""
        shown = self.shown
        if self.done or (reason == ENDED and shown.step == "last hold"):
            return  # ended during the last hold: what arrived is enough
        if reason == ENDED:
            raise CalibrationError(f"the device stream ended during the calibration ({shown.step} step not done)")
        if reason == "timeout":
            raise CalibrationError(f"calibration {shown.step} step not done within {self.step_timeout_s:g} s"
                                   + ("" if self.collector.n_samples else ": no samples arrived from the device"))
        raise CalibrationError("calibration interrupted")


async def guided_session(transport, *, step_timeout_s: float = 90.0, save_recording: str | None = None,
                         say: Callable[[str], None] | None = None, cfg: StillnessConfig | None = None,
                         decoder=None, stop: asyncio.Event | None = None,
                         handle_signals: bool = False) -> SessionData:
    """Run the steps on ``transport`` (opened and closed here) through the one live-session driver
    (hello, and again after every reconnection); returns everything received.

    ``save_recording``: also write every chunk and link event to that recording. ``stop`` (an
    event) or, with ``handle_signals``, Ctrl-C/SIGTERM end it as "calibration interrupted".
    """
    from c3t_edge.protocol import CommandCode

    cfg = cfg or StillnessConfig()
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    col = SessionCollector(decoder)
    async with LiveSession(transport, stop=stop, handle_signals=handle_signals) as session:
        with contextlib.ExitStack() as files:
            if save_recording is not None:
                from c3t_edge.recording import RecordingWriter

                session.record_to(files.enter_context(RecordingWriter(save_recording, port=transport.port)))
            steps = GuidedSteps(session, col, cfg, say, step_timeout_s)
            steps.start()
            try:
                reason = await session.run(steps)
            finally:
                steps.cancel()
            steps.outcome(reason)
            say("calibrate: done. Estimating the profile...")
            await session.send(CommandCode.STOP)
    return col.session(port=transport.port)


def run_guided(port: str, *, baudrate: int = 115200, step_timeout_s: float = 90.0,
               save_recording: str | None = None, speed: float | None = 1.0,
               text_rate_hz: float | None = None) -> SessionData:
    """Open ``port``, run the guided steps, return the session (``speed``: replay:// pacing;
    ``text_rate_hz``: a text-mode device at that rate). Ctrl-C ends it with a CalibrationError."""
    from c3t_edge.calibration.estimate import session_decoder
    from c3t_edge.transports import open_transport

    async def go() -> SessionData:
        return await guided_session(open_transport(port, baudrate=baudrate, speed=speed),
                                    step_timeout_s=step_timeout_s, save_recording=save_recording,
                                    decoder=session_decoder(text_rate_hz), handle_signals=True)

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        raise CalibrationError("calibration interrupted") from None
