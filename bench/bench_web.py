"""The live web view's figures, all in one run (CPU only; about 2.5 min with the defaults, 4 min with
--mqtt; needs Debian's ``chromium``, the gateway extra and, for --mqtt, Debian's ``mosquitto``):

`c3t-edge stream --json --windows` as a subprocess on a pty, fed at the real 50 Hz pace (frames of the
shipped demo session, 10 samples each, after a 4 s burst, as bench_runtime.py does), in each of

1. alone;
2. with ``--web 127.0.0.1:0`` and the page open in headless Chromium;
3. (``--mqtt``) the same, and ``--publish`` to a Mosquitto broker on a loopback port;

``--rounds`` times, interleaved (the order rotated each round, so that a change in the machine's load
falls on every configuration). Reported: the added latency of every window (frame arrival -> window
decision, the ``latency_ms`` of ``--windows``), pooled over the rounds, p50/p99/max per configuration
and the ratio of p99 with the page open to p99 alone; and the page-update delay measured *in the
browser*: for every window decided while the page was open, the page's receipt time minus the
decision's host time carried in the message (same machine, same clock), p50/p99/max.

    .venv/bin/python bench/bench_web.py [--seconds 30] [--rounds 2] [--mqtt] [--pin-core N] [--json OUT]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
TARGETS = {"web_p99_ms": 2.0, "page_delay_ms": 100.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp: str) -> tuple[subprocess.Popen, int]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = Path(tmp) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


async def run_stream(seconds: float, *, web: bool, publish: str | None, model: str,
                     prefix: Sequence[str] = ()) -> dict:
    """One stream run on a pty (under the command ``prefix``); its summary, and the page's delays when
    ``web``."""
    from _chromium import Chromium
    from bench_runtime import device_frames, play, stream_on_pty

    info, frames = device_frames(seconds)
    options = ["--json", "--windows", "--model", model]
    options += ["--web", "127.0.0.1:0"] if web else []
    options += ["--publish", publish] if publish else []
    page: dict = {}
    with stream_on_pty(options, prefix) as (proc, master, _launched):
        if web:
            line = ""
            while not line.startswith("web view: "):
                line = await asyncio.to_thread(proc.stderr.readline)
                if not line:
                    raise SystemExit(f"stream ended without a web view: {proc.stderr.read()}")
            url = line.split()[2]
            async with Chromium() as browser:
                await browser.navigate(url)
                await browser.wait_for("window.c3t && c3t.server === 'connected'")
                await asyncio.to_thread(play, proc, master, info, frames, start_timeout_s=30)
                page = await browser.evaluate("({delays: c3t.delays, messages: c3t.messages, view: c3t.view})")
        else:
            await asyncio.to_thread(play, proc, master, info, frames, start_timeout_s=30)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    lines = [json.loads(line) for line in out.splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary", err
    return {"summary": summary, "page": page, "latencies": [e["latency_ms"] for e in lines if e["type"] == "window"]}


def percentiles(values: list[float]) -> dict:
    import numpy as np

    v = np.asarray(values, dtype=float)
    if not v.size:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": int(v.size), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
            "max": float(v.max())}


async def loop_cost(model: str, browsers: int = 1) -> dict:
    """The view's own work on the event loop, timed in process: the demo session chunk by chunk through
    a pipeline with a :class:`WebView` attached and ``browsers`` reading clients, the loop turning after
    every chunk (as at the real pace); the time inside the observer calls (per chunk) and making each
    browser's messages (per message), in µs of this thread's CPU time. A chunk that arrives while a
    message is made waits for it at most: this bounds what the view adds to a window's latency."""
    import aiohttp
    import numpy as np
    from bench_runtime import demo_frames

    from c3t_edge.gateway.web import DevicePanel, WebView
    from c3t_edge.runtime import ListSink, StreamPipeline, load_model

    timings: dict[str, list[float]] = {"observe": [], "write": []}

    def timed(fn, key):
        def run(*a, **k):  # CPU time of this thread: a preemption by another process is not the view's cost
            t = time.thread_time()
            result = fn(*a, **k)
            timings[key].append((time.thread_time() - t) * 1e6)
            return result
        return run

    view = WebView("127.0.0.1", 0)
    pipeline = StreamPipeline(load_model(model))
    sink = view.attach("bench", pipeline, ListSink())
    panel: DevicePanel = view.panels["bench"]
    for name in ("samples", "window"):
        setattr(panel, name, timed(getattr(panel, name), "observe"))
    pipeline.observer = panel
    view.message = timed(view.message, "write")  # the work of one message (its sending is not waited for)
    url = await view.start()
    counts = []

    async def reader():
        async with aiohttp.ClientSession() as session, session.get(url + "events") as response:
            n = 0
            async for line in response.content:
                n += line.startswith(b"data: ")
            counts.append(n)

    tasks = [asyncio.create_task(reader()) for _ in range(browsers)]
    while len(view.clients) < browsers:
        await asyncio.sleep(0.01)
    frames = demo_frames()
    for data in frames:
        for event in pipeline.feed(data):
            sink(event)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await view.stop()
    await asyncio.gather(*tasks)
    observe, write = np.asarray(timings["observe"]), np.asarray(timings["write"])
    return {"chunks": len(frames), "windows": pipeline.summary().windows, "messages": int(sum(counts)),
            "observe_us_per_chunk": float(observe.sum() / len(frames)),
            "write_us_p50": float(np.percentile(write, 50)), "write_us_p99": float(np.percentile(write, 99)),
            "write_us_max": float(write.max()), "view_us_per_window": float((observe.sum() + write.sum())
                                                                              / pipeline.summary().windows)}


def run_rounds(args) -> dict[str, dict]:
    """Every configuration once per round, the order rotated each round (so that a change in the
    machine's load falls on all of them); per configuration the window latencies of all rounds, the
    page's delays and view counters."""
    configs = ["alone", "web"] + (["web+mqtt"] if args.mqtt else [])
    pooled = {name: {"latencies": [], "delays": [], "windows": 0, "views": []} for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(tmp) if args.mqtt else (None, None)
        try:
            for r in range(args.rounds):
                for name in configs[r % len(configs):] + configs[:r % len(configs)]:
                    publish = f"mqtt://127.0.0.1:{port}/bench" if name == "web+mqtt" else None
                    run = asyncio.run(run_stream(args.seconds, web=name != "alone", publish=publish, model=args.model,
                                                 prefix=pinned_prefix(args.pin_core)))
                    pooled[name]["latencies"] += run["latencies"]
                    pooled[name]["delays"] += run["page"].get("delays", [])
                    pooled[name]["windows"] += run["summary"]["windows"]
                    pooled[name]["views"].append(run["page"].get("view"))
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait()
    return pooled


def pinned_prefix(core: int | None) -> list[str]:
    """``taskset -c CORE`` for the stream under test ([] without ``--pin-core``)."""
    return [] if core is None else ["taskset", "-c", str(core)]


def pin_others_away(core: int) -> None:
    """This process - and what it starts after this: the browser, the broker - leave ``core`` to the stream."""
    others = set(os.sched_getaffinity(0)) - {core}
    if core not in os.sched_getaffinity(0) or not others:
        raise SystemExit(f"--pin-core {core}: needs that core and at least one other "
                         f"(have {sorted(os.sched_getaffinity(0))})")
    os.sched_setaffinity(0, others)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--seconds", type=float, default=30.0, help="real-time stream length per run (s)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration, interleaved")
    parser.add_argument("--mqtt", action="store_true", help="also runs with --publish to a loopback Mosquitto")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to OUT")
    parser.add_argument("--pin-core", type=int, metavar="N",
                        help="run the stream under test alone on CPU N, and the bench's device, browser and broker "
                             "on the others (what the view costs the pipeline, without their own CPU in its way)")
    args = parser.parse_args()
    if args.pin_core is not None:
        pin_others_away(args.pin_core)
    load_before = os.getloadavg()[0]
    pooled = run_rounds(args)
    pinned = "" if args.pin_core is None else f"; stream pinned alone to CPU {args.pin_core}"
    print(f"web view bench ({args.model} bundle; {args.rounds} x {args.seconds:g} s at 50 Hz per configuration, "
          f"interleaved{pinned}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  {'run':<10s} {'windows':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}   added latency "
          "(frame arrival -> decision)")
    figures = {}
    for name, run in pooled.items():
        lat = figures.setdefault(name, {})["latency_ms"] = percentiles(run["latencies"])
        print(f"  {name:<10s} {lat['n']:>7d} {lat['p50']:>8.3f} {lat['p99']:>8.3f} {lat['max']:>8.3f}")
    alone = figures["alone"]["latency_ms"]["p99"]
    ok_all = True
    for name, run in pooled.items():
        if name == "alone":
            continue
        p99 = figures[name]["latency_ms"]["p99"]
        delay = figures[name]["page_delay_ms"] = percentiles(run["delays"])
        figures[name]["views"] = run["views"]
        ok_p99 = p99 <= TARGETS["web_p99_ms"]
        ok_delay = delay["p99"] is not None and delay["max"] <= TARGETS["page_delay_ms"]
        ok_all &= ok_p99 and ok_delay
        print(f"  {name}: p99 {p99:.3f} ms = {p99 / alone:.2f}x alone (target <= {TARGETS['web_p99_ms']} ms: "
              f"{'ok' if ok_p99 else 'MISSED'})")
        print(f"  {name}: page update delay in the browser (decision -> page), {delay['n']} windows: "
              f"p50 {delay['p50']:.1f} ms, p99 {delay['p99']:.1f} ms, max {delay['max']:.1f} ms "
              f"(target every update <= {TARGETS['page_delay_ms']:g} ms: {'ok' if ok_delay else 'MISSED'})")
        print(f"  {name}: view counters per run {run['views']}")
    cost = figures["loop_cost"] = asyncio.run(loop_cost(args.model))
    print(f"  the view's own work on the event loop (in process, demo session, one browser; CPU time): "
          f"{cost['observe_us_per_chunk']:.1f} us per chunk in the observer and sink; one message "
          f"p50 {cost['write_us_p50']:.0f} us, p99 {cost['write_us_p99']:.0f} us, max {cost['write_us_max']:.0f} us; "
          f"{cost['view_us_per_window']:.0f} us per window in all ({cost['messages']} messages, "
          f"{cost['windows']} windows)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
