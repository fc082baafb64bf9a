"""PROTOCOL.md test vectors, checked by the Python package and by the C library (built here)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from _firmware import (
    FIRMWARE,
    STRICT,
    build_dir,
    c_vectors,
    protocol_vectors,
    python_vector,
    require_compiler,
)

from c3t_edge.protocol import FrameDecoder, SampleBatch
from c3t_edge.protocol.cobs import cobs_decode
from c3t_edge.protocol.frames import encode_imu_frame, parse_header, wire

VECTORS = protocol_vectors()


@pytest.mark.parametrize(("vid", "spec", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_python_matches_protocol_vector(vid: str, spec: str, expected: str) -> None:
    assert python_vector(spec) == expected


def test_c_library_matches_every_protocol_vector(tmp_path_factory: pytest.TempPathFactory) -> None:
    tool = build_dir(tmp_path_factory) / "c3t-proto-tool"
    got = c_vectors(tool, [spec for _, spec, _ in VECTORS])
    mismatches = [(vid, exp, out) for (vid, _, exp), out in zip(VECTORS, got, strict=True) if out != exp]
    assert not mismatches


def _vector(vid: str) -> bytes:
    spec = dict((v[0], v[2]) for v in VECTORS)[vid]
    return bytes.fromhex(spec)


def test_vector_frames_decode_to_their_documented_meaning() -> None:
    dec = FrameDecoder()
    items = dec.feed(_vector("V14") + _vector("V15") + _vector("V12"))
    info, boot, batch = items
    assert info.channel_names == ("ax", "ay", "az", "gx", "gy", "gz")
    assert info.sample_rate_hz == 50.0 and info.boot and info.boot_id == 1 and info.device_id == 0x5133
    assert info.name == "c3t-imu-sim" and info.firmware == "1.0.0"
    assert [c.unit_name for c in info.channels] == ["g"] * 3 + ["deg/s"] * 3
    assert boot.code == 1 and boot.message == "c3t-imu-sim" and boot.seq == 1
    assert isinstance(batch, SampleBatch) and batch.seq == 1
    np.testing.assert_array_equal(batch.raw, [[1, 2, 3, 4, 5, 6], [-1, -2, -3, -4, -5, -6]])
    scales = np.array([16 / 32768] * 3 + [2000 / 32768] * 3, dtype=np.float32)
    np.testing.assert_array_equal(batch.samples, batch.raw * scales)
    np.testing.assert_allclose(batch.t, [0.02, 0.04])
    # V12 follows V15 without a gap: nothing lost, nothing corrupt.
    assert dec.stats.lost == 0 and dec.stats.corrupt == 0 and dec.stats.frames == 3


def test_vector_v13_is_the_last_frame_before_both_wraps() -> None:
    raw = cobs_decode(_vector("V13")[:-1])
    assert parse_header(raw) == (1, 2, 0xFFFFFFFF, 0xFFFFFFF0)
    info = FrameDecoder()
    info.feed(_vector("V14"))
    dec = FrameDecoder(info.info)  # joined mid-stream, told the device description
    first = dec.feed(_vector("V13"))
    after = dec.feed(wire(encode_imu_frame(0, 0x10, [[1, 2, 3, 4, 5, 6]])))
    assert dec.stats.seq_wraps == 1 and dec.stats.time_wraps == 1
    assert dec.stats.lost == 0 and dec.stats.resets == 0
    np.testing.assert_array_equal(first[0].raw, [[2048, 0, -2048, 16, -16, 32767]])
    np.testing.assert_array_equal(first[0].samples[0, :3], [1.0, 0.0, -1.0])
    assert after[0].t[0] - first[0].t[0] == pytest.approx(32e-6)
    assert after[0].lost_before == 0 and after[0].boot == 0


def test_c_core_builds_warning_free_as_strict_c99(tmp_path) -> None:
    cc = require_compiler()
    for src in sorted((FIRMWARE / "src").glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        proc = subprocess.run(
            [cc, *STRICT, "-I", str(FIRMWARE / "include"), "-c", str(src), "-o", str(obj)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""


def test_c_core_uses_no_heap_and_no_stdio(tmp_path) -> None:
    cc = require_compiler()
    allowed = {"memcpy", "memset", "memmove"}
    for src in sorted((FIRMWARE / "src").glob("*.c")):
        text = src.read_text()
        assert "<stdio.h>" not in text and "<stdlib.h>" not in text, src.name
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(
            [cc, *STRICT, "-O2", "-I", str(FIRMWARE / "include"), "-c", str(src), "-o", str(obj)], check=True
        )
        nm = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True)
        if nm.returncode != 0:
            pytest.skip("nm is not available")
        undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        assert undefined <= allowed | {"c3t_crc16", "c3t_cobs_encode", "c3t_cobs_decode"}, (
            src.name,
            undefined,
        )
