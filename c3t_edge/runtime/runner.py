"""Running the pipeline for a command: open the port, pump it, stop cleanly, summarise.

Shared by ``c3t-edge stream``, ``replay`` and ``demo``. Stops at the end of a recording, after
``duration_s``, at Ctrl-C or SIGTERM; the summary is always emitted, also when the link is lost for
good (the :class:`~c3t_edge.errors.TransportError` is raised after it).

:func:`run_devices` runs several devices in one process, on one event loop: one pipeline and one
sink per device, one Ctrl-C / SIGTERM / ``duration_s`` for all; a device that fails (its link lost
for good, a device the model does not fit) is reported and the others go on.
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
from c3t_edge.runtime.pipeline import PipelineFeed, StreamPipeline

#: After this many seconds without a decodable sample, say why recognition has not started.
SILENCE_HINT_S = 3.0
#: How often a device path that is not there yet (a device not plugged in) is looked for (s).
PORT_POLL_S = 1.0


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
    the run like Ctrl-C does. The session (hello, re-hello after reconnections, signals, drain)
    is the one live-session driver, :class:`c3t_edge.live.LiveSession`."""
    from c3t_edge.live import ENDED, LiveSession
    from c3t_edge.transports import open_transport

    options = options or PortOptions()

    def on_event(event) -> None:
        if event.kind in ("disconnected", "gave_up"):
            sink(LinkNotice(event.kind, event.port, event.host_time_s, event.reason,
                            event.gap.duration_s if event.gap else None))

    if transport is None:
        transport = open_transport(port, on_event=on_event, reconnect=options.reconnect,
                                   baudrate=options.baudrate, serial_options=options.serial_options,
                                   ble=options.ble, speed=options.speed, extra=options.extra)
    elif transport.on_event is None:
        transport.on_event = on_event
    caps = transport.capabilities
    feed = PipelineFeed(pipeline, sink, transport.port, batch=not caps.paced, recorded=caps.recorded)
    loop = asyncio.get_running_loop()
    hint = None
    pipeline_ready: float | None = None
    error: C3TEdgeError | None = None
    reason = "stopped"
    try:
        async with LiveSession(transport, handle_signals=handle_signals, duration_s=duration_s,
                               stop=stop) as session:
            pipeline_ready = process_age_s()
            # counted from the open port (BLE scans)
            hint = loop.call_later(SILENCE_HINT_S, _silence_hint, port, transport, pipeline, sink)
            try:
                reason = await session.run(feed)
            except C3TEdgeError as exc:
                error = exc
                reason = "error"
            if reason == ENDED:
                feed.finish()
            else:
                feed.flush()
                reason = reason if reason == "error" else "stopped"
    finally:
        if hint is not None:
            hint.cancel()
    summary = _summary(pipeline, transport, reason, pipeline_ready)
    sink.summary(summary)
    if error is not None:
        raise error
    return summary


@dataclass
class DeviceRun:
    """One device of a multi-device run: its ``name`` (on every event), PORT, pipeline, sink."""

    name: str
    port: str
    pipeline: StreamPipeline
    sink: Any
    options: PortOptions = field(default_factory=PortOptions)


async def run_devices(runs: list[DeviceRun], *, duration_s: float | None = None, handle_signals: bool = True,
                      stop: asyncio.Event | None = None, on_error=None,
                      wait_for_ports: bool = False) -> dict[str, Summary | Exception]:
    """Run every device of ``runs`` at once until each source ends, ``duration_s`` passes, Ctrl-C /
    SIGTERM, or ``stop`` is set. Each device's summary goes to its own sink. A device whose run
    raises is given to ``on_error(run, exc)`` at once (the others go on); returns, per device name,
    its :class:`Summary` or the exception that ended it. ``wait_for_ports``: a device path that does
    not exist yet (a device not plugged in when the gateway starts) is waited for, not an error."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                pass
    timer = loop.call_later(duration_s, stop.set) if duration_s is not None else None

    async def one(run: DeviceRun) -> Summary | Exception:
        if wait_for_ports and not await _port_appears(run, stop):
            summary = run.pipeline.summary()
            summary.extra["stopped"] = "never plugged in"
            run.sink.summary(summary)
            return summary
        try:
            return await run_port(run.port, run.pipeline, run.sink, options=run.options,
                                  handle_signals=False, stop=stop)
        except Exception as exc:  # noqa: BLE001 - one device's failure must not end the others
            if on_error is not None:
                on_error(run, exc)
            return exc

    try:
        results = await asyncio.gather(*(one(run) for run in runs))
    finally:
        if timer is not None:
            timer.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return {run.name: result for run, result in zip(runs, results, strict=True)}


async def _port_appears(run: DeviceRun, stop: asyncio.Event) -> bool:
    """Wait until ``run.port``, a device path (not a URL), exists; False when ``stop`` came first."""
    if "://" in run.port or os.path.exists(run.port):
        return True
    run.sink(Notice(f"{run.port} is not there: waiting for the device to be plugged in"))
    while not os.path.exists(run.port):
        try:
            await asyncio.wait_for(stop.wait(), PORT_POLL_S)
            return False
        except asyncio.TimeoutError:
            pass
    return True


def _silence_hint(port: str, transport, pipeline: StreamPipeline, sink) -> None:
    """Say why no sample has arrived yet (nothing at all, bytes but no frames, frames but no DEVICE_INFO)."""
    dec = pipeline.decoder.stats
    text = getattr(pipeline.decoder, "text", pipeline.decoder)
    if dec.samples or getattr(text, "held_samples", 0):  # text lines are held while their rate is timed
        return
    if port.startswith("loop://"):
        sink(Notice("loop:// is pyserial's loopback: it returns only what c3t-edge itself writes, no device is "
                    "behind it; to try stream without hardware, run c3t-imu-sim on one end of a socat pty "
                    "pair and stream from the other (firmware_bridge/README.md), or replay://FILE"))
    elif transport.stats.bytes_in == 0:
        sink(Notice(f"no data from {port} after {SILENCE_HINT_S:g} s: is the device on and streaming, and "
                    "is this its port?"))
    elif dec.frames == 0:
        sink(Notice(f"{transport.stats.bytes_in} bytes from {port} but neither valid frames nor lines of "
                    "numbers: is the baud rate right (--baud)?"))
    elif getattr(pipeline.decoder, "refusal", None):
        sink(Notice(f"{pipeline.decoder.refusal}; its samples cannot be scaled until the device sends a "
                    "DEVICE_INFO that firmware_bridge/PROTOCOL.md section 3.1 allows"))
    elif getattr(dec, "no_info", 0):
        sink(Notice("sample frames arrive but the device has not described itself (DEVICE_INFO); "
                    "its samples cannot be scaled until it does"))


def _summary(pipeline: StreamPipeline, transport, reason: str, ready_after_s: float | None) -> Summary:
    """The pipeline's summary plus the run's facts (why it stopped, start-up, memory, the source's own)."""
    summary = pipeline.summary()
    first = pipeline.first_window_at()
    age = process_age_s()
    if first is not None and age is not None:
        summary.first_window_after_s = age - (time.perf_counter() - first)
    summary.max_rss_mb = max_rss_mb()
    summary.extra.update({"stopped": reason, "ready_after_s": ready_after_s,
                          "torch_imported": "torch" in sys.modules})
    if not transport.capabilities.paced:
        # chunks are fed in batches: a window's latency is its batch's processing time
        summary.extra["latency_basis"] = "batch"
    summary.extra.update(transport.summary_facts())
    return summary
