"""Recognise actions live from an IMU on a serial port, a BLE device or a recording.

Bytes from PORT go through the protocol decoder, the calibration stage, resampling (when the
device's rate differs from the model's), sliding windows of the model's length and hop, the model,
and smoothing with hysteresis; each recognised action is printed as it starts (one line, or one
JSON object with --json). A device that prints Edge Impulse data-forwarder lines is detected;
its rate is inferred from line timing and its units from gravity, as one notice says
(--rate, --acc-units, --gyro-units set them). A lost link is waited out and reported; recognition resumes when the
device is back. Ctrl-C or SIGTERM ends the run with a summary (frames, samples, lost, corrupt,
windows, events, latency p50/p99).
"""

from __future__ import annotations

import argparse
import sys

from c3t_edge.errors import C3TEdgeError
from c3t_edge.runtime.options import (
    add_format_flags,
    add_model_flags,
    add_output_flags,
    add_recognition_flags,
    decoder_from_args,
    load_calibration,
    model_from_args,
    pipeline_from_args,
    run_async,
    sink_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, metavar="PORT",
                        help="serial device, pyserial URL (loop://, socket://h:p), ble://NAME-or-ADDRESS "
                             "or replay://FILE")
    add_model_flags(parser)
    parser.add_argument("--calibration", metavar="PROFILE",
                        help="sensor calibration profile from 'c3t-edge calibrate' (default: samples are used as the "
                             "device sends them)")
    parser.add_argument("--baud", type=int, default=115200, metavar="N", help="serial baud rate (default 115200)")
    add_format_flags(parser)
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    add_output_flags(parser)
    add_recognition_flags(parser)


def run(args: argparse.Namespace) -> int:
    from c3t_edge.runtime.runner import PortOptions, run_port

    if args.baud <= 0:
        raise C3TEdgeError(f"--baud must be > 0 (got {args.baud})")
    if args.duration is not None and not args.duration > 0:
        raise C3TEdgeError(f"--duration must be > 0 seconds (got {args.duration:g})")
    calibration = load_calibration(args.calibration)
    model = model_from_args(args)
    decoder = decoder_from_args(args, model)
    pipeline = pipeline_from_args(args, model, decoder=decoder, calibration=calibration)
    sink = sink_from_args(args)
    if not args.json:
        print(f"stream: {args.port} -> {model.spec.name}: {len(model.spec.labels)} actions, "
              f"{model.spec.window_s:.2f} s windows every {model.spec.hop_s:.2f} s"
              + ("" if args.duration else " (Ctrl-C to stop)"), file=sys.stderr, flush=True)
    summary = run_async(run_port(args.port, pipeline, sink, options=PortOptions(baudrate=args.baud),
                                 duration_s=args.duration))
    return 130 if summary is None else 0
