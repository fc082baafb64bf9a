"""`c3t-edge replay`, `demo` and `stream` as a user runs them: JSON lines, the readable output, one-line
errors, a recording cut by SIGKILL, and the demo on a fresh clone without ../shared."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _firmware import simulator, write_csv
from _runtime import require_default_bundle
from test_stream_serial import PlugRelay, demo_samples

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
GOLDEN = Path(__file__).resolve().parent / "golden" / "demo_wrist_session.json"


def c3t(*args: str, cwd=None, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(autouse=True)
def _bundle():
    require_default_bundle()


def test_replay_json_lines_match_the_golden_events():
    proc = c3t("replay", str(DEMO), "--as-fast-as-possible", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["type"] == "device" and lines[-1]["type"] == "summary"
    summary = lines[-1]
    golden = json.loads(GOLDEN.read_text())
    n_actions = sum(r[0] == "action" for r in golden["events"])  # the shipped bundle's: 18 (16 + 2 repeated)
    assert n_actions >= 16
    assert summary["events"] == n_actions and summary["stopped"] == "ended" and summary["torch_imported"] is False
    acts = [[x["type"], x["t"], x["label"]] for x in lines if x["type"] in ("action", "no_action")]
    assert acts == [r[:3] for r in golden["events"]]
    for x in lines:
        if x["type"] == "action":
            assert set(x) == {"type", "t", "label", "confidence", "latency_ms", "window"}
            assert x["window"][1] == x["t"] and 0 < x["confidence"] <= 1


def test_replay_readable_output_and_summary():
    proc = c3t("replay", str(DEMO), "--speed", "200")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    golden = json.loads(GOLDEN.read_text())["events"]
    n_actions, n_no_action = (sum(r[0] == kind for r in golden) for kind in ("action", "no_action"))
    assert sum("swipe left" in line for line in out) == 1
    # (most actions end in "no action" before the next one starts: 14 of 16 with the shipped bundle)
    assert sum("no action" in line for line in out) == n_no_action >= n_actions - 3
    assert "summary: 458 frames, 4561 samples" in proc.stderr and f"{n_actions} events" in proc.stderr
    assert "latency p50" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["replay", "missing.c3trec"], "no such recording"),
    (["replay", str(DEMO), "--calibration", "x.json"], "calibration profile x.json not found"),
    (["replay", str(DEMO), "--model", "/nonexistent"], "no model bundle"),
    (["replay", str(DEMO), "--speed", "0"], "--speed must be > 0"),
    (["replay", str(DEMO), "--confidence", "0.2", "--release", "0.5"], "exit <= enter"),
    (["stream", "--port", "/dev/c3t-no-such-port"], "cannot open serial port"),
    (["stream", "--port", "loop://", "--binary", "--rate", "100"], "--rate is for text-mode devices"),
    (["demo", "--speed", "-1"], "--speed must be > 0"),
])
def test_errors_are_one_line(args, message, tmp_path):
    proc = c3t(*args, cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len([x for x in proc.stderr.splitlines() if "error" in x]) == 1


def test_replay_of_a_file_not_a_recording(tmp_path):
    bad = tmp_path / "bad.c3trec"
    bad.write_bytes(b"not a recording at all")
    proc = c3t("replay", str(bad), "--fast")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_demo_on_a_fresh_clone_without_the_dataset(tmp_path):
    """The committed tree alone (git clone), no ../shared, no C3T_DATA: the demo runs and is honest."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "fresh" / "c3t-edge"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone)], check=True, timeout=60)
    for rel in ("c3t_edge/runtime", "c3t_edge/assets/demo", "c3t_edge/commands/demo.py",
                "c3t_edge/assets/default_bundle"):
        assert (clone / rel).exists(), f"{rel} is not committed: a fresh clone cannot run the demo"
    env = {k: v for k, v in os.environ.items() if k not in ("C3T_DATA", "PYTHONPATH")}
    env["PYTHONPATH"] = str(clone)
    proc = c3t("demo", cwd=clone, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "16 real UTD-MHAD wrist trials" in out
    assert "NOT held out" in out  # the default bundle saw subjects 1-6: said plainly
    assert "actions recognised correctly" in out
    js = c3t("demo", "--json", cwd=clone, env=env)
    demo = json.loads(js.stdout.splitlines()[-1])
    assert demo["type"] == "demo" and demo["score"]["n_true"] == 16 and demo["score"]["accuracy"] >= 0.9


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulator(tmp_path_factory)


def test_record_killed_with_sigkill_then_replayed(sim, tmp_path):
    """c3t-imu-sim -> pty -> `c3t-edge record`, killed with SIGKILL mid-stream: `replay` reads the
    file up to the last full record and recognises the actions in it."""
    csv = write_csv(tmp_path / "session.csv", demo_samples())
    relay = PlugRelay(str(tmp_path / "ttyIMU"))
    device = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", "50", "--out", relay.a_slave_name,
                               "--speed", "10", "--hold", "--info-every", "25"], stderr=subprocess.PIPE)
    out = tmp_path / "killed.c3trec"
    rec = subprocess.Popen([sys.executable, "-m", "c3t_edge", "record", "--port", relay.link, "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while (not out.exists() or out.stat().st_size < 4000) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # about 25 s of device time
        rec.send_signal(signal.SIGKILL)
        rec.wait(5)
    finally:
        for proc in (rec, device):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        relay.close()
    assert rec.returncode == -signal.SIGKILL
    # cut the file inside its last record too, as a kill during a write would
    data = out.read_bytes()
    out.write_bytes(data[:-7])
    proc = c3t("replay", str(out), "--fast", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["ignored_tail_bytes"] > 0
    assert summary["device_seconds"] > 10
    labels = [x["label"] for x in lines if x["type"] == "action"]
    golden = [r[2] for r in json.loads(GOLDEN.read_text())["events"] if r[0] == "action"]
    # the device started before `record` opened the port, so the file starts mid-session (its
    # frames before the next DEVICE_INFO cannot be scaled and are dropped), so its first action may be
    # cut short and is not checked
    assert len(labels) >= 3 and all(lab in golden for lab in labels[1:]), labels
    i = golden.index(labels[-1])
    assert labels[-2] == golden[i - 1]  # consecutive actions, in the session's order


def test_a_device_the_bundle_cannot_use_is_one_clear_error(tmp_path):
    """A 25 Hz device (too slow to resample soundly for a 50 Hz bundle): one line, exit 1, and the
    summary of what arrived before it is still written."""
    import numpy as np

    from c3t_edge.runtime.sessions import Session, write_session_recording

    session = Session(np.zeros((200, 6), np.float32), 25.0, 1.0, [], np.zeros(6))
    path = write_session_recording(session, tmp_path / "slow.c3trec")
    proc = c3t("replay", str(path), "--fast")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "25 Hz" in proc.stderr and "resampling is supported" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("c3t-edge replay: error:")


def test_stream_detects_a_text_mode_device(sim, tmp_path):
    """c3t-imu-sim --text (an Edge Impulse data forwarder sketch) -> pty -> `c3t-edge stream` without
    --text: the text mode is detected and actions are recognised, in the session's order. The
    simulator plays 10x faster than real time, so the rate is given (--rate 50, the forwarder's
    --frequency): inferred from line timing, it would be 500 Hz (tests/test_forwarder_parity.py)."""
    csv = write_csv(tmp_path / "session.csv", demo_samples()[:2000])  # the first 40 s
    relay = PlugRelay(str(tmp_path / "ttyTXT"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stream = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", relay.link, "--json",
                               "--rate", "50"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)  # the port is open: the device starts printing
    device = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", "50", "--out", relay.a_slave_name,
                               "--speed", "10", "--text"], stderr=subprocess.PIPE)
    try:
        device.wait(30)
        time.sleep(0.5)
        stream.send_signal(signal.SIGINT)
        out, err = stream.communicate(timeout=15)
    finally:
        for proc in (stream, device):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        relay.close()
    assert stream.returncode == 0 and "Traceback" not in err, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["type"] == "device" and lines[0]["name"] == "text"
    assert lines[-1]["type"] == "summary" and lines[-1]["samples"] > 1500
    labels = [x["label"] for x in lines if x["type"] == "action"]
    golden = [r[2] for r in json.loads(GOLDEN.read_text())["events"] if r[0] == "action"]
    assert len(labels) >= 5 and labels == golden[golden.index(labels[0]):golden.index(labels[0]) + len(labels)]


def test_record_asks_a_waiting_device_to_describe_itself_and_start(sim, tmp_path):
    """A device that stays silent until START (`--wait-start`): `record` sends SEND_INFO and START on
    open, so the recording holds DEVICE_INFO and samples that `decode` can scale."""
    csv = write_csv(tmp_path / "session.csv", demo_samples()[:500])
    relay = PlugRelay(str(tmp_path / "ttyWAIT"))
    device = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", "50", "--out", relay.a_slave_name,
                               "--speed", "20", "--wait-start", "--hold"], stderr=subprocess.PIPE)
    out = tmp_path / "asked.c3trec"
    try:
        rec = c3t("record", "--port", relay.link, "--out", str(out), "--duration", "2.5", timeout=30)
    finally:
        device.kill()
        device.wait()
        relay.close()
    assert rec.returncode == 0, rec.stderr
    decoded = c3t("decode", str(out), "--json")
    assert decoded.returncode == 0, decoded.stderr
    samples = [json.loads(x) for x in decoded.stdout.splitlines()]
    assert len(samples) >= 400 and samples[0]["t"] == 0.0
    assert "device_info" in decoded.stderr
