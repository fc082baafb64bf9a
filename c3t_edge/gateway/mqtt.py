"""Events and link state to an MQTT broker: ``--publish mqtt://[USER[:PASS]@]HOST[:PORT]/TOPIC``.

Per device (its name is a topic level):

- ``TOPIC/<device>/events``: one JSON message per recognised action and per return to "no action"
  (QoS 1, not retained): ``{"device", "type", "label", "probability", "t", "host_time",
  "latency_ms", "window"}``; ``t`` device time (s), ``host_time`` Unix time (s) when it was decided.
- ``TOPIC/<device>/status``: the link state (QoS 1, retained): ``{"device", "state", "host_time",
  "reason"}`` with ``state`` ``online`` (gateway up, no data yet), ``streaming``, ``disconnected``,
  ``gave_up`` or ``offline``; ``offline`` is also the connection's last will, so subscribers learn of
  a gateway that died or lost its network.

Each device has its own connection (MQTT gives one last will per connection), run by paho-mqtt's
network thread, so recognition never waits for the network: a publish only queues the message.
While the broker is away, paho reconnects with back-off (1 s doubling to 30 s) and keeps up to
``queue_limit`` messages per device (QoS 1: delivered at least once when the broker is back, a
message in flight when the link broke may arrive twice); messages beyond the bound are dropped and
counted (``mqtt`` in the summary). ``mqtts://`` uses TLS, checked against ``--tls-ca`` (default:
the system's CAs). A password in the URL is visible to other local users in the process list:
give ``USER@`` alone and the password in the environment variable ``C3T_MQTT_PASSWORD`` instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from c3t_edge.errors import C3TEdgeError, MissingDependencyError
from c3t_edge.runtime.events import ActionEvent, DeviceNotice, GapEvent, LinkNotice, Notice, Summary, WindowResult

#: Messages kept per device while the broker is away (then dropped and counted).
DEFAULT_QUEUE_LIMIT = 10_000
#: Reconnection back-off: the first wait, doubled up to the longest (s).
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
#: How long the start-up check waits for the broker's answer, and the exit for the queue to empty (s).
CONNECT_CHECK_S = 3.0
DRAIN_S = 3.0
KEEPALIVE_S = 30
PASSWORD_ENV = "C3T_MQTT_PASSWORD"


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("paho"):
            raise MissingDependencyError("paho-mqtt", "gateway", "--publish") from None
        raise
    return mqtt


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: broker ``host``:``port``, base ``topic``, credentials, TLS."""

    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    queue_limit: int = DEFAULT_QUEUE_LIMIT

    @property
    def display(self) -> str:
        """The URL without the password (for messages)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.topic}"


def parse_target(url: str, *, tls_ca: str | None = None, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> MqttTarget:
    """``mqtt://[USER[:PASS]@]HOST[:PORT]/TOPIC`` or ``mqtts://...`` (port 1883 / 8883 by default)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise C3TEdgeError(f"--publish {url!r}: expected mqtt://[USER[:PASS]@]HOST[:PORT]/TOPIC (or mqtts://)")
    try:
        port = parts.port or (8883 if scheme == "mqtts" else 1883)
    except ValueError:
        raise C3TEdgeError(f"--publish: the port in {url!r} is not a number from 1 to 65535") from None
    topic = parts.path.strip("/")
    if not parts.hostname or not topic:
        raise C3TEdgeError(f"--publish {url!r}: needs a host and a topic (mqtt://HOST[:PORT]/TOPIC)")
    if "+" in topic or "#" in topic:
        raise C3TEdgeError(f"--publish: the topic {topic!r} may not hold the wildcards + or #")
    if tls_ca is not None and scheme != "mqtts":
        raise C3TEdgeError("--tls-ca is for mqtts:// brokers (TLS); this one is mqtt://")
    if tls_ca is not None and not os.path.isfile(tls_ca):
        raise C3TEdgeError(f"--tls-ca {tls_ca}: no such file")
    if queue_limit < 1:
        raise C3TEdgeError(f"--publish-queue must be >= 1 (got {queue_limit})")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        password = os.environ.get(PASSWORD_ENV)
    return MqttTarget(parts.hostname, port, topic, username, password, scheme == "mqtts", tls_ca, queue_limit)


def new_client(target: MqttTarget, client_id: str, *, will: tuple[str, bytes] | None = None):
    """A paho client for ``target`` (MQTT 3.1.1, clean session, credentials, TLS, last will)."""
    mqtt = _paho()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=mqtt.MQTTv311)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=target.tls_ca)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    return client


def check_broker(target: MqttTarget, timeout_s: float = CONNECT_CHECK_S) -> str | None:
    """Connect once before streaming. A broker that refuses (credentials, not authorised) or a TLS
    failure raises one clear error; a broker that cannot be reached gives the notice to print
    (streaming starts anyway and the broker is retried); None when all is well."""
    client = new_client(target, f"c3t-edge-check-{socket.gethostname()}-{os.getpid()}")
    answered = threading.Event()
    answer: list = []

    def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        answer.append(reason_code)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=KEEPALIVE_S)
    except ssl.SSLError as exc:  # a certificate the CA does not sign, a wrong host name
        raise C3TEdgeError(f"{target.display}: TLS failed: {exc.reason or exc}") from None
    except (OSError, ValueError) as exc:
        return (f"{target.display} cannot be reached ({getattr(exc, 'strerror', None) or exc}): streaming "
                f"goes on, the broker is retried with back-off and up to {target.queue_limit} messages per "
                "device are kept meanwhile")
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return (f"{target.display} did not answer within {timeout_s:g} s: streaming goes on and the "
                    "broker is retried")
    finally:
        client.disconnect()
        client.loop_stop()
    if answer[0].is_failure:
        raise C3TEdgeError(f"{target.display}: the broker refused the connection: {answer[0]}"
                           + (" (check USER and the password)" if "password" in str(answer[0]).lower()
                              or "authori" in str(answer[0]).lower() else ""))
    return None


class DevicePublisher:
    """The MQTT sink of one device (see the module docstring). ``report``: where its own notices
    go (the device's printing sink), called on the event loop."""

    def __init__(self, target: MqttTarget, device: str, report=None) -> None:
        self.target = target
        self.device = device
        self.report = report
        self.events_topic = f"{target.topic}/{device}/events"
        self.status_topic = f"{target.topic}/{device}/status"
        self.state = "online"
        self.accepted = self.acked = self.dropped = 0
        self._count_lock = threading.Lock()  # counters change on the event loop and in paho's thread
        self._queue_full = _paho().MQTT_ERR_QUEUE_SIZE
        self._closing = False
        self._lost = False
        self._full = False
        self._refused: str | None = None
        self._notices: deque[str] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        client_id = f"c3t-edge-{socket.gethostname()}-{os.getpid()}-{device}"
        will = self._status_payload("offline", "the gateway's connection ended without a goodbye")
        self.client = client = new_client(target, client_id, will=(self.status_topic, will))
        client.max_queued_messages_set(target.queue_limit)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish  # the state ("online") is published on connecting
        client.connect_async(target.host, target.port, keepalive=KEEPALIVE_S)
        client.loop_start()

    # -- the sink (on the event loop) ---------------------------------------------------------

    def __call__(self, event) -> None:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._flush_notices()
        if isinstance(event, ActionEvent):
            self._publish(self.events_topic, self.event_payload(event), retain=False)
        elif isinstance(event, LinkNotice):
            state = {"reconnected": "streaming"}.get(event.state, event.state)
            self._publish_status(state, event.reason)
        elif self.state == "online" and isinstance(event, DeviceNotice | WindowResult | GapEvent):
            self._publish_status("streaming", "data arrives")

    def event_payload(self, event: ActionEvent) -> bytes:
        d = event.as_dict()
        return json.dumps({"device": self.device, "type": d["type"], "label": event.label,
                           "probability": d["confidence"], "t": d["t"], "host_time": round(time.time(), 3),
                           "latency_ms": d["latency_ms"], "window": d["window"]}).encode()

    def summary(self, summary: Summary) -> None:
        self._publish_status("offline", f"stream {summary.extra.get('stopped', 'ended')}")
        summary.extra["mqtt"] = self.counts()

    def counts(self) -> dict[str, int]:
        """Messages acknowledged by the broker, dropped (queue full), still waiting."""
        return {"published": self.acked, "dropped": self.dropped, "waiting": self.accepted - self.acked}

    def close(self, timeout_s: float = DRAIN_S) -> int:
        """Wait up to ``timeout_s`` for the broker to take what waits, then disconnect; returns how
        many messages were not delivered."""
        deadline = time.monotonic() + timeout_s
        while self.accepted > self.acked and time.monotonic() < deadline:
            time.sleep(0.01)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
        return self.accepted - self.acked

    # -- publishing ---------------------------------------------------------------------------

    def _status_payload(self, state: str, reason: str) -> bytes:
        return json.dumps({"device": self.device, "state": state, "host_time": round(time.time(), 3),
                           "reason": reason}).encode()

    def _publish_status(self, state: str, reason: str) -> None:
        self.state = state
        self._publish(self.status_topic, self._status_payload(state, reason), retain=True)

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._count_lock:
            if info.rc != self._queue_full:
                self.accepted += 1
                return
            self.dropped += 1
        if not self._full:
            self._full = True
            self._notice(f"{self.target.queue_limit} messages wait for the broker: newer ones are dropped "
                         "(counted in the summary) until it is back")

    # -- paho's network thread -----------------------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            if self._refused != str(reason_code):
                self._refused = str(reason_code)
                self._notice(f"{self.target.display} refused the connection ({reason_code}); retrying")
            return
        self._refused = None
        self._full = False
        if self._lost:
            self._lost = False
            self._notice(f"{self.target.display} is back; {self.accepted - self.acked} waiting messages are sent")
        # the broker may have restarted without its retained messages: say the state again
        self._publish(self.status_topic, self._status_payload(self.state, "connected to the broker"), retain=True)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if self._closing or self._lost:
            return
        self._lost = True
        self._notice(f"{self.target.display} lost ({reason_code}): retrying with back-off, up to "
                     f"{self.target.queue_limit} messages are kept")

    def _on_publish(self, _client, _userdata, _mid, _reason_code, _properties) -> None:
        with self._count_lock:
            self.acked += 1

    def _notice(self, text: str) -> None:
        """From any thread: hand a notice to the event loop (or keep it for the next event)."""
        self._notices.append("mqtt: " + text)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._flush_notices)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _flush_notices(self) -> None:
        while self._notices:
            text = self._notices.popleft()
            if self.report is not None:
                self.report(Notice(text))
            else:
                print(f"[{self.device}] {text}", file=sys.stderr, flush=True)


class MqttGateway:
    """``--publish``: the broker checked once at start, then one :class:`DevicePublisher` per device."""

    def __init__(self, target: MqttTarget) -> None:
        self.target = target
        self.publishers: list[DevicePublisher] = []

    @classmethod
    def start(cls, url: str, *, tls_ca: str | None = None, queue_limit: int = DEFAULT_QUEUE_LIMIT,
              command: str = "c3t-edge") -> MqttGateway:
        """Parse ``url``, check the broker (an error when it refuses; a notice when it is away)."""
        target = parse_target(url, tls_ca=tls_ca, queue_limit=queue_limit)
        notice = check_broker(target)
        if notice is not None:
            print(f"{command}: {notice}", file=sys.stderr, flush=True)
        return cls(target)

    def sink(self, device: str, report=None) -> DevicePublisher:
        publisher = DevicePublisher(self.target, device, report)
        self.publishers.append(publisher)
        return publisher

    def close(self, timeout_s: float = DRAIN_S) -> int:
        """Deliver what waits (up to ``timeout_s`` in all), disconnect; one line on stderr per device
        whose messages could not be delivered; returns how many were not."""
        deadline = time.monotonic() + timeout_s
        lost = 0
        for publisher in self.publishers:
            undelivered = publisher.close(max(0.0, deadline - time.monotonic()))
            if undelivered:
                print(f"[{publisher.device}] mqtt: {undelivered} messages were not delivered "
                      f"({self.target.display} away at exit)", file=sys.stderr, flush=True)
            lost += undelivered
        return lost
