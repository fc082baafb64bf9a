"""One live session on a PORT: the driver that ``stream``, ``record`` and ``calibrate --port`` share.

    async with LiveSession(open_transport(port), duration_s=10) as session:
        reason = await session.run(consumer)      # consumer(chunk) for every chunk, in order

A :class:`LiveSession`

1. opens the transport (and closes it, whatever happens);
2. says hello: asks the device to describe itself (SEND_INFO) and to start streaming (START), where
   the link can send; and again after every reconnection, as soon as the link is back (a device
   that rebooted while away waits for START and sends nothing until asked);
3. pumps every chunk to the consumer (a plain callable, on the event loop, in order);
4. stops at the end of the source, after ``duration_s``, at Ctrl-C / SIGTERM, when ``stop`` is
   set, or when the consumer calls :meth:`LiveSession.stop`; then drains the chunks already
   received into the consumer;
5. keeps link events: with a ``recorder`` (a :class:`~c3t_edge.recording.RecordingWriter`), every
   chunk and every link event (disconnected, reconnected, gave up) is written in stream order,
   also the outages no data followed.

A transport error (the link lost for good) propagates from :meth:`LiveSession.run` after the
recorder got everything that arrived. Nothing here imports torch.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from types import TracebackType

from c3t_edge.protocol import CommandCode, command_bytes
from c3t_edge.recording import RecordingWriter
from c3t_edge.transports.base import Chunk, LinkEvent, Transport

#: What a session sends the device on start and after every reconnection.
HELLO: tuple[CommandCode, ...] = (CommandCode.SEND_INFO, CommandCode.START)

#: Why :meth:`LiveSession.run` returned: the source ended / ``duration_s`` passed / a signal /
#: ``stop`` was set. A consumer may stop the session with a reason of its own.
ENDED, DURATION, INTERRUPTED, STOPPED = "ended", "duration", "interrupted", "stopped"

ChunkConsumer = Callable[[Chunk], None]


class LinkRecorder:
    """Writes chunks and link events to a recording in stream order.

    Link events are reported the moment they happen, while chunks received before them may still
    wait to be read; so the events up to a reconnection are written when the first chunk after it
    (the one carrying its ``gap``) is, and :meth:`finish` writes those no data followed.
    """

    def __init__(self, writer: RecordingWriter, transport: Transport) -> None:
        self.writer = writer
        self.transport = transport
        self._written = 0  # transport.events[:_written] are in the file

    def chunk(self, chunk: Chunk) -> None:
        if chunk.gap is not None:
            events = self.transport.events
            upto = next((i + 1 for i in range(self._written, len(events))
                         if events[i].kind == "reconnected" and events[i].gap is chunk.gap), self._written)
            self._write_events(events[self._written:upto])
            self._written = upto
        self.writer.write_chunk(chunk.data, chunk.host_time_s)

    def finish(self) -> None:
        """Write the link events not yet in the file (an outage at the end, a give-up)."""
        events = self.transport.events
        self._write_events(events[self._written:])
        self._written = len(events)

    def _write_events(self, events: Iterable[LinkEvent]) -> None:
        for event in events:
            self.writer.write_link_event(event)


class LiveSession:
    """Drive one transport for one consumer (see the module docstring).

    ``commands``: say hello where the link can send (False: never write to the device).
    ``handle_signals``: SIGINT/SIGTERM stop the session (reason ``"interrupted"``).
    ``duration_s``: stop after that many seconds (reason ``"duration"``).
    ``stop``: an event that stops the session when set (reason ``"stopped"``).
    ``recorder``: a recording to write every chunk and link event to.
    """

    def __init__(self, transport: Transport, *, commands: bool = True, handle_signals: bool = True,
                 duration_s: float | None = None, stop: asyncio.Event | None = None,
                 recorder: RecordingWriter | None = None) -> None:
        self.transport = transport
        self.commands = commands
        self.handle_signals = handle_signals
        self.duration_s = duration_s
        self.stop_event = stop or asyncio.Event()
        self.recorder = LinkRecorder(recorder, transport) if recorder is not None else None
        #: How many times the device was greeted (SEND_INFO + START sent), reconnections included.
        self.hellos = 0
        self.reason: str | None = None
        self._user_on_event = transport.on_event
        self._tasks: set[asyncio.Task[None]] = set()
        self._signals: list[int] = []
        self._timer: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> LiveSession:
        self.transport.on_event = self._on_event
        try:
            await self.transport.open()
        except BaseException:
            self.transport.on_event = self._user_on_event
            raise
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.stop, INTERRUPTED)
                    self._signals.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                    pass
        if self.duration_s is not None:
            self._timer = loop.call_later(self.duration_s, self.stop, DURATION)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.transport.close()
        finally:
            self.transport.on_event = self._user_on_event

    def record_to(self, writer: RecordingWriter) -> None:
        """Write every chunk and link event from now on to ``writer`` (a recording opened after the port)."""
        self.recorder = LinkRecorder(writer, self.transport)

    def stop(self, reason: str = STOPPED) -> None:
        """End :meth:`run` (the first reason given is kept)."""
        if self.reason is None:
            self.reason = reason
        self.stop_event.set()

    # -- commands ----------------------------------------------------------------------------

    async def hello(self) -> bool:
        """Ask the device to describe itself and start; False where the link cannot send or the
        device did not take the commands (a device without commands still streams)."""
        if not (self.commands and self.transport.can_write):
            return False
        self.hellos += 1
        return await self.send(*HELLO)

    async def send(self, *codes: CommandCode) -> bool:
        """Send host commands; False (not an error) when the link cannot take them."""
        if not (self.commands and self.transport.can_write):
            return False
        try:
            for code in codes:
                await self.transport.write(command_bytes(code))
        except Exception:  # noqa: BLE001 - a device that cannot take commands still streams
            return False
        return True

    def _on_event(self, event: LinkEvent) -> None:
        if self._user_on_event is not None:
            self._user_on_event(event)
        if event.kind == "reconnected":  # the device may have rebooted or lost its state: greet it again
            task = asyncio.ensure_future(self.hello())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- the pump ----------------------------------------------------------------------------

    async def run(self, consumer: ChunkConsumer) -> str:
        """Greet the device, then hand every chunk to ``consumer`` until the session stops.

        Returns why: ``"ended"`` (the source ended), ``"duration"``, ``"interrupted"``,
        ``"stopped"``, or the reason a consumer gave to :meth:`stop`. Transport errors propagate.
        """
        await self.hello()
        try:
            return await self._pump_until_stopped(consumer)
        finally:
            if self.recorder is not None:
                self.recorder.finish()

    def _take(self, consumer: ChunkConsumer, chunk: Chunk) -> None:
        if self.recorder is not None:
            self.recorder.chunk(chunk)
        consumer(chunk)

    async def _pump(self, consumer: ChunkConsumer) -> str:
        read, take = self.transport.read, self._take
        # one plain await per chunk (no task per read): the least overhead between arrival and consumer
        while (chunk := await read()) is not None:
            take(consumer, chunk)
            if self.stop_event.is_set():
                return self.reason or STOPPED
        return ENDED

    async def _pump_until_stopped(self, consumer: ChunkConsumer) -> str:
        if self.stop_event.is_set():
            return self.reason or STOPPED
        pump_task = asyncio.ensure_future(self._pump(consumer))
        stop_task = asyncio.ensure_future(self.stop_event.wait())
        try:
            done, _ = await asyncio.wait({pump_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if pump_task in done:
                return pump_task.result()  # ended, stopped by the consumer, or the transport's error
            pump_task.cancel()  # stopped: it waits in read(), never inside the consumer
            await asyncio.gather(pump_task, return_exceptions=True)
            for chunk in self.transport.read_nowait():  # already received: the consumer gets it too
                self._take(consumer, chunk)
            return self.reason or STOPPED
        finally:
            for task in (pump_task, stop_task):
                task.cancel()
            await asyncio.gather(pump_task, stop_task, return_exceptions=True)
