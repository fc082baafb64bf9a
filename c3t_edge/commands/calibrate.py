"""Estimate a sensor calibration profile from a calibration session (calibration/README.md).

--recording FILE: a session recorded with `c3t-edge record` (or by --port --save-recording);
segmented automatically (six still faces, then three turns about the model's +x, +y, +z).
--port PORT: the guided procedure, live: the steps are printed on stderr and each one advances
by itself when the device has been held as asked.

The profile (JSON) corrects accelerometer bias and scale, gyro bias and the axis mapping; it also
records the device clock drift when the session was received in real time. Use it with
`c3t-edge stream|replay --calibration PROFILE`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from c3t_edge.errors import CalibrationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--port", metavar="PORT",
                     help="run the guided procedure live on a device: serial device, pyserial URL, "
                          "ble://NAME-or-ADDRESS (or replay://FILE, paced)")
    src.add_argument("--recording", metavar="FILE", help="estimate from a recorded calibration session")
    parser.add_argument("--out", required=True, metavar="PROFILE", help="profile to write, e.g. calibration/NAME.json")
    parser.add_argument("--mounting", metavar="NAME", help="a name for how the device is worn (stored in the profile)")
    parser.add_argument("--overwrite", action="store_true", help="replace PROFILE if it exists")
    parser.add_argument("--json", action="store_true", help="print the profile as one JSON line on stdout")
    parser.add_argument("--text", action="store_true",
                        help="the device prints text lines (Edge Impulse data forwarder: ax,ay,az,gx,gy,gz) "
                             "instead of protocol frames; needs --rate (no clock drift: text carries no time)")
    parser.add_argument("--rate", type=float, metavar="HZ", help="sample rate of a text-mode device")
    live = parser.add_argument_group("guided procedure (--port)")
    live.add_argument("--baud", type=int, default=115200, metavar="N", help="serial baud rate (default 115200)")
    live.add_argument("--save-recording", metavar="FILE", help="also store the raw session (a recording)")
    live.add_argument("--speed", type=float, default=1.0, metavar="X",
                      help="replay:// ports only: play the recording X times faster (default 1)")
    live.add_argument("--step-timeout", type=float, default=90.0, metavar="S",
                      help="give up when a step is not done within S seconds (default 90)")


def run(args: argparse.Namespace) -> int:
    from c3t_edge.calibration.estimate import estimate_profile, read_recording

    if not args.overwrite and os.path.exists(args.out):
        raise CalibrationError(f"{args.out} already exists (use --overwrite to replace it)")
    if args.text != (args.rate is not None):
        raise CalibrationError("--text and --rate HZ go together (a text-mode device does not declare its rate)")
    if args.recording is not None:
        session = read_recording(args.recording, text_rate_hz=args.rate)
    else:
        if not args.step_timeout > 0:
            raise CalibrationError(f"--step-timeout must be > 0 (got {args.step_timeout:g})")
        from c3t_edge.calibration.procedure import run_guided

        if not args.speed > 0:
            raise CalibrationError(f"--speed must be > 0 (got {args.speed:g})")
        session = run_guided(args.port, baudrate=args.baud, step_timeout_s=args.step_timeout,
                             save_recording=args.save_recording, speed=args.speed,
                             text_rate_hz=args.rate)
    profile = estimate_profile(session, mounting=args.mounting)
    profile.save(args.out)
    if args.json:
        print(json.dumps(profile.as_dict()), flush=True)
    else:
        print(describe(profile), file=sys.stderr, flush=True)
    return 0


def describe(profile) -> str:
    def v(x, fmt):
        return "(" + ", ".join(format(float(a), fmt) for a in x) + ")"

    drift = profile.clock_drift_ppm
    reason = profile.quality.get("clock", {}).get("reason", "")
    lines = [
        f"calibrate: profile written to {profile.path}",
        f"  device      {profile.device_name or '(unnamed)'} id {profile.as_dict()['device']['device_id']}",
        f"  axes        model x,y,z = device {','.join(profile.axes)}",
        f"  acc bias    {v(profile.acc_bias_g, '+.4f')} g, scale {v(profile.acc_scale, '.4f')}",
        f"  gyro bias   {v(profile.gyro_bias_dps, '+.2f')} deg/s",
        "  clock       " + (f"{drift:+.1f} ppm (device clock {'fast' if drift > 0 else 'slow'})"
                            if drift is not None else f"not measured: {reason}"),
        f"  |g| error   {profile.quality['gravity_norm_error_g_rms']:.4f} g rms after "
        f"({profile.quality['gravity_norm_error_g_rms_before']:.4f} before)",
    ]
    return "\n".join(lines)
