"""Transport and recording figures: pty latency and throughput, replug gap, recording write/read
rates, replay as fast as possible, BLE (bumble LocalLink) reconnect. CPU only, ~10 s.

    .venv/bin/python bench/bench_transports.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import tty
from pathlib import Path

from c3t_edge.recording import RecordingReader, RecordingWriter
from c3t_edge.transports import ReconnectPolicy, open_transport


def pty_pair(link: str) -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.symlink(os.ttyname(slave), link + ".new")
    os.replace(link + ".new", link)
    return master, slave


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def serial_figures(tmp: Path) -> None:
    link = str(tmp / "ttyBENCH")
    master, slave = pty_pair(link)
    async with open_transport(link, reconnect=ReconnectPolicy(initial_s=0.05, max_s=0.5)) as t:
        delays = []
        frame = bytes(range(24))  # about one 6-axis int16 frame with its header
        for _ in range(300):  # 50 Hz frames, latency from write() to the chunk's host time
            sent = time.time()
            os.write(master, frame)
            got = 0
            while got < len(frame):
                chunk = await t.read()
                got += len(chunk.data)
            delays.append((chunk.host_time_s - sent) * 1e3)
            await asyncio.sleep(0.002)
        print(f"serial pty latency write->chunk: p50 {pct(delays, .5):.3f} ms, p99 {pct(delays, .99):.3f} ms")

        payload = os.urandom(4 << 20)
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        writer = loop.run_in_executor(None, os.write, master, payload)
        got = chunks = 0
        while got < len(payload):
            chunk = await t.read()
            got += len(chunk.data)
            chunks += 1
        await writer
        dt = time.perf_counter() - start
        print(f"serial pty throughput: {len(payload) / dt / 1e6:.1f} MB/s in {chunks} chunks")

        os.unlink(link)
        os.close(master)
        os.close(slave)
        unplugged = time.perf_counter()
        await asyncio.sleep(0.5)
        master, slave = pty_pair(link)
        replugged = time.perf_counter()
        while t.stats.reconnects == 0:
            await asyncio.sleep(0.001)
        gap = t.stats.gaps[0]
        print(f"serial replug: unplugged {replugged - unplugged:.2f} s, gap reported {gap.duration_s:.2f} s "
              f"after {gap.attempts} attempts (back-off 0.05 s doubling, cap 0.5 s)")
    os.close(master)
    os.close(slave)


def recording_figures(tmp: Path) -> Path:
    path = tmp / "bench.c3trec"
    n = 50 * 3600  # one hour of 50 Hz frames, one chunk per frame
    frame = bytes(range(24))
    start = time.perf_counter()
    with RecordingWriter(path, port="bench", start_wall_time_s=0.0) as w:
        for i in range(n):
            w.write_chunk(frame, i / 50)
    dt = time.perf_counter() - start
    print(f"recording write: {n / dt:,.0f} records/s ({dt / n * 1e6:.1f} us per record, one write() each), "
          f"{os.path.getsize(path) / 1e6:.1f} MB for 1 h at 50 Hz")
    start = time.perf_counter()
    with RecordingReader(path) as r:
        count = sum(1 for _ in r.chunks())
    dt = time.perf_counter() - start
    print(f"recording read: {count / dt:,.0f} records/s")
    return path


async def replay_figures(path: Path) -> None:
    start = time.perf_counter()
    async with open_transport(f"replay://{path}", speed=None) as t:
        n = 0
        async for _chunk in t:
            n += 1
    dt = time.perf_counter() - start
    print(f"replay as fast as possible: {n / dt:,.0f} chunks/s = {3600 / dt:,.0f}x real time "
          f"for a 50 Hz stream (transport alone)")


async def ble_figures() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_transports_ble import NAME, make_pair  # the virtual NUS peripheral of the tests

    peripheral, _central, options = await make_pair()
    start = time.perf_counter()
    async with open_transport(f"ble://{NAME}", ble=options,
                              reconnect=ReconnectPolicy(initial_s=0.02, max_s=0.2)) as t:
        opened = time.perf_counter() - start
        await peripheral.subscribed.wait()
        n, size = 2000, 180
        start = time.perf_counter()
        for i in range(n):
            await peripheral.notify(bytes([i % 256]) * size)
        got = 0
        while got < n * size:
            got += len((await t.read()).data)
        dt = time.perf_counter() - start
        await peripheral.drop_link()
        while t.stats.reconnects == 0:
            await asyncio.sleep(0.001)
        print(f"BLE (bumble LocalLink): open {opened * 1e3:.0f} ms "
              f"(scan+connect+MTU {t.mtu}+discovery+subscribe), "
              f"{n / dt:,.0f} notifications/s of {size} B in-process, "
              f"reconnect+resubscribe gap {t.stats.gaps[0].duration_s * 1e3:.0f} ms")


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        await serial_figures(tmp)
        path = recording_figures(tmp)
        await replay_figures(path)
    try:
        await ble_figures()
    except ImportError:
        print("BLE: bumble not installed (pip install bumble)")
    print(f"host: {os.cpu_count()} CPUs visible, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
