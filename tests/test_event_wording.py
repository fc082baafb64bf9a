"""What stream, replay and demo say about gaps and delays: words that are true whatever the sign."""

from __future__ import annotations

from c3t_edge.commands.demo import describe_delay
from c3t_edge.runtime.events import GapEvent
from c3t_edge.runtime.sinks import TextSink


def test_a_reset_is_said_to_be_a_restart_not_a_negative_gap() -> None:
    line = TextSink.format(GapEvent(t_from=39.98, t_to=0.0, cause="reset", lost_frames=0, filled=False))
    assert "device restarted" in line and "39.98" in line and "-" not in line.replace("--", "")
    assert "gap of" not in line


def test_time_that_went_back_is_said_to_have_gone_back() -> None:
    line = TextSink.format(GapEvent(t_from=12.5, t_to=12.25, cause="time", lost_frames=0, filled=False))
    assert "device time went back by 0.25 s" in line and "gap of" not in line


def test_a_forward_gap_keeps_its_duration() -> None:
    line = TextSink.format(GapEvent(t_from=10.0, t_to=10.5, cause="lost", lost_frames=2, filled=True))
    assert "gap of 0.50 s (lost, 2 frames lost; filled)" in line


def test_a_negative_median_delay_is_before_the_actions_end() -> None:
    assert describe_delay(-1.48) == "the first event came a median 1.48 s before the action's end"
    assert describe_delay(0.3) == "the first event came a median 0.30 s after the action's end"


def test_stream_says_why_the_device_description_was_refused() -> None:
    """A DEVICE_INFO with an accelerometer in counts: the silence hint gives the decoder's reason."""
    from types import SimpleNamespace

    from c3t_edge.protocol import ChannelSpec, FrameDecoder, default_imu_info
    from c3t_edge.protocol.frames import encode_imu_frame, encode_info_frame, wire
    from c3t_edge.runtime.runner import _silence_hint

    info = default_imu_info()
    counts_info = type(info)(**{**{f: getattr(info, f) for f in info.__slots__},
                                "channels": tuple(ChannelSpec(c.kind, c.axis, 0, 1.0, 32768.0) for c in info.channels)})
    decoder = FrameDecoder()
    decoder.feed(wire(encode_info_frame(0, 0, counts_info)) + wire(encode_imu_frame(1, 0, [[1] * 6])))
    said: list = []
    _silence_hint("/dev/ttyACM0", SimpleNamespace(stats=SimpleNamespace(bytes_in=200)),
                  SimpleNamespace(decoder=decoder), said.append)
    assert len(said) == 1 and "refused" in said[0].message and "declared in counts" in said[0].message


def test_a_reset_gap_has_no_duration_in_json() -> None:
    gap = GapEvent(t_from=39.98, t_to=0.0, cause="reset", lost_frames=0, filled=False).as_dict()
    assert gap["duration_s"] is None and gap["t_from"] == 39.98 and gap["t"] == 0.0
    assert GapEvent(1.0, 1.5, "lost", 3, False).as_dict()["duration_s"] == 0.5
