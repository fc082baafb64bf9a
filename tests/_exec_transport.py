"""``exec://COMMAND ARGS...``: a program's standard output as a byte stream.

A complete extra transport in one module, registered by a test with one call
(``register_transport("exec", ExecTransport)``); the device is the host-built simulator writing its
protocol frames to stdout. It cannot reconnect (a program that exits ends the stream) nor send.
"""

from __future__ import annotations

import asyncio
import shlex

from c3t_edge.clock import host_time
from c3t_edge.errors import TransportError
from c3t_edge.transports import Capabilities, PortSettings, Transport

SCHEME = "exec://"


class ExecTransport(Transport):
    """The stdout of ``argv`` as chunks; the stream ends when the program does (an error if it failed)."""

    capabilities = Capabilities(can_write=False, paced=True)

    def __init__(self, port: str, argv: list[str], *, on_event=None) -> None:
        super().__init__(port, on_event=on_event)
        self.argv = argv
        self._proc: asyncio.subprocess.Process | None = None
        self._pump_task: asyncio.Task[None] | None = None

    @classmethod
    def from_port(cls, port: str, settings: PortSettings) -> ExecTransport:
        argv = shlex.split(port[len(SCHEME):])
        if not argv:
            raise TransportError(f"{port!r}: give a command after {SCHEME}")
        return cls(port, argv, on_event=settings.on_event)

    async def open(self) -> None:
        if self._proc is not None:
            return
        self._start_queue()
        try:
            self._proc = await asyncio.create_subprocess_exec(*self.argv, stdout=asyncio.subprocess.PIPE,
                                                              stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise TransportError(f"{self.port}: cannot run {self.argv[0]}: {exc.strerror or exc}") from exc
        self.stats.connected = True
        self._pump_task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while data := await self._proc.stdout.read(65536):
            self._deliver(data, host_time())
        code = await self._proc.wait()
        self.stats.connected = False
        self._end(TransportError(f"{self.port}: exited with status {code}") if code else None)

    async def close(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        self.stats.connected = False
        self._end(None)
