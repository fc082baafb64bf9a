"""Edge cases of the binary protocol (issue 13), on bytes built here from PROTOCOL.md alone.

The frame builder below is written from the normative text (CRC-16/CCITT-FALSE bit by bit, COBS
block by block, the header and payload tables of sections 2 and 3) and imports nothing from
``c3t_edge.protocol``'s encoders, so a mistake shared by the decoder and its own encoders cannot
hide here. Each test feeds its stream whole, frame by frame and byte by byte (times and counters
must not depend on chunking), with runs of in-order frames taken together and with every frame
judged on its own.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from _firmware import protocol_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_protocol_cli import run_decode

import c3t_edge.protocol.sequencing as sequencing_module
from c3t_edge.commands import decode
from c3t_edge.protocol import FrameDecoder, SampleBatch

WRAP = 1 << 32
BACKSTEP_MAX_US = 60_000_000  # PROTOCOL.md section 5: "back by at most 60 s"
ACC, GYRO, MAG, TEMP, OTHER = 1, 2, 3, 4, 0
G, DPS, COUNTS, DEG_C = 1, 2, 0, 4


# ------------------------------------------------------------------ a builder from PROTOCOL.md
def spec_crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR (section 2)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def spec_cobs(data: bytes) -> bytes:
    """COBS as section 1 states it: blocks cut at each 0x00 and after 254 non-zero bytes; no code
    byte follows a 0xFF block that ends the data."""
    out = bytearray()
    block = bytearray()
    ended_full = False
    for byte in data:
        ended_full = False
        if byte == 0:
            out += bytes((len(block) + 1,)) + block
            block = bytearray()
            continue
        block.append(byte)
        if len(block) == 254:
            out += b"\xff" + block
            block = bytearray()
            ended_full = True
    if not ended_full:
        out += bytes((len(block) + 1,)) + block
    return bytes(out)


def spec_frame(ftype: int, seq: int, t_us: int, payload: bytes, version: int = 1) -> bytes:
    """``COBS(header | payload | crc) 0x00`` (sections 1 and 2)."""
    body = struct.pack("<BBII", version, ftype, seq % WRAP, t_us % WRAP) + payload
    return spec_cobs(body + struct.pack("<H", spec_crc(body))) + b"\x00"


def spec_info(seq: int, t_us: int, channels: list[tuple], *, rate: float = 50.0, boot_id: int = 1) -> bytes:
    """DEVICE_INFO (section 3.1); ``channels``: (kind, axis, unit, scale, range) in sample order."""
    head = struct.pack("<BBBBBBBBfIQ", 1, 1, 1, 0, 0, len(channels), 10, 1, rate, boot_id, 0x5133)
    desc = b"".join(struct.pack("<BBBBff", k, a, u, 0, s, r) for k, a, u, s, r in channels)
    return spec_frame(0x01, seq, t_us, head + desc + bytes((4,)) + b"spec")


def spec_imu(seq: int, t_us: int, counts: np.ndarray) -> bytes:
    """IMU_SAMPLES (section 3.2): n_samples, n_channels, int16 counts sample-major."""
    counts = np.asarray(counts, dtype="<i2")
    return spec_frame(0x02, seq, t_us, bytes(counts.shape) + counts.tobytes())


IMU6 = [(ACC, a, G, 16 / 32768, 16.0) for a in range(3)] + [(GYRO, a, DPS, 2000 / 32768, 2000.0) for a in range(3)]
RNG = np.random.default_rng(13)


def test_the_builder_reproduces_the_protocol_vectors() -> None:
    """The builder agrees with PROTOCOL.md's own vectors (V1-V8 for CRC and COBS, V12 for a frame)."""
    vectors = {vid: (spec, expected) for vid, spec, expected in protocol_vectors()}
    assert f"{spec_crc(b'123456789'):04x}" == vectors["V1"][1]
    for vid in ("V3", "V4", "V5", "V6", "V7", "V8"):
        spec, expected = vectors[vid]
        data = b"" if spec.split()[1] == "-" else bytes.fromhex(spec.split()[1])
        assert spec_cobs(data).hex() == expected, vid
    v12 = spec_imu(1, 20000, np.array([[1, 2, 3, 4, 5, 6], [-1, -2, -3, -4, -5, -6]]))
    assert v12.hex() == vectors["V12"][1]


# ------------------------------------------------------------------ feeding
def frames_of(stream: bytes) -> list[bytes]:
    return [p + b"\x00" for p in stream.split(b"\x00")[:-1]]


def decode_all(stream: bytes, how: str, runs: bool) -> tuple[list, FrameDecoder]:
    """Decode ``stream`` fed ``whole``, ``frame`` by frame or ``byte`` by byte."""
    pieces = {"whole": [stream], "frame": frames_of(stream), "byte": [stream[i : i + 1] for i in range(len(stream))]}
    with pytest.MonkeyPatch.context() as mp:
        if not runs:
            mp.setattr(sequencing_module, "_RUNS_MIN_FRAMES", 10**9)
        dec = FrameDecoder()
        items = [it for piece in pieces[how] for it in dec.feed(piece)] + dec.finish()
    return items, dec


def times(items) -> np.ndarray:
    batches = [i for i in items if isinstance(i, SampleBatch)]
    return np.concatenate([b.t for b in batches]) if batches else np.zeros(0)


FEEDS = [(how, runs) for how in ("whole", "frame", "byte") for runs in (True, False)]


def decode_every_way(stream: bytes) -> tuple[list, FrameDecoder]:
    """Decode ``stream`` in every chunking and judging; all must give the same times and counters."""
    results = [decode_all(stream, how, runs) for how, runs in FEEDS]
    items, dec = results[0]
    for other_items, other in results[1:]:
        np.testing.assert_array_equal(times(other_items), times(items))
        assert other.stats.as_dict() == dec.stats.as_dict()
    return items, dec


# ------------------------------------------------------------------ device time
@pytest.mark.parametrize("t0", [0, WRAP - 500_000])
@pytest.mark.parametrize("outage_us", [2**31 + 1, 2**31 + 10**6, 4_000_000_000, WRAP - BACKSTEP_MAX_US - 1])
def test_an_outage_longer_than_half_the_clock_moves_time_forwards(t0: int, outage_us: int) -> None:
    """Issue 13: a forward jump of more than 2**31 us gave negative, chunking-dependent times."""
    counts = RNG.integers(-2000, 2000, size=(12, 2, 6))
    stamps = [t0 + k * 40_000 for k in range(6)]
    stamps += [stamps[-1] + outage_us + k * 40_000 for k in range(6)]
    stream = spec_info(0, t0, IMU6) + b"".join(spec_imu(k + 1, t, counts[k]) for k, t in enumerate(stamps))
    items, dec = decode_every_way(stream)
    t = times(items)
    expected = (np.repeat(stamps, 2) + np.tile([0, 20_000], 12)) / 1e6
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-9)
    assert np.all(np.diff(t) > 0)
    assert dec.stats.time_backsteps == 0 and dec.stats.lost == 0
    assert dec.stats.time_wraps == stamps[-1] // WRAP


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t0=st.integers(0, WRAP - 1),
    steps=st.lists(
        st.one_of(
            st.integers(0, 400_000),  # regular frames
            st.integers(0, WRAP - BACKSTEP_MAX_US - 1),  # outages, up to just under 71.58 min
            st.integers(-BACKSTEP_MAX_US, -1),  # the clock went back a little
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_times_are_the_device_steps_read_forwards_whatever_the_chunking(t0: int, steps: list[int]) -> None:
    """Property: each frame's time is the previous one plus its step, forwards unless the step is
    a backstep of at most 60 s; the same for every chunking and judging."""
    unwrapped = np.cumsum([t0, *steps])
    stream = spec_info(0, t0, IMU6) + b"".join(
        spec_imu(k + 1, int(u), RNG.integers(-99, 99, size=(1, 6))) for k, u in enumerate(unwrapped)
    )
    items, dec = decode_every_way(stream)
    np.testing.assert_array_equal(times(items), unwrapped / 1e6)
    assert dec.stats.time_backsteps == sum(s < 0 for s in steps)
    assert dec.stats.time_wraps == max(0, int(np.max(unwrapped // WRAP)))
    assert dec.stats.lost == 0 and dec.stats.resets == 0


def test_a_small_step_back_is_counted_reported_and_kept_as_the_device_says() -> None:
    stamps = [0, 200_000, 400_000, 300_000, 500_000]  # the 4th frame is 100 ms earlier than the 3rd
    stream = spec_info(0, 0, IMU6) + b"".join(
        spec_imu(k + 1, t, RNG.integers(-99, 99, size=(10, 6))) for k, t in enumerate(stamps)
    )
    items, dec = decode_every_way(stream)
    t = times(items)
    np.testing.assert_allclose(t[::10], np.array(stamps) / 1e6)
    assert dec.stats.time_backsteps == 1 and dec.stats.time_wraps == 0
    # a new batch starts where time went back, so that every batch's times increase
    for batch in (i for i in items if isinstance(i, SampleBatch)):
        assert np.all(np.diff(batch.t) > 0)
    assert any(isinstance(i, SampleBatch) and i.t[0] == pytest.approx(0.3) for i in items)


def test_a_step_back_across_the_wrap_goes_back_one_wrap() -> None:
    stamps = [WRAP - 100_000, WRAP + 100, WRAP - 1_000, WRAP + 200_000]  # back by 1.1 ms across 2**32
    stream = spec_info(0, stamps[0], IMU6) + b"".join(
        spec_imu(k + 1, t, RNG.integers(-99, 99, size=(1, 6))) for k, t in enumerate(stamps)
    )
    items, dec = decode_every_way(stream)
    np.testing.assert_array_equal(times(items), np.array(stamps) / 1e6)
    assert dec.stats.time_backsteps == 1 and dec.stats.time_wraps == 1  # the same wrap, counted once


# ------------------------------------------------------------------ frame types, boot ids, DEVICE_INFO
def test_an_unknown_frame_type_is_skipped_and_counted_not_lost() -> None:
    counts = RNG.integers(-99, 99, size=(3, 10, 6))
    stream = (
        spec_info(0, 0, IMU6)
        + spec_imu(1, 0, counts[0])
        + spec_frame(0x05, 2, 200_000, b"a newer device's frame")
        + spec_imu(3, 200_000, counts[1])
        + spec_frame(0x02, 4, 400_000, spec_imu(0, 0, counts[2])[:20], version=2)  # another version
        + spec_imu(5, 600_000, counts[2])
    )
    items, dec = decode_every_way(stream)
    got = np.concatenate([b.raw for b in items if isinstance(b, SampleBatch)])
    np.testing.assert_array_equal(got, counts.reshape(-1, 6))
    assert dec.stats.unknown_frames == 1 and dec.stats.unsupported == 1
    # the unknown type's sequence number was received; the other version's cannot be read (lost)
    assert dec.stats.lost == 1 and dec.stats.corrupt == 0 and dec.stats.frames == 5


@pytest.mark.parametrize(
    ("boot_ids", "resets"),
    [
        ([0, 9, 9, 0, 9], 0),  # 0 is "unknown": the first real id is this boot's, not a reset
        ([0, 9, 10], 1),  # a real id that differs from this boot's is a reset
        ([9, 0, 10], 1),
        ([0, 0, 0], 0),
    ],
)
def test_boot_id_zero_is_unknown_and_never_a_reset(boot_ids: list[int], resets: int) -> None:
    """PROTOCOL.md section 4: the sequence continues, only the boot ids in DEVICE_INFO change."""
    parts = []
    seq = 0
    for k, boot_id in enumerate(boot_ids):
        parts.append(spec_info(seq, k * 400_000, IMU6, boot_id=boot_id))
        parts.append(spec_imu(seq + 1, k * 400_000, RNG.integers(-99, 99, size=(10, 6))))
        seq += 2
    items, dec = decode_every_way(b"".join(parts))
    assert dec.stats.resets == resets and dec.stats.lost == 0
    assert [b.boot for b in items if isinstance(b, SampleBatch)][-1] == resets


def test_after_a_reset_seen_in_the_sequence_the_new_boots_id_is_not_a_second_reset() -> None:
    """The reboot's own DEVICE_INFO was lost: the sequence shows the reset; the periodic
    DEVICE_INFO that follows names the new boot (id 2), which is not another reset."""
    first = [spec_imu(k + 1, k * 200_000, RNG.integers(-99, 99, size=(10, 6))) for k in range(20)]
    second = [spec_imu(k + 1, k * 200_000, RNG.integers(-99, 99, size=(10, 6))) for k in range(3)]
    stream = (
        spec_info(0, 0, IMU6, boot_id=1)
        + b"".join(first)
        + b"".join(second)
        + spec_info(4, 600_000, IMU6, boot_id=2)
        + spec_imu(5, 600_000, RNG.integers(-99, 99, size=(10, 6)))
    )
    _, dec = decode_every_way(stream)
    assert dec.stats.resets == 1


@pytest.mark.parametrize(
    ("channels", "reason"),
    [
        ([(OTHER, 0xFF, COUNTS, 1.0, 1.0)] * 17, "17 channels"),
        (
            [(ACC, a, COUNTS, 1.0, 32768.0) for a in range(3)],
            "declared in counts, but accelerometers must be declared in g",
        ),
        (IMU6[:3] + [(GYRO, a, COUNTS, 1.0, 32768.0) for a in range(3)], "gyroscopes must be declared in deg/s"),
    ],
)
def test_a_device_info_that_breaks_section_3_1_is_refused_with_a_reason(channels, reason, tmp_path, capsys) -> None:
    stream = spec_info(0, 0, channels) + spec_imu(1, 0, np.ones((2, len(channels))))
    items, dec = decode_every_way(stream)
    assert dec.stats.refused_info == 1 and dec.info is None and not items
    assert dec.stats.no_info == 1 and dec.stats.malformed == 0
    assert reason in dec.refusal
    (tmp_path / "s.bin").write_bytes(stream)
    _, _, err = run_decode([str(tmp_path / "s.bin")], capsys)
    assert "decode: DEVICE_INFO (frame 0) refused: " in err and reason in err


def test_sixteen_channels_are_accepted() -> None:
    channels = [(OTHER, 0xFF, COUNTS, 1.0, 1.0)] * 16
    counts = RNG.integers(-99, 99, size=(2, 16))
    items, dec = decode_every_way(spec_info(0, 0, channels) + spec_imu(1, 0, counts))
    assert dec.stats.refused_info == 0
    np.testing.assert_array_equal(items[-1].raw, counts)


# ------------------------------------------------------------------ decode: names and columns
def test_json_names_are_distinct_and_never_the_time(tmp_path, capsys) -> None:
    """Issue 13: a temperature channel was named ``t`` (overwriting the time) and every "other"
    channel ``c``; names are now ``<kind><axis>`` or ``<kind><index>``."""
    channels = IMU6 + [(TEMP, 0xFF, DEG_C, 0.01, 85.0)] + [(OTHER, 0xFF, COUNTS, 1.0, 1.0)] * 9
    counts = np.arange(2 * 16).reshape(2, 16)
    (tmp_path / "s.bin").write_bytes(spec_info(0, 0, channels) + spec_imu(1, 1_000_000, counts))
    rc, out, _ = run_decode([str(tmp_path / "s.bin"), "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    names = ["ax", "ay", "az", "gx", "gy", "gz", "temp6"] + [f"c{i}" for i in range(7, 16)]
    assert rc == 0 and list(rows[0]) == ["t", *names]
    assert rows[0]["t"] == 1.0 and rows[1]["t"] == pytest.approx(1.02)
    assert rows[1]["temp6"] == pytest.approx(counts[1, 6] * 0.01) and rows[1]["c15"] == counts[1, 15]


def test_a_second_accelerometer_is_named_by_its_index() -> None:
    from c3t_edge.protocol.messages import ChannelSpec, channel_names

    specs = tuple(ChannelSpec(*c) for c in IMU6[:3] + IMU6[:3] + [(MAG, 2, 3, 0.1, 4900.0), (9, 0, 0, 1.0, 1.0)])
    assert channel_names(specs) == ("ax", "ay", "az", "a3", "a4", "a5", "mz", "c7")


def test_a_nine_value_text_line_keeps_nine_values(tmp_path, capsys) -> None:
    lines = "\r\n" + "".join(",".join(str(v + 10 * k) for v in range(1, 10)) + "\r\n" for k in range(3))
    (tmp_path / "s.txt").write_text(lines)
    rc, out, _ = run_decode([str(tmp_path / "s.txt"), "--text", "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(rows) == 3
    assert rows[2] == {"t": 0.04, **{f"c{i}": float(21 + i) for i in range(9)}}


def test_text_output_columns_follow_the_help_whatever_the_device_order(tmp_path, capsys) -> None:
    """The help says: time, then ax ay az (g), gx gy gz (deg/s), then other channels."""
    channels = IMU6[3:] + [(TEMP, 0xFF, DEG_C, 1.0, 85.0)] + IMU6[:3]  # gx gy gz temp ax ay az
    counts = np.array([[4, 5, 6, 7, 1, 2, 3]]) * 16  # in each channel's counts
    (tmp_path / "s.bin").write_bytes(spec_info(0, 0, channels) + spec_imu(1, 0, counts))
    assert "ax ay az (g) and gx gy gz (deg/s)" in " ".join((decode.__doc__ or "").split())
    rc, out, err = run_decode([str(tmp_path / "s.bin")], capsys)
    values = [float(v) for v in out.split()]
    acc, gyro = 16 * 16 / 32768, 16 * 2000 / 32768
    np.testing.assert_allclose(values, [0.0, acc, 2 * acc, 3 * acc, 4 * gyro, 5 * gyro, 6 * gyro, 7 * 16], rtol=1e-6)
    assert "# columns: t ax ay az gx gy gz temp3" in err


def test_the_summary_reports_backsteps_and_unknown_frames(tmp_path, capsys) -> None:
    stream = (
        spec_info(0, 0, IMU6)
        + spec_imu(1, 400_000, np.ones((1, 6)))
        + spec_frame(0x06, 2, 400_000, b"")
        + spec_imu(3, 300_000, np.ones((1, 6)))
    )
    (tmp_path / "s.bin").write_bytes(stream)
    _, _, err = run_decode([str(tmp_path / "s.bin")], capsys)
    summary = err.strip().splitlines()[-1]
    assert "lost=0" in summary and "unknown_frames=1" in summary and "time_backsteps=1" in summary


def test_an_echo_of_the_hosts_own_commands_does_not_disturb_the_sequence() -> None:
    """A COMMAND frame (host -> device) reaching the host, e.g. on a loopback: dropped as
    unsupported; its sequence number (the host's) is not taken for the device's."""
    counts = RNG.integers(-99, 99, size=(2, 10, 6))
    stream = (
        spec_info(0, 0, IMU6)
        + spec_imu(500, 0, counts[0])
        + spec_frame(0x10, 0, 0, bytes((0x01,)))  # START, host sequence 0
        + spec_imu(501, 200_000, counts[1])
    )
    items, dec = decode_every_way(stream)
    assert dec.stats.unsupported == 1 and dec.stats.resets == 0 and dec.stats.unknown_frames == 0
    assert dec.stats.lost == 499  # the device's own gap 0 -> 500, nothing more
    batches = [b for b in items if isinstance(b, SampleBatch)]
    assert len(batches) == 1 and batches[0].lost_before == 499 and batches[0].n_frames == 2
    np.testing.assert_array_equal(batches[0].raw, counts.reshape(-1, 6))
