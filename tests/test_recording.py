"""The recording format (docs/RECORDING.md): round trip, truncation at every byte, damage, header checks."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from c3t_edge.errors import C3TEdgeError, ProtocolError
from c3t_edge.recording import (
    MAGIC,
    RECORD_DATA,
    RecordingReader,
    RecordingWriter,
    encode_record,
)

START = 1_790_000_000.0


def _write(path, chunks, events=()):
    """chunks: [(offset_s, bytes)], events: [(offset_s, dict)] -> file; returns the writer's record count."""
    items = [(t, "d", c) for t, c in chunks] + [(t, "e", e) for t, e in events]
    items.sort(key=lambda x: x[0])
    with RecordingWriter(path, port="loop://", start_wall_time_s=START, fsync_interval_s=None) as w:
        for t, kind, payload in items:
            if kind == "d":
                w.write_chunk(payload, START + t)
            else:
                w.write_event(payload, START + t)
        return w.records


def test_round_trip_keeps_bytes_times_and_order(tmp_path):
    path = tmp_path / "a.c3trec"
    chunks = [(0.001 * i, bytes([i % 256]) * (i % 7 + 1) + b"\x00\n\r") for i in range(200)]
    _write(path, chunks, events=[(0.05, {"event": "disconnected", "reason": "unplugged"})])
    with RecordingReader(path) as r:
        assert r.header.port == "loop://"
        assert r.header.start_wall_time_s == START
        got = list(r.chunks())
        assert [d for _, d in got] == [c for _, c in chunks]
        assert [t for t, _ in got] == pytest.approx([START + t for t, _ in chunks], abs=1e-6)
        assert r.stats.data_records == 200 and r.stats.event_records == 1
        assert r.stats.ignored_tail_bytes == 0 and r.stats.tail_problem is None
        events = [rec.event for rec in r.records() if rec.kind == "event"]
        assert events == [{"event": "disconnected", "reason": "unplugged"}]
        # iterating twice gives the same records (replay determinism starts here)
        assert list(r) == got


def test_every_truncation_reads_up_to_the_last_complete_record(tmp_path):
    path = tmp_path / "full.c3trec"
    chunks = [(0.01 * i, bytes(range(i, i + 5))) for i in range(6)]
    _write(path, chunks)
    blob = path.read_bytes()
    header_len = blob.index(b"}") + 1 + 4  # JSON ends with "}", then its CRC
    record_len = 17 + 5
    assert len(blob) == header_len + 6 * record_len
    cut_path = tmp_path / "cut.c3trec"
    for cut in range(header_len, len(blob) + 1):
        cut_path.write_bytes(blob[:cut])
        with RecordingReader(cut_path) as r:
            got = [d for _, d in r.chunks()]
            complete = (cut - header_len) // record_len
            assert got == [c for _, c in chunks[:complete]], cut
            assert r.stats.ignored_tail_bytes == (cut - header_len) % record_len
            if r.stats.ignored_tail_bytes:
                assert r.stats.tail_problem == "truncated record"


def test_cut_inside_the_header_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "full.c3trec"
    _write(path, [(0.0, b"abc")])
    blob = path.read_bytes()
    for cut in (0, 3, 8, 15, 20, blob.index(b"}") + 2):
        p = tmp_path / f"h{cut}.c3trec"
        p.write_bytes(blob[:cut])
        with pytest.raises(ProtocolError) as err:
            RecordingReader(p)
        assert "\n" not in str(err.value)


def test_checksum_mismatch_stops_reading_and_is_reported(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.0, b"first"), (0.1, b"second"), (0.2, b"third")])
    blob = bytearray(path.read_bytes())
    second = blob.index(b"second")
    blob[second] ^= 0xFF
    path.write_bytes(bytes(blob))
    with RecordingReader(path) as r:
        assert [d for _, d in r.chunks()] == [b"first"]
        assert r.stats.tail_problem == "checksum mismatch"
        assert r.stats.ignored_tail_bytes == len(blob) - (second - 13)


def test_zero_filled_tail_after_power_loss_is_ignored(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.0, b"kept")])
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with RecordingReader(path) as r:
        assert [d for _, d in r.chunks()] == [b"kept"]
        assert r.stats.ignored_tail_bytes == 4096
        assert r.stats.tail_problem == "invalid length"


def test_unknown_record_types_are_skipped(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.0, b"one")])
    with open(path, "ab") as f:
        f.write(encode_record(77, 5, b"future stuff"))
        f.write(encode_record(RECORD_DATA, 6, b"two"))
    with RecordingReader(path) as r:
        assert [d for _, d in r.chunks()] == [b"one", b"two"]
        assert r.stats.unknown_records == 1 and r.stats.ignored_tail_bytes == 0


def test_header_is_checked(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.0, b"x")])
    blob = bytearray(path.read_bytes())
    bad_magic = tmp_path / "m.c3trec"
    bad_magic.write_bytes(b"GARBAGE!" + bytes(blob[8:]))
    with pytest.raises(ProtocolError, match="not a c3t-edge recording"):
        RecordingReader(bad_magic)
    bad_version = tmp_path / "v.c3trec"
    bad_version.write_bytes(MAGIC + struct.pack("<H", 9) + bytes(blob[10:]))
    with pytest.raises(ProtocolError, match="version 9"):
        RecordingReader(bad_version)
    bad_json = bytearray(blob)
    bad_json[20] ^= 0x01
    p = tmp_path / "j.c3trec"
    p.write_bytes(bytes(bad_json))
    with pytest.raises(ProtocolError, match="damaged"):
        RecordingReader(p)
    with pytest.raises(ProtocolError, match="cannot open"):
        RecordingReader(tmp_path / "missing.c3trec")


def test_header_layout_matches_the_spec(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.02, b"abc")])
    blob = path.read_bytes()
    magic, version, flags, n = struct.unpack_from("<8sHHI", blob)
    assert (magic, version, flags) == (b"\x89C3TREC\n", 1, 0)
    doc = json.loads(blob[16:16 + n])
    assert doc["port"] == "loop://" and doc["start_wall_time_s"] == START
    assert struct.unpack_from("<I", blob, 16 + n)[0] == zlib.crc32(blob[:16 + n])
    rec = blob[16 + n + 4:]
    length, kind, t_us = struct.unpack_from("<IBQ", rec)
    assert (length, kind, t_us) == (12, 1, 20000)
    assert rec[13:16] == b"abc"
    assert struct.unpack_from("<I", rec, 16)[0] == zlib.crc32(rec[:16])


def test_times_never_go_backwards(tmp_path):
    path = tmp_path / "a.c3trec"
    with RecordingWriter(path, port="p", start_wall_time_s=START) as w:
        w.write_chunk(b"a", START + 1.0)
        w.write_chunk(b"b", START + 0.5)  # a clock step backwards must not reorder the file
    with RecordingReader(path) as r:
        assert [t for t, _ in r.chunks()] == [START + 1.0, START + 1.0]


def test_writer_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "a.c3trec"
    _write(path, [(0.0, b"x")])
    with pytest.raises(C3TEdgeError, match="already exists"):
        RecordingWriter(path, port="p")
    with RecordingWriter(path, port="p2", overwrite=True):
        pass
    with RecordingReader(path) as r:
        assert r.header.port == "p2" and list(r.chunks()) == []
