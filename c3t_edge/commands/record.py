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
import signal
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


async def _record(args: argparse.Namespace) -> int:
    from c3t_edge.protocol import CommandCode, command_bytes
    from c3t_edge.recording import RecordingWriter
    from c3t_edge.transports import Chunk, Gap, LinkEvent, open_transport
    from c3t_edge.transports.replay import event_record

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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_reason = "stopped"
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass

    async with transport:
        with RecordingWriter(args.out, port=args.port, overwrite=args.overwrite) as writer:
            start = time.monotonic()

            gaps_written = 0

            def store_gap(gap: Gap) -> None:
                nonlocal gaps_written
                lost = LinkEvent("disconnected", args.port, gap.start_s, gap.reason)
                back = LinkEvent("reconnected", args.port, gap.end_s, gap.reason, gap)
                writer.write_event(event_record(lost, writer.start_wall_time_s), gap.start_s)
                writer.write_event(event_record(back, writer.start_wall_time_s), gap.end_s)
                gaps_written += 1

            def store(chunk: Chunk) -> None:
                if chunk.gap is not None:  # the outage, in order with the data around it
                    store_gap(chunk.gap)
                writer.write_chunk(chunk.data, chunk.host_time_s)

            async def hello() -> None:
                """Ask the device to describe itself and start (a recording needs its DEVICE_INFO)."""
                if transport.can_write:
                    try:
                        await transport.write(command_bytes(CommandCode.SEND_INFO))
                        await transport.write(command_bytes(CommandCode.START))
                    except Exception:  # noqa: BLE001 - a device that cannot take commands still streams
                        pass

            async def pump() -> None:
                await hello()
                while (chunk := await transport.read()) is not None:
                    store(chunk)
                    if chunk.gap is not None:  # reconnected: the device may have rebooted or lost state
                        await hello()

            say(f"record: {args.port} -> {args.out}" + ("" if args.duration else " (Ctrl-C to stop)"))
            pump_task = asyncio.create_task(pump())
            stop_task = asyncio.create_task(stop.wait())
            try:
                while True:
                    elapsed = time.monotonic() - start
                    timeout = interval
                    if args.duration is not None:
                        if elapsed >= args.duration:
                            stop_reason = "duration reached"
                            break
                        timeout = min(timeout, args.duration - elapsed)
                    done, _ = await asyncio.wait({pump_task, stop_task}, timeout=timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if pump_task in done:
                        pump_task.result()  # re-raise a transport error (e.g. gave up)
                        stop_reason = "stream ended"
                        break
                    if stop_task in done:
                        stop_reason = "interrupted"
                        break
                    elapsed = time.monotonic() - start
                    if args.duration is not None and elapsed >= args.duration:
                        continue  # the summary follows
                    state = "" if transport.stats.connected else ", link down"
                    say(f"record: {_size(writer.data_bytes)} in {transport.stats.chunks_in} chunks, "
                        f"{elapsed:.1f} s elapsed{state}", transient=True)
            finally:
                for task in (pump_task, stop_task):
                    task.cancel()
                await asyncio.gather(pump_task, stop_task, return_exceptions=True)
                for chunk in transport.read_nowait():  # already received: keep it
                    store(chunk)
                for gap in transport.stats.gaps[gaps_written:]:  # back, but no data since
                    store_gap(gap)
                if not transport.stats.connected and transport.events and \
                        transport.events[-1].kind == "disconnected":
                    ev = transport.events[-1]  # ended during an outage: keep that in the file
                    writer.write_event(event_record(ev, writer.start_wall_time_s), ev.host_time_s)
            elapsed = time.monotonic() - start
            gaps = transport.stats.gaps
            gap_text = f"; {len(gaps)} link gap(s), {sum(g.duration_s for g in gaps):.2f} s" if gaps else ""
            say(f"record: {stop_reason}: {writer.data_bytes} bytes in {writer.records} records over "
                f"{elapsed:.1f} s to {args.out}{gap_text}")
    return 0
