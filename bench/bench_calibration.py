"""What a miscalibrated sensor costs in event-level accuracy, and what a recovered profile gives back.

Sessions of real UTD-MHAD wrist trials (bench_runtime_accuracy.py's construction) are replayed
through a bundle three ways: clean; miscalibrated (the device's axes, gains and offsets distorted
with the simulator's fault model); miscalibrated with the profile that `calibrate` recovers from a
calibration session (real sensor noise, same faults) passed as --calibration.

    .venv/bin/python bench/bench_calibration.py [--model default] [--subjects 2,4,6] [--trials 1,2,3,4]
        [--axes=y,-x,z] [--acc-scale 1.03,0.975,1.012] [--bias 0.06,-0.035,0.025,2.5,-1.8,0.9] [--drift-ppm 350]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np

from c3t_edge.calibration import invert_axes, parse_axes
from c3t_edge.calibration.estimate import estimate_profile, read_recording
from c3t_edge.calibration.synthetic import calibration_session, quiet_noise
from c3t_edge.data import open_dataset
from c3t_edge.recording import RecordingWriter
from c3t_edge.runtime import ActionEvent, ListSink, StreamPipeline, load_model
from c3t_edge.runtime.runner import PortOptions, run_port
from c3t_edge.runtime.sessions import (
    Session,
    score_events,
    session_stream,
    wrist_session,
    write_session_recording,
)


def miscalibrate(x: np.ndarray, axes: str, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The simulator's fault model (sim_sensor_measure): reported = gain * mapped(physical) + bias."""
    src, sign = parse_axes(axes)
    idx = np.concatenate((src, np.array(src) + 3))
    return (x[:, idx] * np.tile(sign, 2) * scale + bias).astype(np.float32)


def replay(path: Path, model, calibration=None) -> list[ActionEvent]:
    sink = ListSink()
    asyncio.run(run_port(f"replay://{path}", StreamPipeline(model, calibration=calibration), sink,
                         options=PortOptions(speed=None), handle_signals=False))
    return [e for e in sink.events if isinstance(e, ActionEvent)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--subjects", default="2,4,6")
    parser.add_argument("--trials", default="1,2,3,4")
    parser.add_argument("--rest", type=float, default=2.0)
    parser.add_argument("--data", default=None)
    parser.add_argument("--axes", default="y,-x,z", help="device axes as the simulator's --axes")
    parser.add_argument("--acc-scale", default="1.03,0.975,1.012")
    parser.add_argument("--bias", default="0.06,-0.035,0.025,2.5,-1.8,0.9")
    parser.add_argument("--drift-ppm", type=float, default=350.0, help="device clock error (> 0: fast)")
    args = parser.parse_args()
    scale = np.array([float(v) for v in args.acc_scale.split(",")] + [1.0, 1.0, 1.0])
    bias = np.array([float(v) for v in args.bias.split(",")])
    model = load_model(args.model)
    dataset = open_dataset(args.data)
    subjects = [int(s) for s in args.subjects.split(",")]
    trials = [int(t) for t in args.trials.split(",")]
    conditions = ("clean", "miscalibrated", "with profile")
    totals = {c: [0, 0, 0] for c in conditions}  # correct, n_true, false events
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the profile: a calibration session of real sensor noise through the same faults
        noise = quiet_noise([dataset.read(r, "imu") for r in dataset.trials[::4]])
        cal = calibration_session(noise, seed=11)
        cal_session = Session(miscalibrate(cal.samples, args.axes, scale, bias), 50.0, 0.0, [], np.zeros(6))
        cal_rec = tmp / "cal.c3trec"
        rng = np.random.default_rng(0)
        with RecordingWriter(cal_rec, port="bench", start_wall_time_s=1.7e9, overwrite=True,
                             fsync_interval_s=None) as w:  # received in real time from a drifting clock
            for t, data in session_stream(cal_session):
                late = rng.uniform(3e-4, 3e-3) + (rng.uniform(5e-3, 3e-2) if rng.random() < 0.1 else 0.0)
                w.write_chunk(data, 1.7e9 + t / (1 + args.drift_ppm * 1e-6) + late)
        profile = estimate_profile(read_recording(cal_rec))
        print(f"injected:  axes {args.axes} (profile axes {invert_axes(args.axes)}), acc bias {bias[:3]}, acc scale "
              f"{scale[:3]}, gyro bias {bias[3:]}, clock drift {args.drift_ppm:+g} ppm", flush=True)
        print(f"recovered: axes {profile.axes}, acc bias {np.round(profile.acc_bias_g, 4)}, acc scale "
              f"{np.round(profile.acc_scale, 4)}, gyro bias {np.round(profile.gyro_bias_dps, 2)}, clock drift "
              f"{profile.clock_drift_ppm:+.1f} ppm", flush=True)
        for subject in subjects:
            for trial in trials:
                session = wrist_session(dataset, subject, trial, rest_s=args.rest)
                clean = write_session_recording(session, tmp / "clean.c3trec")
                bad = Session(miscalibrate(session.samples, args.axes, scale, bias), session.rate_hz, session.t0_s,
                              session.truth, session.rest_noise_std)
                bad_rec = write_session_recording(bad, tmp / "bad.c3trec")
                runs = {"clean": replay(clean, model), "miscalibrated": replay(bad_rec, model),
                        "with profile": replay(bad_rec, model, profile)}
                line = []
                for c in conditions:
                    s = score_events(runs[c], session.truth, slack_s=model.spec.window_s)
                    totals[c][0] += s.correct
                    totals[c][1] += s.n_true
                    totals[c][2] += s.false_events
                    line.append(f"{c} {s.correct}/{s.n_true}")
                print(f"subject {subject} trial {trial}: " + ", ".join(line), flush=True)
    trained = (model.spec.info.get("training") or {}).get("train_subjects")
    print(f"\n{model.spec.name} (trained on subjects {trained}); sessions of subjects {subjects}, trials {trials}; "
          f"faults: axes {args.axes}, acc scale {args.acc_scale}, bias {args.bias}")
    for c in conditions:
        ok, n, false = totals[c]
        print(f"  {c:<14s} event-level accuracy {ok}/{n} = {ok / n:.1%}; events during rest {false}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
