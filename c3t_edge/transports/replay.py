"""``replay://FILE``: a recording played back as a transport.

Playback is deterministic: the chunks, their bytes, their recorded host times and the recorded
link gaps are the same on every run and at every speed. Only the pacing changes: ``speed=1.0``
plays at the recorded rate, ``speed=X`` X times faster, ``speed=None`` as fast as possible. Pacing
is measured from the first record, against ``time.perf_counter``, so sleeps do not accumulate drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from c3t_edge.errors import TransportError
from c3t_edge.recording import Record, RecordingReader, RecordingStats
from c3t_edge.transports.base import Chunk, EventCallback, Gap, LinkEvent, Transport

#: As fast as possible still yields to the event loop every this many records.
_YIELD_EVERY = 256


class ReplayTransport(Transport):
    """Chunks from a recording file; :meth:`read` returns ``None`` after the last complete record.

    After the end, :attr:`recording_stats` tells how many records were read and whether a damaged
    tail was ignored (``ignored_tail_bytes``).
    """

    kind = "replay"
    can_write = False

    def __init__(self, port: str, path: str, *, speed: float | None = 1.0,
                 on_event: EventCallback | None = None) -> None:
        super().__init__(port, on_event=on_event)
        if speed is not None and not speed > 0:
            raise TransportError(f"replay speed must be > 0 (got {speed})")
        self.path = path
        self.speed = speed
        self._reader: RecordingReader | None = None
        self._records: Iterator[Record] | None = None
        self._t0_perf = 0.0
        self._first_us: int | None = None
        self._since_yield = 0

    @property
    def header(self):  # -> RecordingHeader
        if self._reader is None:
            raise TransportError(f"{self.port}: header before open()")
        return self._reader.header

    @property
    def recording_stats(self) -> RecordingStats:
        return self._reader.stats if self._reader is not None else RecordingStats()

    async def open(self) -> None:
        if self._reader is not None:
            return
        self._reader = RecordingReader(self.path)  # RecordingError is a C3TEdgeError
        self._records = self._reader.records()
        self._start_queue()
        self.stats.connected = True

    async def close(self) -> None:
        self._closed = True
        self.stats.connected = False
        if self._reader is not None:
            self._reader.close()
            self._records = None

    async def read(self) -> Chunk | None:
        if self._reader is None:
            raise TransportError(f"{self.port}: read() before open()")
        while self._records is not None:
            rec = next(self._records, None)
            if rec is None:
                self._records = None
                self.stats.connected = False
                break
            await self._pace(rec.offset_us)
            if rec.kind == "data":
                gap, self._pending_gap = self._pending_gap, None
                self.stats.bytes_in += len(rec.data)
                self.stats.chunks_in += 1
                return Chunk(rec.data, rec.host_time_s, gap)
            self._replay_event(rec)
        return None

    async def _pace(self, offset_us: int) -> None:
        if self._first_us is None:
            self._first_us = offset_us
            self._t0_perf = time.perf_counter()
        if self.speed is None:
            self._since_yield += 1
            if self._since_yield >= _YIELD_EVERY:
                self._since_yield = 0
                await asyncio.sleep(0)
            return
        due = self._t0_perf + (offset_us - self._first_us) / 1e6 / self.speed
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    def _replay_event(self, rec: Record) -> None:
        ev = rec.event or {}
        kind = ev.get("event")
        reason = str(ev.get("reason", ""))
        if kind == "disconnected":
            self._link_lost(rec.host_time_s, reason)
        elif kind in ("reconnected", "gave_up"):
            start = self._reader.header.start_wall_time_s if self._reader else 0.0
            gap = Gap(start + int(ev.get("gap_start_us", rec.offset_us)) / 1e6,
                      start + int(ev.get("gap_end_us", rec.offset_us)) / 1e6,
                      reason, int(ev.get("attempts", 0)))
            if kind == "reconnected":
                self._link_back(gap)
            else:
                self.stats.gaps.append(gap)
                self._emit(LinkEvent("gave_up", self.port, gap.end_s, reason, gap))


def event_record(event: LinkEvent, start_wall_time_s: float) -> dict:
    """A :class:`LinkEvent` as the JSON object stored in a recording's event record."""
    doc: dict = {"event": event.kind, "reason": event.reason}
    if event.gap is not None:
        doc["gap_start_us"] = round((event.gap.start_s - start_wall_time_s) * 1e6)
        doc["gap_end_us"] = round((event.gap.end_s - start_wall_time_s) * 1e6)
        doc["attempts"] = event.gap.attempts
    return doc
