"""TextDecoder: the plain-text (Edge Impulse data forwarder) mode, on output shaped like real sketches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c3t_edge.protocol import DeviceEvent, EventCode, SampleBatch, TextDecoder
from c3t_edge.protocol.text import STANDARD_GRAVITY

# What an Arduino Nano 33 BLE Sense sketch prints when the port is opened mid-line: a partial
# first line, Serial.print(x); Serial.print('\t') ... Serial.println() lines (\r\n), a banner, an
# ERR line from the Edge Impulse firmware convention, and a blank line.
ARDUINO = (
    b"0.0123\t-18.2\t3.5\r\n"  # partial first line: must be dropped
    b"Started\r\n"
    b"-0.95\t-0.42\t-0.09\t-18.20\t-8.67\t8.61\r\n"
    b"-0.94,-0.43,-0.12, -18.72,-7.85,6.44\r\n"
    b"\r\n"
    b"ERR: Failed to read IMU!\r\n"
    b"-0.94 -0.43 -0.14 -21.40 -5.68 2.23\r\n"
    b"1.0,2.0,3.0\r\n"  # wrong value count
    b"-0.93,\t-0.44,\t-0.15,\t-22.00,\t-5.00,\t2.00\r\n"
)
EXPECTED = np.array(
    [
        [-0.95, -0.42, -0.09, -18.20, -8.67, 8.61],
        [-0.94, -0.43, -0.12, -18.72, -7.85, 6.44],
        [-0.94, -0.43, -0.14, -21.40, -5.68, 2.23],
        [-0.93, -0.44, -0.15, -22.00, -5.00, 2.00],
    ],
    dtype=np.float32,
)


def decode(data: bytes, chunk: int | None = None, **kwargs) -> tuple[list, TextDecoder]:
    dec = TextDecoder(**kwargs)
    items = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        items += dec.feed(data[i : i + step])
    return items + dec.finish(), dec


@pytest.mark.parametrize("chunk", [None, 1, 2, 5, 17])
def test_arduino_style_output(chunk) -> None:
    items, dec = decode(ARDUINO, chunk)
    batches = [i for i in items if isinstance(i, SampleBatch)]
    samples = np.concatenate([b.samples for b in batches])
    np.testing.assert_array_equal(samples, EXPECTED)
    np.testing.assert_allclose(np.concatenate([b.t for b in batches]), np.arange(4) / 50.0)
    events = [i for i in items if isinstance(i, DeviceEvent)]
    assert [(e.code, e.message) for e in events] == [
        (EventCode.LOG, "Started"),
        (EventCode.ERROR, "ERR: Failed to read IMU!"),
    ]
    assert events[1].is_error and events[1].t == pytest.approx(2 / 50.0)
    assert dec.stats.bad_lines == 1 and dec.stats.errors == 1 and dec.stats.samples == 4
    assert dec.info.channel_names == ("ax", "ay", "az", "gx", "gy", "gz")


def test_first_line_is_kept_when_told_the_stream_starts_at_a_line() -> None:
    items, _ = decode(b"1,2,3,4,5,6\n7,8,9,10,11,12", skip_first_line=False)
    samples = np.concatenate([b.samples for b in items if isinstance(b, SampleBatch)])
    np.testing.assert_array_equal(samples, [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])


def test_acceleration_in_m_per_s2_becomes_g() -> None:
    line = f"{STANDARD_GRAVITY},0,{-2 * STANDARD_GRAVITY},10,20,30\r\n".encode()
    items, _ = decode(b"\r\n" + line, acc_unit="m/s2", sample_rate_hz=100)
    (batch,) = [b for b in items if isinstance(b, SampleBatch)]
    np.testing.assert_allclose(batch.samples, [[1, 0, -2, 10, 20, 30]], rtol=1e-6)


def test_declared_channel_count_rejects_other_lines() -> None:
    items, dec = decode(b"\n1 2 3\n1 2 3 4 5 6\n", n_channels=3)
    (batch,) = [b for b in items if isinstance(b, SampleBatch)]
    assert batch.samples.shape == (1, 3) and dec.stats.bad_lines == 1


def test_binary_garbage_and_huge_lines_do_not_raise() -> None:
    rng = np.random.default_rng(5)
    dec = TextDecoder()
    for _ in range(50):
        dec.feed(rng.integers(0, 256, size=int(rng.integers(0, 3000)), dtype=np.uint8).tobytes())
    dec.feed(b"x" * 5000)
    dec.feed(b"\n1,2,3,4,5,6\n")
    dec.finish()
    assert dec.stats.bad_lines >= 1


def test_nan_and_inf_are_not_samples() -> None:
    items, dec = decode(b"\nnan,1,2,3,4,5\ninf,1,2,3,4,5\n1,2,3,4,5,6\n")
    (batch,) = [b for b in items if isinstance(b, SampleBatch)]
    assert batch.samples.shape == (1, 6)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, len(ARDUINO)), max_size=40))
def test_any_split_of_sketch_output_gives_the_same_items(cuts) -> None:
    whole, _ = decode(ARDUINO)
    dec = TextDecoder()
    items = []
    bounds = sorted({0, len(ARDUINO), *cuts})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        items += dec.feed(ARDUINO[a:b])
    items += dec.finish()
    got = np.concatenate([b.samples for b in items if isinstance(b, SampleBatch)])
    np.testing.assert_array_equal(got, EXPECTED)
    assert [e.message for e in items if isinstance(e, DeviceEvent)] == [
        e.message for e in whole if isinstance(e, DeviceEvent)
    ]
    assert dec.stats.bad_lines == 1 and dec.stats.samples == 4
