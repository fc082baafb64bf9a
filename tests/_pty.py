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
    """A 'board' on a raw pty pair: PORT is the symlink ``link`` to its slave end; :meth:`play` writes
    lines at ``rate_hz`` for ``paced_s`` seconds (long enough for a host to time them), then the rest
    at once. Writes never block for long: they retry while the host has not read the pty's buffer."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.master, self.slave = raw_pty_at(link)
        os.set_blocking(self.master, False)
        self.stop = threading.Event()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.stop.is_set():
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                time.sleep(0.002)

    def play(self, lines: list[bytes], rate_hz: float, paced_s: float = 2.5) -> threading.Thread:
        def run() -> None:
            start = time.monotonic()
            n_paced = int(paced_s * rate_hz)
            for i, line in enumerate(lines[:n_paced]):
                delay = start + i / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.write(line)
            self.write(b"".join(lines[n_paced:]))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.stop.set()
        for fd in (self.master, self.slave):
            os.close(fd)
        os.unlink(self.link)
