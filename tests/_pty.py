"""A raw pty pair reachable through a symlink: the 'serial device' tests plug and unplug."""

from __future__ import annotations

import os
import threading
import time
import tty


def raw_pty_at(link: str) -> tuple[int, int]:
    """Open a raw pty pair and (atomically) point ``link`` at its slave; returns (master, slave)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    tmp = link + ".new"
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, link)
    return master, slave


class PtyDevice:
    """A serial 'device' on a raw pty pair: PORT is the symlink ``link`` to its slave end. It can be
    unplugged (the symlink disappears, as /dev/ttyUSB0 does) and plugged again (a fresh pty).

    :meth:`send` writes the device's bytes (retrying while the host has not read the pty's buffer,
    until :meth:`close`); :meth:`play` writes text lines at a rate; :meth:`receive` and :meth:`poll`
    read what the host sent to the current plug.
    """

    def __init__(self, link: str) -> None:
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None
        self.received = bytearray()  # what the host sent to the current plug (poll)
        self.stop = threading.Event()
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = raw_pty_at(self.link)
        os.set_blocking(self.master, False)
        self.received = bytearray()

    def unplug(self) -> None:
        os.unlink(self.link)
        for fd in (self.master, self.slave):
            os.close(fd)
        self.master = self.slave = None

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.stop.is_set():
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                time.sleep(0.002)

    def play(self, lines: list[bytes], rate_hz: float, paced_s: float = 2.5) -> threading.Thread:
        """Write ``lines`` at ``rate_hz`` for ``paced_s`` seconds (long enough for a host to time
        them), then the rest at once, from a thread (returned, started)."""
        def run() -> None:
            start = time.monotonic()
            n_paced = int(paced_s * rate_hz)
            for i, line in enumerate(lines[:n_paced]):
                delay = start + i / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.send(line)
            self.send(b"".join(lines[n_paced:]))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def receive(self, n: int, timeout: float = 2.0) -> bytes:
        """Up to ``n`` bytes the host sends within ``timeout`` seconds."""
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                out += os.read(self.master, n - len(out))
            except BlockingIOError:
                time.sleep(0.005)
        return out

    def poll(self) -> bytes:
        """Everything the host sent to the current plug so far (without waiting)."""
        try:
            self.received += os.read(self.master, 4096)
        except BlockingIOError:
            pass
        return bytes(self.received)

    def close(self) -> None:
        self.stop.set()
        if self.master is not None:
            self.unplug()
