"""A raw pty pair reachable through a symlink: the 'serial device' tests plug and unplug."""

from __future__ import annotations

import os
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
