"""`--publish mqtt://` against a real Mosquitto broker (Debian's mosquitto, started here on a free
loopback port with a generated configuration): the events a replay publishes are those `replay --json`
prints, wrong credentials are one clear line, and a broker stopped and restarted mid-stream loses no
event within the queue bound (and counts what it drops beyond it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from _runtime import require_default_bundle

RECORDING = Path(__file__).resolve().parents[1] / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
MOSQUITTO = os.environ.get("C3T_MOSQUITTO", "/usr/sbin/mosquitto")
DEVICE = "wrist_session"  # replay names the device after the file
TOPIC = "c3t"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto on 127.0.0.1:``port`` with a persistent store (a restart keeps sessions and
    queued messages); ``users``: name -> password (then anonymous clients are refused)."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None) -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            pytest.fail(f"{MOSQUITTO} is missing: install Debian's mosquitto (.ci/run does)")
        self.folder = folder
        self.port = free_port()
        lines = ["persistence true", f"persistence_location {folder}/", f"log_dest file {folder}/mosquitto.log",
                 f"listener {self.port} 127.0.0.1"]
        if tls is not None:  # a second listener, TLS only (the test's subscriber uses the plain one)
            self.tls_port = free_port()
            lines += [f"listener {self.tls_port} 127.0.0.1", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to the 'mosquitto' user, who cannot write here
        if users:
            passwd = folder / "passwd"
            passwd.touch()
            for user, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(passwd),
                                user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                time.sleep(0.02)
        raise AssertionError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # saves the persistent store
            self.proc.wait(10)

    def url(self, userinfo: str = "") -> str:
        return f"mqtt://{userinfo}127.0.0.1:{self.port}/{TOPIC}"


class Subscriber:
    """Collects what the broker delivers on TOPIC/#, in a persistent session (QoS 1): messages sent
    while it is away (a broker restart) wait for it."""

    def __init__(self, broker: Broker, client_id: str = "c3t-test-subscriber", **credentials: str) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if credentials:
            self.client.username_pw_set(credentials["user"], credentials["password"])
        self.client.reconnect_delay_set(0.1, 0.2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"{TOPIC}/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload), m.retain))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def events(self) -> list[dict]:
        return [m for topic, m, _ in list(self.messages) if topic == f"{TOPIC}/{DEVICE}/events"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def replay(*flags: str, timeout: float = 120) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "c3t_edge", "replay", str(RECORDING), "--json", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[list[dict], str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return [json.loads(x) for x in out.splitlines()], err


def printed_events(lines: list[dict]) -> list[tuple]:
    return [(x["type"], x["label"], x["t"], x["confidence"]) for x in lines if x["type"] in ("action", "no_action")]


def published_events(messages: list[dict]) -> list[tuple]:
    return [(m["type"], m["label"], m["t"], m["probability"]) for m in messages]


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.02)
    return pred()


def test_published_events_are_the_printed_ones(tmp_path):
    require_default_bundle()
    broker = Broker(tmp_path)
    sub = Subscriber(broker)
    try:
        lines, _ = finish(replay("--fast", "--publish", broker.url()))
        assert wait_for(lambda: len(sub.events()) >= len(printed_events(lines)), 10)
        events = sub.events()
        assert published_events(events) == printed_events(lines) and len(events) >= 10
        assert all(m["device"] == DEVICE and abs(m["host_time"] - time.time()) < 60 for m in events)
        summary = lines[-1]
        assert summary["mqtt"]["dropped"] == 0
        # the link state is retained: a subscriber that comes later learns the gateway stopped
        late = Subscriber(broker, client_id="c3t-test-late")
        assert wait_for(lambda: late.messages, 5)
        (topic, status, retained), = late.messages
        assert topic == f"{TOPIC}/{DEVICE}/status" and retained
        assert status["state"] == "offline" and status["device"] == DEVICE
        states = [m["state"] for t, m, _ in sub.messages if t.endswith("/status")]
        assert states[0] == "online" and "streaming" in states and states[-1] == "offline"
        late.close()
    finally:
        sub.close()
        broker.stop()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a certificate it signs for localhost / 127.0.0.1 (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: it makes the TLS test's certificates (Debian's openssl package)")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    paths = {name: folder / f"{name}.pem" for name in ("ca", "ca_key", "cert", "key", "csr")}
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for args in (["req", "-x509", *key, "-keyout", paths["ca_key"], "-out", paths["ca"], "-days", "2",
                  "-subj", "/CN=c3t-edge test CA"],
                 ["req", *key, "-keyout", paths["key"], "-out", paths["csr"], "-subj", "/CN=localhost"],
                 ["x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey", paths["ca_key"],
                  "-CAcreateserial", "-out", paths["cert"], "-days", "2", "-extfile", folder / "san.ext"]):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60)
    return paths


def test_mqtts_with_a_ca_and_refused_without(tmp_path):
    """mqtts:// to a broker whose certificate a private CA signs: with --tls-ca the events arrive;
    without it (the system's CAs) the certificate is refused in one line."""
    require_default_bundle()
    certs = make_certificates(tmp_path)
    broker = Broker(tmp_path, tls=certs)
    sub = Subscriber(broker)
    url = f"mqtts://localhost:{broker.tls_port}/{TOPIC}"
    try:
        lines, _ = finish(replay("--fast", "--publish", url, "--tls-ca", str(certs["ca"])))
        assert wait_for(lambda: published_events(sub.events()) == printed_events(lines), 10)
        result = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(RECORDING), "--fast",
                                 "--publish", url], capture_output=True, text=True, timeout=60)
        err = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(err) == 1 and "TLS failed" in err[0], result.stderr
    finally:
        sub.close()
        broker.stop()


def test_wrong_credentials_are_one_clear_line(tmp_path):
    require_default_bundle()
    broker = Broker(tmp_path, users={"gateway": "s3cret pass"})
    try:
        for userinfo in ("gateway:wrong@", ""):
            result = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(RECORDING), "--fast",
                                     "--publish", broker.url(userinfo)], capture_output=True, text=True, timeout=60)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and len(lines) == 1, result.stderr
            assert lines[0].startswith("c3t-edge replay: error: mqtt://") and "refused" in lines[0], lines
            assert "wrong" not in lines[0]  # the password is never printed
        # the right password (from the environment, not the command line) is taken
        sub = Subscriber(broker, user="gateway", password="s3cret pass")
        env = dict(os.environ, C3T_MQTT_PASSWORD="s3cret pass")
        proc = subprocess.Popen([sys.executable, "-m", "c3t_edge", "replay", str(RECORDING), "--json", "--fast",
                                 "--publish", broker.url("gateway@")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        lines, _ = finish(proc)
        assert wait_for(lambda: len(sub.events()) == len(printed_events(lines)), 10)
        sub.close()
    finally:
        broker.stop()


def test_broker_restart_mid_stream_loses_no_event(tmp_path):
    """The broker goes away after the first event for about 1.5 s while the replay goes on (10x):
    the events decided meanwhile wait in the queue and all arrive once it is back."""
    require_default_bundle()
    broker = Broker(tmp_path)
    sub = Subscriber(broker)
    try:
        proc = replay("--speed", "10", "--publish", broker.url())
        assert wait_for(lambda: len(sub.events()) >= 1, 60)
        broker.stop()
        down_at = time.time()
        time.sleep(1.5)
        broker.start()
        up_at = time.time()
        lines, err = finish(proc)
        printed = printed_events(lines)
        assert wait_for(lambda: len({e[:3] for e in published_events(sub.events())}) >= len(printed), 15)
        # QoS 1: a message in flight when the broker went away may come twice; none is lost, order kept
        published = list(dict.fromkeys(published_events(sub.events())))
        assert published == printed
        during = [m for m in sub.events() if down_at <= m["host_time"] <= up_at]
        assert during, "no event was decided while the broker was away"
        assert lines[-1]["mqtt"]["dropped"] == 0
        notices = [x["message"] for x in lines if x["type"] == "notice"]
        assert any(n.startswith("mqtt: ") and " lost (" in n for n in notices), notices
        assert any(n.startswith("mqtt: ") and " is back" in n for n in notices), notices
    finally:
        sub.close()
        broker.stop()


def test_queue_bound_drops_are_counted(tmp_path):
    """A broker away from the start: streaming goes on and one line says so; with a queue of 3
    messages, those beyond it are dropped and counted, and what was kept arrives when the broker
    is back (with every event after that)."""
    require_default_bundle()
    broker = Broker(tmp_path)
    sub = Subscriber(broker)
    broker.stop()
    try:
        proc = replay("--speed", "20", "--publish", broker.url(), "--publish-queue", "3")
        time.sleep(2.5)  # 50 s of device time: about ten events while the broker is away
        broker.start()
        lines, err = finish(proc)
        printed = printed_events(lines)
        assert wait_for(lambda: published_events(sub.events())[-1:] == printed[-1:], 15)
    finally:
        sub.close()
        broker.stop()
    assert "cannot be reached" in err and "retried with back-off" in err and len(err.splitlines()) == 1, err
    notices = [x["message"] for x in lines if x["type"] == "notice"]
    assert any("newer ones are dropped" in n for n in notices), notices
    # recognition and the terminal output went on: every action the shipped bundle names in this recording
    golden = json.loads((Path(__file__).parent / "golden" / "demo_wrist_session.json").read_text())["events"]
    assert sum(e[0] == "action" for e in printed) == sum(r[0] == "action" for r in golden)
    published = list(dict.fromkeys(published_events(sub.events())))
    assert published == [e for e in printed if e in published]  # in order, nothing made up
    dropped = lines[-1]["mqtt"]["dropped"]
    assert dropped >= 3 and len(printed) - len(published) <= dropped


def test_without_the_gateway_extra_publish_is_one_line(tmp_path):
    """paho-mqtt made missing for real in a child process (a ``paho`` package first on its path whose
    import fails as an absent one does): --publish names the extra to install, in one line."""
    package = tmp_path / "paho"
    package.mkdir()
    (package / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'paho\'", name="paho")\n')
    result = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(RECORDING), "--fast",
                             "--publish", "mqtt://127.0.0.1:1/c3t"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "pip install 'c3t-edge[gateway]'" in lines[0] and "paho-mqtt" in lines[0], lines


def test_last_will_says_offline_when_the_gateway_dies(tmp_path):
    """kill -9 mid-stream: no goodbye, so the broker publishes the connection's last will, the retained
    status "offline"."""
    require_default_bundle()
    broker = Broker(tmp_path)
    sub = Subscriber(broker)
    proc = replay("--speed", "10", "--publish", broker.url())
    try:
        assert wait_for(lambda: len(sub.events()) >= 1, 60)
        proc.kill()
        proc.wait(10)

        def statuses() -> list[dict]:
            return [m for t, m, _ in list(sub.messages) if t == f"{TOPIC}/{DEVICE}/status"]

        assert wait_for(lambda: statuses()[-1]["state"] == "offline", 10), statuses()
        assert "without a goodbye" in statuses()[-1]["reason"]
        assert [s["state"] for s in statuses()[:-1]][-1] == "streaming"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        sub.close()
        broker.stop()
