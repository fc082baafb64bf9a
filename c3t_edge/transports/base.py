"""The one byte-transport interface shared by serial, BLE and replay.

A :class:`Transport` delivers the bytes a device sends as :class:`Chunk` objects, each stamped with
the host time at which it arrived. It knows nothing about frames: the protocol decoder joins the
chunks into one byte stream. When the link drops, a transport that can reconnect does so with
exponential back-off and reports the outage three ways, so that any consumer can pick one:

- in band: the first chunk after the outage carries ``chunk.gap`` (a :class:`Gap`);
- as events: ``on_event`` (a callable given to the constructor) receives a :class:`LinkEvent` for
  ``"disconnected"``, ``"reconnected"`` and ``"gave_up"``;
- as state: ``transport.stats`` (:class:`TransportStats`) keeps counters and the list of gaps.

Host times are seconds on a wall-clock-anchored monotonic clock (:func:`host_time`): they read
like ``time.time()`` but never jump backwards while the process runs.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from c3t_edge.errors import TransportError

_WALL0 = time.time()
_MONO0 = time.perf_counter()


def host_time() -> float:
    """Seconds since the Unix epoch, advancing monotonically (``time.perf_counter`` anchored once)."""
    return _WALL0 + (time.perf_counter() - _MONO0)


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


class Transport(abc.ABC):
    """A source (and, where the link allows, a sink) of raw bytes from one device.

    Use it as an async context manager, then ``await read()`` (or ``async for chunk in t``)
    until it returns ``None`` (the stream ended: end of a recording, or ``close()`` was called).
    """

    #: "serial", "ble" or "replay".
    kind: str = ""
    #: Whether :meth:`write` can send bytes to the device.
    can_write: bool = False

    def __init__(self, port: str, *, on_event: EventCallback | None = None,
                 reconnect: ReconnectPolicy | None = None) -> None:
        self.port = port
        self.on_event = on_event
        self.reconnect = reconnect or ReconnectPolicy()
        self.stats = TransportStats()
        self.events: list[LinkEvent] = []
        self._queue: asyncio.Queue[Chunk | BaseException | None] | None = None
        self._pending_gap: Gap | None = None
        self._closed = False

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
        if self._closed and self._queue.empty():
            return None
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # keep later reads returning None
            return None
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        return item

    async def write(self, data: bytes) -> None:
        """Send bytes to the device (host commands). Raises TransportError where not possible."""
        raise TransportError(f"{self.port}: this {self.kind or 'transport'} cannot send bytes")

    def read_nowait(self) -> list[Chunk]:
        """The chunks already received but not yet read (no waiting); used to drain on shutdown."""
        out: list[Chunk] = []
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
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

    def _start_queue(self) -> None:
        self._queue = asyncio.Queue()
        self._closed = False

    def _deliver(self, data: bytes, host_time_s: float) -> None:
        """Queue received bytes; attaches the pending gap to the first chunk after an outage."""
        if not data or self._queue is None or self._closed:
            return
        gap, self._pending_gap = self._pending_gap, None
        self.stats.bytes_in += len(data)
        self.stats.chunks_in += 1
        self._queue.put_nowait(Chunk(bytes(data), host_time_s, gap))

    def _end(self, error: BaseException | None = None) -> None:
        """End the stream: later reads return ``None`` (or raise ``error`` when given)."""
        if self._queue is not None:
            self._queue.put_nowait(error)
        self._closed = True

    def _emit(self, event: LinkEvent) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _link_lost(self, host_time_s: float, reason: str) -> None:
        self.stats.connected = False
        self.stats.disconnects += 1
        self._emit(LinkEvent("disconnected", self.port, host_time_s, reason))

    def _link_back(self, gap: Gap) -> None:
        self.stats.connected = True
        self.stats.reconnects += 1
        self.stats.gaps.append(gap)
        self._pending_gap = gap
        self._emit(LinkEvent("reconnected", self.port, gap.end_s, gap.reason, gap))

    def _give_up(self, gap: Gap) -> None:
        self.stats.gaps.append(gap)
        self._emit(LinkEvent("gave_up", self.port, gap.end_s, gap.reason, gap))
        self._end(TransportError(
            f"{self.port}: link lost ({gap.reason}) and not back after {gap.duration_s:.1f} s"))
