"""Accelerometer-only models: ``c3t-edge train --channels acc`` -> a 3-channel bundle -> ``stream``.

A real training run (supervised, wrist actions, development split: subjects 1, 3, 5) is trained
and exported through the command line; its bundle reads ax, ay, az alone. Held-out trials (subjects
2, 4, 6, never seen in training) then reach ``c3t-edge stream`` over a pty from two devices without a
gyroscope: a board printing Edge Impulse data forwarder lines (3 values, m/s², tabs and trailing
commas, written here as the forwarder's documentation shows, at 50 and 100 Hz), and the host-built
simulator declaring only an accelerometer in DEVICE_INFO (``c3t-imu-sim --acc-only``). Both must
recognise the actions as the bundle does on the same samples replayed as protocol frames. The
6-channel bundle refuses the accelerometer-only device in one line saying what to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _firmware import simulator, write_csv
from _pty import PtyDevice
from _runtime import real_trials, require_default_bundle, run_recording

from c3t_edge.runtime import ActionEvent
from c3t_edge.runtime.sessions import compose_session, score_events, write_session_recording

G = 9.80665
ACC = ["ax", "ay", "az"]
#: Wrist actions of the held-out session (1-based UTD-MHAD numbers); 21 classes, chance is 1 in 21.
ACTIONS = [1, 3, 5, 8, 10, 12, 14, 16, 18, 21]
#: Lines written at the device rate first (the text mode infers the rate from 1 s of line timing).
PACED_S = 2.5


def _env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def acc_bundle(utd_mhad_dir, tmp_path_factory) -> Path:
    """``train --channels acc`` (supervised, wrist, development split, its default 600 steps: about a
    minute) and ``export``."""
    base = tmp_path_factory.mktemp("acc_only")
    run, bundle = base / "run", base / "bundle"
    _cli("train", "--method", "supervised", "--channels", "acc", "--placement", "wrist",
         "--data", str(utd_mhad_dir), "--quiet", "--out", str(run))
    _cli("export", str(run), "--out", str(bundle), "--target", "onnxruntime", "--quiet")
    return bundle


@pytest.fixture(scope="module")
def held_out(utd_mhad_dir, acc_bundle, tmp_path_factory):
    """Ten wrist actions of the test subjects 2, 4, 6 with 2.5 s rest, the session's 6-channel
    recording (protocol frames), and what the accelerometer bundle recognises replaying it (the
    device's gyro channels are simply not read)."""
    from c3t_edge.data import open_dataset
    from c3t_edge.runtime import load_model

    trials = real_trials(open_dataset(utd_mhad_dir), ACTIONS, subjects=[2, 4, 6], trials=[1, 2, 3, 4])
    session = compose_session(trials, rest_s=2.5, seed=21)
    path = write_session_recording(session, tmp_path_factory.mktemp("acc_session") / "binary.c3trec")
    model = load_model(str(acc_bundle))
    events = [e for e in run_recording(path, model)[0] if isinstance(e, ActionEvent)]
    return session, events, model.spec.window_s


def test_train_channels_acc_exports_a_three_channel_bundle(acc_bundle):
    import onnxruntime as ort

    from c3t_edge.bundle import read_metadata

    meta = read_metadata(acc_bundle)
    assert meta["channels"] == ACC and meta["units"] == ["g", "g", "g"]
    assert meta["input"]["shape"] == ["n", 180, 3]
    assert len(meta["normalization"]["mean"]) == len(meta["normalization"]["std"]) == 3
    for name in ("model.onnx", "model.int8.onnx"):
        (graph_input,) = ort.InferenceSession(str(acc_bundle / name)).get_inputs()
        assert graph_input.shape[1:] == [180, 3], (name, graph_input.shape)
    # measured by the export on the held-out subjects' real windows: far above chance (1/21)
    assert meta["evaluation"]["held_out"] and meta["evaluation"]["subjects"] == [2, 4, 6]
    assert meta["accuracy"]["model.onnx"] > 0.5 and meta["accuracy"]["model.int8.onnx"] > 0.5, meta["accuracy"]
    config = json.loads((acc_bundle.parent / "run" / "config.json").read_text())
    assert config["train"]["channels"] == "acc" and len(config["standardizer"]["mean"]) == 3


def _stream(board: PtyDevice, feed, *args: str, settle_s: float = 4.0) -> tuple[int, list[dict], str]:
    """Run ``c3t-edge stream --port board --json ARGS`` while ``feed(board)`` writes the device's
    bytes; stop it with SIGINT ``settle_s`` after the last byte (or let it exit). Returns (exit
    status, JSON rows, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", board.link, "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        time.sleep(2.0)  # the port is open: the board starts
        writer = threading.Thread(target=feed, args=(board,), daemon=True)
        writer.start()
        writer.join(180)
        deadline = time.monotonic() + settle_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        board.close()
    return proc.returncode, [json.loads(x) for x in out.splitlines()], err


def forwarder_lines(samples_g: np.ndarray, rate_hz: float) -> list[bytes]:
    """Accelerometer samples (50 Hz, g) at ``rate_hz`` as an accelerometer-only sketch prints them for
    the forwarder: m/s² with 2 decimals (``Serial.print(x * CONVERT_G_TO_MS2)``), a header line of
    axis names, TAB separated lines alternating with ``,\\t``-separated ones that end in a comma, CRLF."""
    n = len(samples_g)
    t50 = np.arange(n) / 50.0
    t = np.arange(int((n - 1) / 50.0 * rate_hz) + 1) / rate_hz
    acc = np.stack([np.interp(t, t50, samples_g[:, c]) for c in range(3)], axis=1) * G
    lines = [b"accX,accY,accZ\r\n"]
    for i, row in enumerate(acc):
        values = [f"{v:.2f}" for v in row]
        line = "\t".join(values) if i % 2 else ",\t".join(values) + ","
        lines.append(line.encode() + b"\r\n")
    return lines


def _scores(rows: list[dict], session, binary_events, window_s: float):
    """(event score of the streamed actions, of the binary replay) against the session's truth;
    the stream's time starts at its first sample, the session's at ``t0_s``."""
    events = [{"t": r["t"] + session.t0_s, "label": r["label"]} for r in rows if r["type"] == "action"]
    return (score_events(events, session.truth, slack_s=window_s),
            score_events(binary_events, session.truth, slack_s=window_s))


@pytest.mark.parametrize("rate_hz", [50, 100])
def test_three_value_forwarder_lines_with_the_acc_bundle(acc_bundle, held_out, tmp_path, rate_hz):
    session, binary_events, window_s = held_out
    lines = forwarder_lines(session.samples[:, :3], rate_hz)

    def feed(board: PtyDevice) -> None:
        board.play(lines, rate_hz, PACED_S).join()

    code, rows, err = _stream(PtyDevice(str(tmp_path / "ttyACC")), feed, "--model", str(acc_bundle))
    assert code == 0 and "Traceback" not in err, err
    device = next(r for r in rows if r["type"] == "device")
    assert device["name"] == "text" and device["channels"] == ACC and device["sample_rate_hz"] == rate_hz
    assert device["resampled_to_hz"] == (None if rate_hz == 50 else 50)
    (notice,) = [r["message"] for r in rows if r["type"] == "notice" and r["message"].startswith("text lines")]
    assert "acceleration in m/s² (detected" in notice and "rotation" not in notice, notice
    assert rows[-1]["type"] == "summary" and rows[-1]["samples"] == len(lines) - 1, rows[-1]
    text_score, binary_score = _scores(rows, session, binary_events, window_s)
    # the same accelerometer samples up to print rounding: the binary path's score, far above chance
    assert text_score.correct >= binary_score.correct - 1, (text_score.as_dict(), binary_score.as_dict())
    assert text_score.false_events <= binary_score.false_events + 1, (text_score.as_dict(), binary_score.as_dict())
    assert text_score.correct >= 6, text_score.as_dict()  # chance: 10 actions / 21 classes


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulator(tmp_path_factory)


def _simulator_feed(sim: Path, csv: Path):
    """A feed that runs ``c3t-imu-sim --csv CSV --acc-only`` and copies its frames to the board."""
    def feed(board: PtyDevice) -> None:
        proc = subprocess.run([str(sim), "--csv", str(csv), "--rate", "50", "--acc-only"], capture_output=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        board.send(proc.stdout)
    return feed


def test_binary_device_without_a_gyroscope_with_the_acc_bundle(acc_bundle, held_out, sim, tmp_path):
    session, binary_events, window_s = held_out
    csv = write_csv(tmp_path / "session.csv", session.samples)
    code, rows, err = _stream(PtyDevice(str(tmp_path / "ttyIMU")), _simulator_feed(sim, csv),
                              "--model", str(acc_bundle))
    assert code == 0 and "Traceback" not in err, err
    device = next(r for r in rows if r["type"] == "device")
    assert device["name"] == "c3t-imu-sim" and device["channels"] == ACC and device["resampled_to_hz"] is None
    summary = rows[-1]
    assert summary["type"] == "summary" and summary["samples"] == len(session.samples) and summary["lost"] == 0
    assert not summary["torch_imported"]
    sim_score, binary_score = _scores(rows, session, binary_events, window_s)
    # the same samples quantised to the simulator's 16 g counts: the binary replay's score
    assert sim_score.correct >= binary_score.correct - 1, (sim_score.as_dict(), binary_score.as_dict())
    assert sim_score.correct >= 6, sim_score.as_dict()


def test_device_without_a_gyroscope_against_the_six_channel_bundle_is_one_line(sim, tmp_path):
    require_default_bundle()
    rng = np.random.default_rng(4)
    samples = np.concatenate([np.array([0.02, -0.1, 0.99]) + rng.normal(0, 0.01, (400, 3)),
                              rng.normal(0, 2.0, (400, 3))], axis=1)
    csv = write_csv(tmp_path / "still.csv", samples)
    code, rows, err = _stream(PtyDevice(str(tmp_path / "ttyIMU")), _simulator_feed(sim, csv), settle_s=20)
    assert code == 1 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("c3t-edge stream: error: the device (c3t-imu-sim) sends channels ax,ay,az but the "
                           "model needs ax,ay,az,gx,gy,gz: gx is missing"), last
    assert last.endswith("(c3t-edge train --channels acc)"), last
    assert not [r for r in rows if r["type"] == "action"]


def test_channels_are_selected_once_when_the_trials_are_loaded(utd_mhad_dir):
    """``load_arrays`` keeps the configured channels: every window (training batches, the standardiser,
    evaluation) has 3 columns, the accelerometer's values; a method refuses trials whose channels
    differ from its configuration."""
    from c3t_edge.methods import MethodData, build_method, default_config
    from c3t_edge.training import load_arrays, make_split

    acc_config = default_config("supervised", placement="wrist", channels="acc", steps=1)
    acc = load_arrays(utd_mhad_dir, acc_config)
    full = load_arrays(utd_mhad_dir, default_config("supervised", placement="wrist"))
    assert acc.channels == tuple(ACC) and full.channels == ("ax", "ay", "az", "gx", "gy", "gz")
    index = np.arange(5)
    acc_windows, _ = acc.windows(index, shift_samples=7, dilation=1.1, with_camera=False)
    full_windows, _ = full.windows(index, shift_samples=7, dilation=1.1, with_camera=False)
    assert acc_windows.shape == full_windows.shape[:2] + (3,)
    np.testing.assert_array_equal(acc_windows, full_windows[:, :, :3])
    split = make_split(acc, "development")
    data = MethodData(acc, split.labelled_camera, split.paired, reveal_paired_labels=True)
    assert data.standardizer.mean.shape == (3,)
    imu, _, _ = data.batch(split.paired[:4], np.random.default_rng(0), jitter_s=0.4, with_camera=False)
    assert tuple(imu.shape) == (4, 180, 3)
    wrong = MethodData(full, split.labelled_camera, split.paired, reveal_paired_labels=True)
    with pytest.raises(ValueError, match="reads IMU channels ax,ay,az, data has ax,ay,az,gx,gy,gz"):
        build_method(acc_config).fit(wrong)


def test_an_unknown_channel_set_is_a_wrong_flag(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "c3t_edge", "train", "--method", "supervised", "--channels", "gyro",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--channels: invalid choice: 'gyro'" in proc.stderr.strip().splitlines()[-1], proc.stderr
