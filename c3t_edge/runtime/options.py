"""Command-line flags and set-up shared by ``stream``, ``replay`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from c3t_edge.backends import engine_names, precisions
from c3t_edge.errors import C3TEdgeError
from c3t_edge.protocol.text import ACC_UNITS, GYRO_UNITS
from c3t_edge.runtime.model import WindowModel, load_model
from c3t_edge.runtime.pipeline import PipelineConfig, StreamPipeline
from c3t_edge.runtime.signal import Calibration, IdentityCalibration
from c3t_edge.runtime.sinks import JsonSink, TextSink
from c3t_edge.runtime.smoothing import GateConfig, SmoothingConfig


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", metavar="BUNDLE",
                        help="model bundle directory, or 'default' for the one shipped with c3t-edge")
    parser.add_argument("--precision", choices=precisions(), default="fp32",
                        help="model file precision (default fp32)")
    parser.add_argument("--engine", choices=engine_names(), default="onnxruntime",
                        help="inference engine (default onnxruntime)")


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line (events, gaps, link changes, summary last)")
    parser.add_argument("--windows", action="store_true",
                        help="also report every window (top class, activity, smoothed state)")


def add_publish_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("publishing events (MQTT; needs the gateway extra)")
    g.add_argument("--publish", metavar="URL",
                   help="mqtt://[USER[:PASS]@]HOST[:PORT]/TOPIC or mqtts://...: each event as one JSON message on "
                        "TOPIC/<device>/events, the link state on TOPIC/<device>/status (retained; last will "
                        "'offline'); a password may come from $C3T_MQTT_PASSWORD instead")
    g.add_argument("--tls-ca", metavar="FILE",
                   help="CA certificate(s) the mqtts:// broker's certificate must be signed by (default: the system's)")
    g.add_argument("--publish-queue", type=int, default=10_000, metavar="N",
                   help="messages kept per device while the broker is away (default 10000); newer ones are "
                        "dropped and counted")


def publisher_from_args(args: argparse.Namespace, command: str):
    """The MQTT gateway for ``--publish`` (its broker checked), or None."""
    if args.publish is None:
        if args.tls_ca is not None:
            raise C3TEdgeError("--tls-ca is for --publish mqtts://...")
        return None
    from c3t_edge.gateway.mqtt import MqttGateway

    return MqttGateway.start(args.publish, tls_ca=args.tls_ca, queue_limit=args.publish_queue,
                             command=f"c3t-edge {command}")


def add_recognition_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("recognition")
    g.add_argument("--confidence", type=float, default=SmoothingConfig.enter, metavar="P",
                   help=f"smoothed score an action needs to be reported (default {SmoothingConfig.enter}); "
                        "below it: no action")
    g.add_argument("--release", type=float, default=SmoothingConfig.exit, metavar="P",
                   help=f"score below which a reported action ends (hysteresis; default {SmoothingConfig.exit})")
    g.add_argument("--history", type=int, default=SmoothingConfig.history, metavar="N",
                   help=f"windows averaged for smoothing (default {SmoothingConfig.history})")
    g.add_argument("--hop", type=int, default=None, metavar="N",
                   help="samples between windows (default: the bundle's suggested hop)")
    g.add_argument("--no-gate", action="store_true",
                   help="classify still windows too (by default windows without motion are 'no action')")


def add_format_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--text", action="store_const", const="text", dest="format",
                   help="the device prints text lines (Edge Impulse data forwarder); default: detected")
    g.add_argument("--binary", action="store_const", const="binary", dest="format",
                   help="the device sends protocol frames; default: detected")
    parser.set_defaults(format="auto")
    t = parser.add_argument_group("text-mode devices (Edge Impulse data forwarder lines)")
    t.add_argument("--rate", type=float, metavar="HZ",
                   help="sample rate of a text-mode device (default: inferred from 1 s of line timing, as the "
                        "forwarder does; like its --frequency)")
    t.add_argument("--acc-units", choices=ACC_UNITS, default="auto",
                   help="unit the device prints acceleration in (default auto: m/s² when gravity reads near "
                        "9.8, g near 1); converted to g")
    t.add_argument("--gyro-units", choices=GYRO_UNITS, default=None,
                   help="unit the device prints rotation in (default: deg/s, with a notice if the values look "
                        "like rad/s); rad/s is converted to deg/s")


def decoder_from_args(args: argparse.Namespace, model: WindowModel):
    """The decoder for ``--text``/``--binary``/detection; for text: ``--rate`` (None: inferred from
    line timing, snapped to the model's rate), ``--acc-units``, ``--gyro-units``."""
    from c3t_edge.protocol import make_decoder
    from c3t_edge.runtime.autodetect import AutoDecoder

    if args.rate is not None and (args.format == "binary" or not args.rate > 0):
        raise C3TEdgeError("--rate is for text-mode devices and must be > 0 (binary devices declare their rate)")
    if args.format == "binary":
        return make_decoder("binary")
    text = {"n_channels": len(model.spec.channels), "acc_unit": args.acc_units, "gyro_unit": args.gyro_units,
            "rate_hint_hz": model.spec.sample_rate_hz}
    if args.format == "text":
        return make_decoder("text", sample_rate_hz=args.rate, **text)
    return AutoDecoder(args.rate, **text)


def load_calibration(path: str | None) -> Calibration:
    """The calibration stage for ``--calibration``: identity when none is given."""
    if path is None:
        return IdentityCalibration()
    from c3t_edge.calibration import load_profile

    return load_profile(path)  # a CalibrationError (one line) when the file cannot be used


def model_from_args(args: argparse.Namespace) -> WindowModel:
    if args.hop is not None and args.hop < 1:
        raise C3TEdgeError(f"--hop must be >= 1 (got {args.hop})")
    return load_model(args.model, precision=args.precision, engine=args.engine, hop=args.hop)


def pipeline_from_args(args: argparse.Namespace, model: WindowModel, *, decoder=None,
                       calibration: Calibration | None = None) -> StreamPipeline:
    try:
        smoothing = SmoothingConfig(history=args.history, enter=args.confidence, exit=args.release)
    except ValueError as exc:
        raise C3TEdgeError(f"recognition flags: {exc}") from None
    config = PipelineConfig(gate=GateConfig(enabled=not args.no_gate), smoothing=smoothing,
                            report_windows=args.windows)
    return StreamPipeline(model, calibration=calibration, config=config, decoder=decoder)


def sink_from_args(args: argparse.Namespace, device: str | None = None):
    """The printing sink; ``device``: tag every line with that name (several devices in one run)."""
    return JsonSink(sys.stdout, device) if args.json else TextSink(sys.stdout, sys.stderr, device)


def run_async(coro):
    """``asyncio.run`` with Ctrl-C outside the loop (before the handlers are installed) as exit 130."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return None
