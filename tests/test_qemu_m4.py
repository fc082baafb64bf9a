"""The device library on a Cortex-M4F: ``make -C firmware_bridge qemu`` runs in QEMU's ``mps2-an386`` board, a
device that ``c3t-edge record`` and ``stream`` reach over TCP (``socket://``), as a user runs them.

- the samples the firmware sends are the CSV's, quantized at the scales its DEVICE_INFO declares;
- ``stream`` recognises the shipped demo session played by the firmware exactly as ``replay`` does on the
  host (the golden events), shifted only by the device's clock origin;
- every boot of the firmware has its own boot id (PROTOCOL.md section 4: how a host tells a reboot from a
  replay of frames it already has);
- QEMU killed mid-stream and started again is a device reboot, whether the device was mid-data or had
  reached its end of data: the stream reconnects, reports a reset, restarts its windows and recognises the
  session again from its start.

The firmware is built with the machine's ``arm-none-eabi-gcc`` into a temporary folder; CI installs it and
``qemu-system-arm`` (.ci/run): there a missing tool fails these tests, elsewhere it skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from _firmware import FIRMWARE, write_csv
from _runtime import require_default_bundle
from test_stream_cli import GOLDEN
from test_stream_serial import demo_samples

from c3t_edge.protocol import CommandCode, DeviceEvent, EventCode, FrameDecoder, SampleBatch, command_bytes
from c3t_edge.protocol.frames import encode_command_frame, wire
from c3t_edge.recording import RecordingReader

DEFAULT_CSV = FIRMWARE / "qemu" / "data" / "utd_mhad_s1_t1.csv"
DEMO_SPEED = 20  # device seconds per wall second for the demo session (91 s of samples in under 5 s)
ACC_SCALE, GYRO_SCALE = 16.0 / 32768, 2000.0 / 32768  # what the firmware declares (+/-16 g, +/-2000 deg/s)


def require_tools() -> None:
    """arm-none-eabi-gcc, make and qemu-system-arm, or a skip (a failure on CI, which installs them)."""
    missing = [t for t in ("arm-none-eabi-gcc", "make", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        message = (f"{', '.join(missing)} not installed "
                   "(apt install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@cache
def _build(out_dir: str, make_vars: tuple[tuple[str, str], ...]) -> Path:
    """``make -C firmware_bridge qemu VAR=VALUE...`` from a copy of the sources in ``out_dir``; the ELF."""
    src = Path(out_dir) / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(FIRMWARE, src, ignore=shutil.ignore_patterns("build"))
    proc = subprocess.run(["make", "-C", str(src), "qemu", f"PYTHON={sys.executable}",
                           *(f"{k}={v}" for k, v in make_vars)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"make qemu failed:\n{proc.stdout}\n{proc.stderr}"
    return src / "build" / "qemu" / "c3t-qemu-m4.elf"


def build_firmware(tmp_path_factory: pytest.TempPathFactory, name: str, **make_vars: object) -> Path:
    require_tools()
    base = tmp_path_factory.getbasetemp() / f"qemu_{name}"
    base.mkdir(exist_ok=True)
    return _build(str(base), tuple(sorted((k, str(v)) for k, v in make_vars.items())))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuDevice:
    """``qemu-system-arm -M mps2-an386 -serial tcp:127.0.0.1:PORT,server=on,wait=on -kernel ELF``: started
    (listening on PORT, the core held until a host connects), killed (the board loses power) and started
    again on the same PORT.

    ``start(log=PATH)``: QEMU also copies every byte the device sends on its UART to PATH (written as it
    is sent, the file emptied at start): what the device did, seen from the device's side."""

    def __init__(self, elf: Path, port: int) -> None:
        self.elf, self.port = elf, port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0, log: Path | None = None) -> None:
        link = f"socket,id=link,host=127.0.0.1,port={self.port},server=on,wait=on"
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
             "-chardev", link + (f",logfile={log}" if log is not None else ""), "-serial", "chardev:link",
             "-kernel", str(self.elf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:  # QEMU says so on stderr once it listens
            line = self.proc.stderr.readline()
            seen.append(line)
            if "waiting for connection" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise AssertionError(f"QEMU did not start listening on port {self.port}: {''.join(seen)}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class DeviceLog:
    """What the device sent in one boot (``QemuDevice.start(log=...)``), decoded from QEMU's copy."""

    def __init__(self, path: Path) -> None:
        dec = FrameDecoder()
        items = dec.feed(path.read_bytes()) if path.exists() else []
        self.info = dec.info  #: the last DEVICE_INFO (None before the first)
        self.events = [i for i in items if isinstance(i, DeviceEvent)]
        times = [b.t[-1] for b in items if isinstance(b, SampleBatch)]
        self.last_sample_t = float(times[-1]) if times else None  #: device time (s) of the last sample sent

    @property
    def ended(self) -> bool:
        """The device reached its end of data (STOPPED "end of data")."""
        return any(e.code == EventCode.STOPPED and e.message == "end of data" for e in self.events)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def c3t(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True, timeout=timeout)


class JsonStream:
    """``c3t-edge stream --port PORT --json`` in a subprocess, its lines collected as they come."""

    def __init__(self, port: str, *extra: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", port, "--json",
                                      "--model", "default", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def of_type(self, *kinds: str) -> list[dict]:
        return [x for x in list(self.lines) if x["type"] in kinds]

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return predicate()
            time.sleep(0.02)
        return False

    def stop(self) -> str:
        """SIGINT (the summary is printed); returns stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            assert self.proc.wait(15) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.stderr.read()


def quantized_counts(csv: Path) -> np.ndarray:
    """What the firmware should send for ``csv``: each value as float32 / scale, rounded half away from zero."""
    x = np.loadtxt(csv, delimiter=",", comments="#", skiprows=_header_rows(csv), ndmin=2)
    q = x.astype(np.float32) / np.array([ACC_SCALE] * 3 + [GYRO_SCALE] * 3, dtype=np.float32)
    q = np.trunc(q + np.where(q >= 0, np.float32(0.5), np.float32(-0.5)))
    return np.clip(q, -32768, 32767).astype(np.int64)


def _header_rows(csv: Path) -> int:
    """Lines up to and including the ``ax,...`` header (comment lines above it included)."""
    with open(csv, encoding="ascii") as f:
        for n, line in enumerate(f):
            if line.startswith("ax,"):
                return n + 1
    return 0


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("qemu_demo") / "demo.csv", demo_samples())


@pytest.fixture(scope="module")
def demo_firmware(tmp_path_factory, demo_csv) -> Path:
    return build_firmware(tmp_path_factory, "demo", CSV=demo_csv, SPEED=DEMO_SPEED)


@pytest.fixture(scope="module")
def slow_demo_firmware(tmp_path_factory, demo_csv) -> Path:
    """The demo session at 5x (18 s of wall time): killed after its third action (about 3.5 s in), the device
    is mid-data with some 15 s to spare on a loaded machine."""
    return build_firmware(tmp_path_factory, "demo_slow", CSV=demo_csv, SPEED=5)


def _after_reset(lines: list[dict]) -> tuple[list[dict], list[dict]]:
    """The actions before and after the first reset gap, in stream order (after: [] until there is one)."""
    lines = list(lines)
    cut = next((i for i, x in enumerate(lines) if x["type"] == "gap" and x["cause"] == "reset"), len(lines))
    return ([x for x in lines[:cut] if x["type"] == "action"], [x for x in lines[cut:] if x["type"] == "action"])


def golden_events() -> list[list]:
    return json.loads(GOLDEN.read_text())["events"]


def test_recorded_samples_are_the_shipped_csv_quantized(tmp_path_factory, tmp_path):
    """``make qemu SPEED=10`` (the default CSV: four real UTD-MHAD trials) -> ``c3t-edge record`` -> the
    decoded samples are the CSV's, value for value, at 50 Hz of device time, nothing lost."""
    elf = build_firmware(tmp_path_factory, "default", SPEED=10)
    device = QemuDevice(elf, free_port())
    device.start()
    try:
        rec = tmp_path / "m4.c3trec"
        proc = c3t("record", "--port", f"socket://127.0.0.1:{device.port}", "--out", str(rec), "--duration", "3")
        assert proc.returncode == 0, proc.stderr
    finally:
        device.kill()
    dec, items = FrameDecoder(), []
    with RecordingReader(rec) as reader:
        for _, data in reader.chunks():
            items += dec.feed(data)
    items += dec.finish()
    batches = [i for i in items if isinstance(i, SampleBatch)]
    samples = np.concatenate([b.samples for b in batches])
    t = np.concatenate([b.t for b in batches])
    scales = np.array([s.scale for s in dec.info.channels])
    expected = quantized_counts(DEFAULT_CSV)
    assert samples.shape == expected.shape == (670, 6)
    np.testing.assert_array_equal(np.round(samples / scales).astype(np.int64), expected)
    np.testing.assert_allclose(samples, expected * scales, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diff(t), 1 / 50.0, atol=1e-6)  # nominal device time, though played 10x faster
    assert dec.info.name == "c3t-qemu-m4" and dec.info.sample_rate_hz == 50.0 and dec.info.boot_id != 0
    assert np.allclose(scales, [ACC_SCALE] * 3 + [GYRO_SCALE] * 3)
    assert dec.stats.lost == dec.stats.corrupt == dec.stats.malformed == dec.stats.resets == 0
    events = [i for i in items if isinstance(i, DeviceEvent)]
    assert [e.code for e in events][-1] == EventCode.STOPPED and events[-1].message == "end of data"
    # what the Cortex-M4 sent, through the streaming runtime: one event per trial, in order, at least 3
    # of the 4 named right (a floor for any bundle: the samples are checked value for value above).
    # These are trials 1 of subject 1, whose IMU a label-free bundle never trains on: the shipped
    # ensemble-distill-align-warp bundle names "throw" "tennis serve"; distill-align-warp had all 4.
    require_default_bundle()
    proc = c3t("replay", str(rec), "--as-fast-as-possible", "--json", "--model", "default")
    assert proc.returncode == 0, proc.stderr
    labels = [x["label"] for x in map(json.loads, proc.stdout.splitlines()) if x["type"] == "action"]
    truth = ["swipe left", "wave", "clap", "throw"]
    assert len(labels) == 4 and sum(a == b for a, b in zip(labels, truth, strict=True)) >= 3, labels


def test_the_firmware_answers_every_command(tmp_path_factory):
    """Straight over TCP: STOP, HELLO, SEND_INFO, an unknown code and a command of protocol version 2 get
    the answers PROTOCOL.md gives (ACK + STOPPED/DEVICE_INFO, NACK, UNSUPPORTED), then START streams."""
    elf = build_firmware(tmp_path_factory, "default", SPEED=10)
    device = QemuDevice(elf, free_port())
    device.start()
    dec, items = FrameDecoder(), []
    try:
        with socket.create_connection(("127.0.0.1", device.port), timeout=10) as sock:
            def ask(data: bytes, until) -> None:
                sock.sendall(data)
                deadline = time.monotonic() + 10
                while not until() and time.monotonic() < deadline:
                    items.extend(dec.feed(sock.recv(4096)))
                assert until(), items

            def answered(code: int, n: int = 1):
                return lambda: sum(isinstance(i, DeviceEvent) and i.code == code for i in items) >= n

            ask(b"", answered(EventCode.BOOT))  # boot: DEVICE_INFO, BOOT, then it waits for START
            ask(command_bytes(CommandCode.HELLO, 1, bytes([1])), answered(EventCode.ACK))
            ask(command_bytes(CommandCode.STOP, 2), answered(EventCode.ACK, 2))
            ask(command_bytes(0x55, 3), answered(EventCode.NACK))
            ask(wire(encode_command_frame(4, CommandCode.START, version=2)), answered(EventCode.UNSUPPORTED))
            ask(command_bytes(CommandCode.SEND_INFO, 5), answered(EventCode.ACK, 3))
            ask(command_bytes(CommandCode.START, 6), lambda: any(isinstance(i, SampleBatch) for i in items))
    finally:
        device.kill()
    events = [(i.code, i.detail, i.message) for i in items if isinstance(i, DeviceEvent)]
    assert events[:8] == [
        (EventCode.BOOT, 0, "c3t-qemu-m4"),
        (EventCode.ACK, CommandCode.HELLO, ""),  # then DEVICE_INFO again
        (EventCode.ACK, CommandCode.STOP, ""),  # not running: no STOPPED
        (EventCode.NACK, 0x55, "unknown command"),
        (EventCode.UNSUPPORTED, 2, "unsupported protocol version"),  # the START of version 2 is dropped
        (EventCode.ACK, CommandCode.SEND_INFO, ""),
        (EventCode.ACK, CommandCode.START, ""),
        (EventCode.STARTED, 0, ""),
    ]
    assert dec.stats.corrupt == dec.stats.lost == 0 and dec.info.name == "c3t-qemu-m4"


def test_stream_recognises_the_demo_session_as_replay_does(demo_firmware):
    """The demo session (real trials with rest between) from the Cortex-M4: the same actions, in the same
    order, at the same times (one shift: the device's clock origin) as the golden replay on the host."""
    require_default_bundle()
    golden = golden_events()
    device = QemuDevice(demo_firmware, free_port())
    device.start()
    stream = JsonStream(f"socket://127.0.0.1:{device.port}")
    try:
        done = stream.wait_for(lambda: len(stream.of_type("action", "no_action")) >= len(golden), 60)
        time.sleep(0.5)  # nothing more comes
        err = stream.stop()
    finally:
        device.kill()
    assert done, stream.lines[-3:]
    assert "Traceback" not in err, err
    got = stream.of_type("action", "no_action")
    assert [[x["type"], x["label"]] for x in got] == [[r[0], r[2]] for r in golden]
    shift = np.array([x["t"] for x in got]) - np.array([r[1] for r in golden])
    assert np.ptp(shift) < 0.011, shift  # one clock offset (times are rounded to 10 ms)
    summary = stream.lines[-1]
    assert summary["type"] == "summary" and summary["lost"] == summary["corrupt"] == summary["resets"] == 0
    assert summary["samples"] == len(demo_samples()) and not summary["torch_imported"]


def test_every_boot_has_a_new_boot_id(tmp_path_factory):
    """The board has no random number generator: its boot id comes from timing jitter, and must differ
    between boots (PROTOCOL.md section 4). When it did not, a rebooted device whose first frames matched the
    previous boot's byte for byte (sequence numbers, times) was, rightly, a replay of frames the host already
    had: ``stream`` dropped them as duplicates and never saw the reboot."""
    elf = build_firmware(tmp_path_factory, "default", SPEED=10)
    boot_ids = []
    for _ in range(10):  # the old firmware gave one id (0xdfde6ac5) at about half its boots
        device = QemuDevice(elf, free_port())
        device.start()
        dec = FrameDecoder()
        try:
            with socket.create_connection(("127.0.0.1", device.port), timeout=10) as sock:
                while dec.info is None:  # the boot DEVICE_INFO comes first, unasked
                    dec.feed(sock.recv(4096))
        finally:
            device.kill()
        assert dec.info.boot and dec.info.boot_id != 0
        boot_ids.append(dec.info.boot_id)
    assert len(set(boot_ids)) == len(boot_ids), [hex(b) for b in boot_ids]


@pytest.mark.parametrize("when", ["mid-data", "after-end-of-data"])
def test_qemu_killed_and_restarted_mid_stream_is_a_device_reboot(when, request, tmp_path):
    """The board loses power and boots again, either mid-data (after the session's third action) or after it
    reached its end of data (STOPPED "end of data", waiting for START): the stream reconnects, reports one
    reset (not a link gap: the device's sequence and clock restarted) where the device's data ended, restarts
    its windows (the first action after it needs a whole window of new samples) and recognises the session
    again from its start.

    When to pull the power is read from the device's side (QEMU's copy of what it sent), never from how far
    the stream has got: a stream lagging on a loaded machine changes nothing."""
    require_default_bundle()
    golden = [r for r in golden_events() if r[0] == "action"]
    t0_s = json.loads((FIRMWARE.parent / "c3t_edge" / "assets" / "demo" / "wrist_session.json").read_text())["t0_s"]
    firmware = request.getfixturevalue("slow_demo_firmware" if when == "mid-data" else "demo_firmware")
    first_boot, second_boot = tmp_path / "boot1.bin", tmp_path / "boot2.bin"
    device = QemuDevice(firmware, free_port())
    device.start(log=first_boot)
    stream = JsonStream(f"socket://127.0.0.1:{device.port}")
    try:
        if when == "mid-data":  # the samples of the first three actions sent (golden times: t0_s at sample 0)
            t_kill = golden[2][1] - t0_s + 2.0
            assert wait_until(lambda: (DeviceLog(first_boot).last_sample_t or 0.0) >= t_kill, 60)
        else:
            assert wait_until(lambda: DeviceLog(first_boot).ended, 60), DeviceLog(first_boot).events[-3:]
        device.kill()
        before_kill = DeviceLog(first_boot)
        device.start(log=second_boot)  # same port: the stream's back-off reconnects and says SEND_INFO + START
        # (the stream may still be working through what the device sent before it died: count from the gap)
        assert stream.wait_for(lambda: len(_after_reset(stream.lines)[1]) >= 3, 60), stream.lines[-5:]
        err = stream.stop()
    finally:
        device.kill()
    assert "Traceback" not in err, err
    assert before_kill.ended == (when == "after-end-of-data"), before_kill.events[-3:]
    assert DeviceLog(second_boot).info.boot_id != before_kill.info.boot_id
    gaps = stream.of_type("gap")
    assert [g["cause"] for g in gaps] == ["reset"] and not gaps[0]["filled"]
    assert gaps[0]["t_from"] == pytest.approx(before_kill.last_sample_t, abs=0.021)  # every sample sent, seen
    assert [x["state"] for x in stream.of_type("link")] == ["disconnected", "reconnected"]
    summary = stream.lines[-1]
    assert summary["resets"] == 1 and summary["corrupt"] == 0
    before, after = _after_reset(stream.lines)
    assert len(before) >= 3 and len(after) >= 3 and after[0]["window"][0] >= gaps[0]["t"]
    assert [a["label"] for a in before] == [r[2] for r in golden[:len(before)]]
    if when == "after-end-of-data":
        assert len(before) == len(golden)  # the whole session, then the reboot
    assert [a["label"] for a in after] == [r[2] for r in golden[:len(after)]]  # the session again, from its start
    # windows restarted: the first action after the reboot ends a window of post-reboot samples only, at the
    # same distance from the first sample as the session's first action from its first sample
    assert after[0]["t"] - gaps[0]["t"] == pytest.approx(golden[0][1] - t0_s, abs=0.011)
