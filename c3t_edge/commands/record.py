"""Record the raw bytes a port sends, with host receive times, into a crash-safe file.

Everything that arrives is appended to FILE (format: docs/RECORDING.md), one record per chunk,
each handed to the operating system as it arrives, so the file stays readable up to its last
complete record even if the process is killed. Link outages (a serial device unplugged, a BLE
peripheral out of range) are waited out with back-off and stored in the file as events.
Stops after --duration seconds, at Ctrl-C or SIGTERM, or when a replay:// source ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from c3t_edge.errors import C3TEdgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, metavar="PORT",
                        help="serial device, pyserial URL (loop://, socket://h:p), ble://NAME-or-ADDRESS "
                             "or replay://FILE")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="recording to create (e.g. session.c3trec)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="stop after S seconds (default: run until Ctrl-C or SIGTERM)")
    parser.add_argument("--baud", type=int, default=115200, metavar="N",
                        help="serial baud rate (default 115200)")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--progress-interval", type=float, default=None, metavar="S",
                        help="seconds between progress reports on stderr (default 0.5 on a terminal, "
                             "10 otherwise)")


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise C3TEdgeError(f"--duration must be > 0 seconds (got {args.duration:g})")
    if args.baud <= 0:
        raise C3TEdgeError(f"--baud must be > 0 (got {args.baud})")
    return asyncio.run(_record(args))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


async def _record(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    """Record ``args.port`` to ``args.out`` until the source ends, ``--duration``, a signal or ``stop``."""
    from c3t_edge.live import DURATION, ENDED, LiveSession
    from c3t_edge.recording import RecordingWriter
    from c3t_edge.transports import LinkEvent, open_transport

    tty = sys.stderr.isatty()
    interval = args.progress_interval if args.progress_interval is not None else (0.5 if tty else 10.0)

    def say(line: str, transient: bool = False) -> None:
        """A line on stderr; on a terminal, a transient (progress) line is overwritten by the next."""
        if tty:
            print("\r\033[K" + line, end="" if transient else "\n", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def on_event(event: LinkEvent) -> None:
        if event.kind == "disconnected":
            say(f"record: link lost ({event.reason}); waiting for {event.port} to come back")
        elif event.kind == "reconnected" and event.gap is not None:
            say(f"record: {event.port} is back after {event.gap.duration_s:.2f} s "
                f"({event.gap.attempts} attempts); bytes sent meanwhile are lost")
        else:
            say(f"record: gave up on {event.port}: {event.reason}")

    if not args.overwrite and os.path.exists(args.out):
        raise C3TEdgeError(f"{args.out} already exists (use --overwrite to replace it)")
    transport = open_transport(args.port, baudrate=args.baud, on_event=on_event)
    async with LiveSession(transport, duration_s=args.duration, stop=stop) as session:
        with RecordingWriter(args.out, port=args.port, overwrite=args.overwrite) as writer:
            session.record_to(writer)
            start = time.monotonic()

            def progress() -> None:
                state = "" if transport.stats.connected else ", link down"
                say(f"record: {_size(writer.data_bytes)} in {transport.stats.chunks_in} chunks, "
                    f"{time.monotonic() - start:.1f} s elapsed{state}", transient=True)
                nonlocal ticker
                ticker = asyncio.get_running_loop().call_later(interval, progress)

            say(f"record: {args.port} -> {args.out}" + ("" if args.duration else " (Ctrl-C to stop)"))
            ticker = asyncio.get_running_loop().call_later(interval, progress)
            try:
                reason = await session.run(lambda _chunk: None)  # the session's recorder keeps every chunk
            finally:
                ticker.cancel()
            stop_reason = {ENDED: "stream ended", DURATION: "duration reached"}.get(reason, "interrupted")
            gaps = transport.stats.gaps
            gap_text = f"; {len(gaps)} link gap(s), {sum(g.duration_s for g in gaps):.2f} s" if gaps else ""
            say(f"record: {stop_reason}: {writer.data_bytes} bytes in {writer.records} records over "
                f"{time.monotonic() - start:.1f} s to {args.out}{gap_text}")
    return 0
