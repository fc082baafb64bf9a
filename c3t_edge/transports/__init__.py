"""Byte transports behind one interface, and the one way of opening a ``PORT`` string.

    async with open_transport("/dev/ttyUSB0", baudrate=115200) as port:
        async for chunk in port:            # Chunk(data: bytes, host_time_s: float, gap: Gap | None)
            decoder.feed(chunk.data)

PORT forms (DESIGN.md "Command line"):

- ``ble://NAME-or-ADDRESS[?service=UUID&notify=UUID&write=UUID]`` -> :class:`BleTransport`
- ``replay://FILE`` -> :class:`ReplayTransport` (a recording, see docs/RECORDING.md)
- anything else -> :class:`SerialTransport`: a device path (``/dev/ttyUSB0``, ``COM3``) or any
  pyserial URL (``loop://``, ``socket://host:port``, ``rfc2217://...``, ``spy://...``).

This package never imports torch, and imports pyserial and bleak only when a port is opened.
"""

from __future__ import annotations

from c3t_edge.errors import TransportError
from c3t_edge.transports.base import (
    Chunk,
    EventCallback,
    Gap,
    LinkEvent,
    ReconnectPolicy,
    Transport,
    TransportStats,
    host_time,
)
from c3t_edge.transports.ble import NUS_RX_UUID, NUS_SERVICE_UUID, NUS_TX_UUID, BleOptions, BleTransport
from c3t_edge.transports.replay import ReplayTransport
from c3t_edge.transports.serial import DEFAULT_BAUDRATE, SerialTransport

__all__ = [
    "BleOptions", "BleTransport", "Chunk", "DEFAULT_BAUDRATE", "EventCallback", "Gap", "LinkEvent",
    "NUS_RX_UUID", "NUS_SERVICE_UUID", "NUS_TX_UUID", "ReconnectPolicy", "ReplayTransport",
    "SerialTransport", "Transport", "TransportStats", "host_time", "open_transport", "port_kind",
]


def port_kind(port: str) -> str:
    """"ble", "replay" or "serial" for a PORT string (no I/O)."""
    if not port or not port.strip():
        raise TransportError("empty PORT: give a serial device, a pyserial URL, ble://NAME or replay://FILE")
    lowered = port.strip().lower()
    if lowered.startswith("ble://"):
        return "ble"
    if lowered.startswith("replay://"):
        return "replay"
    return "serial"


def open_transport(port: str, *, on_event: EventCallback | None = None,
                   reconnect: ReconnectPolicy | None = None, baudrate: int = DEFAULT_BAUDRATE,
                   serial_options: dict | None = None,
                   ble: BleOptions | None = None, speed: float | None = 1.0) -> Transport:
    """The transport for ``port``, not yet open: use ``async with`` (or ``await t.open()``).

    Options that do not apply to the port's kind are ignored, so one call serves every PORT:
    ``baudrate``/``serial_options`` (serial), ``ble`` (BLE), ``speed`` (replay: 1.0 real time,
    X times faster, ``None`` as fast as possible). ``on_event`` receives link events and
    ``reconnect`` sets the back-off (serial and BLE; see :mod:`c3t_edge.transports.base`).
    Errors are :class:`~c3t_edge.errors.TransportError` (one line); opening raises them too.
    """
    kind = port_kind(port)
    port = port.strip()
    if kind == "ble":
        return BleTransport(port, options=ble, on_event=on_event, reconnect=reconnect)
    if kind == "replay":
        path = port[len("replay://"):]
        if not path:
            raise TransportError(f"{port!r}: give a recording file after replay://")
        return ReplayTransport(port, path, speed=speed, on_event=on_event)
    return SerialTransport(port, baudrate=baudrate, on_event=on_event, reconnect=reconnect,
                           serial_options=serial_options)
