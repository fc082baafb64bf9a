"""The guided calibration procedure, live on a device (``c3t-edge calibrate --port PORT``).

The steps are printed on stderr; each one advances by itself when the samples show it was done
(a new face held still for 2 s; a turn followed by 2 s still). Everything received is kept (and
optionally recorded), and the profile is estimated from the whole session by the same code as
``calibrate --recording`` (:func:`c3t_edge.calibration.estimate.estimate_profile`), so a live
session and its recording give the same profile.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

import numpy as np

from c3t_edge.calibration.estimate import (
    FACE_NAMES,
    SessionCollector,
    SessionData,
    StillnessConfig,
    _running_std,
)
from c3t_edge.errors import CalibrationError

FACE_HOLD_S = 1.5  # asked for 2 s; the edges of a hold are not still by the running spread
TURN_HOLD_S = 1.5
TURN_MIN_DPS = 30.0
LAST_HOLD_S = 1.0  # after the last turn is seen, so that its still stretch is long enough to use

STEPS_TEXT = """\
calibrate: guided procedure (calibration/README.md). Keep the device away from vibration.
  1. six faces: lay the device on each of its six faces in turn (any order), still for 2 s each
  2. put it on as it will be worn, hold still for 2 s
  3. turn it about the model's +x, then +y, then +z axis by about 90 deg (right-hand rule),
     holding still for 2 s after each turn"""


class _Watcher:
    """Incremental step detection on the samples received so far (device time)."""

    def __init__(self, rate_hz: float, cfg: StillnessConfig) -> None:
        self.rate = rate_hz
        self.cfg = cfg

    def tail_still(self, x: np.ndarray, seconds: float) -> np.ndarray | None:
        """Mean acc of the last ``seconds`` when they were all still, else None."""
        n = int(round(seconds * self.rate))
        w = max(3, int(round(self.cfg.window_s * self.rate)))
        if len(x) < n or n < w:
            return None
        sd = _running_std(x[-n:], w)
        if sd[:, :3].max() < self.cfg.acc_std_g and sd[:, 3:].max() < self.cfg.gyro_std_dps:
            return x[-n:, :3].mean(axis=0)
        return None


def face_of(acc: np.ndarray) -> int:
    j = int(np.argmax(np.abs(acc)))
    return 2 * j + (0 if acc[j] > 0 else 1)


async def guided_session(transport, *, step_timeout_s: float = 90.0, writer=None,
                         say: Callable[[str], None] | None = None,
                         cfg: StillnessConfig | None = None, decoder=None) -> SessionData:
    """Run the steps on an open transport; returns everything received."""
    cfg = cfg or StillnessConfig()
    from c3t_edge.protocol import CommandCode, command_bytes

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    col = SessionCollector(decoder)
    if transport.can_write:
        for code in (CommandCode.SEND_INFO, CommandCode.START):
            try:
                await transport.write(command_bytes(code))
            except Exception:  # noqa: BLE001 - a device that cannot take commands still streams
                pass
    say(STEPS_TEXT)
    watcher: _Watcher | None = None
    faces: set[int] = set()
    stage = "faces"
    turn = 0
    moved = False
    step_start = time.monotonic()
    mark = 0  # sample index where the current step began

    def next_step(what: str) -> None:
        nonlocal step_start, mark, moved
        step_start, mark, moved = time.monotonic(), col.n_samples, False
        say(what)

    say("calibrate: step 1, six faces: waiting for the first face (held still 2 s)")
    while stage != "done":
        chunk = await transport.read()
        if chunk is None and stage == "last hold":
            break  # ended during the last hold: what arrived is enough
        if chunk is None:
            raise CalibrationError(f"the device stream ended during the calibration ({stage} step not done)")
        if writer is not None:
            writer.write_chunk(chunk.data, chunk.host_time_s)
        if not col.feed(chunk.data, chunk.host_time_s):
            if time.monotonic() - step_start > step_timeout_s:
                raise CalibrationError(f"calibration {stage} step not done within {step_timeout_s:g} s")
            continue
        if watcher is None:
            watcher = _Watcher(col.session().rate_hz, cfg)
        x = col.samples_since(mark)
        if stage == "faces":
            acc = watcher.tail_still(x, FACE_HOLD_S)
            if acc is not None and face_of(acc) not in faces:
                faces.add(face_of(acc))
                left = [FACE_NAMES[f] for f in range(6) if f not in faces]
                if left:
                    next_step(f"calibrate: face {FACE_NAMES[face_of(acc)]} up: got it ({len(faces)}/6); "
                              f"still to do: {', '.join(left)}")
                else:
                    stage = "worn"
                    next_step(f"calibrate: face {FACE_NAMES[face_of(acc)]} up: got it (6/6).\n"
                              "calibrate: step 2: put the device on as it will be worn and hold still")
        elif stage == "worn":  # some motion (putting it on), then still
            moved = moved or bool(np.any(np.abs(x[:, 3:] - np.median(x[:, 3:], axis=0)) > TURN_MIN_DPS))
            if moved and watcher.tail_still(x, FACE_HOLD_S) is not None:
                stage = "turns"
                next_step("calibrate: step 3: turn about the model's +x axis by about 90 deg, then hold still")
        elif stage == "turns":
            moved = moved or bool(np.any(np.abs(x[:, 3:] - np.median(x[:, 3:], axis=0)) > TURN_MIN_DPS))
            if moved and watcher.tail_still(x, TURN_HOLD_S) is not None:
                turn += 1
                if turn == 3:
                    stage = "last hold"
                    next_step("calibrate: turn about +z: got it; hold still one second more")
                else:
                    axis = "xyz"[turn]
                    next_step(f"calibrate: turn about +{'xyz'[turn - 1]}: got it; now turn about the model's "
                              f"+{axis} axis by about 90 deg, then hold still")
        elif stage == "last hold" and len(x) >= LAST_HOLD_S * watcher.rate:
            stage = "done"
            say("calibrate: done. Estimating the profile...")
        if stage != "done" and time.monotonic() - step_start > step_timeout_s:
            raise CalibrationError(f"calibration {stage} step not done within {step_timeout_s:g} s "
                                   "(run again; see calibration/README.md)")
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
