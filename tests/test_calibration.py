"""Sensor calibration: profile math and file format, the simulator's faults, recovery of injected
faults from a calibration session made of real UTD-MHAD sensor noise, clock drift, runtime use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from _firmware import load_inertial, run_sim, simulator, utd_trials, write_csv

from c3t_edge.calibration import CalibrationProfile, invert_axes, load_profile, parse_axes
from c3t_edge.calibration.estimate import SessionCollector, estimate_clock_drift, read_recording
from c3t_edge.calibration.synthetic import calibration_session, quiet_noise
from c3t_edge.cli import main as cli_main
from c3t_edge.errors import CalibrationError
from c3t_edge.protocol import FrameDecoder, SampleBatch, default_imu_info
from c3t_edge.recording import RecordingWriter

# The faults injected into the simulated device (and what must come back).
SIM_AXES = "y,-x,z"  # reported x = physical y, reported y = -physical x
ACC_SCALE = (1.03, 0.975, 1.012)
BIAS = (0.06, -0.035, 0.025, 2.5, -1.8, 0.9)
DRIFT_PPM = 350.0


def fault_args() -> list[str]:
    return ["--axes", SIM_AXES, "--scale", ",".join(map(str, ACC_SCALE)), "--bias", ",".join(map(str, BIAS))]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulator(tmp_path_factory)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """Real still-sensor noise from the quietest moments of every 4th UTD-MHAD trial."""
    return quiet_noise([load_inertial(p) for p in utd_trials()[::4]])


# ------------------------------------------------------------------------------------------ profile
def _miscalibrate(true: np.ndarray, axes: str, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    src, sign = parse_axes(axes)
    idx = np.concatenate((src, np.array(src) + 3))
    return true[:, idx] * np.tile(sign, 2) * scale + bias


def test_profile_undoes_the_fault_model_exactly() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(0, [1, 1, 1, 100, 100, 100], (500, 6))
    scale = np.array([*ACC_SCALE, 1.02, 0.99, 1.0])
    raw = _miscalibrate(true, SIM_AXES, scale, np.array(BIAS))
    prof = CalibrationProfile(acc_bias_g=BIAS[:3], acc_scale=ACC_SCALE, gyro_bias_dps=BIAS[3:],
                              gyro_scale=scale[3:], axes=invert_axes(SIM_AXES))
    assert prof.axes == ["-y", "x", "z"]
    np.testing.assert_allclose(prof.apply(raw.astype(np.float32)), true, rtol=1e-4, atol=2e-3)
    assert prof.apply(raw.astype(np.float32)).dtype == np.float32


def test_profile_file_round_trip_and_refusals(tmp_path) -> None:
    prof = CalibrationProfile(acc_bias_g=[0.01, 0, 0], axes=["z", "x", "y"], device_id=0x5133,
                              device_name="sim", clock_drift_ppm=12.5)
    path = prof.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "c3t-edge-calibration" and doc["version"] == 1 and "convention" in doc
    back = load_profile(path)
    assert back.axes == ["z", "x", "y"] and back.device_id == 0x5133 and back.clock_drift_ppm == 12.5
    np.testing.assert_allclose(back.acc_bias_g, [0.01, 0, 0])
    for bad, message in [({"format": "x"}, "not a c3t-edge calibration profile"),
                         ({**doc, "version": 9}, "version 9 is not supported"),
                         ({**doc, "axes": ["x", "x", "z"]}, "signed permutation"),
                         ({**doc, "acc": {"scale": [1, 0, 1]}}, "must be > 0"),
                         ({**doc, "gyro": {"bias_dps": [1, 2]}}, "expected 3 finite numbers")]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(CalibrationError, match=message):
            load_profile(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_profile(tmp_path / "junk.json")


def test_runtime_loads_the_profile_and_warns_on_another_device(tmp_path) -> None:
    from _runtime import AxisModel, synthetic_session

    from c3t_edge.runtime.events import Notice
    from c3t_edge.runtime.options import load_calibration
    from c3t_edge.runtime.pipeline import StreamPipeline
    from c3t_edge.runtime.sessions import session_stream

    path = CalibrationProfile(device_id=0xABCD, device_name="left wrist").save(tmp_path / "p.json")
    assert load_calibration(None).apply(np.ones((1, 6))).shape == (1, 6)
    prof = load_calibration(str(path))
    assert isinstance(prof, CalibrationProfile)
    from c3t_edge.protocol.frames import encode_info_frame, wire

    info = wire(encode_info_frame(0, 0, default_imu_info(50, 16, 2000, device_id=0x77)))
    stream = info + b"".join(b for _, b in session_stream(synthetic_session([("x", 2.0)]))[1:])
    pipe = StreamPipeline(AxisModel(), calibration=prof, warm_up=False)
    notices = [e for e in pipe.feed(stream) if isinstance(e, Notice)]
    assert len(notices) == 1 and "0x000000000000abcd" in notices[0].message and "left wrist" in notices[0].message
    assert CalibrationProfile(device_id=0x77).device_warning(default_imu_info(50, 16, 2000, device_id=0x77)) is None
    assert prof.device_warning(default_imu_info(50, 16, 2000)) is None  # a device without an id: no warning


# ------------------------------------------------------------------------------------------ simulator
def test_simulator_faults_transform_samples_in_order(sim, tmp_path) -> None:
    csv = write_csv(tmp_path / "s.csv", np.array([[0.0, 0.0, 1.0, 0, 0, 0], [1.0, 0.0, 0.0, 10, 20, 30]]))
    items = FrameDecoder().feed(run_sim(sim, "--csv", str(csv), *fault_args()))
    got = np.concatenate([b.samples for b in items if isinstance(b, SampleBatch)])
    want = _miscalibrate(np.loadtxt(csv, delimiter=",", skiprows=1), SIM_AXES,
                         np.array([*ACC_SCALE, 1, 1, 1]), np.array(BIAS))
    assert np.all(np.abs(got - want) <= np.array([16 / 32768] * 3 + [2000 / 32768] * 3))
    for bad in (["--axes", "x,x,z"], ["--bias", "1,2"], ["--scale", "1,1"], ["--rate-error", "x"]):
        proc = subprocess.run([str(sim), "--csv", str(csv), *bad], capture_output=True)
        assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1, bad


# ------------------------------------------------------------------------------------------ recovery
def _timed_recording(stream: bytes, path, drift_ppm: float, seed: int = 0, speed: float = 1.0,
                     busy_s: tuple[float, float] | None = None):
    """One record per frame, received at device time / (1 + drift) plus a random link latency
    (0.3-3 ms; a tenth of the frames 5-30 ms late), as a real-time link with a drifting device
    clock would deliver them (synthetic host time: the session is ~40 s long). ``speed`` > 1: the
    frames arrive that many times faster than real time (a replay, not a live link). ``busy_s``:
    (from, to) device seconds in which the host was busy and every frame arrived 20-40 ms late."""
    rng = np.random.default_rng(seed)
    dec = FrameDecoder()
    start = 1.7e9
    t_dev = 0.0
    with RecordingWriter(path, port="sim", start_wall_time_s=start, overwrite=True, fsync_interval_s=None) as w:
        for frame in stream.split(b"\x00")[:-1]:
            for item in dec.feed(frame + b"\x00"):
                if isinstance(item, SampleBatch):
                    t_dev = float(item.t[-1])
            late = rng.uniform(3e-4, 3e-3) + (rng.uniform(5e-3, 3e-2) if rng.random() < 0.1 else 0.0)
            if busy_s is not None and busy_s[0] <= t_dev < busy_s[1]:
                late += rng.uniform(2e-2, 4e-2)
            w.write_chunk(frame + b"\x00", start + t_dev / (1 + drift_ppm * 1e-6) / speed + late)
    return path


def test_calibrate_recording_recovers_injected_faults(sim, noise, tmp_path, capsys) -> None:
    session = calibration_session(noise, seed=3)
    csv = write_csv(tmp_path / "session.csv", session.samples)
    stream = run_sim(sim, "--csv", str(csv), "--device-id", "0x1234", "--rate-error", str(DRIFT_PPM), *fault_args())
    rec = _timed_recording(stream, tmp_path / "session.c3trec", DRIFT_PPM)
    out = tmp_path / "profile.json"
    assert cli_main(["calibrate", "--recording", str(rec), "--out", str(out), "--mounting", "test"]) == 0
    assert "axes        model x,y,z = device -y,x,z" in capsys.readouterr().err
    prof = load_profile(out)
    assert prof.axes == invert_axes(SIM_AXES)  # exactly
    np.testing.assert_allclose(prof.acc_bias_g, BIAS[:3], atol=0.01)
    np.testing.assert_allclose(prof.acc_scale, ACC_SCALE, rtol=0.01)
    np.testing.assert_allclose(prof.gyro_bias_dps, BIAS[3:], atol=0.5)
    assert abs(prof.clock_drift_ppm - DRIFT_PPM) < 100
    assert prof.device_id == 0x1234 and prof.mounting == "test"
    # the corrected still stretches read 1 g, in the model's frame
    raw = read_recording(rec)
    fixed = prof.apply(raw.samples.astype(np.float32))
    for what, a, b in session.segments:
        if what.startswith("face"):
            np.testing.assert_allclose(fixed[a + 10:b - 10, :3].mean(axis=0), session.samples[a:b, :3].mean(axis=0),
                                       atol=0.01)
    # a second run refuses to overwrite; a session without the six faces is refused in one line
    assert cli_main(["calibrate", "--recording", str(rec), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    short = _timed_recording(run_sim(sim, "--csv", str(write_csv(tmp_path / "s.csv", session.samples[:400]))),
                             tmp_path / "short.c3trec", 0.0)
    assert cli_main(["calibrate", "--recording", str(short), "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no still pose with gravity along the device's" in err and "\n" not in err


def test_clock_drift_from_timed_frames_and_none_when_not_real_time(sim, noise, tmp_path) -> None:
    """A calibration session, one timed record per frame (186 frames of 10 samples): received in real
    time, with a stretch in which the host was busy, the device clock's drift is recovered, slow or
    fast; the same frames received 12x faster than real time, or all at one instant, give no clock
    figure, not a wrong one."""
    session = calibration_session(noise, seed=4)
    stream = run_sim(sim, "--csv", str(write_csv(tmp_path / "s.csv", session.samples)), *fault_args())
    for ppm in (-800.0, 0.0, DRIFT_PPM):
        clock = read_recording(_timed_recording(stream, tmp_path / f"{ppm}.c3trec", ppm, seed=7,
                                                busy_s=(29.0, 33.0))).clock
        assert len(clock) > 150  # far above the "too few timed frames" floor: the fit itself runs
        drift, details = estimate_clock_drift(clock)
        assert drift is not None, details
        assert abs(drift - ppm) < 20, details
        assert details["bins"] - 8 <= details["bins_used"] <= details["bins"] - 3, details  # busy ones out
    for speed in (12.0, 1e9):  # 1e9: every frame at (almost) the same instant
        clock = read_recording(_timed_recording(stream, tmp_path / f"fast{speed}.c3trec", DRIFT_PPM,
                                                speed=speed)).clock
        assert len(clock) > 150
        drift, why = estimate_clock_drift(clock)
        assert drift is None and "not recorded in real time" in why["reason"], why


def test_clock_drift_from_a_realtime_simulator(sim, tmp_path) -> None:
    """--rate-error with --realtime: frames come faster by the host clock; five seconds suffice (lower envelope of
    the arrival times, busy stretches dropped: within ~50 ppm with both cores of this machine busy)."""
    rate, seconds, ppm = 200.0, 5.0, 2500.0
    csv = write_csv(tmp_path / "still.csv", np.tile([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (int(rate * seconds), 1)))
    proc = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", str(rate), "--samples-per-frame", "2",
                             "--realtime", "--rate-error", str(ppm)], stdout=subprocess.PIPE)
    col = SessionCollector()
    fd = proc.stdout.fileno()
    deadline = time.time() + 30
    while time.time() < deadline:
        data = os.read(fd, 65536)
        if not data:
            break
        col.feed(data, time.time())
    proc.wait(timeout=10)
    drift, details = estimate_clock_drift(col.clock)
    assert drift is not None, details
    assert abs(drift - ppm) < 100, details


def test_calibrate_command_help_and_cli_errors(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "c3t_edge", "calibrate", "--recording", str(tmp_path / "none"),
                           "--out", str(tmp_path / "p.json")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().endswith("not found") and "Traceback" not in proc.stderr


def test_guided_procedure_on_a_replayed_session(sim, noise, tmp_path, capsys) -> None:
    """`calibrate --port`: the steps advance from the samples alone; same profile as --recording."""
    session = calibration_session(noise, seed=5)
    stream = run_sim(sim, "--csv", str(write_csv(tmp_path / "s.csv", session.samples)), *fault_args())
    rec = _timed_recording(stream, tmp_path / "live.c3trec", 0.0)
    out, kept = tmp_path / "live.json", tmp_path / "kept.c3trec"
    assert cli_main(["calibrate", "--port", f"replay://{rec}", "--speed", "40", "--out", str(out),
                     "--save-recording", str(kept)]) == 0
    err = capsys.readouterr().err
    assert "got it (6/6)" in err and "turn about +z: got it" in err
    prof = load_profile(out)
    assert prof.axes == invert_axes(SIM_AXES)
    np.testing.assert_allclose(prof.acc_bias_g, BIAS[:3], atol=0.01)
    again = tmp_path / "again.json"
    assert cli_main(["calibrate", "--recording", str(kept), "--out", str(again)]) == 0
    np.testing.assert_allclose(load_profile(again).acc_scale, prof.acc_scale)
    # a session that stops before the turns: one clear line
    cut = _timed_recording(run_sim(sim, "--csv", str(write_csv(tmp_path / "c.csv", session.samples[:1300]))),
                           tmp_path / "cut.c3trec", 0.0)
    assert cli_main(["calibrate", "--port", f"replay://{cut}", "--speed", "40", "--out", str(tmp_path / "c.json")]) == 1
    assert "stream ended during the calibration" in capsys.readouterr().err


def test_calibrate_a_text_mode_recording(sim, noise, tmp_path) -> None:
    """Edge Impulse forwarder lines: same faults recovered; no clock figure (text carries no time)."""
    session = calibration_session(noise, seed=6)
    text = run_sim(sim, "--csv", str(write_csv(tmp_path / "s.csv", session.samples)), "--text", *fault_args())
    rec = tmp_path / "text.c3trec"
    with RecordingWriter(rec, port="sim", start_wall_time_s=1.7e9, overwrite=True, fsync_interval_s=None) as w:
        for i in range(0, len(text), 4096):
            w.write_chunk(text[i:i + 4096], 1.7e9 + i / 4096 * 0.05)
    out = tmp_path / "text.json"
    assert cli_main(["calibrate", "--recording", str(rec), "--text", "--out", str(out)]) == 1  # no --rate
    assert cli_main(["calibrate", "--recording", str(rec), "--text", "--rate", "50", "--out", str(out)]) == 0
    prof = load_profile(out)
    assert prof.axes == invert_axes(SIM_AXES) and prof.clock_drift_ppm is None
    np.testing.assert_allclose(prof.acc_scale, ACC_SCALE, rtol=0.01)


def test_replay_with_a_profile_applies_it(tmp_path, capsys) -> None:
    """`replay --calibration`: an identity profile changes nothing; a rotated mounting changes the events."""
    from _runtime import require_default_bundle

    from c3t_edge.commands.demo import RECORDING  # the shipped demo session

    require_default_bundle()
    demo = str(RECORDING)
    runs = {}
    for name, axes in (("none", None), ("identity", ["x", "y", "z"]), ("rotated", ["-x", "-y", "z"])):
        args = ["replay", demo, "--json", "--as-fast-as-possible"]
        if axes is not None:
            args += ["--calibration", str(CalibrationProfile(axes=axes).save(tmp_path / f"{name}.json"))]
        assert cli_main(args) == 0
        runs[name] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    labels = {k: [e.get("label") for e in v if e.get("type") == "action"] for k, v in runs.items()}
    assert labels["identity"] == labels["none"] and labels["rotated"] != labels["none"]


def test_guided_procedure_over_a_serial_pty(sim, noise, tmp_path) -> None:
    """`calibrate --port /dev/pts/N` against the simulator as a serial device (it waits for START)."""
    import select
    import threading
    import tty

    session = calibration_session(noise, seed=7)
    csv = write_csv(tmp_path / "s.csv", session.samples)
    dev_master, dev_slave = os.openpty()
    host_master, host_slave = os.openpty()
    for fd in (dev_master, dev_slave, host_master, host_slave):
        tty.setraw(fd)
    running = True

    def relay() -> None:  # device pty <-> host pty, both ways (a null-modem cable)
        while running:
            ready, _, _ = select.select([dev_master, host_master], [], [], 0.02)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(host_master if fd == dev_master else dev_master, data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    device = subprocess.Popen([str(sim), "--csv", str(csv), "--out", os.ttyname(dev_slave), "--speed", "12",
                               "--wait-start", "--hold", *fault_args()], stderr=subprocess.PIPE)
    try:
        out = tmp_path / "pty.json"
        proc = subprocess.run([sys.executable, "-m", "c3t_edge", "calibrate", "--port", os.ttyname(host_slave),
                               "--out", str(out), "--step-timeout", "20"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        prof = load_profile(out)
        assert prof.axes == invert_axes(SIM_AXES) and prof.device_id == 0x5133
        np.testing.assert_allclose(prof.gyro_bias_dps, BIAS[3:], atol=0.5)
        assert prof.clock_drift_ppm is None  # played 12x faster than real time: no clock figure
    finally:
        device.kill()
        device.wait()
        running = False
        thread.join(2)
        for fd in (dev_master, dev_slave, host_master, host_slave):
            os.close(fd)
