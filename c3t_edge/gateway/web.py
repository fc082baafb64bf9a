"""The live web view: ``stream``/``replay ... --web [HOST:]PORT`` serves a page that shows, per device,
the six channels scrolling, the latest window's class probabilities, the smoothed decision, the
event log, the link state and the latency figures, pushed to the browser as they happen.

    pipeline --observer--> DevicePanel (rings: plot samples, events; latest window state)
    sink ------events----> DevicePanel            --notify--> ViewClient.wake (one flag per browser)
    browser <--SSE-------- one writer per browser: what is new since its cursors, as one message

Server-sent events over aiohttp on the runtime's own event loop. The pipeline only notes what it gets
into bounded rings and sets each browser's wake flag (microseconds); encoding and sending happen in
each browser's writer, between chunks. A browser that reads slowly or not at all holds at most one
message in flight: updates arriving meanwhile are merged into its next message (counted as
``coalesced``) and plot samples that left the ring before it caught up are counted as dropped;
recognition never waits for a browser. Binds 127.0.0.1 unless another address is given; no
authentication (see export/raspberry-pi.md for the LAN).

The :class:`DevicePanel` of a device is both the pipeline's observer
(:class:`~c3t_edge.runtime.pipeline.PipelineObserver`) and a sink for its events;
:meth:`WebView.attach` wires one device. Only :meth:`WebView.start` needs aiohttp (the ``gateway``
extra).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from c3t_edge.errors import C3TEdgeError, MissingDependencyError
from c3t_edge.runtime.events import ActionEvent, DeviceNotice, GapEvent, LinkNotice, Notice, Summary

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_HOST = "127.0.0.1"
#: Samples reach the plot at most at this rate (Hz): one per 1/PLOT_RATE_HZ s of device time.
PLOT_RATE_HZ = 25.0
#: Plot samples kept per device (s of device time at PLOT_RATE_HZ); the page shows the last PLOT_SHOWN_S.
PLOT_HISTORY_S = 12.0
PLOT_SHOWN_S = 8.0
#: Events kept per device for a browser that connects later.
EVENT_HISTORY = 500
#: Latency percentiles on the page are over this many recent windows.
LATENCY_WINDOWS = 200
#: Bytes buffered for one browser (socket send buffer and the transport's own): a browser that reads
#: slowly falls behind by this much at most before its updates are merged (latest wins) instead of queued.
SEND_BUFFER_BYTES = 32 * 1024
#: With nothing new for this long (s), a comment line keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
#: A browser stuck on one message is cut off after this long when the view stops (s).
SHUTDOWN_TIMEOUT_S = 1.0


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port): ``8080`` is 127.0.0.1:8080; ``0.0.0.0:8080``, ``[::]:8080``,
    ``pi.local:8080``; port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (sep and not host):
        raise C3TEdgeError(f"--web: expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080 (got {text!r})")
    return host, port


def require_aiohttp() -> None:
    """One line naming the extra when aiohttp is missing (checked before the model is loaded)."""
    try:
        import aiohttp.web  # noqa: F401
    except ImportError:
        raise MissingDependencyError("aiohttp", "gateway", "--web (the live web view)") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rounded(values, digits: int = 4) -> list:
    return [round(float(v), digits) for v in values]


class DevicePanel:
    """What the page shows for one device; the device's pipeline observer and an event sink.

    Every method runs on the event loop, synchronously; each only appends to bounded rings, updates
    counters and wakes the browsers (:meth:`WebView.notify`)."""

    def __init__(self, view: WebView, name: str, port: str | None = None) -> None:
        self.view = view
        self.name = name
        self.port = port
        self.pipeline = None
        self.meta: dict[str, Any] = {"name": name, "port": port}
        self.plot: deque[tuple[float, list[float]]] = deque(maxlen=int(PLOT_HISTORY_S * PLOT_RATE_HZ))
        self.plot_total = 0  # plot samples ever added (a browser's cursor counts these)
        self._last_bin = -math.inf
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_HISTORY)
        self.events_total = 0
        self.state: dict[str, Any] | None = None
        self.state_version = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOWS)
        self.link = "waiting"
        self.gaps = 0
        self.reconnects = 0
        self.summary_dict: dict[str, Any] | None = None

    def attach(self, pipeline) -> None:
        """Observe ``pipeline`` (a :class:`~c3t_edge.runtime.pipeline.StreamPipeline`)."""
        self.pipeline = pipeline
        spec = pipeline.spec
        self.meta.update({"labels": list(spec.labels), "channels": list(spec.channels),
                          "units": list(spec.units), "model": spec.name, "rate_hz": spec.sample_rate_hz})
        pipeline.observer = self

    # ------------------------------------------------------------------ observer
    def samples(self, t: np.ndarray, x: np.ndarray) -> None:
        """Keep one sample per 1/PLOT_RATE_HZ s of device time (see PipelineObserver.samples)."""
        bins = np.floor(np.asarray(t) * PLOT_RATE_HZ + 1e-6)  # + 1e-6: 20.2 s is bin 505, not 504.99...
        if bins[0] < self._last_bin:  # the device clock went back (a reset): a new trace
            self._last_bin = -math.inf
        keep = np.flatnonzero(bins > np.concatenate(([self._last_bin], bins[:-1])))  # first of each new bin
        if keep.size:
            self._last_bin = float(bins[keep[-1]])
            for ti, xi in zip(t[keep].tolist(), np.round(x[keep], 3).tolist(), strict=True):
                self.plot.append((ti, xi))
            self.plot_total += int(keep.size)
        if self.link == "waiting":
            self.link = "connected"
        self.view.notify()

    def window(self, t: float, probabilities: np.ndarray | None, state: str | None, score: float,
               latency_ms: float) -> None:
        """The latest window's outcome, stamped with the host time of its decision (see
        PipelineObserver.window)."""
        self.latencies.append(latency_ms)
        self.state_version += 1
        self.state = {"version": self.state_version, "t": t, "decided_at": time.time(),
                      "probabilities": None if probabilities is None else probabilities.tolist(),
                      "state": state, "score": score, "latency_ms": latency_ms}
        self.view.notify()

    # ------------------------------------------------------------------ sink
    def __call__(self, event) -> None:
        if isinstance(event, LinkNotice):
            self.link = {"disconnected": "disconnected", "gave_up": "lost"}.get(event.state, "connected")
            self.reconnects += event.state == "reconnected"
        elif isinstance(event, GapEvent):
            self.gaps += 1
        elif isinstance(event, DeviceNotice):
            device = {"name": event.name, "rate_hz": event.sample_rate_hz, "firmware": event.firmware,
                      "resampled_to_hz": event.resampled_to_hz}
            self.meta = {**self.meta, "device": device}  # a new dict: browsers see that it changed
        if isinstance(event, ActionEvent | GapEvent | LinkNotice | DeviceNotice | Notice):
            self.events.append({**event.as_dict(), "host_time": round(time.time(), 3)})
            self.events_total += 1
            self.view.notify()

    def summary(self, summary: Summary) -> None:
        """The run's summary: shown on the page, and the view's own counters added to it."""
        summary.extra.update(self.view.counters())
        self.summary_dict = summary.as_dict()
        if self.link != "lost":
            self.link = "ended" if summary.extra.get("stopped") == "ended" else "stopped"
        self.view.notify()

    # ------------------------------------------------------------------ for a browser
    def status(self) -> dict[str, Any]:
        """Link state and counters, latency percentiles over the last LATENCY_WINDOWS windows (ms)."""
        stats = self.pipeline.decoder.stats if self.pipeline is not None else None
        lat = sorted(self.latencies)  # nearest rank: a few µs for LATENCY_WINDOWS values
        return {"link": self.link, "gaps": self.gaps, "reconnects": self.reconnects,
                "frames": stats.frames if stats else 0, "lost": stats.lost if stats else 0,
                "corrupt": stats.corrupt if stats else 0,
                "latency_p50_ms": round(lat[(len(lat) - 1) // 2], 3) if lat else None,
                "latency_p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3) if lat else None,
                "summary": self.summary_dict}

    def changes(self, cursor: PanelCursor, first: bool) -> dict[str, Any] | None:
        """What is new for a browser since ``cursor`` (advanced), or None; ``first``: everything kept."""
        new_plot = self.plot_total - cursor.plot
        new_events = self.events_total - cursor.events
        if not first and not new_plot and not new_events and self.state_version == cursor.state:
            return None
        out: dict[str, Any] = {"name": self.name, "status": self.status()}
        if first:
            out["meta"] = self.meta
        elif self.meta is not cursor.meta:
            out["meta"] = self.meta
        if new_plot:
            kept = min(new_plot, len(self.plot))
            if not first:
                cursor.dropped_samples += new_plot - kept
            rows = list(self.plot)[len(self.plot) - kept:]
            out["plot"] = {"t": [r[0] for r in rows], "x": [r[1] for r in rows]}
        if new_events:
            kept = min(new_events, len(self.events))
            if not first:
                cursor.dropped_events += new_events - kept
            out["events"] = list(self.events)[len(self.events) - kept:]
        if self.state is not None and self.state_version != cursor.state:
            state = dict(self.state)
            if state["probabilities"] is not None:
                state["probabilities"] = _rounded(state["probabilities"])
            out["state"] = state
        cursor.plot, cursor.events, cursor.state, cursor.meta = (self.plot_total, self.events_total,
                                                                 self.state_version, self.meta)
        return out


class PanelCursor:
    """How far one browser has seen one device, and what it missed."""

    __slots__ = ("plot", "events", "state", "meta", "dropped_samples", "dropped_events")

    def __init__(self) -> None:
        self.plot = self.events = self.state = 0
        self.meta = None
        self.dropped_samples = self.dropped_events = 0


class ViewClient:
    """One browser: a wake flag (a queue of depth one, latest wins) and its cursors."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.cursors: dict[str, PanelCursor] = {}
        self.sent = 0  # messages written
        self.coalesced = 0  # updates merged into a later message because one was still pending

    def notify(self) -> None:
        if self.wake.is_set():
            self.coalesced += 1
        else:
            self.wake.set()

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "coalesced": self.coalesced,
                "dropped_samples": sum(c.dropped_samples for c in self.cursors.values()),
                "dropped_events": sum(c.dropped_events for c in self.cursors.values())}


class WebView:
    """The page and its server for any number of devices, one :class:`DevicePanel` each."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.panels: dict[str, DevicePanel] = {}
        self.clients: set[ViewClient] = set()
        self.served: list[ViewClient] = []  # every browser that connected (counters stay readable)
        self.url: str | None = None
        self._runner = None
        self._closing = False

    def panel(self, name: str, port: str | None = None) -> DevicePanel:
        """The panel of device ``name`` (made on first use; the page orders panels as made)."""
        if name not in self.panels:
            self.panels[name] = DevicePanel(self, name, port)
        return self.panels[name]

    def attach(self, name: str, pipeline, sink, port: str | None = None):
        """Show device ``name``: its panel observes ``pipeline`` and gets what ``sink`` gets; returns the
        sink to run the device with (``sink`` first, then the panel)."""
        from c3t_edge.runtime.sinks import FanOut

        panel = self.panel(name, port)
        panel.attach(pipeline)
        return FanOut(sink, panel)

    def notify(self) -> None:
        for client in self.clients:
            client.notify()

    def counters(self) -> dict[str, int]:
        """Browsers served so far, updates merged because a browser was still busy, plot samples a
        browser missed (summed over browsers)."""
        per = [c.counters() for c in self.served]
        return {"web_browsers": len(per), "web_updates_merged": sum(c["coalesced"] for c in per),
                "web_plot_samples_dropped": sum(c["dropped_samples"] for c in per)}

    # ------------------------------------------------------------------ server
    async def start(self) -> str:
        """Listen on host:port; returns the page's URL (with the port actually bound)."""
        require_aiohttp()
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)
        app.router.add_static("/static/", STATIC_DIR)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise C3TEdgeError(f"--web {self.host}:{self.port}: cannot listen ({why})") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        return self.url

    async def stop(self) -> None:
        """Send every browser what is left and an end message, then close."""
        self._closing = True
        self.notify()
        if self._runner is not None:
            await asyncio.sleep(0)  # let the writers send their last message
            await self._runner.cleanup()
            self._runner = None

    async def serve(self, run, *, announce=sys.stderr):
        """Serve the page while awaiting the coroutine ``run``; its result."""
        try:
            url = await self.start()
        except BaseException:
            run.close()
            raise
        if announce is not None:
            where = ("this machine only; --web 0.0.0.0:PORT serves the LAN" if _loopback(self.host)
                     else "no authentication: anyone who reaches this address sees the page")
            print(f"web view: {url} ({where})", file=announce, flush=True)
        try:
            return await run
        finally:
            await self.stop()

    async def _index(self, request):
        from aiohttp import web

        return web.FileResponse(STATIC_DIR / "index.html", headers=_HEADERS)

    async def _events(self, request):
        """Server-sent events: a snapshot, then one message per wake, then ``end``."""
        from aiohttp import web

        response = web.StreamResponse(headers={**_HEADERS, "Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        response.force_close()
        await response.prepare(request)
        _limit_send_buffer(request.transport)
        client = ViewClient()
        self.clients.add(client)
        self.served.append(client)
        try:
            await self._write(response, client, "snapshot", first=True)
            while not self._closing:
                try:
                    await asyncio.wait_for(client.wake.wait(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                client.wake.clear()
                await self._write(response, client, "update")
            await self._write(response, client, "end")
        except ConnectionError:
            pass  # the browser went away
        finally:
            self.clients.discard(client)
        return response

    async def _write(self, response, client: ViewClient, kind: str, first: bool = False) -> None:
        message = self.message(client, kind, first)
        if message is not None:
            await response.write(message)

    def message(self, client: ViewClient, kind: str, first: bool = False) -> bytes | None:
        """The server-sent event with what is new for ``client`` (its cursors advanced), or None."""
        devices = []
        for name, panel in self.panels.items():
            cursor = client.cursors.get(name)
            if cursor is None:
                cursor = client.cursors[name] = PanelCursor()
            change = panel.changes(cursor, first or cursor.meta is None)
            if change is None and kind == "end":  # the last word: every device's final status
                change = {"name": name, "status": panel.status()}
            if change is not None:
                devices.append(change)
        if not devices and kind == "update":
            return None
        client.sent += 1
        message = {"devices": devices, "sent_at": time.time(), "view": client.counters()}
        return f"event: {kind}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n".encode()


def _limit_send_buffer(transport) -> None:
    """Keep at most about SEND_BUFFER_BYTES in flight to one browser (the kernel's default grows to
    megabytes of stale updates for a browser that stopped reading)."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError:
            pass
    transport.set_write_buffer_limits(high=SEND_BUFFER_BYTES)


_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def add_web_flag(parser) -> None:
    """``--web [HOST:]PORT`` for ``stream`` and ``replay``."""
    parser.add_argument("--web", metavar="[HOST:]PORT",
                        help="serve a live view of signals, class probabilities, events and link state at "
                             "http://HOST:PORT/ (default host 127.0.0.1: this machine only; 0.0.0.0 for the "
                             "LAN, no authentication); needs the 'gateway' extra")


def web_view_from_args(args) -> WebView | None:
    """The :class:`WebView` for ``--web`` (None without it); checks the address and aiohttp first."""
    if getattr(args, "web", None) is None:
        return None
    host, port = parse_address(args.web)
    require_aiohttp()
    return WebView(host, port)
