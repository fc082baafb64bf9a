"""FrameDecoder: incremental decoding, counters, resynchronisation (hand-built streams)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from c3t_edge.protocol import EventCode, FrameDecoder, SampleBatch, default_imu_info, make_decoder
from c3t_edge.protocol.frames import (
    MAX_ENCODED_SIZE,
    encode_event_frame,
    encode_imu_frame,
    encode_info_frame,
    wire,
)


@pytest.fixture(autouse=True, params=["python", "numpy"])
def cobs_path(request, monkeypatch) -> str:
    """Run every test with both COBS chain walkers (Python for small blocks, numpy for large)."""
    import c3t_edge.protocol.decoder as decoder_module

    monkeypatch.setattr(decoder_module, "_PY_CHAIN_MAX_FRAMES", 10**9 if request.param == "python" else 0)
    return request.param


@pytest.fixture(autouse=True, params=["runs", "frame by frame"])
def judging(request, monkeypatch) -> str:
    """Run every test with runs of in-order sample frames taken together, and with every frame
    judged on its own (the same items and counters must come out)."""
    import c3t_edge.protocol.sequencing as sequencing_module

    if request.param == "frame by frame":
        monkeypatch.setattr(sequencing_module, "_RUNS_MIN_FRAMES", 10**9)
    return request.param


INFO = default_imu_info(50.0, 16.0, 2000.0, samples_per_frame=10, boot_id=7)
RNG = np.random.default_rng(3)


def make_stream(
    n_frames: int = 20, spf: int = 10, seq0: int = 0, t0: int = 0, info=INFO
) -> tuple[bytes, np.ndarray]:
    raw = RNG.integers(-32768, 32768, size=(n_frames * spf, 6)).astype(np.int16)
    parts = [wire(encode_info_frame(seq0, t0, info))]
    for k in range(n_frames):
        t = t0 + (k * spf) * 20000
        parts.append(wire(encode_imu_frame(seq0 + 1 + k, t, raw[k * spf : (k + 1) * spf])))
    return b"".join(parts), raw


def samples_of(items) -> tuple[np.ndarray, np.ndarray]:
    batches = [i for i in items if isinstance(i, SampleBatch)]
    if not batches:
        return np.zeros((0, 6), np.int16), np.zeros(0)
    return np.concatenate([b.raw for b in batches]), np.concatenate([b.t for b in batches])


def test_whole_stream_in_one_chunk_and_one_batch() -> None:
    stream, raw = make_stream()
    dec = FrameDecoder()
    items = dec.feed(stream)
    assert items[0] == dec.info and dec.info.boot_id == 7
    batches = [i for i in items if isinstance(i, SampleBatch)]
    assert len(batches) == 1 and batches[0].n_frames == 20 and batches[0].seq == 1
    got, t = samples_of(items)
    np.testing.assert_array_equal(got, raw)
    np.testing.assert_allclose(t, np.arange(200) * 0.02)
    assert batches[0].samples.dtype == np.float32 and batches[0].samples.shape == (200, 6)
    np.testing.assert_array_equal(batches[0].samples, raw.astype(np.float32) * INFO.scales)
    assert dec.stats.as_dict() | {"bytes": 0} == {
        **dict.fromkeys(dec.stats.as_dict(), 0),
        "frames": 21,
        "samples": 200,
    }


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 135, 136, 137, 1000])
def test_any_chunking_gives_the_same_samples(chunk: int) -> None:
    stream, raw = make_stream()
    dec = FrameDecoder()
    items = []
    for i in range(0, len(stream), chunk):
        items += dec.feed(memoryview(stream)[i : i + chunk])
    got, t = samples_of(items)
    np.testing.assert_array_equal(got, raw)
    np.testing.assert_allclose(t, np.arange(200) * 0.02)
    assert dec.stats.corrupt == 0 and dec.stats.lost == 0 and dec.stats.bytes == len(stream)


def test_lost_frames_split_batches_and_are_counted() -> None:
    stream, raw = make_stream(10)
    frames = stream.split(b"\x00")[:-1]
    kept = [f for i, f in enumerate(frames) if i not in (3, 4, 8)]  # frames 3, 4, 8 = IMU seq 3, 4, 8
    dec = FrameDecoder()
    items = dec.feed(b"".join(f + b"\x00" for f in kept))
    batches = [i for i in items if isinstance(i, SampleBatch)]
    assert dec.stats.lost == 3
    assert [(b.seq, b.n_frames, b.lost_before) for b in batches] == [(1, 2, 0), (5, 3, 2), (9, 2, 1)]
    expected = np.concatenate([raw[0:20], raw[40:70], raw[80:100]])
    np.testing.assert_array_equal(samples_of(items)[0], expected)


def test_corrupt_byte_costs_one_frame_and_resynchronises() -> None:
    stream, raw = make_stream(5)
    bad = bytearray(stream)
    third = [i for i, b in enumerate(stream) if b == 0][2] + 40  # inside IMU frame seq 3
    bad[third] ^= 0x80 if bad[third] != 0x80 else 0x40
    dec = FrameDecoder()
    items = dec.feed(bytes(bad))
    assert dec.stats.corrupt == 1 and dec.stats.lost == 1 and dec.stats.frames == 5
    np.testing.assert_array_equal(samples_of(items)[0], np.concatenate([raw[:20], raw[30:]]))


def test_garbage_without_delimiters_is_dropped_then_resynchronises() -> None:
    stream, raw = make_stream(3)
    garbage = bytes(RNG.integers(1, 256, size=3 * MAX_ENCODED_SIZE, dtype=np.uint8))
    dec = FrameDecoder()
    items = []
    for i in range(0, len(garbage), 100):
        items += dec.feed(garbage[i : i + 100])
    items += dec.feed(b"\x00" + stream)
    assert dec.stats.corrupt == 1
    np.testing.assert_array_equal(samples_of(items)[0], raw)


def test_samples_before_any_device_info_are_counted_not_guessed() -> None:
    stream, raw = make_stream(4)
    without_info = stream[stream.index(b"\x00") + 1 :]
    dec = FrameDecoder()
    assert samples_of(dec.feed(without_info))[0].size == 0
    assert dec.stats.no_info == 4
    told = FrameDecoder(INFO)
    np.testing.assert_array_equal(samples_of(told.feed(without_info))[0], raw)


def test_reset_restarts_sequence_and_time() -> None:
    first, raw1 = make_stream(5)
    info2 = default_imu_info(50.0, samples_per_frame=10, boot_id=8)
    second, raw2 = make_stream(5, info=info2)  # same seq and times again: a reboot
    dec = FrameDecoder()
    items = dec.feed(first + second)
    assert dec.stats.resets == 1 and dec.stats.lost == 0 and dec.stats.duplicates == 0
    batches = [i for i in items if isinstance(i, SampleBatch)]
    assert [b.boot for b in batches] == [0, 1]
    np.testing.assert_allclose(batches[1].t, np.arange(50) * 0.02)
    np.testing.assert_array_equal(samples_of(items)[0], np.concatenate([raw1, raw2]))


def test_reset_without_its_info_frame_is_still_detected() -> None:
    first, raw1 = make_stream(30)
    second, raw2 = make_stream(5)
    second = second[second.index(b"\x00") + 1 :]  # the reboot's DEVICE_INFO was lost
    dec = FrameDecoder()
    items = dec.feed(first + second)
    assert dec.stats.resets == 1 and dec.stats.duplicates == 0
    np.testing.assert_array_equal(samples_of(items)[0], np.concatenate([raw1, raw2]))


def test_duplicated_frames_are_dropped_and_counted() -> None:
    stream, raw = make_stream(6)
    frames = [f + b"\x00" for f in stream.split(b"\x00")[:-1]]
    replayed = b"".join(frames[:5]) + frames[2] + frames[3] + b"".join(frames[5:])
    dec = FrameDecoder()
    items = dec.feed(replayed)
    assert dec.stats.duplicates == 2 and dec.stats.resets == 0 and dec.stats.lost == 0
    np.testing.assert_array_equal(samples_of(items)[0], raw)


def test_sequence_and_time_wrap() -> None:
    stream, raw = make_stream(10, seq0=0xFFFFFFFB, t0=0xFFFFFFFF - 1_000_000)
    dec = FrameDecoder()
    items = dec.feed(stream)
    assert dec.stats.seq_wraps == 1 and dec.stats.time_wraps == 1 and dec.stats.lost == 0
    got, t = samples_of(items)
    np.testing.assert_array_equal(got, raw)
    np.testing.assert_allclose(np.diff(t), 0.02, atol=1e-9)


def test_sequence_wrap_with_frames_lost_across_it() -> None:
    stream, raw = make_stream(10, seq0=0xFFFFFFFB)  # IMU frames seq 0xFFFFFFFC .. 0xFFFFFFFF, 0 .. 5
    frames = [f + b"\x00" for f in stream.split(b"\x00")[:-1]]
    dec = FrameDecoder()
    items = dec.feed(b"".join(frames[:4] + frames[6:]))  # 0xFFFFFFFF and 0 are lost
    assert dec.stats.seq_wraps == 1 and dec.stats.lost == 2 and dec.stats.resets == 0
    batches = [i for i in items if isinstance(i, SampleBatch)]
    assert [(b.seq, b.n_frames, b.lost_before) for b in batches] == [(0xFFFFFFFC, 3, 0), (1, 5, 2)]
    np.testing.assert_array_equal(samples_of(items)[0], np.concatenate([raw[:30], raw[50:]]))


def test_time_jump_of_more_than_half_the_clock_moves_time_forwards() -> None:
    """A frame stamped more than 2**31 us after the last one (an outage of over 36 minutes) is
    later, not a straggler from before a wrap: times go forwards, inside a run of frames too."""
    info_frame = wire(encode_info_frame(0, 0, INFO))
    raw = RNG.integers(-32768, 32768, size=(80, 6)).astype(np.int16)
    times = [k * 200_000 for k in range(4)] + [0x90000000 + k * 200_000 for k in range(4)]
    stream = info_frame + b"".join(
        wire(encode_imu_frame(k + 1, t, raw[10 * k : 10 * k + 10])) for k, t in enumerate(times)
    )
    dec = FrameDecoder()
    got, t = samples_of(dec.feed(stream))
    np.testing.assert_array_equal(got, raw)
    np.testing.assert_allclose(t[::10], np.array(times) / 1e6)
    assert dec.stats.time_wraps == 0 and dec.stats.time_backsteps == 0 and dec.stats.lost == 0


def test_events_unsupported_and_malformed_frames() -> None:
    stream, _ = make_stream(1)
    bad_version = bytearray(encode_imu_frame(5, 0, [[1] * 6]))
    bad_version[0] = 9
    from c3t_edge.protocol.crc import crc16

    bad_version[-2:] = crc16(bytes(bad_version[:-2])).to_bytes(2, "little")
    wrong_channels = encode_imu_frame(3, 0, [[1, 2, 3]])
    extra = (
        wire(encode_event_frame(2, 0, EventCode.ERROR, 17, "sensor not responding"))
        + wire(wrong_channels)
        + wire(bytes(bad_version))
        + wire(encode_event_frame(4, 0, EventCode.LOG, 0, "hello"))
    )
    dec = FrameDecoder()
    items = dec.feed(stream + extra)
    events = [i for i in items if not isinstance(i, SampleBatch)][1:]
    assert [(e.code, e.detail, e.message, e.is_error) for e in events] == [
        (EventCode.ERROR, 17, "sensor not responding", True),
        (EventCode.LOG, 0, "hello", False),
    ]
    assert dec.stats.malformed == 1 and dec.stats.unsupported == 1 and dec.stats.errors == 1
    assert dec.stats.lost == 0  # the malformed frame's sequence number still counted as received


def test_wrong_channel_count_inside_a_run_is_malformed() -> None:
    """A sample frame declaring 3 channels x 20 samples has the byte length of 6 x 10: amid regular
    6-channel frames it is still rejected, not read as 6-channel samples."""
    stream, raw = make_stream(8)
    frames = [f + b"\x00" for f in stream.split(b"\x00")[:-1]]
    frames[4] = wire(encode_imu_frame(4, 3 * 10 * 20000, raw[30:40].reshape(20, 3)))  # IMU seq 4
    dec = FrameDecoder()
    items = dec.feed(b"".join(frames))
    assert dec.stats.malformed == 1 and dec.stats.lost == 0 and dec.stats.frames == 9
    np.testing.assert_array_equal(samples_of(items)[0], np.concatenate([raw[:30], raw[40:]]))


def test_finish_decodes_a_last_frame_without_delimiter() -> None:
    stream, raw = make_stream(2)
    dec = FrameDecoder()
    items = dec.feed(stream[:-1]) + dec.finish()
    np.testing.assert_array_equal(samples_of(items)[0], raw)
    dec = FrameDecoder()
    dec.feed(stream[:-20])
    dec.finish()
    assert dec.stats.corrupt == 1


def test_random_bytes_never_raise() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(0, 3000))
        data = rng.integers(0, 256, size=n, dtype=np.uint8)
        data[rng.random(n) < rng.random() * 0.1] = 0
        dec = FrameDecoder(INFO)
        dec.feed(data.tobytes())
        dec.finish()


def test_make_decoder() -> None:
    assert isinstance(make_decoder("binary"), FrameDecoder)
    assert make_decoder("text", sample_rate_hz=100).sample_rate_hz == 100
    with pytest.raises(ValueError):
        make_decoder("morse")


def test_protocol_and_decode_command_do_not_import_torch() -> None:
    code = (
        "import sys, c3t_edge.protocol, c3t_edge.commands.decode; "
        "bad = [m for m in ('torch', 'scipy', 'onnxruntime') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_protocol_layer_imports_nothing_above_it() -> None:
    """The protocol layer is the bottom of the runtime: it needs only c3t_edge.errors."""
    code = (
        "import sys, c3t_edge.protocol; "
        "above = [m for m in sys.modules if m.startswith('c3t_edge.') "
        "and not m.startswith('c3t_edge.protocol') and m != 'c3t_edge.errors']; "
        "assert not above, above"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
