"""Serial transport: device paths (``/dev/ttyUSB0``, ``COM3``) and pyserial URLs (``loop://``,
``socket://host:port``, ``rfc2217://...``), read by one background thread.

The thread blocks in pyserial's ``read`` (a ``select`` with a timeout, never a busy loop) and hands
each chunk to the event loop. When the port fails (device unplugged, socket closed) the thread
closes it and ends; the base class's back-off loop reopens the same PORT and a new reader thread
starts. The outage is reported as a :class:`~c3t_edge.transports.base.Gap`
(see :mod:`c3t_edge.transports.base`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from c3t_edge.clock import host_time
from c3t_edge.errors import TransportError
from c3t_edge.transports.base import Capabilities, EventCallback, PortSettings, ReconnectPolicy, Transport, one_line

DEFAULT_BAUDRATE = 115200


class SerialTransport(Transport):
    """Bytes from a serial port or pyserial URL.

    ``read_timeout_s`` bounds how long the reader thread blocks before it checks for ``close()``;
    it does not delay data (a read returns as soon as a byte arrives). ``serial_options`` go to
    ``serial.serial_for_url`` unchanged (``parity``, ``rtscts``, ...).
    """

    capabilities = Capabilities(can_write=True, paced=True)

    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE, on_event: EventCallback | None = None,
                 reconnect: ReconnectPolicy | None = None, read_timeout_s: float = 0.2,
                 serial_options: dict[str, Any] | None = None) -> None:
        super().__init__(port, on_event=on_event, reconnect=reconnect)
        self.baudrate = int(baudrate)
        self.read_timeout_s = read_timeout_s
        self.serial_options = dict(serial_options or {})
        self._ser: Any = None
        self._thread: threading.Thread | None = None
        self._recovery: asyncio.Future[bool] | None = None
        self._stop = threading.Event()
        self._write_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False

    @classmethod
    def from_port(cls, port: str, settings: PortSettings) -> SerialTransport:
        return cls(port, baudrate=settings.baudrate, on_event=settings.on_event, reconnect=settings.reconnect,
                   serial_options=dict(settings.serial_options or {}))

    def _open_port(self) -> Any:
        import serial  # pyserial: imported here so that `c3t-edge --help` stays light

        options: dict[str, Any] = {"baudrate": self.baudrate, "timeout": self.read_timeout_s,
                                   "write_timeout": 2.0}
        if "://" not in self.port:
            options["exclusive"] = True  # a second reader would steal bytes
        options.update(self.serial_options)
        return serial.serial_for_url(self.port, **options)

    async def open(self) -> None:
        if self._opened:
            return
        self._loop = asyncio.get_running_loop()
        self._start_queue()
        try:
            self._ser = await self._loop.run_in_executor(None, self._open_port)
        except (OSError, ValueError) as exc:  # SerialException is an OSError (IOError)
            raise TransportError(f"cannot open serial port {self.port}: {one_line(exc)}") from exc
        self._opened = True
        self.stats.connected = True
        self._stop.clear()
        self._resume()

    async def close(self) -> None:
        if not self._opened:
            self._end(None)
            return
        self._opened = False
        self._stop.set()
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
        ser = self._ser
        if ser is not None and hasattr(ser, "cancel_read"):
            try:
                ser.cancel_read()
            except Exception:  # noqa: BLE001 - a port already gone cannot be cancelled; the timeout ends the read
                pass
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5 * self.read_timeout_s + 1)
        self._close_port()
        self.stats.connected = False
        self._end(None)

    async def write(self, data: bytes) -> None:
        """Send bytes; raises TransportError while the port is down."""
        async with self._write_lock:
            ser = self._ser
            if ser is None or not self.stats.connected:
                raise TransportError(f"{self.port}: cannot send, the port is disconnected")
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, _write_all, ser, bytes(data))
            except (OSError, ValueError) as exc:
                raise TransportError(f"{self.port}: write failed: {one_line(exc)}") from exc
            self.stats.bytes_out += len(data)

    # -- reconnection (the back-off itself is the base class's) --------------------------------

    async def _reopen(self) -> None:
        assert self._loop is not None
        self._ser = await self._loop.run_in_executor(None, self._open_port)

    def _resume(self) -> None:
        self._thread = threading.Thread(target=self._reader, name=f"c3t-serial {self.port}", daemon=True)
        self._thread.start()

    def _port_failed(self, reason: str, lost_at_s: float) -> None:
        """On the loop: the reader thread lost the port; reconnect unless closing."""
        if self._stop.is_set():
            return
        self._recovery = asyncio.ensure_future(self._recover(reason, lost_at_s))

    # -- reader thread ---------------------------------------------------------------------

    def _reader(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            ser = self._ser
            try:
                data = ser.read(1)
                if data:
                    waiting = ser.in_waiting
                    if waiting:
                        data += ser.read(min(waiting, 1 << 16))
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                # OSError covers SerialException; ValueError/TypeError/AttributeError are what
                # pyserial raises when the port object is closed under a blocked read.
                if not self._stop.is_set():
                    lost_at = host_time()
                    self._close_port()
                    loop.call_soon_threadsafe(self._port_failed, one_line(exc), lost_at)
                return
            if data:
                now = host_time()
                loop.call_soon_threadsafe(self._deliver, data, now)

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; it is gone either way
                pass


def _write_all(ser: Any, data: bytes) -> None:
    ser.write(data)
    ser.flush()
