"""Event-level accuracy of the streaming runtime on sessions of real UTD-MHAD trials (needs the dataset).

For each chosen subject and trial number, a session of the 21 wrist actions (in a shuffled order) with
still rest between them (scripts/make_demo_recording.py's construction) is replayed through a bundle;
events are scored against the true actions (c3t_edge.runtime.sessions.score_events). Compare with
the bundle's window-level accuracy to see what streaming (unsegmented input, smoothing, the gate)
costs or gains.

    .venv/bin/python bench/bench_runtime_accuracy.py --model BUNDLE --subjects 2,4,6 [--rest 2] [--trials 1,2,3,4]

For held-out figures the bundle must not have been trained on those subjects, e.g.
    c3t-edge train --method supervised --placement wrist --split development --out runs/sup-dev
    c3t-edge export runs/sup-dev --out bundles/sup-dev            (trained on subjects 1, 3, 5)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np

from c3t_edge.data import open_dataset
from c3t_edge.runtime import (
    ActionEvent,
    GateConfig,
    ListSink,
    PipelineConfig,
    SmoothingConfig,
    StreamPipeline,
    load_model,
)
from c3t_edge.runtime.runner import PortOptions, run_port
from c3t_edge.runtime.sessions import score_events, wrist_session, write_session_recording


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--subjects", default="2,4,6")
    parser.add_argument("--trials", default="1,2,3,4")
    parser.add_argument("--rest", type=float, default=2.0, help="seconds of still wrist between actions")
    parser.add_argument("--data", default=None)
    parser.add_argument("--confidence", type=float, default=SmoothingConfig.enter)
    parser.add_argument("--release", type=float, default=SmoothingConfig.exit)
    parser.add_argument("--history", type=int, default=SmoothingConfig.history)
    parser.add_argument("--no-gate", action="store_true")
    parser.add_argument("--hop", type=int, default=None, help="samples between windows (default: the bundle's)")
    args = parser.parse_args()
    smoothing = SmoothingConfig(args.history, args.confidence, min(args.release, args.confidence))
    config = PipelineConfig(gate=GateConfig(enabled=not args.no_gate), smoothing=smoothing)
    model = load_model(args.model, precision=args.precision, hop=args.hop)
    trained = (model.spec.info.get("training") or {}).get("train_subjects")
    dataset = open_dataset(args.data)
    subjects = [int(s) for s in args.subjects.split(",")]
    totals = {"n_true": 0, "correct": 0, "detected": 0, "false_events": 0, "extra_events": 0}
    delays: list[float] = []
    confusions: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for subject in subjects:
            for trial in (int(t) for t in args.trials.split(",")):
                session = wrist_session(dataset, subject, trial, rest_s=args.rest)
                path = write_session_recording(session, Path(tmp) / f"s{subject}_t{trial}.c3trec")
                sink = ListSink()
                asyncio.run(run_port(f"replay://{path}", StreamPipeline(model, config=config), sink,
                                     options=PortOptions(speed=None), handle_signals=False))
                acts = [e for e in sink.events if isinstance(e, ActionEvent)]
                score = score_events(acts, session.truth, slack_s=model.spec.window_s)
                for key in totals:
                    totals[key] += getattr(score, key)
                delays += score.delays_s
                for m in score.matches:
                    if not m["correct"]:
                        got = m["events"][0]["label"] if m["events"] else "(missed)"
                        confusions[f"{m['true']} -> {got}"] = confusions.get(f"{m['true']} -> {got}", 0) + 1
                print(f"subject {subject} trial {trial}: {score.correct}/{score.n_true} correct, "
                      f"{score.false_events} during rest, {score.extra_events} repeated", flush=True)
    n = totals["n_true"]
    held = "held out" if trained and not set(subjects) & {int(s) for s in trained} else "NOT held out"
    print(f"\n{model.spec.name}, trained on subjects {trained}; sessions of subjects {subjects} ({held}), "
          f"rest {args.rest:g} s; confidence {args.confidence:g}, release {config.smoothing.exit:g}, "
          f"history {args.history}, hop {model.spec.hop}, gate {'off' if args.no_gate else 'on'}")
    print(f"event-level accuracy {totals['correct']}/{n} = {totals['correct'] / n:.1%}; detected "
          f"{totals['detected']}/{n}; events during rest {totals['false_events']}; repeated "
          f"{totals['extra_events']}; first-event time minus action end: median "
          f"{np.median(delays):+.2f} s, p90 {np.percentile(delays, 90):+.2f} s")
    top = sorted(confusions.items(), key=lambda kv: -kv[1])[:6]
    print("most frequent errors: " + ", ".join(f"{k} ({v})" for k, v in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
