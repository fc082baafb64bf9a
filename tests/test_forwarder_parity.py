"""Edge Impulse data forwarder parity: a board that prints forwarder lines is streamed as it is.

The lines are written here the way the forwarder's documentation shows them (README-data-forwarder.md
of edge-impulse-cli: one reading per line, values split by ``,`` or TAB, the Arduino example prints
acceleration times 9.80665 with ``Serial.print`` and ends lines with ``Serial.println``), from real
UTD-MHAD trials, not by the decoder under test. They go through a real pty into ``c3t-edge stream``
with the default bundle and no format flag but ``--gyro-units rad/s``: the text mode, the rate
(50 or 100 Hz, from line timing) and m/s² (from gravity) are found, and the recognised actions are
compared with the binary protocol path on the same trials.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _pty import PtyDevice
from _runtime import real_trials, require_default_bundle, run_recording

from c3t_edge.runtime import ActionEvent
from c3t_edge.runtime.sessions import compose_session, score_events, write_session_recording

G = 9.80665
#: Real-time pacing of the first lines (the rate is inferred from the first second, as the forwarder
#: does); the rest is written as fast as the pty takes it, to keep the test short.
PACED_S = 2.5


@pytest.fixture(scope="module")
def held_out_session(utd_mhad_dir, tmp_path_factory):
    """Ten wrist actions from trials 1-2 (never seen as IMU by the shipped bundle), 2.5 s rest, and
    the actions the binary protocol path recognises on them."""
    require_default_bundle()
    from c3t_edge.data import open_dataset
    from c3t_edge.runtime import load_model

    dataset = open_dataset(utd_mhad_dir)
    trials = real_trials(dataset, [1, 3, 5, 8, 10, 12, 14, 16, 18, 21], subjects=[4, 5, 6, 1, 2, 3], trials=[1, 2])
    session = compose_session(trials, rest_s=2.5, seed=13)
    path = write_session_recording(session, tmp_path_factory.mktemp("forwarder") / "binary.c3trec")
    model = load_model("default")
    events = [e for e in run_recording(path, model)[0] if isinstance(e, ActionEvent)]
    return session, events, model.spec.window_s


def forwarder_lines(samples_g_dps: np.ndarray, rate_hz: float) -> list[bytes]:
    """The samples (50 Hz, g and deg/s) at ``rate_hz`` as a sketch prints them for the forwarder:
    m/s² with 2 decimals (``Serial.print(x * CONVERT_G_TO_MS2)``), rad/s with 4, a ``Started``
    banner and a line of axis names first; lines alternate between TAB separators and ``,\\t`` with
    a trailing comma, and end in CRLF (``Serial.println``)."""
    n = len(samples_g_dps)
    t50 = np.arange(n) / 50.0
    t = np.arange(int((n - 1) / 50.0 * rate_hz) + 1) / rate_hz
    x = np.stack([np.interp(t, t50, samples_g_dps[:, c]) for c in range(6)], axis=1)
    acc, gyro = x[:, :3] * G, x[:, 3:] * (math.pi / 180.0)
    lines = [b"Started\r\n", b"accX,accY,accZ,gyrX,gyrY,gyrZ\r\n"]
    for i in range(len(x)):
        values = [f"{v:.2f}" for v in acc[i]] + [f"{v:.4f}" for v in gyro[i]]
        line = "\t".join(values) if i % 2 else ",\t".join(values) + ","
        lines.append(line.encode() + b"\r\n")
    return lines


def stream(port: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", port, "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("rate_hz", [50, 100])
def test_forwarder_lines_in_si_units_give_the_binary_paths_actions(held_out_session, tmp_path, rate_hz):
    session, binary_events, window_s = held_out_session
    lines = forwarder_lines(session.samples, rate_hz)
    device = PtyDevice(str(tmp_path / "ttyEI"))
    proc = stream(device.link, "--gyro-units", "rad/s")
    try:
        time.sleep(2.0)  # the port is open: the board starts printing
        writer = device.play(lines, rate_hz)
        writer.join(120)
        time.sleep(4.0)  # the last bytes are read and decoded
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        device.close()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "baud" not in err + out  # lines held while their rate is timed are not 'no data'
    rows = [json.loads(x) for x in out.splitlines()]
    device_row = next(r for r in rows if r["type"] == "device")
    assert device_row["name"] == "text" and device_row["sample_rate_hz"] == rate_hz
    assert device_row["resampled_to_hz"] == (None if rate_hz == 50 else 50)
    (notice,) = [r["message"] for r in rows if r["type"] == "notice" and r["message"].startswith("text lines")]
    assert f"at {rate_hz} Hz (inferred from 1 s of line timing)" in notice, notice
    assert "acceleration in m/s² (detected, gravity read " in notice and "rotation in rad/s" in notice, notice
    gravity = float(notice.split("gravity read ")[1].split(")")[0])
    assert 0.9 * G < gravity < 1.1 * G, notice
    summary = rows[-1]
    assert summary["type"] == "summary" and summary["samples"] == len(lines) - 2, summary
    # text time is line index / rate from the first sample line; the session's starts at t0_s
    text_events = [{"t": r["t"] + session.t0_s, "label": r["label"]} for r in rows if r["type"] == "action"]
    got = [e["label"] for e in text_events]
    want = [e.label for e in binary_events if e.label is not None]
    binary_score = score_events(binary_events, session.truth, slack_s=window_s)
    text_score = score_events(text_events, session.truth, slack_s=window_s)
    # the same samples up to print rounding (at 100 Hz: interpolated, then resampled back to 50 Hz):
    # the same actions, and the same event-level score
    assert got == want, (got, want)
    assert text_score.correct >= binary_score.correct and text_score.false_events <= binary_score.false_events, (
        text_score.as_dict(), binary_score.as_dict())
    assert binary_score.correct >= 8, binary_score.as_dict()  # the comparison is with a path that works


def test_three_values_per_line_against_a_six_channel_bundle_is_one_clear_line(tmp_path):
    """An accelerometer-only board (3 values per line) against the 6-channel default bundle."""
    require_default_bundle()
    rng = np.random.default_rng(3)
    acc = np.array([0.1, -0.2, 9.78]) + rng.normal(0, 0.05, (300, 3))
    lines = [(",\t".join(f"{v:.2f}" for v in row) + ",\r\n").encode() for row in acc]
    device = PtyDevice(str(tmp_path / "ttyACC"))
    proc = stream(device.link)
    try:
        time.sleep(2.0)
        device.play(lines, 50.0, paced_s=6.0)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        device.close()
    assert proc.returncode == 1 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("c3t-edge stream: error: the device prints 3 values per line"), last
    assert "takes 6 (ax ay az gx gy gz)" in last and "--channels acc" in last, last
    assert "baud" not in err


def test_hints_fit_the_case(tmp_path):
    """`decode --text` of protocol frames says the input is binary; `stream --port loop://` says no
    device is behind pyserial's loopback (not 'is the baud rate right?')."""
    from pathlib import Path

    demo = Path(__file__).resolve().parents[1] / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    dec = subprocess.run([sys.executable, "-m", "c3t_edge", "decode", "--text", str(demo)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert dec.returncode == 0 and dec.stdout == ""
    assert dec.stderr.splitlines()[-1].endswith("valid protocol frames: the input is binary, decode it without --text")
    loop = subprocess.run([sys.executable, "-m", "c3t_edge", "stream", "--port", "loop://", "--duration", "4.5"],
                          capture_output=True, text=True, timeout=90, env=env)
    assert loop.returncode == 0 and "loop:// is pyserial's loopback" in loop.stderr, loop.stderr
    assert "baud" not in loop.stderr


def test_a_replayed_text_recording_infers_the_recorded_rate_at_any_speed(tmp_path):
    """Recorded arrival times decide the rate, so `replay --fast` infers what `stream` did live."""
    require_default_bundle()
    import asyncio

    from c3t_edge.recording import RecordingWriter
    from c3t_edge.runtime import ListSink, StreamPipeline, load_model
    from c3t_edge.runtime.autodetect import AutoDecoder
    from c3t_edge.runtime.events import DeviceNotice
    from c3t_edge.runtime.runner import PortOptions, run_port

    path = tmp_path / "text100.c3trec"
    with RecordingWriter(path, port="ttyEI", start_wall_time_s=1.7e9, fsync_interval_s=None) as w:
        for i in range(400):  # 4 s at 100 Hz, one line per chunk, in m/s²
            w.write_chunk(f"0.{i % 10}\t-0.5\t9.79\t0.01\t0.02\t-0.01,\r\n".encode(), 1.7e9 + i / 100.0)
    model = load_model("default")
    for speed in (None, 50.0):
        sink = ListSink()
        decoder = AutoDecoder(None, n_channels=6, acc_unit="auto", rate_hint_hz=model.spec.sample_rate_hz)
        pipeline = StreamPipeline(model, decoder=decoder)
        asyncio.run(run_port(f"replay://{path}", pipeline, sink, options=PortOptions(speed=speed),
                             handle_signals=False))
        (device,) = [e for e in sink.events if isinstance(e, DeviceNotice)]
        assert device.sample_rate_hz == 100 and device.resampled_to_hz == 50, (speed, device)
        assert sink.final.samples == 399  # the first line may be cut off: dropped


@pytest.mark.parametrize("rate_hz", [50, 100])
def test_rotation_that_looks_like_rad_per_s_gets_a_notice_and_deg_per_s_does_not(held_out_session, rate_hz):
    """Real wrist trials: printed in rad/s with the unit left to its default, the decoder suggests
    --gyro-units rad/s; printed in deg/s (the same trials), it says nothing."""
    from c3t_edge.protocol.text import TextDecoder

    session = held_out_session[0]
    for unit in ("rad/s", "deg/s"):
        dec = TextDecoder(float(rate_hz), n_channels=6, acc_unit="auto", gyro_unit=None)
        lines = forwarder_lines(session.samples, rate_hz)  # m/s², rad/s
        if unit == "deg/s":
            lines = [line if i < 2 else _rad_to_deg(line) for i, line in enumerate(lines)]
        for line in lines:
            dec.feed(line)
        dec.finish()
        if unit == "rad/s":
            assert dec.advice is not None and "--gyro-units rad/s" in dec.advice
        else:
            assert dec.advice is None, dec.advice


def _rad_to_deg(line: bytes) -> bytes:
    values = line.decode().replace(",", " ").split()
    gyro = [f"{float(v) * 180.0 / math.pi:.2f}" for v in values[3:]]
    return ("\t".join(values[:3] + gyro) + "\r\n").encode()
