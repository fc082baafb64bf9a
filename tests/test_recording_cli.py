"""`c3t-edge record` as a subprocess: SIGKILL mid-stream, unplug/replug, SIGTERM, --duration, errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from _pty import PtyDevice

from c3t_edge.errors import ProtocolError
from c3t_edge.protocol import CommandCode, command_bytes
from c3t_edge.recording import RecordingReader

RECORD = [sys.executable, "-m", "c3t_edge", "record"]


@pytest.fixture
def device(tmp_path):
    dev = PtyDevice(str(tmp_path / "ttyFAKE"))
    yield dev
    dev.close()


def start_recorder(port: str, out, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*RECORD, "--port", port, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(predicate, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"recorder exited early: {proc.returncode} {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def recorded(path):
    """(data bytes, records, stats) of a recording that may still be growing."""
    try:
        with RecordingReader(path) as r:
            records = list(r.records())
            return b"".join(rec.data for rec in records if rec.kind == "data"), records, r.stats
    except ProtocolError:  # not even a header yet
        return b"", [], None


def test_sigkill_mid_stream_leaves_a_readable_file(device, tmp_path):
    out = tmp_path / "killed.c3trec"
    proc = start_recorder(device.link, out)
    try:
        wait_until(lambda: recorded(out)[2] is not None, proc=proc)  # header written: port is open
        sent = bytearray()
        stop = threading.Event()

        def stream():  # a device streaming 50-byte messages every 2 ms until the kill
            i = 0
            while not stop.is_set():
                msg = i.to_bytes(4, "little") + bytes((i + k) % 256 for k in range(46))
                device.send(msg)
                sent.extend(msg)
                i += 1
                time.sleep(0.002)

        sender = threading.Thread(target=stream)
        sender.start()
        wait_until(lambda: len(recorded(out)[1]) >= 20, proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.05)  # the device goes on streaming into a port nobody reads
        stop.set()
        sender.join()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    data, records, stats = recorded(out)
    assert len(records) >= 20
    assert 0 < len(data) < len(sent)  # the stream went on after the kill
    assert data == bytes(sent[:len(data)])  # every complete record, in order, nothing invented

    # a kill in the middle of a record's write: cut the file inside its last record
    cut = tmp_path / "cut.c3trec"
    shutil.copy(out, cut)
    last = records[-1]
    with open(cut, "r+b") as f:
        f.truncate(os.path.getsize(out) - 5)
    cut_data, cut_records, cut_stats = recorded(cut)
    assert len(cut_records) == len(records) - 1
    assert cut_data == data[:len(data) - len(last.data)]
    assert cut_stats.ignored_tail_bytes == 17 + len(last.data) - 5
    assert cut_stats.tail_problem == "truncated record"


def test_record_survives_unplug_and_stops_cleanly_on_sigterm(device, tmp_path):
    out = tmp_path / "replug.c3trec"
    proc = start_recorder(device.link, out, "--progress-interval", "0.2")
    try:
        wait_until(lambda: recorded(out)[2] is not None, proc=proc)
        device.send(b"A" * 100)
        wait_until(lambda: len(recorded(out)[0]) >= 100, proc=proc)
        device.unplug()
        time.sleep(0.4)
        device.plug()
        # send numbered messages until some arrive: the ones sent before the reopen are lost
        i = 0
        while recorded(out)[0].count(b"B") < 5 * 4:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert i < 200, "the recorder never came back"
            device.send(b"BBBB" + i.to_bytes(2, "big"))
            i += 1
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    assert proc.returncode == 0, err
    assert "link lost" in err and "is back after" in err
    assert "interrupted" in err and "Traceback" not in err

    data, records, stats = recorded(out)
    assert stats.ignored_tail_bytes == 0  # a clean stop ends on a record boundary
    assert data.startswith(b"A" * 100)
    rest = data[100:]
    assert len(rest) % 6 == 0 and len(rest) >= 30
    numbers = [int.from_bytes(rest[k + 4:k + 6], "big") for k in range(0, len(rest), 6)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # contiguous after the gap
    events = [rec.event for rec in records if rec.kind == "event"]
    assert [e["event"] for e in events] == ["disconnected", "reconnected"]
    assert events[1]["gap_end_us"] - events[1]["gap_start_us"] >= 400_000
    # the events sit between the data before and after the outage
    kinds = [rec.kind for rec in records]
    assert kinds.index("event") > 0 and kinds[-1] == "data"


def test_duration_and_one_line_errors(tmp_path):
    out = tmp_path / "d.c3trec"
    started = time.monotonic()
    done = subprocess.run([*RECORD, "--port", "loop://", "--out", str(out), "--duration", "0.5"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    assert "duration reached" in done.stderr
    with RecordingReader(out) as r:
        # loop:// echoes what `record` sends on open (SEND_INFO, START): exactly those bytes come back
        echoed = b"".join(data for _t, data in r.chunks())
        assert r.header.port == "loop://"
    assert echoed == command_bytes(CommandCode.SEND_INFO) + command_bytes(CommandCode.START)

    again = subprocess.run([*RECORD, "--port", "loop://", "--out", str(out), "--duration", "0.1"],
                           capture_output=True, text=True, timeout=30)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    missing = tmp_path / "m.c3trec"
    bad = subprocess.run([*RECORD, "--port", str(tmp_path / "ttyNONE"), "--out", str(missing)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "cannot open serial port" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not missing.exists()


def test_record_from_a_replay_copies_the_stream(tmp_path):
    src = tmp_path / "src.c3trec"
    from c3t_edge.recording import RecordingWriter

    with RecordingWriter(src, port="p", start_wall_time_s=1.0e9) as w:
        for i in range(30):
            w.write_chunk(bytes([i]) * 3, 1.0e9 + i * 0.001)
    out = tmp_path / "copy.c3trec"
    done = subprocess.run([*RECORD, "--port", f"replay://{src}", "--out", str(out)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "stream ended" in done.stderr
    assert recorded(out)[0] == recorded(src)[0]
