"""Where events go: readable lines, JSON lines, or a list (tests).

A sink is a callable taking each event, with a ``summary(Summary)`` method. When one process streams
several devices, each device has its own sinks, made with ``device=NAME``: every JSON line then
carries ``"device"`` (after ``"type"``) and every readable line starts with ``[NAME]``; with one
device (``device=None``) the output is unchanged. :class:`FanOut` sends a device's events to its
printing sink and to the others (MQTT, the web view).
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from c3t_edge.runtime.events import (
    ActionEvent,
    DeviceNotice,
    GapEvent,
    LinkNotice,
    Notice,
    Summary,
    WindowResult,
)


class JsonSink:
    """One JSON object per line on ``out`` (stdout), flushed at once; the summary is the last line."""

    def __init__(self, out: TextIO | None = None, device: str | None = None) -> None:
        self.out = out or sys.stdout
        self.device = device

    def __call__(self, event) -> None:
        d = event.as_dict()
        if self.device is not None:
            d = {"type": d.pop("type"), "device": self.device, **d}
        self.out.write(json.dumps(d, separators=(", ", ": ")) + "\n")
        self.out.flush()

    def summary(self, summary: Summary) -> None:
        self(summary)


class TextSink:
    """One readable line per recognised action (and per return to "no action") on ``out``; gaps,
    link and device changes, and the summary, on ``err``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, device: str | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.prefix = "" if device is None else f"[{device}] "

    def __call__(self, event) -> None:
        line = self.format(event)
        if line is not None:
            line = self.prefix + line
            to_out = isinstance(event, ActionEvent | WindowResult)
            print(line, file=self.out if to_out else self.err, flush=True)

    @staticmethod
    def format(event) -> str | None:
        if isinstance(event, ActionEvent):
            if event.label is None:
                return f"{event.t:9.2f} s  -- no action"
            return (f"{event.t:9.2f} s  {event.label:<28s} {event.confidence:5.2f}   "
                    f"(window {event.window[0]:.2f}-{event.window[1]:.2f} s, {event.latency_ms:.1f} ms)")
        if isinstance(event, GapEvent):
            return f"{event.t_to:9.2f} s  .. {_describe_gap(event)}"
        if isinstance(event, LinkNotice):
            if event.state == "reconnected":
                return f"             .. link back after {event.gap_s or 0:.2f} s ({event.port})"
            return f"             .. link {event.state}: {event.reason} ({event.port})"
        if isinstance(event, DeviceNotice):
            rs = f", resampled to {event.resampled_to_hz:g} Hz" if event.resampled_to_hz else ""
            return (f"             device {event.name or '(unnamed)'} fw {event.firmware}: "
                    f"{event.sample_rate_hz:g} Hz, {','.join(event.channels)}{rs}")
        if isinstance(event, Notice):
            return f"             .. {event.message}"
        if isinstance(event, WindowResult):
            top = f"{event.top_label} {event.top_probability:.2f}" if event.active else "idle"
            return (f"{event.t:9.2f} s     window: {top:<34s} moving {event.moving_fraction:.2f}  "
                    f"state {event.state or '-'} {event.score:.2f}")
        return None

    def summary(self, summary: Summary) -> None:
        print(self.prefix + summary.text(), file=self.err, flush=True)


def _describe_gap(event: GapEvent) -> str:
    """What happened at a gap, in words that are true for each cause: a device reset restarts its
    clock (the times before and after are on different clocks, so no duration is given), and time
    that went back is said to have gone back rather than given a negative duration."""
    what = "filled" if event.filled else "windows restart"
    lost = f"{event.lost_frames} frames lost; " if event.lost_frames else ""
    if event.cause == "reset":
        return (f"device restarted (its clock was at {event.t_from:.2f} s, now {event.t_to:.2f} s); "
                f"{lost}{what}")
    step = event.t_to - event.t_from
    if step <= 0:
        return f"device time went back by {-step:.2f} s ({event.cause}); {lost}{what}"
    return f"gap of {step:.2f} s ({event.cause}, {event.lost_frames} frames lost; {what})"


class FanOut:
    """One device's events to its printing sink and to further sinks (MQTT, the web view), in order.

    :meth:`summary` goes to the further sinks first, so that what they add to ``summary.extra``
    (e.g. MQTT's published and dropped counts) is in the printed summary."""

    def __init__(self, printer, *others) -> None:
        self.printer = printer
        self.others = list(others)

    def __call__(self, event) -> None:
        self.printer(event)
        for sink in self.others:
            sink(event)

    def summary(self, summary: Summary) -> None:
        for sink in self.others:
            sink.summary(summary)
        self.printer.summary(summary)


class ListSink:
    """Keeps every event (tests, the demo's scoring)."""

    def __init__(self) -> None:
        self.events: list = []
        self.final: Summary | None = None

    def __call__(self, event) -> None:
        self.events.append(event)

    def summary(self, summary: Summary) -> None:
        self.final = summary

    def actions(self) -> list[ActionEvent]:
        return [e for e in self.events if isinstance(e, ActionEvent) and e.label is not None]
