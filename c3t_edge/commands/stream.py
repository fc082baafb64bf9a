"""Recognise actions live from an IMU on a serial port, a BLE device or a recording.

Bytes from PORT go through the protocol decoder, the calibration stage, resampling (when the
device's rate differs from the model's), sliding windows of the model's length and hop, the model,
and smoothing with hysteresis; each recognised action is printed as it starts (one line, or one
JSON object with --json). A device that prints Edge Impulse data-forwarder lines is detected;
its rate is inferred from line timing and its units from gravity, as one notice says
(--rate, --acc-units, --gyro-units set them). A lost link is waited out and reported; recognition resumes when the
device is back. Ctrl-C or SIGTERM ends the run with a summary (frames, samples, lost, corrupt,
windows, events, latency p50/p99).

Several devices in one process: --port more than once (NAME=PORT names one), or --devices FILE.toml
(name, port, bundle, calibration profile per device). Every line and JSON object then carries the
device's name; a device that fails is reported and the others go on; each has its own summary.
--publish mqtt://... sends every event to an MQTT broker as well; --web [HOST:]PORT serves a live page
(signals, class probabilities, events, link state; one panel per device).
"""

from __future__ import annotations

import argparse
import sys

from c3t_edge.errors import C3TEdgeError
from c3t_edge.gateway.web import add_web_flag, web_view_from_args
from c3t_edge.runtime.options import (
    add_format_flags,
    add_model_flags,
    add_output_flags,
    add_publish_flags,
    add_recognition_flags,
    publisher_from_args,
    run_async,
    sink_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", action="append", metavar="[NAME=]PORT",
                        help="serial device, pyserial URL (loop://, socket://h:p), ble://NAME-or-ADDRESS "
                             "or replay://FILE; repeat it to stream several devices in one process (NAME tags "
                             "their events; default: made from PORT)")
    parser.add_argument("--devices", metavar="FILE.toml",
                        help="the devices to stream: [[device]] tables with name, port and optionally model, "
                             "precision, engine, calibration, baud (see the Raspberry Pi guide)")
    add_model_flags(parser)
    parser.add_argument("--calibration", metavar="PROFILE",
                        help="sensor calibration profile from 'c3t-edge calibrate' (default: samples are used as the "
                             "device sends them)")
    parser.add_argument("--baud", type=int, default=115200, metavar="N", help="serial baud rate (default 115200)")
    add_format_flags(parser)
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    add_output_flags(parser)
    add_publish_flags(parser)
    add_web_flag(parser)
    add_recognition_flags(parser)


def run(args: argparse.Namespace) -> int:
    from c3t_edge.gateway.devices import build_runs, device_specs
    from c3t_edge.runtime.sinks import FanOut

    if args.baud <= 0:
        raise C3TEdgeError(f"--baud must be > 0 (got {args.baud})")
    if args.duration is not None and not args.duration > 0:
        raise C3TEdgeError(f"--duration must be > 0 seconds (got {args.duration:g})")
    specs = device_specs(args.port, args.devices, publish=args.publish is not None)
    tagged = args.devices is not None or len(specs) > 1  # one --port: today's output, untagged
    view = web_view_from_args(args)
    publisher = publisher_from_args(args, "stream")

    def make_sink(spec, pipeline):
        printer = sink_from_args(args, spec.name if tagged else None)
        sink = printer if publisher is None else FanOut(printer, publisher.sink(spec.name, report=printer))
        return sink if view is None else view.attach(spec.name, pipeline, sink, port=spec.port)

    try:
        runs = build_runs(specs, args, make_sink)
        return _run_one(runs[0], args, view) if not tagged else _run_many(runs, args, view)
    finally:
        if publisher is not None:
            publisher.close()


def _header(run, args, tag: str = "") -> None:
    if not args.json:
        spec = run.pipeline.spec
        print(f"stream: {tag}{run.port} -> {spec.name}: {len(spec.labels)} actions, "
              f"{spec.window_s:.2f} s windows every {spec.hop_s:.2f} s"
              + ("" if args.duration else " (Ctrl-C to stop)"), file=sys.stderr, flush=True)


def _run_one(run, args: argparse.Namespace, view=None) -> int:
    from c3t_edge.runtime.runner import run_port

    _header(run, args)
    coro = run_port(run.port, run.pipeline, run.sink, options=run.options, duration_s=args.duration)
    summary = run_async(coro if view is None else view.serve(coro))
    return 130 if summary is None else 0


def _run_many(runs, args: argparse.Namespace, view=None) -> int:
    """Every device at once; a device that fails says so (one line, tagged) and the others go on.
    Exit 1 when a device failed."""
    from c3t_edge.runtime.events import Notice
    from c3t_edge.runtime.runner import run_devices

    for run in runs:
        _header(run, args, f"[{run.name}] ")

    def on_error(run, exc: Exception) -> None:
        what = str(exc) if isinstance(exc, C3TEdgeError) else f"{type(exc).__name__}: {exc}"
        run.sink(Notice(f"error: {what} (the other devices go on)"))

    coro = run_devices(runs, duration_s=args.duration, on_error=on_error, wait_for_ports=True)
    results = run_async(coro if view is None else view.serve(coro))
    if results is None:
        return 130
    return 1 if any(isinstance(r, Exception) for r in results.values()) else 0
