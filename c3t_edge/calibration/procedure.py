"""The guided calibration procedure, live on a device (``c3t-edge calibrate --port PORT``).

The steps are printed on stderr; each one advances by itself when the samples show it was done
(a new face held still; a motion, then still, for putting the device on and for each turn).
Progress is recomputed from all samples received so far with the estimator's own segmentation, so
it does not depend on how the bytes were chunked (a slow start that delivers seconds at once is
fine). Everything received is kept (and optionally recorded), and the profile is estimated from the
whole session by :func:`c3t_edge.calibration.estimate.estimate_profile`, so a live session and its
recording give the same profile.
"""

from __future__ import annotations

import asyncio
import sys
import time
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


async def guided_session(transport, *, step_timeout_s: float = 90.0, writer=None,
                         say: Callable[[str], None] | None = None,
                         cfg: StillnessConfig | None = None, decoder=None) -> SessionData:
    """Run the steps on an open transport; returns everything received."""
    from c3t_edge.protocol import CommandCode, command_bytes

    cfg = cfg or StillnessConfig()
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    col = SessionCollector(decoder)
    if transport.can_write:
        for code in (CommandCode.SEND_INFO, CommandCode.START):
            try:
                await transport.write(command_bytes(code))
            except Exception:  # noqa: BLE001 - a device that cannot take commands still streams
                pass
    say(STEPS_TEXT)
    say("calibrate: step 1, six faces: waiting for the first face (held still 2 s)")
    shown = Progress((), False, 0, 0.0)
    step_start = time.monotonic()
    while True:
        left = step_timeout_s - (time.monotonic() - step_start)
        try:
            chunk = await asyncio.wait_for(transport.read(), timeout=max(left, 0.01))
        except asyncio.TimeoutError:
            raise CalibrationError(f"calibration {shown.step} step not done within {step_timeout_s:g} s"
                                   + ("" if col.n_samples else ": no samples arrived from the device")) from None
        if chunk is None:
            if shown.step == "last hold":
                break  # ended during the last hold: what arrived is enough
            raise CalibrationError(f"the device stream ended during the calibration ({shown.step} step not done)")
        if writer is not None:
            writer.write_chunk(chunk.data, chunk.host_time_s)
        if not col.feed(chunk.data, chunk.host_time_s):
            continue
        now = progress(col.samples_since(0), col.session().rate_hz, cfg)
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
        if (now.faces, now.worn, now.turns) != (shown.faces, shown.worn, shown.turns):
            step_start = time.monotonic()
        shown = now
        if now.step == "last hold" and now.tail_s >= LAST_HOLD_S:
            break
    say("calibrate: done. Estimating the profile...")
    if transport.can_write:
        try:
            await transport.write(command_bytes(CommandCode.STOP))
        except Exception:  # noqa: BLE001
            pass
    return col.session(port=transport.port)


def run_guided(port: str, *, baudrate: int = 115200, step_timeout_s: float = 90.0,
               save_recording: str | None = None, speed: float | None = 1.0,
               text_rate_hz: float | None = None) -> SessionData:
    """Open ``port``, run the guided steps, return the session (``speed``: replay:// pacing;
    ``text_rate_hz``: a text-mode device at that rate)."""
    from c3t_edge.calibration.estimate import session_decoder
    from c3t_edge.transports import open_transport

    decoder = session_decoder(text_rate_hz)

    async def go() -> SessionData:
        transport = open_transport(port, baudrate=baudrate, speed=speed)
        async with transport:
            if save_recording is None:
                return await guided_session(transport, step_timeout_s=step_timeout_s, decoder=decoder)
            from c3t_edge.recording import RecordingWriter

            with RecordingWriter(save_recording, port=port) as writer:
                return await guided_session(transport, step_timeout_s=step_timeout_s, writer=writer,
                                            decoder=decoder)

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        raise CalibrationError("calibration interrupted") from None
