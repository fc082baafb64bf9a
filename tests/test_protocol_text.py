"""TextDecoder: the plain-text (Edge Impulse data forwarder) mode, on output shaped like real sketches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c3t_edge.protocol import DeviceEvent, DeviceInfo, EventCode, SampleBatch, TextDecoder
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


# -- the Edge Impulse data forwarder's rules (edge-impulse-cli, cli/data-forwarder.ts) -------------

def timed(dec: TextDecoder, lines: list[bytes], rate_hz: float, t0: float = 100.0) -> list:
    """Feed one line per chunk, each arriving 1/rate_hz after the previous (host seconds)."""
    items = []
    for i, line in enumerate(lines):
        items += dec.feed(line, t0 + i / rate_hz)
    return items + dec.finish()


def samples_of(items) -> np.ndarray:
    return np.concatenate([b.samples for b in items if isinstance(b, SampleBatch)])


def test_separators_commas_tabs_whitespace_and_trailing_ones() -> None:
    data = (b"junk\n"
            b"1,2,3,4,5,6,\r\n"  # trailing comma
            b"1\t2\t3\t4\t5\t6\t\n"  # trailing tab
            b"1,\t2,\t3,\t4,\t5,\t6,\r"  # comma + tab, lone CR line end
            b"  1  2 3\t 4,5 ,6  \r\n"
            b"1,,2,3,4,5,6\n")  # an empty field is dropped, as the forwarder does
    items, dec = decode(data, skip_first_line=True)
    np.testing.assert_array_equal(samples_of(items), np.tile(np.arange(1, 7), (5, 1)))
    assert dec.stats.bad_lines == 0


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_cr_lf_crlf_line_ends_in_any_chunking(chunk) -> None:
    data = b"x\r1,2,3\r4,5,6\n7,8,9\r\n10,11,12\r\n"
    items, _ = decode(data, chunk)
    np.testing.assert_array_equal(samples_of(items), [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]])


def test_header_line_gives_column_names_and_err_lines_are_errors() -> None:
    data = b"\nStarted\naccX,accY,accZ\n0.1,0.2,0.98\n<err imu not found\nError: bus\n0.1,0.2,0.97\n"
    items, dec = decode(data)
    events = [e for e in items if isinstance(e, DeviceEvent)]
    assert [(e.code, e.message) for e in events] == [
        (EventCode.LOG, "Started"),
        (EventCode.LOG, "column names: accX, accY, accZ"),
        (EventCode.ERROR, "<err imu not found"),
        (EventCode.ERROR, "Error: bus"),
    ]
    assert dec.header == ("accX", "accY", "accZ") and dec.stats.samples == 2
    assert dec.info.channel_names == ("ax", "ay", "az")  # three values: an accelerometer


@pytest.mark.parametrize(("rate_hz", "hint", "expected"), [(50, 50, 50), (100, 50, 100), (25, 50, 25),
                                                           (30, 50, 30), (200, None, 200)])
def test_rate_inferred_from_one_second_of_line_timing(rate_hz, hint, expected) -> None:
    lines = [b"garbage\n"] + [f"0.01\t0.02\t0.99\t{i % 7}\t0\t0\r\n".encode() for i in range(3 * rate_hz)]
    dec = TextDecoder(None, rate_hint_hz=hint)
    items = timed(dec, lines, rate_hz)
    assert isinstance(items[0], DeviceInfo) and items[0].sample_rate_hz == expected
    assert dec.sample_rate_hz == expected and dec.rate_source == "inferred"
    batches = [b for b in items if isinstance(b, SampleBatch)]
    t = np.concatenate([b.t for b in batches])
    np.testing.assert_allclose(t, np.arange(3 * rate_hz) / expected)  # nothing held back is lost
    assert f"at {expected:g} Hz (inferred from 1 s of line timing)" in dec.describe()


def test_a_count_near_the_hint_is_the_hint_and_far_from_it_is_the_count() -> None:
    from c3t_edge.protocol.text import snap_rate

    assert snap_rate(49, 50) == 50 and snap_rate(98, 50) == 100 and snap_rate(51, 50) == 50
    assert snap_rate(119, 50) == 119 and snap_rate(40, 50) == 40 and snap_rate(40, None) == 40


def test_lines_that_all_arrive_at_once_take_the_hinted_rate_and_say_so() -> None:
    dec = TextDecoder(None, rate_hint_hz=50)
    items = dec.feed(b"\n" + b"0,0,1,0,0,0\n" * 30, 5.0) + dec.finish()
    assert dec.sample_rate_hz == 50 and dec.rate_source == "assumed" and len(samples_of(items)) == 30
    assert "assumed: the lines arrived too fast to time" in dec.describe()


def test_events_held_during_inference_keep_their_place_and_time() -> None:
    lines = [b"\n", b"Started\n"] + [b"0,0,1,0,0,0\n"] * 20 + [b"ERR: overrun\n"] + [b"0,0,1,0,0,0\n"] * 60
    items = timed(TextDecoder(None, rate_hint_hz=50), lines, 50)
    kinds = [type(i).__name__ for i in items]
    assert kinds[:3] == ["DeviceInfo", "DeviceEvent", "SampleBatch"] and kinds.count("DeviceEvent") == 2
    err = [i for i in items if isinstance(i, DeviceEvent) and i.is_error][0]
    assert err.t == pytest.approx(20 / 50)


@pytest.mark.parametrize(("scale", "unit", "source"), [(STANDARD_GRAVITY, "m/s2", "detected"), (1.0, "g", "detected"),
                                                       (1000.0, "g", "assumed")])
def test_acceleration_unit_detected_from_gravity(scale, unit, source) -> None:
    rng = np.random.default_rng(1)
    acc = (np.array([0.05, -0.1, 0.99]) + rng.normal(0, 0.02, (40, 3))) * scale
    text = b"\n" + b"".join(f"{a:.4f},{b:.4f},{c:.4f},1,2,3,\r\n".encode() for a, b, c in acc)
    items, dec = decode(text, acc_unit="auto", sample_rate_hz=50)
    assert dec.acc_unit == unit and dec.acc_source == source
    got = samples_of(items)
    expected = acc / (STANDARD_GRAVITY if unit == "m/s2" else 1.0)
    np.testing.assert_allclose(got[:, :3], expected, atol=1e-4)  # printed with 4 decimals
    assert dec.describe().count("acceleration in " + ("m/s²" if unit == "m/s2" else "g")) == 1


def test_rotation_in_rad_per_s_becomes_deg_per_s() -> None:
    items, dec = decode(b"\n0,0,1,3.14159265,-1.5707963,0.5\n", gyro_unit="rad/s")
    np.testing.assert_allclose(samples_of(items), [[0, 0, 1, 180, -90, 0.5 * 180 / np.pi]], rtol=1e-5)
    assert "rotation in rad/s (set), converted to deg/s" in dec.describe()


def test_a_steady_wrong_value_count_is_reported_with_both_counts() -> None:
    dec = TextDecoder(50, n_channels=6)
    dec.feed(b"\n" + b"0.1,0.2,9.8\n" * 9)
    assert dec.value_count_mismatch is None  # a few damaged lines are only counted
    dec.feed(b"0.1,0.2,9.8\n")
    assert dec.value_count_mismatch == (3, 6) and dec.stats.samples == 0
