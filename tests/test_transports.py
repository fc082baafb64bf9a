"""Serial (real ptys, pyserial URLs), replay, and the one way of opening a PORT."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from _pty import PtyDevice

from c3t_edge.errors import C3TEdgeError, TransportError
from c3t_edge.recording import RecordingWriter, event_record
from c3t_edge.transports import (
    BleTransport,
    ReconnectPolicy,
    ReplayTransport,
    SerialTransport,
    open_transport,
    port_kind,
)
from c3t_edge.transports.base import Gap, LinkEvent

FAST = ReconnectPolicy(initial_s=0.02, factor=2.0, max_s=0.1)
ALL_BYTES = bytes(range(256)) * 4  # includes NUL, CR, LF, XON/XOFF, ^C, ^D: raw mode must pass them


@pytest.fixture
def device(tmp_path):
    dev = PtyDevice(str(tmp_path / "ttyFAKE"))
    yield dev
    dev.close()


async def read_exactly(transport, n: int, timeout: float = 3.0):
    """Read chunks until n bytes arrived; returns (bytes, chunks)."""
    chunks = []

    async def collect():
        got = 0
        while got < n:
            chunk = await transport.read()
            assert chunk is not None
            chunks.append(chunk)
            got += len(chunk.data)

    await asyncio.wait_for(collect(), timeout)
    return b"".join(c.data for c in chunks), chunks


async def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- one way of opening a PORT -----------------------------------------------------------------

def test_port_kinds_and_open_transport_dispatch(tmp_path):
    assert port_kind("/dev/ttyUSB0") == port_kind("COM3") == port_kind("loop://") == "serial"
    assert port_kind("socket://localhost:7777") == "serial"
    assert port_kind("ble://C3T-IMU") == port_kind("BLE://AA:BB:CC:DD:EE:FF") == "ble"
    assert port_kind("replay://x.c3trec") == "replay"
    assert isinstance(open_transport("loop://"), SerialTransport)
    assert isinstance(open_transport("ble://IMU 42", baudrate=9600), BleTransport)
    assert isinstance(open_transport("replay://x.c3trec", speed=None), ReplayTransport)
    with pytest.raises(TransportError):
        open_transport("  ")
    with pytest.raises(TransportError):
        open_transport("replay://")
    with pytest.raises(TransportError, match="unknown BLE option"):
        open_transport("ble://x?colour=red")
    ble = open_transport("ble://IMU%2042?service=1234&notify=2a37&write=")
    assert ble.target == "IMU 42" and ble.options.notify_uuid == "2a37" and ble.options.write_uuid is None
    assert not ble.can_write


def test_open_errors_are_one_line_transport_errors(tmp_path):
    async def main():
        missing = f"replay://{tmp_path / 'none.c3trec'}"
        for port in (str(tmp_path / "no-such-tty"), "nosuchscheme://x", missing):
            with pytest.raises(C3TEdgeError) as err:
                async with open_transport(port):
                    pass
            assert "\n" not in str(err.value) and str(err.value)
    asyncio.run(main())


def test_runtime_path_does_not_import_torch():
    code = ("import sys, c3t_edge.transports, c3t_edge.recording, c3t_edge.commands.record, "
            "c3t_edge.transports.ble, c3t_edge.transports.serial, c3t_edge.transports.replay, "
            "c3t_edge.live, c3t_edge.clock, c3t_edge.calibration.procedure; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- serial ------------------------------------------------------------------------------------

def test_loop_url_round_trip():
    async def main():
        async with open_transport("loop://") as t:
            await t.write(ALL_BYTES)
            data, chunks = await read_exactly(t, len(ALL_BYTES))
            assert data == ALL_BYTES
            assert all(c.gap is None for c in chunks)
            assert t.stats.bytes_in == len(ALL_BYTES) and t.stats.bytes_out == len(ALL_BYTES)
        assert await t.read() is None  # closed: the stream has ended
    asyncio.run(main())


def test_pty_raw_bytes_both_ways_with_host_times(device):
    async def main():
        async with open_transport(device.link, baudrate=921600) as t:
            before = time.time()
            device.send(ALL_BYTES)
            data, chunks = await read_exactly(t, len(ALL_BYTES))
            assert data == ALL_BYTES
            times = [c.host_time_s for c in chunks]
            assert times == sorted(times)
            assert before - 0.5 < times[0] < time.time() + 0.5
            await t.write(b"\x00start\r\n\x13\x11")
            assert device.receive(10) == b"\x00start\r\n\x13\x11"
    asyncio.run(main())


def test_pty_read_latency_is_small(device):
    """A byte written to the device side reaches read() within a few ms (no polling delay)."""
    async def main():
        async with open_transport(device.link) as t:
            delays = []
            for i in range(20):
                sent = time.time()
                device.send(bytes([i]))
                chunk = await asyncio.wait_for(t.read(), 2)
                delays.append(chunk.host_time_s - sent)
                await asyncio.sleep(0.01)
            delays.sort()
            assert delays[len(delays) // 2] < 0.025, delays  # polling at the 0.2 s read timeout would not
    asyncio.run(main())


def test_unplugged_port_is_reopened_and_the_gap_reported(device):
    async def main():
        events: list[LinkEvent] = []
        async with open_transport(device.link, on_event=events.append, reconnect=FAST) as t:
            device.send(b"before-unplug")
            assert (await read_exactly(t, 13))[0] == b"before-unplug"

            unplugged_at = time.time()
            device.unplug()
            await wait_for(lambda: any(e.kind == "disconnected" for e in events))
            assert not t.stats.connected
            with pytest.raises(TransportError, match="disconnected"):
                await t.write(b"x")
            await asyncio.sleep(0.3)  # stays unplugged: reopen attempts fail meanwhile
            device.plug()
            await wait_for(lambda: any(e.kind == "reconnected" for e in events))
            assert t.stats.connected and t.stats.reconnects == 1

            device.send(b"after-replug")
            data, chunks = await read_exactly(t, 12)
            assert data == b"after-replug"
            gap = chunks[0].gap
            assert gap is not None and all(c.gap is None for c in chunks[1:])
            assert gap.duration_s >= 0.3 and gap.attempts >= 2
            assert abs(gap.start_s - unplugged_at) < 0.2
            assert t.stats.gaps == [gap] and events[-1].gap == gap
            assert [e.kind for e in events] == ["disconnected", "reconnected"]
            await t.write(b"ok")  # writing works again on the new port
            assert device.receive(2) == b"ok"
    asyncio.run(main())


def test_gives_up_when_told_to(device):
    async def main():
        events = []
        policy = ReconnectPolicy(initial_s=0.02, max_s=0.05, give_up_after_s=0.2)
        async with open_transport(device.link, on_event=events.append, reconnect=policy) as t:
            device.unplug()
            with pytest.raises(TransportError, match="not back after") as err:
                await asyncio.wait_for(t.read(), 3)
            assert [e.kind for e in events] == ["disconnected", "gave_up"]
            assert isinstance(err.value.__cause__, OSError)  # why the last reopen failed (no such device)
    asyncio.run(main())


def test_socket_url_reconnects_when_the_server_restarts():
    """socket://host:port: the peer closing is a disconnect; a new server on the same port is a replug."""
    async def main():
        served = []

        async def serve(payload):
            async def handler(reader, writer):
                server.close()  # one connection per server: reconnecting needs the next server
                await asyncio.sleep(0.2)  # pyserial's socket:// open() discards what is already queued
                writer.write(payload)
                await writer.drain()
                served.append(payload)
                await asyncio.sleep(0.05)
                writer.close()
            server = await asyncio.start_server(handler, "127.0.0.1", port)
            return server

        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        server = await serve(b"first")
        events = []
        async with open_transport(f"socket://127.0.0.1:{port}", on_event=events.append, reconnect=FAST) as t:
            assert (await read_exactly(t, 5))[0] == b"first"
            await wait_for(lambda: any(e.kind == "disconnected" for e in events))
            await asyncio.sleep(0.15)  # refused meanwhile: nobody listens
            server = await serve(b"second")
            data, chunks = await read_exactly(t, 6)
            assert data == b"second" and chunks[0].gap is not None
        server.close()
        await server.wait_closed()
    asyncio.run(main())


# -- replay ------------------------------------------------------------------------------------

START = 1_790_000_000.0


def make_recording(path, n=50, span_s=0.5, with_gap=True):
    """n chunks evenly over span_s seconds; a recorded outage in the middle."""
    with RecordingWriter(path, port="/dev/ttyUSB0", start_wall_time_s=START, fsync_interval_s=None) as w:
        for i in range(n):
            t = START + 0.1 + span_s * i / (n - 1)
            if with_gap and i == n // 2:
                gap = Gap(t - 0.05, t - 0.01, "unplugged", 3)
                w.write_event(event_record(LinkEvent("disconnected", "p", gap.start_s, "unplugged"), START),
                              gap.start_s)
                w.write_event(event_record(LinkEvent("reconnected", "p", gap.end_s, "unplugged", gap), START),
                              gap.end_s)
            w.write_chunk(bytes([i]) * (i % 5 + 1), t)


async def replay_all(path, speed):
    events = []
    async with open_transport(f"replay://{path}", speed=speed, on_event=events.append) as t:
        start = time.perf_counter()
        chunks = [c async for c in t]
        elapsed = time.perf_counter() - start
    return chunks, events, elapsed


def test_replay_is_deterministic_at_every_speed(tmp_path):
    path = tmp_path / "r.c3trec"
    make_recording(path)

    async def main():
        runs = [await replay_all(path, speed) for speed in (None, None, 20.0, 5.0)]
        reference = runs[0][0]
        assert len(reference) == 50
        for chunks, events, _ in runs:
            assert chunks == reference  # bytes, host times and gaps identical
            assert [e.kind for e in events] == ["disconnected", "reconnected"]
        gapped = [c for c in reference if c.gap is not None]
        assert len(gapped) == 1 and gapped[0].data == bytes([25]) * 1
        assert gapped[0].gap.attempts == 3 and gapped[0].gap.duration_s == pytest.approx(0.04, abs=1e-5)
        assert reference[0].host_time_s == pytest.approx(START + 0.1, abs=1e-6)
    asyncio.run(main())


def test_replay_paces_real_time_and_speed(tmp_path):
    path = tmp_path / "r.c3trec"
    make_recording(path, span_s=0.4)

    async def main():
        _, _, real = await replay_all(path, 1.0)
        _, _, fast = await replay_all(path, 4.0)
        _, _, afap = await replay_all(path, None)
        assert 0.38 <= real < 0.6, real   # pacing from the first record: 0.4 s of data
        assert 0.095 <= fast < 0.2, fast
        assert afap < 0.05, afap
    asyncio.run(main())


class VirtualClock:
    """Time that passes only when slept: a pacer driven by it is exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def test_replay_pacing_applies_the_speed_exactly(tmp_path):
    """The speed given to open_transport sets the pace: on a virtual clock the 0.4 s recording takes
    exactly 0.4 s at 1x, 0.1 s at 4x, 0.8 s at 0.5x, and no wait at all as fast as possible (no timing,
    so nothing a busy machine can disturb)."""
    path = tmp_path / "r.c3trec"
    make_recording(path, span_s=0.4)

    async def paced(speed):
        transport = open_transport(f"replay://{path}", speed=speed)
        clock = VirtualClock()
        transport.pacer.clock, transport.pacer.sleep = clock, clock.sleep
        async with transport as t:
            chunks = [c async for c in t]
        assert len(chunks) == 50 and transport.capabilities.paced == (speed is not None)
        return clock.now - 1000.0, clock.waits

    async def main():
        for speed, span in ((1.0, 0.4), (4.0, 0.1), (0.5, 0.8)):
            elapsed, waits = await paced(speed)
            assert elapsed == pytest.approx(span, abs=1e-9), speed
            assert len(waits) >= 45  # one wait per record that is not yet due
        elapsed, waits = await paced(None)
        assert elapsed == 0.0 and all(w == 0 for w in waits)
    asyncio.run(main())


def test_replay_of_a_truncated_recording_reports_the_tail(tmp_path):
    path = tmp_path / "r.c3trec"
    make_recording(path, with_gap=False)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)

    async def main():
        async with open_transport(f"replay://{path}", speed=None) as t:
            chunks = [c async for c in t]
            assert len(chunks) == 49
            assert t.recording_stats.ignored_tail_bytes == 17 + 5 - 3
            assert t.recording_stats.tail_problem == "truncated record"
            with pytest.raises(TransportError, match="cannot send"):
                await t.write(b"x")
    asyncio.run(main())


def test_replay_rejects_a_bad_speed(tmp_path):
    with pytest.raises(TransportError, match="speed"):
        open_transport(f"replay://{tmp_path / 'x'}", speed=0)
