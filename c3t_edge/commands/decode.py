"""Decode a device byte stream into samples (protocol debugging).

Reads raw device bytes (a file, a ``c3t-edge record`` recording, or ``-`` for stdin) and prints one
line per sample on stdout: device time in seconds, then ax ay az (g) and gx gy gz (deg/s), those
the device has, in this order whatever order the device sends them in, then its other channels in
its own order (``temp6``, ``c7``, ...; a ``# columns:`` line on stderr names them all).
``--json`` prints one object per line instead, ``{"t": ..., "ax": ..., ..., "gz": ...}`` (channel
names are distinct and never ``t``). Device descriptions, events and refused DEVICE_INFO frames go
to stderr, and so does a final summary line (frames, samples, corrupt, lost, ...). ``--text``
decodes the plain-text (Edge Impulse data forwarder) mode.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from c3t_edge.errors import ProtocolError
from c3t_edge.protocol import DeviceEvent, DeviceInfo, EventCode, FrameDecoder, SampleBatch, TextDecoder
from c3t_edge.protocol.messages import TIME_KEY

CHUNK_SIZE = 1 << 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="raw bytes or a .c3trec recording; '-' = stdin"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per sample (and summary)")
    parser.add_argument("--text", action="store_true", help="plain-text mode (one sample per line)")
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        metavar="HZ",
        help="text mode: sample rate, for times (default 50)",
    )
    parser.add_argument(
        "--acc-unit",
        choices=("g", "m/s2"),
        default="g",
        help="text mode: unit the sketch prints acceleration in (output is always g)",
    )


def _chunks(path: str) -> Iterator[bytes]:
    """The device bytes of FILE: a recording's data records, or the file/stdin as is."""
    if path == "-":
        stream = sys.stdin.buffer
        read = getattr(stream, "read1", stream.read)
        while chunk := read(CHUNK_SIZE):
            yield chunk
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the consumer stops early
    except OSError as exc:
        raise ProtocolError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        head = f.read(8)
        from c3t_edge.recording import MAGIC  # the recording format (docs/RECORDING.md)

        if head == MAGIC:
            f.close()
            from c3t_edge.recording import RecordingReader

            with RecordingReader(path) as reader:
                for _, data in reader.chunks():
                    yield data
            return
        yield head
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


#: The channels printed first, in this order, when the device has them (the order the help states).
IMU_ORDER = ("ax", "ay", "az", "gx", "gy", "gz")


def column_order(info: DeviceInfo) -> list[int]:
    """The device's channel indices in output order: :data:`IMU_ORDER` (those present), then the
    other channels in the device's order."""
    names = info.channel_names
    first = [names.index(n) for n in IMU_ORDER if n in names]
    return first + [i for i in range(len(names)) if i not in first]


def _print_batch(batch: SampleBatch, as_json: bool, out: TextIO) -> None:
    order = column_order(batch.info)
    names = [batch.channel_names[i] for i in order]
    rows = np.column_stack([batch.t, batch.samples[:, order].astype(np.float64)]).tolist()
    if as_json:
        keys = [TIME_KEY, *names]
        out.write("".join(json.dumps(dict(zip(keys, row, strict=True))) + "\n" for row in rows))
    else:
        fmt = "%.6f" + " %.7g" * len(names) + "\n"
        out.write("".join(fmt % tuple(row) for row in rows))


def _describe(item: DeviceInfo | DeviceEvent, as_json: bool, text_mode: bool = False) -> str:
    if isinstance(item, DeviceInfo) and text_mode:
        names = ", ".join(item.channel_names)
        if as_json:
            return json.dumps(
                {"text_mode": {"channels": list(item.channel_names), "rate_hz": item.sample_rate_hz}}
            )
        return f"# text mode: {names} at {item.sample_rate_hz:g} Hz (time = line index / rate)"
    if isinstance(item, DeviceInfo):
        named = list(zip(item.channel_names, item.channels, strict=True))
        if as_json:
            return json.dumps(
                {
                    "device_info": {
                        "name": item.name,
                        "firmware": item.firmware,
                        "device_id": f"{item.device_id:016x}",
                        "boot_id": item.boot_id,
                        "sample_rate_hz": item.sample_rate_hz,
                        "channels": [
                            {"name": n, "unit": c.unit_name, "scale": c.scale, "range": c.range}
                            for n, c in named
                        ],
                    }
                }
            )
        chans = ", ".join(f"{n} [{c.unit_name}, {c.scale:.6g}/count]" for n, c in named)
        columns = " ".join([TIME_KEY, *(item.channel_names[i] for i in column_order(item))])
        return (
            f"# device {item.name or '?'} fw {item.firmware} id {item.device_id:016x} boot {item.boot_id}: "
            f"{item.sample_rate_hz:g} Hz, {chans}\n# columns: {columns}"
        )
    try:
        name = EventCode(item.code).name
    except ValueError:
        name = f"0x{item.code:02x}"
    if as_json:
        return json.dumps(
            {"event": name, "detail": item.detail, "message": item.message, "t": item.t, "seq": item.seq}
        )
    return f"# event {name} detail={item.detail} t={item.t:.6f} {item.message}".rstrip()


def run(args: argparse.Namespace) -> int:
    if args.text:
        if not args.rate > 0:
            raise ProtocolError(f"--rate must be positive, got {args.rate}")
        decoder: FrameDecoder | TextDecoder = TextDecoder(sample_rate_hz=args.rate, acc_unit=args.acc_unit)
    else:
        decoder = FrameDecoder()
    out = sys.stdout
    refusal = None
    probe = FrameDecoder() if args.text else None  # --text on protocol frames: say so at the end
    for chunk in itertools.chain(_chunks(args.file), [None]):  # None: the end of the input
        items = decoder.feed(chunk) if chunk is not None else decoder.finish()
        if probe is not None and chunk is not None and not decoder.stats.samples:
            probe.feed(chunk)
        for item in items:
            if isinstance(item, SampleBatch):
                _print_batch(item, args.json, out)
            else:
                print(_describe(item, args.json, args.text), file=sys.stderr)
        out.flush()  # a live stream (a pipe from a port) shows its samples as they arrive
        if getattr(decoder, "refusal", None) not in (None, refusal):
            refusal = decoder.refusal  # type: ignore[union-attr]
            print(json.dumps({"refused": refusal}) if args.json else f"decode: {refusal}", file=sys.stderr)
    err = sys.stderr
    stats = decoder.stats.as_dict()
    keys = ["frames", "samples", "corrupt", "lost"]
    keys += [k for k, v in stats.items() if v and k not in keys and k != "bytes"]
    if args.json:
        print(json.dumps({"summary": {k: stats[k] for k in ["bytes", *keys]}}), file=err)
    else:
        print("decode: " + " ".join(f"{k}={stats[k]}" for k in keys), file=err)
    if not args.text and stats["bytes"] and stats["frames"] == 0:
        print("decode: no valid frame in the input; if it is plain text, try --text", file=err)
    if probe is not None and stats["samples"] == 0 and probe.stats.frames:
        print(f"decode: no line of numbers, but {probe.stats.frames} valid protocol frames: the input is binary, "
              "decode it without --text", file=err)
    return 0
