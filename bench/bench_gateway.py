"""Gateway figures, all in one run: how many 50 Hz devices one process on one core sustains, and what
MQTT adds to one device's latency.

What is measured, and how (nothing is simulated inside the measured process):

- The devices are real ptys: a *writer* process (pinned to the other cores) opens one raw pty per
  device and writes the frames of the shipped demo session (real trials with rest between, 10
  samples per frame) at the real pace, 5 frames/s per device, devices spread evenly over each
  200 ms; it stamps each frame's write time (``time.perf_counter``, CLOCK_MONOTONIC, the same clock
  in every process). A frame that does not fit the pty (the gateway fell behind) is dropped and
  counted, and then shows as lost samples.
- The *gateway* process (pinned to one core, threads included) runs exactly what ``c3t-edge stream
  --port ... --port ... --json`` runs (:func:`~c3t_edge.gateway.devices.build_runs`,
  :func:`~c3t_edge.runtime.runner.run_devices`, the serial transport and its reader thread per
  device, JSON lines written to /dev/null), with the activity gate off so that every window goes
  through the model (the worst case; a still wrist costs less).
- *Added latency* of a window: from the write of the frame that holds its last sample to its
  decision reaching the sinks (all of them: JSON, MQTT when on). CPU %: the gateway's user+system
  time over the wall time while the devices stream (100 % = the whole core). Memory per device:
  the slope of the gateway's resident memory over the device count.
- On a shared machine the gateway and the writer run at ``--nice`` (default -20 when root): their
  core is then theirs whenever they need it, as a dedicated core would be; the load average of the
  machine is printed with the figures.
- A device count *holds* when p99 added latency <= 10 ms and no sample is lost.
- MQTT: one device, and ten, with ``--publish`` to a local Mosquitto (started here, loopback) against
  the same devices without it; and the delay from an event's decision to its delivery to a subscriber.
- Each figure is the median of ``--repeats`` runs, with every run's p99 printed: on a shared machine
  a stall of the whole host (100-250 ms, seen at any device count, one device included) lands in some
  runs and not others.

    .venv/bin/python bench/bench_gateway.py [--counts 1,25,50,100,150,200] [--seconds 20]
        [--repeats 3] [--mqtt-seconds 30] [--mqtt-counts 1,10] [--nice -20] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/_pty.py: the raw pty pairs the tests use as serial devices
DEMO = ROOT / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
RATE_HZ, PER_FRAME = 50.0, 10
FRAME_S = PER_FRAME / RATE_HZ
TARGET_P99_MS, TARGET_DEVICES, TARGET_MQTT_P99_MS = 10.0, 100, 2.0
WARM_UP_S = 2.0
NICE = 0  # set by main  # windows whose last frame was written in the first seconds are not counted


def demo_frames() -> tuple[bytes, list[bytes], float]:
    """The demo session's DEVICE_INFO frame, its IMU frames, and its first sample's device time (s)."""
    from c3t_edge.recording import RecordingReader

    with RecordingReader(DEMO) as reader:
        chunks = [data for _, data in reader.chunks()]
    t0 = json.loads(DEMO.with_suffix(".json").read_text())["t0_s"]
    return chunks[0], chunks[1:], float(t0)


# ------------------------------------------------------------------------------------------ writer
def writer(n: int, seconds: float, folder: str, cores: set[int], nice: int) -> None:
    """The devices: ``n`` raw ptys at ``folder``/ttyNNN; waits for "go" on stdin, then writes."""
    from _pty import raw_pty_at

    os.sched_setaffinity(0, cores)
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    info, frames, _ = demo_frames()
    n_frames = min(len(frames), int(seconds / FRAME_S))
    masters = []
    for i in range(n):
        master, _slave = raw_pty_at(f"{folder}/tty{i:03d}")
        os.set_blocking(master, False)
        masters.append(master)
    print("ready", flush=True)
    sys.stdin.readline()
    times = np.full((n, n_frames), np.nan)
    dropped = 0
    start = time.perf_counter()
    for master in masters:
        os.write(master, info)
    for k in range(n_frames):
        for i, master in enumerate(masters):
            due = start + FRAME_S * (k + 1) + FRAME_S * i / n
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                os.write(master, frames[k])
                times[i, k] = time.perf_counter()
            except BlockingIOError:  # the gateway does not read this device fast enough
                dropped += 1
    np.save(f"{folder}/times.npy", times)
    print(json.dumps({"frames": n_frames, "dropped": dropped}), flush=True)
    sys.stdin.readline()  # keep the ptys until the gateway is done


# ----------------------------------------------------------------------------------------- gateway
def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024.0


class WindowTimes:
    """Sink: when each window's decision reached the sinks (``time.perf_counter``)."""

    def __init__(self, index: int, out: list) -> None:
        self.index, self.out = index, out

    def __call__(self, event) -> None:
        if type(event).__name__ == "WindowResult":
            self.out.append((self.index, event.t, time.perf_counter(), event.latency_ms))

    def summary(self, summary) -> None:
        pass


class NoWindows:
    """What ``stream --json`` prints without ``--windows``: every event but the per-window results."""

    def __init__(self, sink) -> None:
        self.sink = sink

    def __call__(self, event) -> None:
        if type(event).__name__ != "WindowResult":
            self.sink(event)

    def summary(self, summary) -> None:
        self.sink.summary(summary)


def gateway(n: int, seconds: float, core: int, mqtt_url: str | None, nice: int) -> dict:
    """Run ``n`` devices in this process (pinned to ``core``) against a writer; the figures."""
    import c3t_edge.runtime.runner as _runner
    from c3t_edge.cli import build_parser
    from c3t_edge.gateway.devices import DeviceSpec, build_runs
    from c3t_edge.runtime.options import publisher_from_args
    from c3t_edge.runtime.sinks import FanOut, JsonSink

    os.sched_setaffinity(0, {core})  # before any thread starts: they all inherit both
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    folder = tempfile.mkdtemp(prefix="c3t-bench-gw-")
    others = set(range(os.cpu_count() or 1)) - {core} or {core}
    feed = subprocess.Popen([sys.executable, __file__, "--writer", str(n), "--seconds", str(seconds), "--dir", folder,
                             "--cores", ",".join(map(str, sorted(others))), "--nice", str(nice)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert feed.stdout.readline().strip() == "ready"
    argv = ["stream", "--json", "--windows", "--no-gate"] + (["--publish", mqtt_url] if mqtt_url else [])
    args = build_parser(["stream"]).parse_args(argv)
    devnull = sys.stderr if os.environ.get("C3T_BENCH_EVENTS") else open(os.devnull, "w")  # noqa: SIM115
    publisher = publisher_from_args(args, "stream")
    times: list[tuple[int, float, float, float]] = []
    names = [f"dev{i:03d}" for i in range(n)]
    index = {name: i for i, name in enumerate(names)}

    def make_sink(spec, pipeline):
        sinks = [NoWindows(JsonSink(devnull, spec.name))]
        if publisher is not None:
            sinks.append(publisher.sink(spec.name))
        return FanOut(*sinks, WindowTimes(index[spec.name], times))

    import gc

    gc.collect()
    rss_before = rss_mb()
    runs = build_runs([DeviceSpec(name, f"{folder}/tty{i:03d}") for i, name in enumerate(names)], args, make_sink)

    async def main() -> tuple[dict, float, float]:
        stop = asyncio.Event()
        task = asyncio.ensure_future(_runner.run_devices(runs, handle_signals=False, stop=stop))
        # every port open (its reader thread running) and greeted before the devices start
        deadline = time.monotonic() + 60
        while (opened := sum(t.name.startswith("c3t-serial") for t in threading.enumerate())) < n:
            if time.monotonic() > deadline or task.done():
                raise SystemExit(f"only {opened} of {n} ports opened")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        cpu0, wall0 = os.times(), time.perf_counter()
        feed.stdin.write("go\n")
        feed.stdin.flush()
        await asyncio.sleep(seconds + 0.5)
        cpu1, wall1 = os.times(), time.perf_counter()
        await asyncio.sleep(0.5)
        stop.set()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return await task, cpu / (wall1 - wall0), rss_mb()

    results, cpu_share, rss_after = asyncio.run(main())
    fed = json.loads(feed.stdout.readline())
    feed.stdin.write("done\n")
    feed.stdin.flush()
    feed.wait(30)
    if publisher is not None:
        publisher.close()
    written = np.load(f"{folder}/times.npy")
    shutil.rmtree(folder, ignore_errors=True)
    _, _, t0 = demo_frames()
    lat, own, when = [], [], []
    for i, t_last, decided, pipeline_ms in times:
        k = int(round((t_last - t0) * RATE_HZ)) // PER_FRAME
        if k < written.shape[1] and np.isfinite(written[i, k]) and written[i, k] - written[0, 0] >= WARM_UP_S:
            lat.append((decided - written[i, k]) * 1e3)
            own.append(pipeline_ms)
            when.append(written[i, k] - written[0, 0])
    lat, own = np.asarray(lat), np.asarray(own)
    if os.environ.get("C3T_BENCH_TRACE"):
        np.save(os.environ["C3T_BENCH_TRACE"], np.array([when, lat, own]))
    failed = [name for name, r in results.items() if isinstance(r, Exception)]
    samples = sum(r.samples for r in results.values() if not isinstance(r, Exception))
    lost = sum(r.lost for r in results.values() if not isinstance(r, Exception))
    return {"devices": n, "cpu_percent": round(100 * cpu_share, 1), "windows": int(lat.size),
            "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
            "max_ms": round(float(lat.max()), 3) if lat.size else None,
            # from the reader thread's receive stamp: what the pipeline itself reports
            "p99_from_receipt_ms": round(float(np.percentile(own, 99)), 3) if own.size else None,
            "samples_sent": int(np.isfinite(written).sum() * PER_FRAME), "samples_received": int(samples),
            "frames_not_written": fed["dropped"], "lost": int(lost), "failed_devices": failed,
            "rss_mb_before_devices": round(rss_before, 1), "rss_mb": round(rss_after, 1)}


# ------------------------------------------------------------------------------------------ parent
def run_child(n: int, seconds: float, core: int, mqtt_url: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--seconds", str(seconds), "--core", str(core),
           "--nice", str(NICE)]
    if mqtt_url:
        cmd += ["--mqtt-url", mqtt_url]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds * 3 + 120)
    if proc.returncode != 0:
        raise SystemExit(f"gateway child ({n} devices) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def holds(r: dict) -> bool:
    return (r["p99_ms"] is not None and r["p99_ms"] <= TARGET_P99_MS and r["lost"] == 0
            and r["frames_not_written"] == 0 and r["samples_received"] >= r["samples_sent"] and not r["failed_devices"])


def median_run(n: int, seconds: float, core: int, repeats: int, mqtt_url: str | None = None) -> dict:
    """``repeats`` runs of ``n`` devices: the one with the median p99, with every run's p99 and
    whether every run lost nothing (a stall of the shared machine hits one run, not the median)."""
    runs = sorted((run_child(n, seconds, core, mqtt_url) for _ in range(repeats)), key=lambda r: r["p99_ms"])
    r = dict(runs[len(runs) // 2])
    r["p99_runs_ms"] = [x["p99_ms"] for x in runs]
    r["lost"] = max(x["lost"] for x in runs)
    r["frames_not_written"] = max(x["frames_not_written"] for x in runs)
    r["samples_received"] = min(x["samples_received"] - x["samples_sent"] for x in runs) + r["samples_sent"]
    return r


def curve(counts: list[int], seconds: float, core: int, repeats: int) -> list[dict]:
    print(f"devices at {RATE_HZ:g} Hz on one core (core {core}; gate off: every window through the model), "
          f"{seconds:g} s per run, the median of {repeats} runs (p99 of each run in brackets):")
    print(f"{'devices':>8} {'CPU %':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'windows':>8} "
          f"{'lost':>6} {'RSS MB':>8}  holds  p99 of each run")
    rows = []
    for n in counts:
        r = median_run(n, seconds, core, repeats)
        rows.append(r)
        print(f"{n:>8} {r['cpu_percent']:>7.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
              f"{r['windows']:>8} {r['lost'] + r['frames_not_written'] * PER_FRAME:>6} {r['rss_mb']:>8.1f}  "
              f"{'yes' if holds(r) else 'NO ':<5}  {r['p99_runs_ms']}", flush=True)
        if not holds(r) and len(rows) > 1 and not holds(rows[-2]):
            break  # broken twice in a row: the curve ends here
    return rows


def memory_per_device(rows: list[dict]) -> float | None:
    pts = [(r["devices"], r["rss_mb"] - r["rss_mb_before_devices"]) for r in rows]
    if len(pts) < 2:
        return None
    x, y = np.array(pts, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


class Mosquitto:
    """A throw-away broker on a free loopback port."""

    def __init__(self, exe: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="c3t-bench-mqtt-")
        conf = Path(self.folder) / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        + ("user root\n" if os.geteuid() == 0 else ""))
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def mqtt_part(seconds: float, core: int, repeats: int, counts: list[int]) -> dict | None:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(exe, os.X_OK):
        print("MQTT: no mosquitto on this machine; part skipped")
        return None
    import paho.mqtt.client as mqtt

    broker = Mosquitto(exe)
    delivered: list[float] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    ready = threading.Event()
    sub.on_connect = lambda c, *_: c.subscribe("bench/+/events", qos=1)
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_message = lambda c, u, m: delivered.append(time.time() - json.loads(m.payload)["host_time"])
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    ready.wait(10)
    print(f"\nwith and without --publish to a local Mosquitto, {seconds:g} s per run, median of {repeats} runs "
          "(one device's p99 over one run is nearly its maximum: more devices give more windows):")
    figures = {}
    try:
        for n in counts:
            off = median_run(n, seconds, core, repeats)
            on = median_run(n, seconds, core, repeats, f"mqtt://127.0.0.1:{broker.port}/bench")
            figures[n] = {"without": off, "with": on}
            print(f"  {n:>3} device(s): p99 added latency {off['p99_ms']:.2f} ms without, {on['p99_ms']:.2f} ms with "
                  f"MQTT (ratio {on['p99_ms'] / off['p99_ms']:.2f}; target <= {TARGET_MQTT_P99_MS:g} ms: "
                  f"{'met' if on['p99_ms'] <= TARGET_MQTT_P99_MS else 'NOT met'}); p50 {off['p50_ms']:.2f} / "
                  f"{on['p50_ms']:.2f} ms; {on['windows']} windows per run; p99 of each run {off['p99_runs_ms']} / "
                  f"{on['p99_runs_ms']} ms", flush=True)
    finally:
        sub.loop_stop()
        broker.close()
    d = np.asarray(delivered) * 1e3
    if d.size:
        print(f"  decision -> subscriber: p50 {np.percentile(d, 50):.2f} ms, p99 {np.percentile(d, 99):.2f} ms "
              f"({d.size} events; wall clock, host_time rounded to 1 ms)")
    return {"runs": figures, "delivery_ms": d.round(3).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1,25,50,100,150,200",
                    help="device counts for the curve (it stops after two counts that do not hold; one process streams "
                         "at most 200 serial devices: pyserial's select() takes descriptors below 1024 only)")
    ap.add_argument("--seconds", type=float, default=20.0, help="streaming time per device count")
    ap.add_argument("--mqtt-seconds", type=float, default=30.0, help="streaming time of each MQTT run")
    ap.add_argument("--mqtt-counts", default="1,10", help="device counts run with and without MQTT ('none': skip)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per device count (the median is reported)")
    ap.add_argument("--core", type=int, default=None, help="the core the gateway runs on (default: the last)")
    ap.add_argument("--nice", type=int, default=-20 if os.geteuid() == 0 else 0,
                    help="scheduling priority of the gateway and the writer (default -20 as root, else 0)")
    ap.add_argument("--json", metavar="OUT")
    # internal: the gateway child and the writer
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mqtt-url", help=argparse.SUPPRESS)
    ap.add_argument("--writer", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--cores", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.writer is not None:
        return writer(a.writer, a.seconds, a.dir, {int(c) for c in a.cores.split(",")}, a.nice)
    core = a.core if a.core is not None else max(os.sched_getaffinity(0))
    if a.child is not None:
        print(json.dumps(gateway(a.child, a.seconds, core, a.mqtt_url, a.nice)))
        return None
    global NICE
    NICE = a.nice
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; gateway and writer "
          f"at nice {a.nice}")
    rows = curve([int(c) for c in a.counts.split(",")], a.seconds, core, a.repeats) if a.counts != "none" else []
    per_device = memory_per_device(rows)
    best = 0  # the largest count that holds with every smaller count holding too
    for r in rows:
        if not holds(r):
            break
        best = r["devices"]
    if rows:
        print(f"\nsustained: {best} devices (p99 <= {TARGET_P99_MS:g} ms, no lost sample; target >= {TARGET_DEVICES}: "
              f"{'met' if best >= TARGET_DEVICES else 'NOT met'}; {best / TARGET_DEVICES:.2f}x the target)")
    if per_device is not None:
        print(f"memory: {per_device:.2f} MB per device (slope of resident memory over the device count)")
    mqtt_figures = (mqtt_part(a.mqtt_seconds, core, a.repeats, [int(c) for c in a.mqtt_counts.split(",")])
                    if a.mqtt_counts != "none" else None)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"curve": rows, "sustained_devices": best, "mb_per_device": per_device,
                                            "mqtt": mqtt_figures}, indent=1))


if __name__ == "__main__":
    main()
