"""BLE transport: ``ble://NAME-or-ADDRESS``, the device's notifications joined into one byte stream.

Through bleak (any of its platform backends, or a custom one passed as ``client_backend`` /
``scanner_backend``; the tests use a bleak backend on the bumble host stack):

1. scan for the device by advertised name, or by address (``AA:BB:CC:DD:EE:FF``; a UUID on macOS);
2. connect, let the platform negotiate the largest ATT MTU the link allows (BlueZ: acquired
   explicitly), and look up the notify characteristic (Nordic UART Service TX by default);
3. subscribe; every notification becomes one :class:`~c3t_edge.transports.base.Chunk`, in order;
4. on an unsolicited disconnect: report it, then rescan, reconnect and re-subscribe with the base
   class's back-off; the first chunk afterwards carries the :class:`~c3t_edge.transports.base.Gap`.

Errors keep their cause: :class:`BleScanError` (the scan itself failed: no Bluetooth stack, adapter
off), :class:`BleDeviceNotFoundError` (the scan ran, the device did not answer),
:class:`BleConnectError` (found, but connecting or subscribing failed) and
:class:`BleCharacteristicMissingError` (connected, the configured characteristic is absent); all
are :class:`~c3t_edge.errors.TransportError`, one line, with the underlying error as ``__cause__``.

Host commands are written to the write characteristic (NUS RX by default) in pieces that fit
the negotiated MTU. The PORT string may override the UUIDs:
``ble://IMU-42?service=UUID&notify=UUID&write=UUID`` (``write=`` empty: receive only).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote

from c3t_edge.clock import host_time
from c3t_edge.errors import TransportError
from c3t_edge.transports.base import Capabilities, EventCallback, PortSettings, ReconnectPolicy, Transport, one_line

NUS_SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
#: Device -> host (notify).
NUS_TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
#: Host -> device (write / write without response).
NUS_RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"

#: A Bluetooth address (AA:BB:CC:DD:EE:FF or with dashes), or the UUID macOS uses instead.
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_APPLE_UUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


class BleError(TransportError):
    """A BLE port that cannot be used; the subclasses say which step failed."""


class BleScanError(BleError):
    """Scanning for devices failed (no Bluetooth stack, adapter missing or off, permission denied)."""


class BleDeviceNotFoundError(BleError):
    """The scan ran but no device with the wanted name or address answered in time."""


class BleConnectError(BleError):
    """The device was found but connecting to it, or subscribing to its notifications, failed."""


class BleCharacteristicMissingError(BleError):
    """Connected, but the device has no characteristic with the configured UUID."""


@dataclass(frozen=True)
class BleOptions:
    """BLE settings. ``client_backend``/``scanner_backend``: bleak backend classes to use instead
    of the platform's; ``bleak_kwargs``: extra keyword arguments for ``BleakScanner`` and
    ``BleakClient`` (e.g. ``{"bluez": {"adapter": "hci1"}}``)."""

    service_uuid: str = NUS_SERVICE_UUID
    notify_uuid: str = NUS_TX_UUID
    write_uuid: str | None = NUS_RX_UUID
    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    client_backend: type | None = None
    scanner_backend: type | None = None
    bleak_kwargs: Mapping[str, Any] = field(default_factory=dict)


def parse_ble_port(port: str, options: BleOptions | None = None) -> tuple[str, BleOptions]:
    """``ble://TARGET[?service=..&notify=..&write=..]`` -> (target, options with the overrides)."""
    rest = port[len("ble://"):]
    target, _, query = rest.partition("?")
    target = unquote(target).strip()
    if not target:
        raise TransportError(f"{port!r}: give a device name or address after ble://")
    opts = options or BleOptions()
    overrides: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        value = values[-1].strip()
        if key == "service":
            overrides["service_uuid"] = value
        elif key == "notify":
            overrides["notify_uuid"] = value
        elif key == "write":
            overrides["write_uuid"] = value or None
        elif key == "timeout":
            overrides["scan_timeout_s"] = float(value)
        else:
            raise TransportError(f"{port!r}: unknown BLE option {key!r} (service, notify, write, timeout)")
    return target, replace(opts, **overrides)


class BleTransport(Transport):
    """Notifications of one characteristic of one BLE peripheral, as a byte stream."""

    def __init__(self, port: str, *, options: BleOptions | None = None, on_event: EventCallback | None = None,
                 reconnect: ReconnectPolicy | None = None) -> None:
        super().__init__(port, on_event=on_event, reconnect=reconnect)
        self.target, self.options = parse_ble_port(port, options)
        self.capabilities = Capabilities(can_write=self.options.write_uuid is not None, paced=True)
        #: Negotiated ATT MTU of the current connection (bytes), 0 while disconnected.
        self.mtu = 0
        #: Largest notification payload seen (bytes): at most ``mtu - 3``.
        self.max_notification = 0
        self._client: Any = None
        self._write_char: Any = None
        self._lost: asyncio.Event | None = None
        self._hold: list[tuple[bytes, float]] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def from_port(cls, port: str, settings: PortSettings) -> BleTransport:
        return cls(port, options=settings.ble, on_event=settings.on_event, reconnect=settings.reconnect)

    async def open(self) -> None:
        if self._supervisor is not None:
            return
        self._closing = False
        self._start_queue()
        try:
            await self._connect()
        except TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - platform stacks raise assorted types; keep one line and the cause
            raise BleError(f"{self.port}: cannot open: {one_line(exc)}") from exc
        self.stats.connected = True
        self._resume()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"c3t-ble {self.port}")

    async def close(self) -> None:
        self._closing = True
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing: its failure is moot
                pass
        await self._drop_client()
        self.stats.connected = False
        self._end(None)

    async def write(self, data: bytes) -> None:
        """Write host bytes to the write characteristic, split to fit the MTU."""
        from bleak.exc import BleakError

        client, char = self._client, self._write_char
        if char is None and self.options.write_uuid is None:
            raise TransportError(f"{self.port}: no write characteristic configured (write=)")
        if client is None or char is None or not self.stats.connected:
            raise TransportError(f"{self.port}: cannot send, the BLE link is down")
        with_response = "write-without-response" not in char.properties
        # An attribute value is at most 512 bytes (Core spec Vol 3 Part F 3.2.9), whatever the MTU.
        if with_response:
            size = max(20, min(512, (self.mtu or 23) - 3))
        else:
            size = max(20, min(512, char.max_write_without_response_size))
        try:
            for i in range(0, len(data), size):
                await client.write_gatt_char(char, bytes(data[i:i + size]), response=with_response)
        except (BleakError, OSError, asyncio.TimeoutError) as exc:
            raise TransportError(f"{self.port}: write failed: {one_line(exc)}") from exc
        self.stats.bytes_out += len(data)

    # -- connection ------------------------------------------------------------------------

    def _matcher(self) -> Callable[[Any, Any], bool]:
        """Whether a scanned (device, advertisement) is the wanted one: by address, else by name."""
        if _MAC.match(self.target) or _APPLE_UUID.match(self.target):
            wanted = self.target.lower()
            if _MAC.match(wanted):
                wanted = wanted.replace("-", ":")
            return lambda d, ad: d.address.lower() == wanted
        return lambda d, ad: ad.local_name == self.target or d.name == self.target

    async def _find(self) -> Any:
        from bleak import BleakScanner

        opts = self.options
        kwargs = dict(opts.bleak_kwargs)
        if opts.scanner_backend is not None:
            kwargs["backend"] = opts.scanner_backend
        try:
            device = await BleakScanner.find_device_by_filter(self._matcher(), timeout=opts.scan_timeout_s,
                                                              **kwargs)
        except Exception as exc:  # noqa: BLE001 - bleak and D-Bus raise many types when there is no stack
            raise BleScanError(f"{self.port}: BLE scan failed: {one_line(exc)}") from exc
        if device is None:
            raise BleDeviceNotFoundError(f"{self.port}: no BLE device {self.target!r} found in "
                                         f"{opts.scan_timeout_s:g} s of scanning")
        return device

    async def _connect(self) -> None:
        """Scan, connect, subscribe; notifications are held until :meth:`_resume`. Raises a
        :class:`BleError` (or a bleak error) on any failure."""
        from bleak import BleakClient
        from bleak.exc import BleakError

        opts = self.options
        device = await self._find()
        lost = asyncio.Event()
        kwargs = dict(opts.bleak_kwargs)
        if opts.client_backend is not None:
            kwargs["backend"] = opts.client_backend
        client = BleakClient(device, disconnected_callback=lambda _c: lost.set(),
                             timeout=opts.connect_timeout_s, **kwargs)
        try:
            await client.connect()
        except (BleakError, OSError, asyncio.TimeoutError) as exc:
            raise BleConnectError(f"{self.port}: cannot connect to {self.target!r}: {one_line(exc)}") from exc
        try:
            await self._subscribe(client, lost)
        except BaseException as exc:
            self._hold = None
            self._client = self._write_char = None
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001 - already failing; report the first error
                pass
            if isinstance(exc, (BleakError, OSError, asyncio.TimeoutError)):
                raise BleConnectError(f"{self.port}: cannot subscribe on {self.target!r}: "
                                      f"{one_line(exc)}") from exc
            raise

    async def _subscribe(self, client: Any, lost: asyncio.Event) -> None:
        opts = self.options
        await _acquire_bluez_mtu(client)
        notify = _characteristic(client, opts.service_uuid, opts.notify_uuid)
        if notify is None:
            raise BleCharacteristicMissingError(
                f"{self.port}: {self.target!r} has no characteristic {opts.notify_uuid} "
                f"(service {opts.service_uuid}); set notify=UUID in the port")
        write = None
        if opts.write_uuid is not None:
            write = _characteristic(client, opts.service_uuid, opts.write_uuid)
        self._client, self._write_char, self._lost = client, write, lost
        self.mtu = client.mtu_size
        self._hold = []  # notifications that race ahead of the reconnection report wait here
        await client.start_notify(notify, self._on_notification)

    def _resume(self) -> None:
        """Deliver the notifications held while (re)connecting, after the gap was reported."""
        held, self._hold = self._hold or [], None
        for data, t in held:
            self._deliver(data, t)

    async def _reopen(self) -> None:
        await self._drop_client()
        await self._connect()

    def _on_notification(self, _char: Any, data: bytearray) -> None:
        now = host_time()
        if len(data) > self.max_notification:
            self.max_notification = len(data)
        if self._hold is not None:
            self._hold.append((bytes(data), now))
        else:
            self._deliver(bytes(data), now)

    async def _drop_client(self) -> None:
        client, self._client, self._write_char = self._client, None, None
        self.mtu = 0
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), timeout=5.0)
            except Exception:  # noqa: BLE001 - the peer may already be gone
                pass

    async def _supervise(self) -> None:
        try:
            await self._supervise_link()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead supervisor must end the stream, not stall it
            error = BleError(f"{self.port}: BLE supervision failed: {one_line(exc)}")
            error.__cause__ = exc
            self._end(error)

    async def _supervise_link(self) -> None:
        """Wait for an unsolicited disconnect, then reconnect (the base class's back-off); until give-up."""
        while not self._closing:
            assert self._lost is not None
            await self._lost.wait()
            lost_at = host_time()
            if not await self._recover("BLE link lost (peripheral disconnected or out of range)", lost_at):
                return


def _characteristic(client: Any, service_uuid: str, char_uuid: str) -> Any:
    """The characteristic inside the configured service, else anywhere on the device (None: absent)."""
    service = client.services.get_service(service_uuid)
    if service is not None:
        found = service.get_characteristic(char_uuid)
        if found is not None:
            return found
    return client.services.get_characteristic(char_uuid)


async def _acquire_bluez_mtu(client: Any) -> None:
    """BlueZ exchanges the largest MTU itself but bleak reports 23 until asked (bleak's mtu example)."""
    backend = getattr(client, "_backend", None)
    acquire = getattr(backend, "_acquire_mtu", None)
    if acquire is not None:
        try:
            await acquire()
        except Exception:  # noqa: BLE001 - only the reported figure is affected, not the data
            pass
