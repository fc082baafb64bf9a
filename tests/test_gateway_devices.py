"""Several devices in one `c3t-edge stream`: twenty simulated IMUs (c3t-imu-sim) on ptys, every
device's events arrive tagged with its name, and unplugging one leaves the other nineteen running.
Also the devices file (TOML) and a device that fails while the others go on."""

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
from _runtime import require_default_bundle

from c3t_edge.errors import C3TEdgeError
from c3t_edge.gateway.devices import device_specs, load_devices, name_from_port
from c3t_edge.protocol import FrameDecoder, SampleBatch
from c3t_edge.recording import RecordingReader

ASSETS = Path(__file__).resolve().parents[1] / "c3t_edge" / "assets" / "demo"
RECORDING = ASSETS / "wrist_session.c3trec"
N_DEVICES = 20
SPEED = 3.0  # device seconds per wall second, for every simulated device


def demo_samples() -> np.ndarray:
    dec = FrameDecoder()
    with RecordingReader(RECORDING) as reader:
        return np.concatenate([i.samples for _, data in reader.chunks() for i in dec.feed(data)
                               if isinstance(i, SampleBatch)])


class SimOnPty:
    """c3t-imu-sim writing its frames to stdout, copied by a thread into a :class:`PtyDevice` (the
    PORT the stream opens); :meth:`unplug` stops the device and pulls the port."""

    def __init__(self, sim: Path, csv: Path, link: str, name: str) -> None:
        self.pty = PtyDevice(link)
        self.proc = subprocess.Popen([str(sim), "--csv", str(csv), "--rate", "50", "--speed", str(SPEED), "--loop",
                                      "--info-every", "25", "--name", name], stdout=subprocess.PIPE)
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        fd = self.proc.stdout.fileno()
        while not self.pty.stop.is_set():
            data = os.read(fd, 4096)
            if not data:
                return
            self.pty.send(data)

    def unplug(self) -> None:
        self.pty.stop.set()
        self.proc.kill()
        self.proc.wait()
        self.thread.join(5)
        self.pty.unplug()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.pty.close()
        self.thread.join(5)


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_twenty_devices_in_one_stream_and_one_unplugged(tmp_path, tmp_path_factory):
    require_default_bundle()
    sim = simulator(tmp_path_factory)
    csv = write_csv(tmp_path / "session.csv", demo_samples())
    names = [f"imu{i:02d}" for i in range(N_DEVICES)]
    devices = [SimOnPty(sim, csv, str(tmp_path / f"tty{name}"), name) for name in names]
    argv = [sys.executable, "-m", "c3t_edge", "stream", "--json", "--windows"]
    for name, device in zip(names, devices, strict=True):
        argv += ["--port", f"{name}={device.pty.link}"]
    stream = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in stream.stdout], daemon=True)
    reader.start()

    def count(kind: str, name: str) -> int:
        return sum(1 for x in list(lines) if x["type"] == kind and x.get("device") == name)

    gone = names[7]
    try:
        assert wait_for(lambda: all(count("action", n) >= 1 for n in names), 90), \
            {n: count("action", n) for n in names}
        devices[7].unplug()
        before = {n: count("window", n) for n in names}
        # the other nineteen keep recognising: 4 s of device time = 8 more windows each
        assert wait_for(lambda: all(count("window", n) >= before[n] + 8 for n in names if n != gone), 30), \
            {n: count("window", n) - before[n] for n in names}
        assert wait_for(lambda: count("link", gone) >= 1, 10)
        after_gone = count("window", gone)
        stream.send_signal(signal.SIGINT)
        assert stream.wait(20) == 0
        reader.join(5)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
        for device in devices:
            device.close()
    err = stream.stderr.read()
    assert "Traceback" not in err, err
    assert all(x.get("device") in names for x in lines), [x for x in lines if x.get("device") not in names][:3]
    assert after_gone <= before[gone] + 1  # nothing after the unplug but a window already on its way
    links = [x for x in lines if x["type"] == "link"]
    assert [(x["device"], x["state"]) for x in links] == [(gone, "disconnected")], links
    summaries = {x["device"]: x for x in lines if x["type"] == "summary"}
    assert sorted(summaries) == names
    assert summaries[gone]["windows"] == after_gone and summaries[gone]["events"] >= 1
    for name in names:
        if name != gone:
            assert summaries[name]["windows"] >= before[name] + 8 and summaries[name]["events"] >= 1
            assert summaries[name]["lost"] == 0 and summaries[name]["corrupt"] == 0, summaries[name]


def test_devices_file(tmp_path):
    (tmp_path / "cal").mkdir()
    path = tmp_path / "devices.toml"
    path.write_text('precision = "int8"\n\n'
                    '[[device]]\nname = "left"\nport = "/dev/ttyACM0"\ncalibration = "cal/left.json"\n\n'
                    '[[device]]\nname = "right"\nport = "ble://C3T-R"\nprecision = "fp32"\nbaud = 9600\n')
    left, right = load_devices(path)
    assert (left.name, left.port, left.precision, left.calibration) == \
        ("left", "/dev/ttyACM0", "int8", str(tmp_path / "cal" / "left.json"))
    assert (right.name, right.precision, right.baud, right.calibration) == ("right", "fp32", 9600, None)
    # names made from ports, made unique; NAME=PORT names one
    specs = device_specs(["/dev/serial/by-id/usb-X-if00", "/dev/serial/by-id/usb-X-if00", "wrist=socket://h:7"], None)
    assert [s.name for s in specs] == ["usb-X-if00", "usb-X-if00-2", "wrist"]
    assert specs[2].port == "socket://h:7" and name_from_port("replay://a/b/run.c3trec") == "run"
    # pyserial's select() takes descriptors below 1024: 200 serial devices per process, 125 with MQTT
    assert len(device_specs([f"/dev/ttyX{i}" for i in range(200)] + ["ble://W"], None)) == 201
    with pytest.raises(C3TEdgeError, match="at most 125 with --publish"):
        device_specs([f"/dev/ttyX{i}" for i in range(126)], None, publish=True)
    for text, message in [('[[device]]\nname = "a"\n', "needs port"),
                          ('[[device]]\nname = "a/b"\nport = "p"\n', "MQTT topic level"),
                          ('[[device]]\nname = "a"\nport = "p"\nspeed = 2\n', "unknown key 'speed'"),
                          ('[[device]]\nname = "a"\nport = "p"\n[[device]]\nname = "a"\nport = "q"\n', "two devices"),
                          ('name = "a"\n', "no devices"), ('[[device\n', "not valid TOML")]:
        path.write_text(text)
        with pytest.raises(C3TEdgeError, match=message):
            load_devices(path)


def test_a_device_that_fails_leaves_the_others_running(tmp_path, tmp_path_factory):
    """A devices file with a recording, a "port" that cannot be opened (a plain file) and a device
    that is plugged in only after the start: the broken one is reported (one line, tagged) at once,
    the late one is waited for and then recognised, the recording streams until --duration; exit 1."""
    require_default_bundle()
    sim = simulator(tmp_path_factory)
    csv = write_csv(tmp_path / "session.csv", demo_samples())
    broken = tmp_path / "not-a-tty"
    broken.write_text("")
    late = tmp_path / "ttyLATE"
    path = tmp_path / "devices.toml"
    path.write_text(f'[[device]]\nname = "good"\nport = "replay://{RECORDING}"\n\n'
                    f'[[device]]\nname = "broken"\nport = "{broken}"\n\n'
                    f'[[device]]\nname = "late"\nport = "{late}"\n')
    stream = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--devices", str(path), "--duration", "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    device = None
    try:
        time.sleep(2.0)
        device = SimOnPty(sim, csv, str(late), "late")  # plugged in now
        out, err = stream.communicate(timeout=120)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()
        if device is not None:
            device.close()
    assert stream.returncode == 1, err
    assert "Traceback" not in err
    errors = [x for x in err.splitlines() if x.startswith("[broken]")]
    assert len(errors) == 1 and "error: cannot open serial port" in errors[0], err
    assert f"[late]              .. {late} is not there: waiting for the device to be plugged in" in err, err
    for name in ("good", "late"):
        assert f"[{name}] summary: " in err
        actions = [x for x in out.splitlines() if x.startswith(f"[{name}]") and "no action" not in x]
        assert actions, out
    assert "swipe left" in next(x for x in out.splitlines() if x.startswith("[good]"))  # its first, at 4.6 s
