"""Serial end to end: c3t-imu-sim -> pty -> `c3t-edge stream --json` (a subprocess) -> JSON events,
then the port disappears and comes back: the stream reconnects, reports the gap and keeps
recognising. The device plays the shipped demo session (real UTD-MHAD trials with rest between)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest
from _firmware import simulator, write_csv
from _pty import raw_pty_at
from _runtime import require_default_bundle

from c3t_edge.protocol import FrameDecoder, SampleBatch
from c3t_edge.recording import RecordingReader
from c3t_edge.runtime.sessions import TruthSegment, load_truth, score_events

ASSETS = Path(__file__).resolve().parents[1] / "c3t_edge" / "assets" / "demo"
SPEED = 8.0  # device seconds per wall second
T0 = json.loads((ASSETS / "wrist_session.json").read_text())["t0_s"]
MODEL = os.environ.get("C3T_RUNTIME_TEST_MODEL", "default")  # a bundle directory, for development


def demo_samples() -> np.ndarray:
    """The samples of the shipped demo recording (as the device in it sent them)."""
    dec = FrameDecoder()
    out = []
    with RecordingReader(ASSETS / "wrist_session.c3trec") as reader:
        for _, data in reader.chunks():
            out += [i.samples for i in dec.feed(data) if isinstance(i, SampleBatch)]
    return np.concatenate(out)


class PlugRelay:
    """The simulator writes to pty A; a thread copies A to pty B, whose slave end is reached through
    the symlink ``link`` (the PORT), and B back to A (host commands). ``unplug()`` removes the link
    and closes B, as when a USB serial adapter is pulled; bytes the device sends meanwhile are lost."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.a_master, a_slave = os.openpty()
        tty.setraw(self.a_master)
        tty.setraw(a_slave)
        self.a_slave_name = os.ttyname(a_slave)
        self._a_slave = a_slave  # kept open so A never hangs up
        self.b_master: int | None = None
        self.b_slave: int | None = None
        self.lock = threading.Lock()
        self.forwarded = 0
        self.dropped = 0
        self.running = True
        self.plug()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def plug(self) -> None:
        with self.lock:
            self.b_master, self.b_slave = raw_pty_at(self.link)

    def unplug(self) -> None:
        with self.lock:
            os.unlink(self.link)
            os.close(self.b_master)
            os.close(self.b_slave)
            self.b_master = self.b_slave = None

    def _run(self) -> None:
        while self.running:
            with self.lock:
                fds = [self.a_master] + ([self.b_master] if self.b_master is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.01)
            except (OSError, ValueError):
                continue
            with self.lock:
                for fd in ready:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        continue
                    if fd == self.a_master:
                        if self.b_master is not None:
                            os.write(self.b_master, data)
                            self.forwarded += len(data)
                        else:
                            self.dropped += len(data)
                    elif fd == self.b_master:
                        os.write(self.a_master, data)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        for fd in (self.a_master, self._a_slave, self.b_master, self.b_slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulator(tmp_path_factory)


def test_stream_over_a_pty_survives_unplug_and_replug(sim, tmp_path):
    if MODEL == "default":
        require_default_bundle()
    truth = load_truth(ASSETS / "wrist_session.json")
    shift = 0.0
    csv = write_csv(tmp_path / "session.csv", demo_samples())
    relay = PlugRelay(str(tmp_path / "ttyIMU"))
    device = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", "50", "--out", relay.a_slave_name,
                               "--speed", str(SPEED), "--wait-start", "--hold"], stderr=subprocess.PIPE)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stream = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", relay.link, "--json",
                               "--windows", "--model", MODEL],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in stream.stdout], daemon=True)
    reader.start()
    try:
        def wait_for(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if pred():
                    return True
                time.sleep(0.02)
            return False

        # unplug once the third action has been recognised, for 0.6 s (about 5 s of device time)
        assert wait_for(lambda: sum(1 for x in lines if x["type"] == "action") >= 3, 30), lines
        relay.unplug()
        time.sleep(0.6)
        relay.plug()
        # the session plays out (windows are reported with --windows); the device clock has its own
        # origin: the first window starts at the session's first sample
        first = next(x for x in lines if x["type"] == "window")
        shift = first["window"][0] - T0
        end = truth[-1].end_s + shift + 1.0
        assert wait_for(lambda: any(x["type"] == "window" and x["t"] > end for x in lines), 40), lines[-3:]
        stream.send_signal(signal.SIGINT)
        assert stream.wait(10) == 0
        reader.join(5)
    finally:
        for proc in (stream, device):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        relay.close()
    err = stream.stderr.read()
    assert "Traceback" not in err, err
    types = [x["type"] for x in lines]
    assert types[-1] == "summary"
    summary = lines[-1]
    links = [x for x in lines if x["type"] == "link"]
    assert [x["state"] for x in links] == ["disconnected", "reconnected"]
    assert 0.3 < links[1]["gap_s"] < 5
    gaps = [x for x in lines if x["type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["cause"] == "link" and not gaps[0]["filled"]
    assert gaps[0]["duration_s"] > 0.3 * SPEED  # device time lost while unplugged
    assert summary["link_gaps"] == 1 and summary["lost"] > 0 and not summary["torch_imported"]
    # recognition before and after the outage: actions wholly outside the gap are scored
    gap_from, gap_to = gaps[0]["t_from"], gaps[0]["t"]
    window_s = 3.6
    truth = [TruthSegment(s.label, s.start_s + shift, s.end_s + shift) for s in truth]
    clear = [s for s in truth if s.end_s < gap_from or s.start_s > gap_to + window_s]
    actions = [x for x in lines if x["type"] == "action"]
    score = score_events(actions, clear, slack_s=window_s)
    after = [s for s in clear if s.start_s > gap_to]
    assert len(after) >= 5
    assert score.accuracy >= 0.6, score.as_dict()
    assert sum(m["correct"] for m, s in zip(score.matches, clear, strict=True) if s.start_s > gap_to) >= 3
