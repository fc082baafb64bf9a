"""Byte transports behind one interface, and the one way of opening a ``PORT`` string.

    async with open_transport("/dev/ttyUSB0", baudrate=115200) as port:
        async for chunk in port:            # Chunk(data: bytes, host_time_s: float, gap: Gap | None)
            decoder.feed(chunk.data)

PORT strings are resolved through a registry of URL schemes, as pyserial resolves
``protocol_<scheme>``: ``SCHEME://REST`` opens the transport registered for ``SCHEME``
(:func:`register_transport`); anything else is serial. Built in (the README's "Commands"):

- ``ble://NAME-or-ADDRESS[?service=UUID&notify=UUID&write=UUID]`` -> :class:`BleTransport`
- ``replay://FILE`` -> :class:`ReplayTransport` (a recording, see docs/RECORDING.md)
- anything else -> :class:`SerialTransport`: a device path (``/dev/ttyUSB0``, ``COM3``) or any
  pyserial URL (``loop://``, ``socket://host:port``, ``rfc2217://...``, ``spy://...``).

A new transport is one module (a :class:`Transport` subclass) plus one
``register_transport("scheme", MyTransport)`` call (docs/EXTENDING.md, "Add a transport").
This package never imports torch, and imports pyserial and bleak only when a port is opened.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from c3t_edge.errors import TransportError
from c3t_edge.transports.base import (
    Capabilities,
    Chunk,
    EventCallback,
    Gap,
    LinkEvent,
    PortSettings,
    ReconnectPolicy,
    Transport,
    TransportStats,
)
from c3t_edge.transports.ble import (
    NUS_RX_UUID,
    NUS_SERVICE_UUID,
    NUS_TX_UUID,
    BleCharacteristicMissingError,
    BleConnectError,
    BleDeviceNotFoundError,
    BleError,
    BleOptions,
    BleScanError,
    BleTransport,
)
from c3t_edge.transports.replay import ReplayPacer, ReplayTransport
from c3t_edge.transports.serial import DEFAULT_BAUDRATE, SerialTransport

__all__ = [
    "BleCharacteristicMissingError", "BleConnectError", "BleDeviceNotFoundError", "BleError", "BleOptions",
    "BleScanError", "BleTransport", "Capabilities", "Chunk", "DEFAULT_BAUDRATE", "EventCallback", "Gap",
    "LinkEvent", "NUS_RX_UUID", "NUS_SERVICE_UUID", "NUS_TX_UUID", "PortSettings", "ReconnectPolicy",
    "ReplayPacer", "ReplayTransport", "SerialTransport", "Transport", "TransportStats", "open_transport",
    "port_kind", "register_transport", "registered_schemes", "unregister_transport",
]

#: The transport of a PORT without a registered scheme.
DEFAULT_KIND = "serial"

_REGISTRY: dict[str, type[Transport]] = {}


def register_transport(scheme: str, transport: type[Transport], *, replace: bool = False) -> None:
    """Make ``SCHEME://...`` PORT strings open ``transport`` (through its ``from_port``).

    ``scheme`` is matched case-insensitively; registering a taken scheme needs ``replace=True``.
    """
    key = scheme.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", key):  # RFC 3986 scheme syntax
        raise ValueError(f"not a URL scheme: {scheme!r}")
    if key == DEFAULT_KIND:
        raise ValueError(f"{scheme!r} names the default transport; register another scheme")
    if key in _REGISTRY and not replace:
        raise ValueError(f"transport scheme {key!r} is already registered ({_REGISTRY[key].__name__})")
    _REGISTRY[key] = transport


def unregister_transport(scheme: str) -> None:
    """Forget a registered scheme (its PORT strings go to serial again)."""
    _REGISTRY.pop(scheme.strip().lower(), None)


def registered_schemes() -> dict[str, type[Transport]]:
    """The registered schemes and their transports (a copy)."""
    return dict(_REGISTRY)


def _scheme(port: str) -> str | None:
    head, sep, _ = port.partition("://")
    return head.lower() if sep else None


def port_kind(port: str) -> str:
    """The registered scheme of a PORT string ("ble", "replay", ...) or ``"serial"`` (no I/O)."""
    if not port or not port.strip():
        raise TransportError("empty PORT: give a serial device, a pyserial URL, ble://NAME or replay://FILE")
    scheme = _scheme(port.strip())
    return scheme if scheme in _REGISTRY else DEFAULT_KIND


def open_transport(port: str, *, on_event: EventCallback | None = None,
                   reconnect: ReconnectPolicy | None = None, baudrate: int = DEFAULT_BAUDRATE,
                   serial_options: Mapping[str, Any] | None = None,
                   ble: BleOptions | None = None, speed: float | None = 1.0,
                   extra: Mapping[str, Any] | None = None) -> Transport:
    """The transport for ``port``, not yet open: use ``async with`` (or ``await t.open()``).

    Options that do not apply to the port's transport are ignored, so one call serves every PORT:
    ``baudrate``/``serial_options`` (serial), ``ble`` (BLE), ``speed`` (replay: 1.0 real time,
    X times faster, ``None`` as fast as possible), ``extra`` (registered transports' own settings).
    ``on_event`` receives link events and ``reconnect`` sets the back-off (see
    :mod:`c3t_edge.transports.base`). Errors are :class:`~c3t_edge.errors.TransportError` (one
    line); opening raises them too.
    """
    kind = port_kind(port)
    settings = PortSettings(on_event=on_event, reconnect=reconnect, baudrate=baudrate,
                            serial_options=serial_options, ble=ble, speed=speed, extra=dict(extra or {}))
    transport = _REGISTRY.get(kind, SerialTransport)
    return transport.from_port(port.strip(), settings)


register_transport("ble", BleTransport)
register_transport("replay", ReplayTransport)
