"""The live web view (``--web``): the real page in headless Chromium during a real replay, a stalled
browser that must not hold recognition back, the address forms, and the missing extra.

The screenshot of the page goes to ``$C3T_TEST_ARTIFACTS/web_view.png`` when that variable names a
folder, else to the test's tmp_path (its path is printed: ``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c3t_edge.errors import C3TEdgeError
from c3t_edge.gateway.web import WebView, parse_address
from c3t_edge.runtime import ListSink, StreamPipeline, load_model
from c3t_edge.runtime.runner import PortOptions, run_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _chromium import Chromium  # noqa: E402

#: The replay runs this many times faster than recorded (the 91 s demo in about 11 s).
SPEED = 8


def artifact_dir(tmp_path: Path) -> Path:
    folder = os.environ.get("C3T_TEST_ARTIFACTS")
    if not folder:
        return tmp_path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


def start_replay(*extra: str) -> tuple[subprocess.Popen, str]:
    """``c3t-edge replay DEMO --json --web 127.0.0.1:0``; the process and the page's URL."""
    proc = subprocess.Popen([sys.executable, "-m", "c3t_edge", "replay", str(DEMO), "--json",
                             "--web", "127.0.0.1:0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if not line.startswith("web view: http://"):
        proc.kill()
        raise AssertionError(f"no web view line: {line!r} {proc.stderr.read()}")
    return proc, line.split()[2]


async def _watch_replay(shot: Path) -> tuple[dict, list[dict], str]:
    proc, url = start_replay("--speed", str(SPEED))
    try:
        async with Chromium() as browser:
            await browser.navigate(url)
            await browser.wait_for("window.c3t && window.c3t.messages > 0")
            # mid-run: the signal on screen and at least one recognised action in the log
            await browser.wait_for("Object.values(c3t.events).some(l => l.some(e => e.type === 'action'))",
                                   timeout_s=60)
            await browser.screenshot(shot)
            await browser.wait_for("c3t.server === 'ended'", timeout_s=120)
            page = await browser.evaluate("""(() => {
                const name = Object.keys(c3t.panels)[0];
                const panel = c3t.panels[name];
                return {names: Object.keys(c3t.panels), events: c3t.events[name], received: panel.received,
                        plotted: panel.charts.map(c => c.chart.data[0].length),
                        finite: panel.charts.every(c => c.chart.data.slice(1).every(s => s.every(Number.isFinite))),
                        shownEvents: panel.log.childElementCount, decision: panel.label.textContent,
                        link: panel.link.textContent, delays: c3t.delays.length, delayValues: c3t.delays,
                        view: c3t.view};
            })()""")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    return page, printed, err


def test_page_shows_the_replay_events_and_the_signal(tmp_path):
    shot = artifact_dir(tmp_path) / "web_view.png"
    page, printed, err = asyncio.run(_watch_replay(shot))
    delays = sorted(page["delayValues"])
    (shot.parent / "web_view_delays.json").write_text(json.dumps(delays))
    print(f"web view screenshot: {shot}; page update delays (decision -> page, ms, {len(delays)} windows): "
          f"median {delays[len(delays) // 2]:.1f}, max {delays[-1]:.1f}")
    assert printed[-1]["type"] == "summary"
    json_events = printed[:-1]
    assert sum(e["type"] == "action" for e in json_events) >= 10
    # the page's event log is exactly what --json printed, in order (the page adds the host time)
    assert [{k: v for k, v in e.items() if k != "host_time"} for e in page["events"]] == json_events
    assert page["names"] == ["wrist_session"] and page["link"] == "ended"
    assert page["shownEvents"] == len(json_events)
    # the plot got the signal (25 per s of device time once the page was open) and shows the last seconds
    assert page["received"] >= 25 * 30, page
    assert len(page["plotted"]) == 2 and min(page["plotted"]) >= 25 * 5 and page["finite"], page
    assert page["delays"] >= 20  # window decisions received, each with its host time
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def _watch_two_devices(shot: Path) -> tuple[dict, list[dict]]:
    proc = subprocess.Popen([sys.executable, "-m", "c3t_edge", "stream", "--port", f"left=replay://{DEMO}",
                             "--port", f"right=replay://{DEMO}", "--json", "--web", "127.0.0.1:0", "--duration", "7"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stderr.readline().split()[2]
        async with Chromium() as browser:
            await browser.navigate(url)
            await browser.wait_for("c3t.server === 'ended'", timeout_s=60)
            await browser.screenshot(shot)
            page = await browser.evaluate("""(() => Object.fromEntries(Object.entries(c3t.panels).map(([name, p]) =>
                [name, {events: c3t.events[name], plotted: p.charts.map(c => c.chart.data[0].length),
                        shown: p.root.dataset.device, title: p.root.querySelector('h2').textContent}])))()""")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return page, [json.loads(line) for line in out.splitlines()]


def test_one_panel_per_device(tmp_path):
    shot = artifact_dir(tmp_path) / "web_view_two_devices.png"
    page, printed = asyncio.run(_watch_two_devices(shot))
    print(f"two-device web view screenshot: {shot}")
    assert list(page) == ["left", "right"]
    for name, panel in page.items():
        assert panel["shown"] == panel["title"] == name
        mine = [{k: v for k, v in e.items() if k != "device"} for e in printed
                if e.get("device") == name and e["type"] != "summary"]
        assert any(e["type"] == "action" for e in mine), printed
        assert [{k: v for k, v in e.items() if k != "host_time"} for e in panel["events"]] == mine
        assert min(panel["plotted"]) >= 25 * 5, panel["plotted"]


class StalledBrowser:
    """A browser that asks for the event stream and then never reads: the server's writes to it
    block once the socket buffers are full."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())

    def close(self) -> None:
        self.sock.close()


async def read_events(url: str, got: list[dict]) -> None:
    """A browser that reads every message (what it got goes to ``got``)."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url + "events") as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                got.append(json.loads(line[6:]))


def long_recording(path: Path, repeat: int) -> Path:
    """The demo session's samples ``repeat`` times in a row, device time running on, as a recording."""
    import numpy as np

    from c3t_edge.protocol import FrameDecoder, SampleBatch
    from c3t_edge.recording import RecordingReader, RecordingWriter
    from c3t_edge.runtime.sessions import Session, session_stream

    decoder = FrameDecoder()
    with RecordingReader(DEMO) as reader:
        x = np.concatenate([item.samples for _, data in reader.chunks() for item in decoder.feed(data)
                            if isinstance(item, SampleBatch)])
    session = Session(np.concatenate([x] * repeat), 50.0, 1.0, [], np.zeros(6))
    with RecordingWriter(path, port="long", start_wall_time_s=1.7e9, fsync_interval_s=None) as writer:
        for t, data in session_stream(session):
            writer.write_chunk(data, 1.7e9 + t)
    return path


#: The stalled-browser test replays three demo sessions (273 s) this many times faster than recorded.
STALL_SPEED = 50


async def _run_with_stalled_browser(model, recording: Path) -> tuple[ListSink, WebView, list[dict], dict]:
    view = WebView("127.0.0.1", 0)
    pipeline = StreamPipeline(model)
    events = ListSink()
    sink = view.attach("wrist", pipeline, events)
    url = await view.start()
    stalled = StalledBrowser(url)
    got: list[dict] = []
    reader = asyncio.create_task(read_events(url, got))
    while len(view.clients) < 2:
        await asyncio.sleep(0.01)
    start = time.perf_counter()
    try:
        # paced, so that the event loop turns between chunks and the reading browser keeps up
        await asyncio.wait_for(run_port("replay://" + str(recording), pipeline, sink,
                                        options=PortOptions(speed=STALL_SPEED), handle_signals=False), timeout=60)
        stalled_client = view.served[0]
        at_end = {"elapsed_s": time.perf_counter() - start, "stalled_waiting": stalled_client.wake.is_set(),
                  "stalled_plot_cursor": stalled_client.cursors["wrist"].plot,
                  "plot_total": view.panels["wrist"].plot_total}
    finally:
        await view.stop()
        stalled.close()
        await asyncio.wait_for(reader, timeout=10)
    return events, view, got, at_end


def test_a_stalled_browser_does_not_hold_recognition_back(tmp_path):
    model = load_model("default")
    recording = long_recording(tmp_path / "demo3.c3trec", 3)
    alone = ListSink()
    asyncio.run(run_port("replay://" + str(recording), StreamPipeline(model), alone, options=PortOptions(speed=None),
                         handle_signals=False))
    watched, view, got, at_end = asyncio.run(_run_with_stalled_browser(model, recording))
    stalled, reader = view.served
    # recognition is unchanged: the same events as without a view (the demo three times in a row)
    def decided(sink):
        return [(e.t, e.label, e.confidence, e.window) for e in sink.actions()]

    assert decided(watched) == decided(alone) and len(decided(alone)) >= 30
    # the stalled browser's writes blocked once the socket buffers were full: from then on its updates
    # were merged into one pending wake-up (counted), never queued, and it fell behind the signal
    assert at_end["stalled_waiting"] and stalled.coalesced > 1000, (stalled.counters(), at_end)
    assert at_end["stalled_plot_cursor"] < at_end["plot_total"] / 2, at_end
    assert 2 * stalled.sent < reader.sent, (stalled.counters(), reader.counters())
    # the reading browser, connected before the device described itself, learnt of it when it did
    assert any(d.get("meta", {}).get("device", {}).get("name") == "c3t-demo-wrist"
               for message in got for d in message["devices"]), got[:2]
    # the reading browser got everything up to the end: the last message carries the run's summary
    final = got[-1]["devices"][0]["status"]
    assert final["summary"]["events"] == len(watched.actions()) and final["link"] == "ended"
    print(f"3 x demo at {STALL_SPEED}x with a stalled browser: {at_end}; stalled {stalled.counters()}, "
          f"reader {reader.counters()}")


@pytest.mark.parametrize(("text", "expected"), [
    ("8080", ("127.0.0.1", 8080)), ("0.0.0.0:9000", ("0.0.0.0", 9000)), ("[::1]:0", ("::1", 0)),
    ("pi.local:8080", ("pi.local", 8080)),
])
def test_address_forms(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "web", ":8080", "1.2.3.4:", "70000", "host:-1"])
def test_bad_addresses_are_one_clear_error(text):
    with pytest.raises(C3TEdgeError, match=r"--web: expected \[HOST:\]PORT"):
        parse_address(text)


def test_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(DEMO), "--fast", "--web", str(port)],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 2 and lines[0].startswith("replay:"), result.stderr  # the start line, then the error
    assert f"--web 127.0.0.1:{port}: cannot listen" in lines[1], result.stderr


def test_without_the_gateway_extra_web_is_one_line(tmp_path):
    package = tmp_path / "aiohttp"
    package.mkdir()
    (package / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'aiohttp\'", name="aiohttp")\n')
    result = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(DEMO), "--web", "0"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'c3t-edge[gateway]'" in lines[0] and "--web" in lines[0]
