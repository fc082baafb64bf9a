"""Crash-safe recordings of raw transport bytes with host receive times (format: docs/RECORDING.md).

A recording is a small header followed by length-prefixed, CRC-32-checked records, appended one
``write`` system call per record. A process killed at any instant (``kill -9``, power cut aside)
leaves a file whose every complete record reads back; the reader stops at the first incomplete or
damaged record and reports how many trailing bytes it ignored.

>>> with RecordingWriter("s.c3trec", port="/dev/ttyUSB0") as w:   # doctest: +SKIP
...     w.write_chunk(b"\\x01\\x02", host_time_s=w.start_wall_time_s + 0.02)
>>> with RecordingReader("s.c3trec") as r:                        # doctest: +SKIP
...     for host_time_s, data in r.chunks(): ...
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, Protocol

from c3t_edge import __version__
from c3t_edge.clock import host_time
from c3t_edge.errors import C3TEdgeError, ProtocolError

#: First 8 bytes of every recording (PNG-style: a high-bit byte and a newline catch text-mode damage).
MAGIC = b"\x89C3TREC\n"
#: The format version this module writes; readers accept exactly this major version.
VERSION = 1
#: Suggested file extension.
SUFFIX = ".c3trec"

RECORD_DATA = 1
RECORD_EVENT = 2

_PREAMBLE = struct.Struct("<8sHHI")  # magic, version, flags, header JSON length
_LEN = struct.Struct("<I")
_TYPE_TIME = struct.Struct("<BQ")  # record type, host time in µs since start
_CRC = struct.Struct("<I")
_RECORD_OVERHEAD = _LEN.size + _TYPE_TIME.size + _CRC.size  # 17 bytes
#: Largest payload a record may carry; a length beyond it marks a damaged record.
MAX_PAYLOAD = 16 * 1024 * 1024
_MAX_HEADER_JSON = 1024 * 1024


class RecordingError(ProtocolError):
    """A file that is not a readable c3t-edge recording (bad magic, version or header)."""


class RecordingWriteError(C3TEdgeError):
    """A recording that cannot be created or written (exists already, no permission, disk full)."""


@dataclass(frozen=True)
class RecordingHeader:
    """What a recording says about itself.

    ``start_wall_time_s`` is the Unix time (s) of time offset 0; record times are offsets from it.
    """

    port: str
    start_wall_time_s: float
    version: int = VERSION
    created_by: str = f"c3t-edge {__version__}"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """One record: ``kind`` "data" (``data`` holds received bytes) or "event" (``event`` holds a
    link event as a dict). ``offset_us`` is the host receive time in µs since the start;
    ``host_time_s`` the same as Unix time."""

    kind: Literal["data", "event"]
    offset_us: int
    host_time_s: float
    data: bytes = b""
    event: dict[str, Any] | None = None


@dataclass
class RecordingStats:
    """What a reader found: complete records and bytes, and the ignored tail (if any)."""

    records: int = 0
    data_records: int = 0
    event_records: int = 0
    unknown_records: int = 0
    data_bytes: int = 0
    ignored_tail_bytes: int = 0
    tail_problem: str | None = None  # "truncated record", "checksum mismatch", "invalid length"


# ----------------------------------------------------------------------------------- link events
#: The ``"event"`` values of link-event records (docs/RECORDING.md); readers skip others.
LINK_EVENT_KINDS = ("disconnected", "reconnected", "gave_up")


class GapLike(Protocol):
    """An outage: host times (s) it started and ended, reopen attempts it took."""

    start_s: float
    end_s: float
    attempts: int


class LinkEventLike(Protocol):
    """A link event as transports report it (``c3t_edge.transports.LinkEvent``)."""

    kind: str
    reason: str
    host_time_s: float
    gap: GapLike | None


@dataclass(frozen=True)
class LinkEventRecord:
    """A link event read back from a recording: ``kind`` (one of :data:`LINK_EVENT_KINDS`),
    ``reason``, and for ``reconnected``/``gave_up`` the outage's host times (s) and attempts
    (for ``disconnected`` both times are the record's own)."""

    kind: str
    reason: str
    gap_start_s: float
    gap_end_s: float
    attempts: int


def event_record(event: LinkEventLike, start_wall_time_s: float) -> dict[str, Any]:
    """A link event as the JSON object stored in a recording's event record:
    ``{"event", "reason"}`` plus, when the event carries its gap, ``gap_start_us``/``gap_end_us``
    (µs since ``start_wall_time_s``) and ``attempts``."""
    doc: dict[str, Any] = {"event": event.kind, "reason": event.reason}
    if event.gap is not None:
        doc["gap_start_us"] = round((event.gap.start_s - start_wall_time_s) * 1e6)
        doc["gap_end_us"] = round((event.gap.end_s - start_wall_time_s) * 1e6)
        doc["attempts"] = event.gap.attempts
    return doc


def read_event_record(record: Record, start_wall_time_s: float) -> LinkEventRecord | None:
    """The link event of an event record (None: another kind of event, skipped)."""
    doc = record.event or {}
    kind = doc.get("event")
    if kind not in LINK_EVENT_KINDS:
        return None
    start_us = int(doc.get("gap_start_us", record.offset_us))
    end_us = int(doc.get("gap_end_us", record.offset_us))
    return LinkEventRecord(str(kind), str(doc.get("reason", "")), start_wall_time_s + start_us / 1e6,
                           start_wall_time_s + end_us / 1e6, int(doc.get("attempts", 0)))


class RecordingWriter:
    """Append records to a new recording; each record reaches the OS in one ``write`` call.

    ``host_time_s`` values are converted to integer µs offsets from ``start_wall_time_s``; a time
    earlier than the previous record's is clamped to it, so offsets never decrease.
    ``fsync_interval_s`` additionally forces data to disk at most that often (None: only at close).
    """

    def __init__(self, path: str | os.PathLike[str], port: str, *, start_wall_time_s: float | None = None,
                 overwrite: bool = False, fsync_interval_s: float | None = 1.0,
                 extra: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.start_wall_time_s = host_time() if start_wall_time_s is None else float(start_wall_time_s)
        self.header = RecordingHeader(port=port, start_wall_time_s=self.start_wall_time_s,
                                      extra=dict(extra or {}))
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        flags |= getattr(os, "O_BINARY", 0)
        try:
            self._fd: int | None = os.open(self.path, flags, 0o644)
        except FileExistsError:
            raise RecordingWriteError(f"{self.path} already exists (choose another file)") from None
        except OSError as exc:
            raise RecordingWriteError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        self._write(encode_header(self.header))
        self._last_us = 0
        self._fsync_interval_s = fsync_interval_s
        self._last_fsync = time.monotonic()
        self.records = 0
        self.data_bytes = 0

    def write_chunk(self, data: bytes, host_time_s: float) -> None:
        """Append received bytes stamped with their host receive time (Unix s)."""
        self._append(RECORD_DATA, host_time_s, bytes(data))
        self.data_bytes += len(data)

    def write_event(self, event: dict[str, Any], host_time_s: float) -> None:
        """Append a link event (a JSON-able dict with at least ``"event"``), e.g. a reconnection."""
        if "event" not in event:
            raise ValueError("an event record needs an 'event' key")
        self._append(RECORD_EVENT, host_time_s, json.dumps(event, sort_keys=True).encode())

    def write_link_event(self, event: LinkEventLike) -> None:
        """Append a link event (a transport's ``LinkEvent``) at its own host time, in the schema of
        :func:`event_record`."""
        self.write_event(event_record(event, self.start_wall_time_s), event.host_time_s)

    def offset_us(self, host_time_s: float) -> int:
        return max(self._last_us, round((host_time_s - self.start_wall_time_s) * 1e6))

    def _append(self, kind: int, host_time_s: float, payload: bytes) -> None:
        if len(payload) > MAX_PAYLOAD:  # split oversized data rather than write an unreadable record
            if kind != RECORD_DATA:
                raise ValueError("event record too large")
            for i in range(0, len(payload), MAX_PAYLOAD):
                self._append(kind, host_time_s, payload[i:i + MAX_PAYLOAD])
            return
        t_us = self.offset_us(host_time_s)
        self._last_us = t_us
        self._write(encode_record(kind, t_us, payload))
        self.records += 1
        interval = self._fsync_interval_s
        if interval is not None and time.monotonic() - self._last_fsync >= interval:
            self.sync()

    def _write(self, blob: bytes) -> None:
        if self._fd is None:
            raise RecordingWriteError(f"{self.path}: recording already closed")
        view = memoryview(blob)
        while view:  # os.write may write less than asked (signals, full disks): finish the record
            try:
                n = os.write(self._fd, view)
            except OSError as exc:
                raise RecordingWriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            view = view[n:]

    def sync(self) -> None:
        """Force written records to disk (``fsync``)."""
        if self._fd is not None:
            os.fsync(self._fd)
            self._last_fsync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RecordingReader:
    """Read a recording's header at construction, then its records in order.

    Iterating (or :meth:`chunks`) yields ``(host_time_s, data)`` for data records; :meth:`records`
    yields every :class:`Record`. Reading stops at the first incomplete or damaged record: after
    iteration, :attr:`stats` says how many bytes were ignored and why.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise RecordingError(f"cannot open recording {self.path}: {exc.strerror or exc}") from None
        try:
            self.header, self._data_start = _read_header(self._file, self.path)
        except BaseException:
            self._file.close()
            raise
        self.stats = RecordingStats()

    def records(self) -> Iterator[Record]:
        """Every complete record in file order (data and events); restarts from the first record."""
        f = self._file
        f.seek(self._data_start)
        self.stats = stats = RecordingStats()
        start = self.header.start_wall_time_s
        pos = self._data_start
        while True:
            head = f.read(_LEN.size)
            if not head:
                return
            problem = None
            body = b""
            if len(head) < _LEN.size:
                problem = "truncated record"
            else:
                (length,) = _LEN.unpack(head)
                if length < _TYPE_TIME.size or length > _TYPE_TIME.size + MAX_PAYLOAD:
                    problem = "invalid length"
                else:
                    body = f.read(length + _CRC.size)
                    if len(body) < length + _CRC.size:
                        problem = "truncated record"
                    elif zlib.crc32(head + body[:length]) != _CRC.unpack_from(body, length)[0]:
                        problem = "checksum mismatch"
            if problem is not None:
                end = f.seek(0, os.SEEK_END)
                stats.ignored_tail_bytes = end - pos
                stats.tail_problem = problem
                return
            pos += _LEN.size + len(body)
            kind, t_us = _TYPE_TIME.unpack_from(body)
            payload = body[_TYPE_TIME.size:length]
            stats.records += 1
            host = start + t_us / 1e6
            if kind == RECORD_DATA:
                stats.data_records += 1
                stats.data_bytes += len(payload)
                yield Record("data", t_us, host, payload)
            elif kind == RECORD_EVENT:
                stats.event_records += 1
                try:
                    event = json.loads(payload)
                except ValueError:
                    event = {"event": "unreadable"}
                yield Record("event", t_us, host, event=event)
            else:  # a later minor revision's record type: skip it, as the format requires
                stats.unknown_records += 1

    def chunks(self) -> Iterator[tuple[float, bytes]]:
        """``(host_time_s, data)`` for every complete data record, in order."""
        for rec in self.records():
            if rec.kind == "data":
                yield rec.host_time_s, rec.data

    __iter__ = chunks

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def encode_header(header: RecordingHeader) -> bytes:
    """The bytes that start a recording (preamble, header JSON, CRC-32)."""
    doc = {"port": header.port, "start_wall_time_s": header.start_wall_time_s,
           "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(header.start_wall_time_s)),
           "created_by": header.created_by, **({"extra": header.extra} if header.extra else {})}
    blob = json.dumps(doc, sort_keys=True).encode()
    head = _PREAMBLE.pack(MAGIC, header.version, 0, len(blob)) + blob
    return head + _CRC.pack(zlib.crc32(head))


def encode_record(kind: int, offset_us: int, payload: bytes) -> bytes:
    """One record: length, type, time (µs), payload, CRC-32 over all of these."""
    head = _LEN.pack(_TYPE_TIME.size + len(payload)) + _TYPE_TIME.pack(kind, offset_us) + payload
    return head + _CRC.pack(zlib.crc32(head))


def _read_header(f: BinaryIO, path: Path) -> tuple[RecordingHeader, int]:
    pre = f.read(_PREAMBLE.size)
    if len(pre) < _PREAMBLE.size or not pre.startswith(MAGIC):
        if pre[:len(MAGIC)] == MAGIC[:len(pre)] and len(pre) < _PREAMBLE.size:
            raise RecordingError(f"{path}: recording header is incomplete (file cut at {len(pre)} bytes)")
        raise RecordingError(f"{path} is not a c3t-edge recording (bad magic)")
    _, version, _flags, n = _PREAMBLE.unpack(pre)
    if version != VERSION:
        raise RecordingError(f"{path}: recording format version {version} is not supported "
                             f"(this c3t-edge reads version {VERSION})")
    if n > _MAX_HEADER_JSON:
        raise RecordingError(f"{path}: recording header is damaged (length {n})")
    blob = f.read(n)
    crc = f.read(_CRC.size)
    if len(blob) < n or len(crc) < _CRC.size:
        raise RecordingError(f"{path}: recording header is incomplete")
    if zlib.crc32(pre + blob) != _CRC.unpack(crc)[0]:
        raise RecordingError(f"{path}: recording header is damaged (checksum mismatch)")
    try:
        doc = json.loads(blob)
        header = RecordingHeader(port=str(doc["port"]), start_wall_time_s=float(doc["start_wall_time_s"]),
                                 version=version, created_by=str(doc.get("created_by", "")),
                                 extra=dict(doc.get("extra", {})))
    except (ValueError, KeyError, TypeError):
        raise RecordingError(f"{path}: recording header is not valid JSON with port and start time") from None
    return header, _PREAMBLE.size + n + _CRC.size
