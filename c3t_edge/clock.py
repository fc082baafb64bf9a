"""The host clock every received byte is stamped with (a leaf module: it imports nothing of c3t-edge).

:func:`host_time` reads like ``time.time()`` (seconds since the Unix epoch) but is
``time.perf_counter`` anchored to the wall clock once per process, so it never jumps backwards
while the process runs (NTP steps, a user changing the clock). Transports stamp chunks with it,
recordings store offsets from it, and the runtime measures latency against it.
"""

from __future__ import annotations

import time

_WALL0 = time.time()
_MONO0 = time.perf_counter()


def host_time() -> float:
    """Seconds since the Unix epoch, advancing monotonically (``time.perf_counter`` anchored once)."""
    return _WALL0 + (time.perf_counter() - _MONO0)
