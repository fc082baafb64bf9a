"""Running the pipeline for a command: open the port, pump it, stop cleanly, summarise.

Shared by ``c3t-edge stream``, ``replay`` and ``demo``. Stops at the end of a recording, after
``duration_s``, at Ctrl-C or SIGTERM; the summary is always emitted, also when the link is lost for
good (the :class:`~c3t_edge.errors.TransportError` is raised after it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from c3t_edge.errors import C3TEdgeError
from c3t_edge.runtime.events import LinkNotice, Notice, Summary
from c3t_edge.runtime.pipeline import StreamPipeline, run_transport

#: After this many seconds without a decodable sample, say why recognition has not started.
SILENCE_HINT_S = 3.0


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def max_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0  # Linux reports kB


@dataclass
class PortOptions:
    """How to open the PORT (see :func:`c3t_edge.transports.open_transport`)."""

    baudrate: int = 115200
    speed: float | None = 1.0
    ble: Any = None
    reconnect: Any = None
    serial_options: dict | None = None
    extra: dict = field(default_factory=dict)


async def run_port(port: str, pipeline: StreamPipeline, sink, *, options: PortOptions | None = None,
                   duration_s: float | None = None, handle_signals: bool = True,
                   transport=None, stop: asyncio.Event | None = None) -> Summary:
    """Open ``port`` (or use ``transport``), run ``pipeline`` on it, send events to ``sink``
    (a callable with a ``summary(Summary)`` method); returns the summary. Setting ``stop`` ends
    the run like Ctrl-C does."""
    from c3t_edge.transports import open_transport

    options = options or PortOptions()

    def on_event(event) -> None:
        if event.kind in ("disconnected", "gave_up"):
            sink(LinkNotice(event.kind, event.port, event.host_time_s, event.reason,
                            event.gap.duration_s if event.gap else None))

    if transport is None:
        transport = open_transport(port, on_event=on_event, reconnect=options.reconnect,
                                   baudrate=options.baudrate, serial_options=options.serial_options,
                                   ble=options.ble, speed=options.speed)
    elif transport.on_event is None:
        transport.on_event = on_event
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    timer = loop.call_later(duration_s, stop.set) if duration_s is not None else None

    def silence_hint() -> None:
        dec = pipeline.decoder.stats
        if dec.samples:
            return
        if transport.stats.bytes_in == 0:
            sink(Notice(f"no data from {port} after {SILENCE_HINT_S:g} s: is the device on and streaming, and "
                        "is this its port?"))
        elif dec.frames == 0:
            sink(Notice(f"{transport.stats.bytes_in} bytes from {port} but neither valid frames nor lines of "
                        "numbers: is the baud rate right (--baud)?"))
        elif getattr(dec, "no_info", 0):
            sink(Notice("sample frames arrive but the device has not described itself (DEVICE_INFO); "
                        "its samples cannot be scaled until it does"))

    hint = None
    error: C3TEdgeError | None = None
    reason = "stopped"
    try:
        async with transport:
            pipeline_ready = process_age_s()
            hint = loop.call_later(SILENCE_HINT_S, silence_hint)  # counted from the open port (BLE scans)
            try:
                reason = await run_transport(transport, pipeline, sink, stop=stop)
            except C3TEdgeError as exc:
                error = exc
                reason = "error"
    finally:
        if hint is not None:
            hint.cancel()
        if timer is not None:
            timer.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
    summary = pipeline.summary()
    first = pipeline.first_window_at()
    age = process_age_s()
    if first is not None and age is not None:
        summary.first_window_after_s = age - (time.perf_counter() - first)
    summary.max_rss_mb = max_rss_mb()
    summary.extra.update({"stopped": reason, "ready_after_s": pipeline_ready,
                          "torch_imported": "torch" in sys.modules})
    if transport.kind == "replay" and getattr(transport, "speed", 1.0) is None:
        # records are fed in batches: a window's latency is its batch's processing time
        summary.extra["latency_basis"] = "batch"
    stats = getattr(transport, "recording_stats", None)
    if stats is not None and getattr(stats, "ignored_tail_bytes", 0):
        summary.extra["ignored_tail_bytes"] = stats.ignored_tail_bytes
    sink.summary(summary)
    if error is not None:
        raise error
    return summary
