"""Property tests: a real recorded stream, damaged at random, through the decoder.

The stream is a UTD-MHAD inertial trial sent through the simulator (synthetic motion when the
dataset is absent), started close to both 32-bit wraps: its sequence number wraps at the 20th
frame and its device time (us) at the 40th. Hypothesis flips, deletes, duplicates and truncates
bytes and feeds the result in random pieces. An independent oracle says what must come out: the
stream is cut at its 0x00 bytes; a piece identical to a frame of the clean stream is a valid frame,
any other non-empty piece is corrupt; the valid frames' sequence numbers (unwrapped, as the clean
stream counts them) then give the lost, duplicate, reset and wrap counts, and the samples and
their times must be exactly those of the valid sample frames, in order.

Every test runs with the decoder taking runs of in-order frames together and with every frame
judged on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from _firmware import UTD_INERTIAL, load_inertial, run_sim, simulator, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c3t_edge.protocol import FrameDecoder, SampleBatch, default_imu_info
from c3t_edge.protocol.cobs import cobs_decode
from c3t_edge.protocol.frames import parse_header

WINDOW = 1024
WRAP = 1 << 32
RATE_HZ = 50.0
#: The clean stream's first sequence number and first device time: both wrap mid-stream.
SEQ_START = WRAP - 20
TIME_START_US = WRAP - 38 * 200_000


@pytest.fixture(scope="module")
def clean_stream(tmp_path_factory: pytest.TempPathFactory) -> dict:
    sim = simulator(tmp_path_factory)
    trials = sorted(UTD_INERTIAL.glob("a*_s*_t*_inertial.mat")) if UTD_INERTIAL.is_dir() else []
    if trials:
        data = np.concatenate([load_inertial(p) for p in trials[:3]])
    else:  # synthetic wrist motion, so that the property tests still run without the dataset
        t = np.arange(600) / 50.0
        data = np.stack(
            [np.sin(t * k) * a for k, a in zip(range(1, 7), [1, 1, 1, 200, 200, 200], strict=True)], axis=1
        )
    csv = write_csv(tmp_path_factory.mktemp("prop") / "trial.csv", data)
    stream = run_sim(
        sim,
        "--csv",
        str(csv),
        "--samples-per-frame",
        "10",
        "--seq-start",
        str(SEQ_START),
        "--time-start-us",
        str(TIME_START_US),
    )
    frames = {}
    pieces = stream.split(b"\x00")
    assert pieces[-1] == b""
    for piece in pieces[:-1]:
        raw = cobs_decode(piece)
        _, ftype, seq, t_us = parse_header(raw)
        samples = np.frombuffer(raw[12:-2], "<i2").reshape(-1, 6) if ftype == 2 else None
        # unwrapped as the clean stream counts: both counters only ever wrap once in it
        frames[piece] = (seq + WRAP * (seq < SEQ_START), t_us + WRAP * (t_us < TIME_START_US), ftype, samples)
    unwrapped = [frames[p] for p in pieces[:-1]]
    assert any(f[0] >= WRAP for f in unwrapped) and any(f[1] >= WRAP for f in unwrapped)
    return {"stream": stream, "frames": frames}


def oracle(mutated: bytes, frames: dict) -> dict:
    """Expected counters and samples for a damaged stream (see the module docstring)."""
    corrupt = 0
    valid = []
    for piece in mutated.split(b"\x00"):  # the last piece is what finish() sees
        if not piece:
            continue
        if piece in frames:
            valid.append(frames[piece])
        else:
            corrupt += 1
    lost = dups = resets = seq_wraps = time_wraps = 0
    last = last_t = None
    t_shift = 0  # after a (seeming) reset, device time counts afresh from the 32-bit value
    seen: set[int] = set()
    have_info = False
    samples = []
    times = []
    no_info = 0
    for seq, t_us, ftype, data in valid:
        if last is not None:
            if seq > last:
                lost += seq - last - 1
                seq_wraps += last < WRAP <= seq
            elif last - seq < WINDOW and seq in seen:
                dups += 1
                continue
            else:
                resets += 1
                seen = set()
                last_t, t_shift = None, WRAP * (t_us >= WRAP)
        if last_t is not None:
            time_wraps += last_t < WRAP <= t_us
        last, last_t = seq, t_us
        seen.add(seq)
        if ftype == 1:
            have_info = True
        elif ftype == 2:
            if have_info:
                samples.append(data)
                times.append((t_us - t_shift) / 1e6 + np.arange(len(data)) / RATE_HZ)
            else:
                no_info += 1
    return {
        "corrupt": corrupt,
        "lost": lost,
        "duplicates": dups,
        "resets": resets,
        "seq_wraps": seq_wraps,
        "time_wraps": time_wraps,
        "no_info": no_info,
        "frames": len(valid) - dups,
        "samples": np.concatenate(samples) if samples else np.zeros((0, 6), np.int16),
        "t": np.concatenate(times) if times else np.zeros(0),
    }


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 400)),
    st.tuples(st.just("duplicate"), st.floats(0, 1, exclude_max=True), st.integers(1, 600)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
)


def apply(stream: bytes, ops) -> bytes:
    data = bytearray(stream)
    for op, where, arg in ops:
        if not data:
            break
        at = int(where * len(data))
        if op == "flip":
            data[at] ^= arg
        elif op == "delete":
            del data[at : at + arg]
        elif op == "duplicate":
            data[at + arg : at + arg] = data[at : at + arg]
        else:
            del data[at:]
    return bytes(data)


def decode_in_pieces(data: bytes, cuts: list[float]) -> tuple[list, FrameDecoder]:
    dec = FrameDecoder()
    bounds = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
    items = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        items += dec.feed(data[a:b])
    items += dec.finish()
    return items, dec


@pytest.fixture(params=["python", "numpy"])
def cobs_path(request, monkeypatch) -> str:
    """Both COBS chain walkers (Python for small blocks, numpy for large)."""
    import c3t_edge.protocol.decoder as decoder_module

    monkeypatch.setattr(decoder_module, "_PY_CHAIN_MAX_FRAMES", 10**9 if request.param == "python" else 0)
    return request.param


@pytest.fixture(params=["runs", "frame by frame"])
def judging(request, monkeypatch) -> str:
    """Runs of in-order sample frames taken together, and every frame judged on its own."""
    import c3t_edge.protocol.sequencing as sequencing_module

    if request.param == "frame by frame":
        monkeypatch.setattr(sequencing_module, "_RUNS_MIN_FRAMES", 10**9)
    return request.param


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # a CRC-16 collision is possible in principle: keep the examples fixed
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(mutation, max_size=6), cuts=st.lists(st.floats(0, 1), max_size=30))
def test_damaged_stream_yields_exactly_the_untouched_frames(
    clean_stream, cobs_path, judging, ops, cuts
) -> None:
    mutated = apply(clean_stream["stream"], ops)
    items, dec = decode_in_pieces(mutated, cuts)
    want = oracle(mutated, clean_stream["frames"])
    batches = [i for i in items if isinstance(i, SampleBatch)]
    got = np.concatenate([b.raw for b in batches]) if batches else np.zeros((0, 6), np.int16)
    np.testing.assert_array_equal(got, want.pop("samples"))
    got_t = np.concatenate([b.t for b in batches]) if batches else np.zeros(0)
    np.testing.assert_allclose(got_t, want.pop("t"), rtol=0, atol=1e-6)
    stats = dec.stats.as_dict()
    assert {k: stats[k] for k in want} == want
    assert stats["bytes"] == len(mutated) and stats["samples"] == len(got)
    assert stats["malformed"] == 0 and stats["unsupported"] == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(0, 1), max_size=200))
def test_splitting_alone_changes_nothing(clean_stream, judging, cuts) -> None:
    whole = FrameDecoder()
    ref_batches = [i for i in whole.feed(clean_stream["stream"]) if isinstance(i, SampleBatch)]
    ref = [b.raw for b in ref_batches]
    ref_t = [b.t for b in ref_batches]
    items, dec = decode_in_pieces(clean_stream["stream"], cuts)
    got = [i for i in items if isinstance(i, SampleBatch)]
    np.testing.assert_array_equal(np.concatenate([b.raw for b in got]), np.concatenate(ref))
    np.testing.assert_array_equal(np.concatenate([b.t for b in got]), np.concatenate(ref_t))
    assert all(b.lost_before == 0 and b.boot == 0 for b in got)
    assert dec.stats.as_dict() == whole.stats.as_dict()
    assert dec.stats.seq_wraps == 1 and dec.stats.time_wraps == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4000), info_first=st.booleans())
def test_arbitrary_bytes_never_raise(cobs_path, judging, data: bytes, info_first: bool) -> None:
    dec = FrameDecoder(default_imu_info() if info_first else None)
    items = dec.feed(data) + dec.finish()
    assert all(len(i) > 0 for i in items if isinstance(i, SampleBatch))
