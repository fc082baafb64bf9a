"""``replay://FILE``: a recording played back as a transport.

Playback is deterministic: the chunks, their bytes, their recorded host times and the recorded
link gaps are the same on every run and at every speed. Only the pacing changes: ``speed=1.0``
plays at the recorded rate, ``speed=X`` X times faster, ``speed=None`` as fast as possible
(``capabilities.paced`` is then False). Pacing is measured from the first record
(:class:`ReplayPacer`), so sleeps do not accumulate drift.

A producer task reads the file and puts chunks into the base class's queue (bounded, so a fast
producer never holds more than :data:`QUEUE_RECORDS` records); recorded link events travel in the
same queue and are announced when the reader reaches them, in stream order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from c3t_edge.errors import TransportError
from c3t_edge.recording import Record, RecordingHeader, RecordingReader, RecordingStats, read_event_record
from c3t_edge.transports.base import Capabilities, EventCallback, Gap, PortSettings, Transport

#: As fast as possible still yields to the event loop every this many records.
_YIELD_EVERY = 256
#: The producer runs at most this many records ahead of the reader.
QUEUE_RECORDS = 512


class ReplayPacer:
    """When each record is due: record offsets (µs) divided by ``speed``, measured from the first
    record against ``clock`` (s); ``sleep`` waits. ``speed=None``: never waits, only yields to the
    event loop every :data:`_YIELD_EVERY` records. ``clock``/``sleep`` default to
    ``time.perf_counter``/``asyncio.sleep``; tests may pass a virtual clock."""

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if speed is not None and not speed > 0:
            raise TransportError(f"replay speed must be > 0 (got {speed})")
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._first_us: int | None = None
        self._t0 = 0.0
        self._since_yield = 0

    async def wait_for(self, offset_us: int) -> None:
        """Return when the record at ``offset_us`` (µs since the recording's start) is due."""
        if self._first_us is None:
            self._first_us = offset_us
            self._t0 = self.clock()
        if self.speed is None:
            self._since_yield += 1
            if self._since_yield >= _YIELD_EVERY:
                self._since_yield = 0
                await self.sleep(0)
            return
        due = self._t0 + (offset_us - self._first_us) / 1e6 / self.speed
        delay = due - self.clock()
        if delay > 0:
            await self.sleep(delay)


class ReplayTransport(Transport):
    """Chunks from a recording file; :meth:`read` returns ``None`` after the last complete record.

    After the end, :attr:`recording_stats` tells how many records were read and whether a damaged
    tail was ignored (``ignored_tail_bytes``; also in :meth:`summary_facts`).
    """

    def __init__(self, port: str, path: str, *, speed: float | None = 1.0,
                 on_event: EventCallback | None = None, pacer: ReplayPacer | None = None) -> None:
        super().__init__(port, on_event=on_event)
        self.pacer = pacer or ReplayPacer(speed)
        self.path = path
        self.speed = self.pacer.speed
        self.capabilities = Capabilities(can_write=False, paced=self.speed is not None, recorded=True)
        self._reader: RecordingReader | None = None
        self._producer: asyncio.Task[None] | None = None

    @classmethod
    def from_port(cls, port: str, settings: PortSettings) -> ReplayTransport:
        path = port[len("replay://"):]
        if not path:
            raise TransportError(f"{port!r}: give a recording file after replay://")
        return cls(port, path, speed=settings.speed, on_event=settings.on_event)

    @property
    def header(self) -> RecordingHeader:
        if self._reader is None:
            raise TransportError(f"{self.port}: header before open()")
        return self._reader.header

    @property
    def recording_stats(self) -> RecordingStats:
        return self._reader.stats if self._reader is not None else RecordingStats()

    def summary_facts(self) -> dict[str, Any]:
        tail = self.recording_stats.ignored_tail_bytes
        return {"ignored_tail_bytes": tail} if tail else {}

    async def open(self) -> None:
        if self._reader is not None:
            return
        self._reader = RecordingReader(self.path)  # RecordingError is a C3TEdgeError
        self._start_queue(QUEUE_RECORDS)
        self.stats.connected = True
        self._producer = asyncio.create_task(self._produce(), name=f"c3t-replay {self.path}")

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        if self._queue is not None and not self._closed and not self._queue.full():
            self._queue.put_nowait(None)  # a read() waiting on an empty queue returns None
        self._closed = True
        self.stats.connected = False
        if self._reader is not None:
            self._reader.close()

    async def _produce(self) -> None:
        assert self._reader is not None
        try:
            for rec in self._reader.records():
                await self.pacer.wait_for(rec.offset_us)
                if rec.kind == "data":
                    await self._put(self._chunk(rec.data, rec.host_time_s))
                else:
                    await self._replay_event(rec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing read ends the stream with its error
            error = TransportError(f"{self.port}: reading the recording failed: {exc}")
            error.__cause__ = exc
            await self._put(error)
            return
        self.stats.connected = False
        await self._put(None)

    async def _replay_event(self, rec: Record) -> None:
        assert self._reader is not None
        ev = read_event_record(rec, self._reader.header.start_wall_time_s)
        if ev is None:
            return
        if ev.kind == "disconnected":
            await self._put(self._note_lost(rec.host_time_s, ev.reason))
            return
        gap = Gap(ev.gap_start_s, ev.gap_end_s, ev.reason, ev.attempts)
        if ev.kind == "reconnected":
            await self._put(self._note_back(gap))
        else:
            await self._put(self._note_gave_up(gap))
