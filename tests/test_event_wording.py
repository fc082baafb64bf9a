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
