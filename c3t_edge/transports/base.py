"""The one byte-transport interface shared by serial, BLE, replay and any registered transport.

A :class:`Transport` delivers the bytes a device sends as :class:`Chunk` objects, each stamped with
the host time at which it arrived. It knows nothing about frames: the protocol decoder joins the
chunks into one byte stream. What a transport can do is stated by its :class:`Capabilities`
(write to the device; chunks paced by the device or as fast as they can be read), never by
its kind, so the runtime treats every transport alike.

When the link drops, a transport that can reconnect does so with the one back-off loop of this
module (:meth:`Transport._recover`, driven by a :class:`ReconnectPolicy`) and reports the outage
three ways, so that any consumer can pick one:

- in band: the first chunk after the outage carries ``chunk.gap`` (a :class:`Gap`);
- as events: ``on_event`` (a callable given to the constructor) receives a :class:`LinkEvent` for
  ``"disconnected"``, ``"reconnected"`` and ``"gave_up"``;
- as state: ``transport.stats`` (:class:`TransportStats`) keeps counters and the list of gaps.

Host times are seconds on a wall-clock-anchored monotonic clock (:func:`c3t_edge.clock.host_time`):
they read like ``time.time()`` but never jump backwards while the process runs.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from c3t_edge.clock import host_time
from c3t_edge.errors import TransportError


def one_line(exc: BaseException) -> str:
    """An exception as one short line (pyserial and platform BLE messages can span lines, nest or be empty)."""
    text = " ".join(str(exc).split())
    nested = re.findall(r"\[Errno -?\d+\] ([^\[]+)", text)  # "[Errno 2] could not open port X: [Errno 2] ..."
    if len(nested) > 1:
        text = nested[-1].strip()
    return text or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Gap:
    """An interval during which the link was down and bytes may have been lost.

    ``start_s`` and ``end_s`` are host times (s); ``reason`` is the error that ended the link;
    ``attempts`` is how many reopen attempts it took.
    """

    start_s: float
    end_s: float
    reason: str
    attempts: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes as they arrived, with the host receive time in seconds (see :func:`host_time`).

    ``gap`` is set on the first chunk after the link came back: bytes sent by the device during
    ``gap`` may be missing between the previous chunk and this one.
    """

    data: bytes
    host_time_s: float
    gap: Gap | None = None


LinkEventKind = Literal["disconnected", "reconnected", "gave_up"]


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A change of link state, delivered to ``on_event``.

    ``gap`` is set for ``"reconnected"`` (the whole outage) and for ``"gave_up"`` (up to the moment
    the transport stopped trying).
    """

    kind: LinkEventKind
    port: str
    host_time_s: float
    reason: str
    gap: Gap | None = None


EventCallback = Callable[[LinkEvent], None]


@dataclass
class TransportStats:
    """Counters a runtime can read at any time (bytes and chunks in and out, link outages)."""

    bytes_in: int = 0
    chunks_in: int = 0
    bytes_out: int = 0
    disconnects: int = 0
    reconnects: int = 0
    gaps: list[Gap] = field(default_factory=list)
    connected: bool = False

    @property
    def gap_total_s(self) -> float:
        return sum(g.duration_s for g in self.gaps)


@dataclass(frozen=True)
class Capabilities:
    """What a transport can do; consumers ask these instead of the transport's kind.

    ``can_write``: :meth:`Transport.write` sends bytes to the device (host commands).
    ``paced``: chunks arrive at the device's pace (a live link, a replay at a set speed); False
    when they come as fast as they are read (a replay as fast as possible), so a consumer may
    process them in batches.
    ``recorded``: the bytes were stored earlier; a chunk's ``host_time_s`` is when they reached the
    host that recorded them, not this run's clock (so no receive latency can be measured from it).
    """

    can_write: bool = False
    paced: bool = True
    recorded: bool = False


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential back-off between reopen attempts: ``initial_s``, ``initial_s*factor``, ... capped
    at ``max_s``. ``give_up_after_s`` (None = never) ends the transport with a ``"gave_up"`` event
    and a :class:`~c3t_edge.errors.TransportError` from :meth:`Transport.read`; ``enabled=False``
    gives up at the first disconnection."""

    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 2.0
    give_up_after_s: float | None = None
    enabled: bool = True

    def delays(self) -> Iterator[float]:
        """The waits (s) before each reopen attempt, forever."""
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.factor)


@dataclass(frozen=True)
class PortSettings:
    """Everything :func:`~c3t_edge.transports.open_transport` was given, for a transport's
    :meth:`Transport.from_port` to take what applies to it (the rest is ignored).

    ``baudrate``/``serial_options``: serial; ``ble``: :class:`~c3t_edge.transports.ble.BleOptions`;
    ``speed``: replay pacing (1.0 real time, X times faster, ``None`` as fast as possible);
    ``extra``: settings of transports registered by others, by their own names.
    """

    on_event: EventCallback | None = None
    reconnect: ReconnectPolicy | None = None
    baudrate: int = 115200
    serial_options: Mapping[str, Any] | None = None
    ble: Any = None
    speed: float | None = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)


class Transport(abc.ABC):
    """A source (and, where the link allows, a sink) of raw bytes from one device.

    Use it as an async context manager, then ``await read()`` (or ``async for chunk in t``)
    until it returns ``None`` (the stream ended: end of a recording, or ``close()`` was called).

    An implementation opens its link in :meth:`open`, hands received bytes to :meth:`_deliver`
    (on the event loop thread), reports a failed link with :meth:`_recover` and, to reconnect,
    implements :meth:`_reopen` (and :meth:`_resume` when reading must be restarted afterwards).
    """

    #: What this transport can do (instances may narrow it, e.g. a BLE port without a write characteristic).
    capabilities: Capabilities = Capabilities()

    def __init__(self, port: str, *, on_event: EventCallback | None = None,
                 reconnect: ReconnectPolicy | None = None) -> None:
        self.port = port
        self.on_event = on_event
        self.reconnect = reconnect or ReconnectPolicy()
        self.stats = TransportStats()
        self.events: list[LinkEvent] = []
        #: The error of the latest failed reopen attempt (None: none failed), kept as the cause of a give-up.
        self.last_attempt_error: BaseException | None = None
        self._queue: asyncio.Queue[Chunk | LinkEvent | BaseException | None] | None = None
        self._pending_gap: Gap | None = None
        self._closed = False

    @classmethod
    def from_port(cls, port: str, settings: PortSettings) -> Transport:
        """The transport for a PORT string of its registered scheme (see :mod:`c3t_edge.transports`)."""
        return cls(port, on_event=settings.on_event, reconnect=settings.reconnect)

    @property
    def can_write(self) -> bool:
        """Whether :meth:`write` can send bytes to the device (``capabilities.can_write``)."""
        return self.capabilities.can_write

    def summary_facts(self) -> dict[str, Any]:
        """Facts about the source worth a line in a run's summary (e.g. a recording's damaged tail)."""
        return {}

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the link; raises :class:`~c3t_edge.errors.TransportError` when it cannot."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link; pending and later :meth:`read` calls return ``None``. Idempotent."""

    async def __aenter__(self) -> Transport:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- data --------------------------------------------------------------------------------

    async def read(self) -> Chunk | None:
        """The next chunk of bytes, or ``None`` once the stream has ended or the transport closed."""
        if self._queue is None:
            raise TransportError(f"{self.port}: read() before open()")
        while True:
            if self._closed and self._queue.empty():
                return None
            item = await self._queue.get()
            if isinstance(item, LinkEvent):  # an in-band event: announced in stream order
                self._emit(item)
                continue
            if item is None:
                self._queue.put_nowait(None)  # keep later reads returning None
                return None
            if isinstance(item, BaseException):
                self._queue.put_nowait(item)
                raise item
            return item

    async def write(self, data: bytes) -> None:
        """Send bytes to the device (host commands). Raises TransportError where not possible."""
        raise TransportError(f"{self.port}: this transport cannot send bytes")

    def read_nowait(self) -> list[Chunk]:
        """The chunks already received but not yet read (no waiting); used to drain on shutdown."""
        out: list[Chunk] = []
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, LinkEvent):
                self._emit(item)
                continue
            if not isinstance(item, Chunk):
                self._queue.put_nowait(item)  # end-of-stream markers stay for read()
                break
            out.append(item)
        return out

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Chunk]:
        while (chunk := await self.read()) is not None:
            yield chunk

    # -- helpers for implementations (call on the event loop thread) ---------------------------

    def _start_queue(self, maxsize: int = 0) -> None:
        """A fresh queue; ``maxsize`` > 0 bounds it (a producer then awaits :meth:`_put`)."""
        self._queue = asyncio.Queue(maxsize)
        self._closed = False

    def _chunk(self, data: bytes, host_time_s: float) -> Chunk:
        """Count received bytes; attaches the pending gap to the first chunk after an outage."""
        gap, self._pending_gap = self._pending_gap, None
        self.stats.bytes_in += len(data)
        self.stats.chunks_in += 1
        return Chunk(bytes(data), host_time_s, gap)

    def _deliver(self, data: bytes, host_time_s: float) -> None:
        """Queue received bytes (unbounded queue)."""
        if not data or self._queue is None or self._closed:
            return
        self._queue.put_nowait(self._chunk(data, host_time_s))

    async def _put(self, item: Chunk | LinkEvent | BaseException | None) -> None:
        """Queue an item, waiting while a bounded queue is full."""
        assert self._queue is not None
        await self._queue.put(item)

    def _end(self, error: BaseException | None = None) -> None:
        """End the stream: later reads return ``None`` (or raise ``error`` when given)."""
        if self._queue is not None:
            self._queue.put_nowait(error)
        self._closed = True

    def _emit(self, event: LinkEvent) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _note_lost(self, host_time_s: float, reason: str) -> LinkEvent:
        self.stats.connected = False
        self.stats.disconnects += 1
        return LinkEvent("disconnected", self.port, host_time_s, reason)

    def _note_back(self, gap: Gap) -> LinkEvent:
        self.stats.connected = True
        self.stats.reconnects += 1
        self.stats.gaps.append(gap)
        self._pending_gap = gap
        return LinkEvent("reconnected", self.port, gap.end_s, gap.reason, gap)

    def _note_gave_up(self, gap: Gap) -> LinkEvent:
        self.stats.gaps.append(gap)
        return LinkEvent("gave_up", self.port, gap.end_s, gap.reason, gap)

    def _link_lost(self, host_time_s: float, reason: str) -> None:
        self._emit(self._note_lost(host_time_s, reason))

    def _link_back(self, gap: Gap) -> None:
        self._emit(self._note_back(gap))

    def _give_up(self, gap: Gap) -> None:
        self._emit(self._note_gave_up(gap))
        cause = self.last_attempt_error
        error = TransportError(f"{self.port}: link lost ({gap.reason}) and not back after {gap.duration_s:.1f} s"
                               + (f" (last attempt: {one_line(cause)})" if cause is not None else ""))
        error.__cause__ = cause
        self._end(error)

    # -- reconnection: the one back-off loop -----------------------------------------------------

    async def _reopen(self) -> None:
        """Reopen the link after a failure (one attempt); raises on failure. Reconnecting transports implement it."""
        raise TransportError(f"{self.port}: this transport cannot reconnect")

    def _resume(self) -> None:  # noqa: B027 - an optional hook: most transports need nothing here
        """Restart reading after a successful :meth:`_reopen` (the gap is already pending)."""

    async def _recover(self, reason: str, lost_at_s: float) -> bool:
        """Report the lost link, then reopen it with the :class:`ReconnectPolicy`'s back-off.

        True once it is back (``"reconnected"`` reported, reading resumed); False after giving up
        (``"gave_up"`` reported, the stream ends with a TransportError). Cancelled by ``close()``.
        """
        self._link_lost(lost_at_s, reason)
        policy = self.reconnect
        attempts = 0
        self.last_attempt_error = None
        for delay in policy.delays() if policy.enabled else ():
            limit = policy.give_up_after_s
            if limit is not None and host_time() + delay - lost_at_s > limit:
                break
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await self._reopen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failed attempt is retried after the next delay
                self.last_attempt_error = exc
                continue
            self._link_back(Gap(lost_at_s, host_time(), reason, attempts))
            self._resume()
            return True
        self._give_up(Gap(lost_at_s, host_time(), reason, attempts))
        return False
