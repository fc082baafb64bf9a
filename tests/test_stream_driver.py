"""The one live-session driver under `stream`, `record` and `calibrate --port`: each greets the device
(SEND_INFO + START) on open and again as soon as the link is back after an unplug, before the device
sends anything (a rebooted device waits for START); link events reach the pipeline and the
recordings. The device is a raw pty behind a symlink PORT that the test unplugs and replugs."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import pytest
from _pty import PtyDevice
from _runtime import AxisModel, synthetic_session

from c3t_edge.errors import CalibrationError, ProtocolError
from c3t_edge.live import HELLO, LiveSession
from c3t_edge.protocol import CommandCode, command_bytes
from c3t_edge.recording import RecordingReader
from c3t_edge.runtime import LinkNotice, ListSink, StreamPipeline
from c3t_edge.runtime.sessions import session_stream
from c3t_edge.transports import ReconnectPolicy, open_transport

FAST = ReconnectPolicy(initial_s=0.02, factor=2.0, max_s=0.1)
HELLO_BYTES = b"".join(command_bytes(code) for code in HELLO)


@pytest.fixture
def device(tmp_path):
    dev = PtyDevice(str(tmp_path / "ttyDRV"))
    yield dev
    dev.close()


FRAMES = [data for _, data in session_stream(synthetic_session([("x", 3), ("y", 3)], rest_s=1.0))]
assert len(FRAMES) > 40


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def unplug_replug_and_expect_hello(device: PtyDevice, task: asyncio.Task,
                                         received: Callable[[], int]) -> None:
    """Hello on open; frames; unplug for a while; replug; hello again before the device sends a byte.
    ``received()``: how many bytes reached the consumer so far."""
    await until(lambda: HELLO_BYTES in device.poll() or task.done(), what="the first hello")
    assert not task.done(), task.exception()
    before = b"".join(FRAMES[:20])  # DEVICE_INFO and 19 frames of samples
    device.send(before)
    await until(lambda: received() >= len(before) or task.done(), what="the frames before the unplug")
    device.unplug()
    await asyncio.sleep(0.3)
    device.plug()
    await until(lambda: HELLO_BYTES in device.poll() or task.done(), what="the hello after the reconnection")
    assert not task.done(), task.exception()
    assert device.poll().startswith(HELLO_BYTES)  # the first bytes on the new link, unprompted by data
    after = b"".join(FRAMES[20:40])  # the stream goes on after the outage
    device.send(after)
    await until(lambda: received() >= len(before) + len(after) or task.done(), what="the frames after it")


def recorded_bytes(path) -> int:
    """Data bytes in a recording that may still be growing (0 before its header is written)."""
    try:
        with RecordingReader(path) as reader:
            return sum(len(data) for _, data in reader.chunks())
    except ProtocolError:
        return 0


def link_events(path) -> list[str]:
    with RecordingReader(path) as reader:
        return [rec.event["event"] for rec in reader.records() if rec.kind == "event"]


def test_stream_says_hello_again_after_a_reconnection(device):
    async def main():
        sink, stop = ListSink(), asyncio.Event()
        from c3t_edge.runtime.runner import PortOptions, run_port

        pipeline = StreamPipeline(AxisModel())
        task = asyncio.create_task(run_port(device.link, pipeline, sink, stop=stop,
                                            handle_signals=False, options=PortOptions(reconnect=FAST)))
        await unplug_replug_and_expect_hello(device, task, lambda: pipeline.decoder.stats.bytes)
        stop.set()
        return sink, await asyncio.wait_for(task, 10)

    sink, summary = asyncio.run(main())
    assert [e.state for e in sink.events if isinstance(e, LinkNotice)] == ["disconnected", "reconnected"]
    assert summary.link_gaps == 1 and summary.frames == 40


def test_record_says_hello_again_and_stores_the_link_events(device, tmp_path):
    from c3t_edge.commands.record import _record

    out = tmp_path / "r.c3trec"
    args = argparse.Namespace(port=device.link, out=str(out), duration=None, baud=115200, overwrite=False,
                              progress_interval=10.0)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(_record(args, stop=stop))
        await unplug_replug_and_expect_hello(device, task, lambda: recorded_bytes(out))
        stop.set()
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(main()) == 0
    assert link_events(out) == ["disconnected", "reconnected"]
    with RecordingReader(out) as reader:
        assert b"".join(data for _, data in reader.chunks()) == b"".join(FRAMES[:40])


def test_guided_calibration_says_hello_again_and_saves_the_link_events(device, tmp_path):
    from c3t_edge.calibration.procedure import guided_session

    kept = tmp_path / "kept.c3trec"
    said: list[str] = []

    async def main():
        stop = asyncio.Event()
        transport = open_transport(device.link, reconnect=FAST)
        task = asyncio.create_task(guided_session(transport, save_recording=str(kept), stop=stop,
                                                  say=said.append, step_timeout_s=60))
        await unplug_replug_and_expect_hello(device, task, lambda: recorded_bytes(kept))
        stop.set()
        with pytest.raises(CalibrationError, match="interrupted"):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert link_events(kept) == ["disconnected", "reconnected"]
    assert any("six faces" in line for line in said)


def test_a_session_ends_with_its_reason_and_greets_only_where_it_can_write(tmp_path):
    """loop:// echoes: the hello comes back as the first bytes; duration stops the session; a replay
    (cannot write) is never greeted and ends by itself."""
    async def main():
        got: list[bytes] = []
        async with LiveSession(open_transport("loop://"), duration_s=0.3, handle_signals=False) as session:
            reason = await session.run(lambda chunk: got.append(chunk.data))
        assert reason == "duration" and session.hellos == 1
        assert b"".join(got) == HELLO_BYTES
        rec = tmp_path / "echo.c3trec"
        async with LiveSession(open_transport("loop://"), duration_s=0.3, handle_signals=False) as session:
            from c3t_edge.recording import RecordingWriter

            with RecordingWriter(rec, port="loop://") as writer:
                session.record_to(writer)
                await session.run(lambda chunk: None)
        async with LiveSession(open_transport(f"replay://{rec}", speed=None), handle_signals=False) as replay:
            replayed: list[bytes] = []
            assert await replay.run(lambda chunk: replayed.append(chunk.data)) == "ended"
        assert replay.hellos == 0 and b"".join(replayed) == HELLO_BYTES
        assert command_bytes(CommandCode.START) in HELLO_BYTES

    asyncio.run(main())
