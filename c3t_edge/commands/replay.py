"""Feed a recording (from `c3t-edge record`) through the streaming pipeline.

The same pipeline as `stream`, on the bytes stored in FILE: deterministic (the same events every
run, at every speed), at the recorded pace by default, --speed X times faster, or
--as-fast-as-possible; --web serves a live page to watch it on. A recording cut short (a crash,
kill -9) plays up to its last full record.
"""

from __future__ import annotations

import argparse
import os
import sys

from c3t_edge.errors import C3TEdgeError
from c3t_edge.gateway.web import add_web_flag, web_view_from_args
from c3t_edge.runtime.options import (
    add_format_flags,
    add_model_flags,
    add_output_flags,
    add_publish_flags,
    add_recognition_flags,
    decoder_from_args,
    load_calibration,
    model_from_args,
    pipeline_from_args,
    publisher_from_args,
    run_async,
    sink_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a recording (.c3trec)")
    add_model_flags(parser)
    parser.add_argument("--calibration", metavar="PROFILE",
                        help="sensor calibration profile from 'c3t-edge calibrate' (default: none)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, metavar="X",
                      help="play X times faster than recorded (default 1: the recorded pace)")
    pace.add_argument("--as-fast-as-possible", "--fast", dest="fast", action="store_true",
                      help="no pacing at all")
    add_format_flags(parser)
    add_output_flags(parser)
    add_publish_flags(parser)
    add_recognition_flags(parser)
    add_web_flag(parser)


def run(args: argparse.Namespace) -> int:
    from c3t_edge.runtime.runner import PortOptions, run_port

    if not args.fast and not args.speed > 0:
        raise C3TEdgeError(f"--speed must be > 0 (got {args.speed:g})")
    if not os.path.isfile(args.file):
        raise C3TEdgeError(f"{args.file}: no such recording")
    from c3t_edge.recording import RecordingReader

    RecordingReader(args.file).close()  # not a recording: say so before loading the model
    view = web_view_from_args(args)
    publisher = publisher_from_args(args, "replay")  # a broker that refuses: one line, before the model loads
    calibration = load_calibration(args.calibration)
    model = model_from_args(args)
    pipeline = pipeline_from_args(args, model, calibration=calibration, decoder=decoder_from_args(args, model))
    sink = sink_from_args(args)
    port = "replay://" + args.file
    if publisher is not None:  # the device is named after the file: TOPIC/<stem>/events
        from c3t_edge.gateway.devices import name_from_port
        from c3t_edge.runtime.sinks import FanOut

        sink = FanOut(sink, publisher.sink(name_from_port(port), report=sink))
    speed = None if args.fast else args.speed
    if not args.json:
        pace = "as fast as possible" if speed is None else f"at {speed:g}x"
        print(f"replay: {args.file} -> {model.spec.name}, {pace}", file=sys.stderr, flush=True)
    if view is not None:
        from c3t_edge.gateway.devices import name_from_port

        sink = view.attach(name_from_port(port), pipeline, sink, port=port)
    run = run_port(port, pipeline, sink, options=PortOptions(speed=speed))
    try:
        summary = run_async(run if view is None else view.serve(run))
    finally:
        if publisher is not None:
            publisher.close()
    return 130 if summary is None else 0
