"""Streaming runtime figures, all in one run (CPU only, about 45 s):

1. `c3t-edge stream --json` as a subprocess on a pty, fed by a device that waits for the host's
   START, bursts its first 4 s of frames, then sends at the real 50 Hz pace (10 samples per frame,
   frames of the shipped demo session): added latency from a frame's arrival (the transport's receive
   stamp) to the window's decision / event, p50/p99/max, beyond the hop; start-up to first window;
   resident memory (peak); whether torch was imported.
2. Replay as fast as possible with the default bundle: device seconds per wall second, in process
   (pipeline only, a 10x longer session) and for the whole `c3t-edge replay --as-fast-as-possible`
   command (process start-up included).

    .venv/bin/python bench/bench_runtime.py [--model BUNDLE] [--seconds 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/_pty.py: the raw pty pairs the tests use as serial devices
DEMO = ROOT / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
TARGETS = {"latency_p99_ms": 5.0, "replay_x_realtime": 500.0, "rss_mb": 150.0, "first_window_s": 1.5}


def demo_frames() -> list[bytes]:
    from c3t_edge.recording import RecordingReader

    with RecordingReader(DEMO) as reader:
        return [data for _, data in reader.chunks()]


def device_frames(seconds: float) -> tuple[bytes, list[bytes]]:
    """The DEVICE_INFO frame and ``seconds`` of sample frames (5 a second, 10 samples each at 50 Hz):
    the demo session, repeated as needed, device time running on."""
    import numpy as np

    from c3t_edge.protocol import FrameDecoder, SampleBatch
    from c3t_edge.runtime.sessions import Session, session_stream

    dec = FrameDecoder()
    x = np.concatenate([i.samples for f in demo_frames() for i in dec.feed(f) if isinstance(i, SampleBatch)])
    reps = int(np.ceil(seconds / (len(x) / 50.0)))
    frames = [d for _, d in session_stream(Session(np.concatenate([x] * reps), 50.0, 1.0, [], np.zeros(6)))]
    return frames[0], frames[1:1 + int(seconds * 5)]


@contextmanager
def stream_on_pty(options: list[str], prefix: Sequence[str] = ()) -> Iterator[tuple[subprocess.Popen, int, float]]:
    """`c3t-edge stream --port LINK *options` as a subprocess (stdout and stderr piped, text), LINK a
    symlink (in a temporary folder) to the slave end of a raw pty pair: the serial device; ``prefix``
    runs it under another command (e.g. ``taskset -c 1``). Yields
    (the process, the pty's master fd, the launch time in ``time.perf_counter`` s); on exit the process
    is killed if still running and the pty closed."""
    from _pty import raw_pty_at

    with tempfile.TemporaryDirectory() as tmp:
        link = os.path.join(tmp, "ttyBENCH")
        master, slave = raw_pty_at(link)
        cmd = [*prefix, sys.executable, "-m", "c3t_edge", "stream", "--port", link, *options]
        launched = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield proc, master, launched
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
            os.close(slave)


def play(proc: subprocess.Popen, master: int, info: bytes, frames: list[bytes], *, burst: int = 20,
         start_timeout_s: float = 10.0) -> float:
    """Send like a device on the pty's ``master`` end (as c3t-imu-sim --wait-start does): wait for the
    host's START, then ``info`` and ``burst`` frames at once (20 frames: 4 s, enough for the first 3.6 s
    window), then one frame every 0.2 s (the real 50 Hz pace), then 0.3 s for the last to be handled.
    Without START within ``start_timeout_s`` seconds ``proc`` (the stream) is killed and its stderr
    reported. Returns when START came, in ``time.perf_counter`` s."""
    from c3t_edge.protocol import CommandCode, command_bytes

    start, got = command_bytes(CommandCode.START), b""
    while start not in got:
        r, _, _ = select.select([master], [], [], start_timeout_s)
        if not r:
            proc.kill()
            raise SystemExit("stream never sent START: " + proc.stderr.read())
        got += os.read(master, 4096)
    started = time.perf_counter()
    os.write(master, info + b"".join(frames[:burst]))
    t0 = time.perf_counter()
    for i, frame in enumerate(frames[burst:]):
        time.sleep(max(0.0, t0 + (i + 1) * 0.2 - time.perf_counter()))
        os.write(master, frame)
    time.sleep(0.3)
    return started


def stream_figures(model: str, seconds: float) -> dict:
    info, frames = device_frames(seconds)
    with stream_on_pty(["--json", "--model", model]) as (proc, master, launched):
        started = play(proc, master, info, frames)
        proc.send_signal(2)
        out, err = proc.communicate(timeout=15)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    summary = lines[-1]
    assert summary["type"] == "summary", err
    return {
        "windows": summary["windows"], "events": summary["events"],
        "latency_p50_ms": summary["latency_p50_ms"], "latency_p99_ms": summary["latency_p99_ms"],
        "latency_max_ms": summary["latency_max_ms"],
        "ready_after_s": summary["ready_after_s"], "first_window_s": summary["first_window_after_s"],
        "start_command_after_s": started - launched,
        "rss_mb": summary["max_rss_mb"], "torch_imported": summary["torch_imported"],
        "device_seconds": summary["device_seconds"],
    }


def replay_figures(model: str, repeat: int) -> dict:
    import numpy as np

    from c3t_edge.protocol import FrameDecoder, SampleBatch
    from c3t_edge.recording import RecordingWriter
    from c3t_edge.runtime import ListSink, StreamPipeline, load_model
    from c3t_edge.runtime.runner import PortOptions, run_port
    from c3t_edge.runtime.sessions import session_stream

    dec = FrameDecoder()
    x = np.concatenate([i.samples for f in demo_frames() for i in dec.feed(f) if isinstance(i, SampleBatch)])
    long = np.concatenate([x] * repeat)
    from c3t_edge.runtime.sessions import Session

    session = Session(long, 50.0, 1.0, [], np.zeros(6))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.c3trec"
        with RecordingWriter(path, port="bench", start_wall_time_s=1.7e9, fsync_interval_s=None) as w:
            for t, data in session_stream(session):
                w.write_chunk(data, 1.7e9 + t)
        m = load_model(model)
        runs = []
        for _ in range(3):
            pipeline = StreamPipeline(m)
            sink = ListSink()
            t = time.perf_counter()
            asyncio.run(run_port("replay://" + str(path), pipeline, sink, options=PortOptions(speed=None),
                                 handle_signals=False))
            runs.append(time.perf_counter() - t)
        device_s = len(long) / 50.0
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "c3t_edge", "replay", str(DEMO), "--as-fast-as-possible",
                               "--json", "--model", model], capture_output=True, text=True, timeout=120)
        cli_s = time.perf_counter() - t
        summary = json.loads(proc.stdout.splitlines()[-1])
    return {"device_seconds": device_s, "wall_s_best": min(runs), "replay_x_realtime": device_s / min(runs),
            "windows": sink.final.windows if sink.final else None,
            "cli_demo_device_seconds": summary["device_seconds"], "cli_wall_s": cli_s,
            "cli_x_realtime_incl_startup": summary["device_seconds"] / cli_s,
            "cli_first_window_s": summary["first_window_after_s"], "cli_rss_mb": summary["max_rss_mb"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--seconds", type=float, default=30.0, help="real-time stream length (s)")
    parser.add_argument("--repeat", type=int, default=10, help="demo sessions joined for the replay figure")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to OUT")
    args = parser.parse_args()
    stream = stream_figures(args.model, args.seconds)
    replay = replay_figures(args.model, args.repeat)
    from c3t_edge.runtime import load_model

    hop_ms = load_model(args.model).spec.hop_s * 1e3
    rows = [
        ("added latency p99 (frame arrival -> decision), ms", stream["latency_p99_ms"], "<=", 5.0),
        ("added latency p50, ms", stream["latency_p50_ms"], "", None),
        ("added latency max, ms", stream["latency_max_ms"], "", None),
        ("stream start-up to first window, s", stream["first_window_s"], "<", 1.5),
        ("stream ready (model loaded, port open), s", stream["ready_after_s"], "", None),
        ("stream peak RSS, MB", stream["rss_mb"], "<=", 150.0),
        ("torch imported by stream", stream["torch_imported"], "==", False),
        ("replay as fast as possible, x real time (pipeline)", replay["replay_x_realtime"], ">=", 500.0),
        ("replay command incl. start-up, x real time", replay["cli_x_realtime_incl_startup"], "", None),
    ]
    print(f"runtime bench ({args.model} bundle; hop {hop_ms:.0f} ms at 50 Hz; "
          f"{stream['windows']} real-time windows, {replay['device_seconds']:.0f} s replayed)")
    ok_all = True
    for name, value, op, target in rows:
        ok = {"<=": lambda v, t: v <= t, "<": lambda v, t: v < t, ">=": lambda v, t: v >= t,
              "==": lambda v, t: v == t, "": lambda v, t: True}[op](value, target)
        ok_all &= ok
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        goal = f"{op} {target}" if op else ""
        print(f"  {name:<55s} {shown:>10s}  {goal:<10s} {'ok' if ok else 'MISSED' if op else ''}")
    if args.json:
        Path(args.json).write_text(json.dumps({"stream": stream, "replay": replay}, indent=1) + "\n")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
