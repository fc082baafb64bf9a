"""The whole story on the embedded defaults: a shipped recording through the default bundle, no hardware.

The recording (c3t_edge/assets/demo/, made by scripts/make_demo_recording.py) is a wrist session of
16 real UTD-MHAD trials (16 wrist actions, subjects 1-6) with still pauses between them, encoded
exactly as a device sends it. It is replayed through the same pipeline as `c3t-edge stream` and the
recognised actions are printed beside the true ones, with event-level accuracy and timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from c3t_edge.errors import C3TEdgeError
from c3t_edge.runtime.options import (
    add_model_flags,
    add_recognition_flags,
    model_from_args,
    pipeline_from_args,
    run_async,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo"
RECORDING = ASSETS / "wrist_session.c3trec"
TRUTH = ASSETS / "wrist_session.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    parser.add_argument("--speed", type=float, default=None, metavar="X",
                        help="replay at X times real time (default: as fast as possible; 1 = as it happened)")
    parser.add_argument("--json", action="store_true",
                        help="events as JSON lines, then the summary and a 'demo' object with the scoring")
    parser.add_argument("--windows", action="store_true", help="also report every window")
    add_recognition_flags(parser)


def _training_note(meta: dict, subjects: list[int]) -> str:
    training = meta.get("training") or {}
    trained_on = training.get("train_subjects") or training.get("subjects") or meta.get("subjects")
    if trained_on is None:
        return ("the bundle does not say which subjects it was trained on, so these trials may not be "
                "held out: read this as a demonstration, not as an accuracy figure")
    trained_on = sorted(int(s) for s in trained_on)
    overlap = sorted(set(subjects) & set(trained_on))
    if not overlap:
        return (f"the bundle was trained on subjects {trained_on}; the demo's subjects {subjects} are held out "
                "(never seen in training)")
    return (f"the bundle was trained on subjects {trained_on}, which include the demo's subjects {overlap}: "
            "these trials are NOT held out (in-sample), so this shows the runtime working end to end, not how "
            "well the model generalises to a new wearer; held-out accuracy comes from `c3t-edge evaluate` "
            "(development protocol: train subjects 1,3,5, test 2,4,6)")


def describe_delay(median_s: float) -> str:
    """The median delay from an action's end to its first event, in words that are true whichever
    its sign (a negative delay: the event came before the action ended)."""
    when = f"{median_s:.2f} s after" if median_s >= 0 else f"{-median_s:.2f} s before"
    return f"the first event came a median {when} the action's end"


def run(args: argparse.Namespace) -> int:
    from c3t_edge.runtime.events import ActionEvent, WindowResult
    from c3t_edge.runtime.runner import PortOptions, run_port
    from c3t_edge.runtime.sessions import score_events
    from c3t_edge.runtime.sinks import JsonSink, ListSink, TextSink

    if args.speed is not None and not args.speed > 0:
        raise C3TEdgeError(f"--speed must be > 0 (got {args.speed:g})")
    if not RECORDING.is_file() or not TRUTH.is_file():
        raise C3TEdgeError(f"the demo recording is missing from the installation ({ASSETS})")
    doc = json.loads(TRUTH.read_text(encoding="utf-8"))
    from c3t_edge.runtime.sessions import TruthSegment

    truth = [TruthSegment(**a) for a in doc["actions"]]
    model = model_from_args(args)
    pipeline = pipeline_from_args(args, model)
    collected = ListSink()
    printer = JsonSink(sys.stdout) if args.json else TextSink(sys.stdout, sys.stderr)
    meta = dict(model.spec.info)
    note = _training_note(meta, sorted({s.subject for s in truth if s.subject is not None}))

    slack = model.spec.window_s

    def truth_at(t: float) -> str:
        inside = [s for s in truth if s.start_s <= t <= s.end_s + slack]
        if not inside:
            return "(rest)"
        seg = min(inside, key=lambda s: abs(t - (s.start_s + s.end_s) / 2))
        return f"{seg.label} ({seg.start_s:.1f}-{seg.end_s:.1f} s)"

    def sink(event) -> None:
        collected(event)
        if args.json or isinstance(event, WindowResult):
            printer(event)
        elif isinstance(event, ActionEvent) and event.label is not None:
            mark = "ok" if truth_at(event.t).startswith(event.label + " (") else "  "
            print(f"   {event.t:8.2f}        {event.label:<28s} {event.confidence:4.2f}  {mark} "
                  f"{truth_at(event.t)}", flush=True)

    sink.summary = collected.summary  # type: ignore[attr-defined]
    if not args.json:
        print(f"c3t-edge demo: {len(truth)} real UTD-MHAD wrist trials (subjects "
              f"{','.join(map(str, doc.get('subjects', [])))}) with {doc.get('rest_s', 2):g} s of still wrist "
              f"between them, {doc['duration_s']:.0f} s in all, replayed through the {model.spec.name}.")
        print(f"Note: {note}.\n")
        print("   time (device s)  recognised                   score     true action at that time")
    run_async(run_port("replay://" + str(RECORDING), pipeline, sink,
                       options=PortOptions(speed=args.speed), handle_signals=True))
    summary = collected.final
    score = score_events(collected.actions(), truth, slack_s=slack)
    if args.json:
        if summary is not None:
            printer(summary)
        print(json.dumps({"type": "demo", "truth": doc["actions"], "score": score.as_dict(),
                          "slack_s": slack, "note": note}), flush=True)
        return 0
    print()
    print("true actions and what was recognised for each:")
    for i, m in enumerate(score.matches, 1):
        got = ", ".join(f"{e['label']} @ {e['t']:.1f} s" for e in m["events"]) or "(missed)"
        mark = "ok" if m["correct"] else "--"
        print(f"  {i:2d}. {m['true']:<32s} {m['start_s']:6.1f}-{m['end_s']:5.1f} s  {mark}  {got}")
    print()
    delay = f"; {describe_delay(score.as_dict()['delay_median_s'])}" if score.delays_s else ""
    print(f"events: {score.correct}/{score.n_true} actions recognised correctly (event-level accuracy "
          f"{score.accuracy:.0%}), {score.detected - score.correct} wrong, {score.n_true - score.detected} "
          f"missed, {score.false_events} events during rest, {score.extra_events} repeated{delay}.")
    if summary is not None:
        print(summary.text())
    if "NOT held out" in note:
        print("(in-sample: these trials were part of the bundle's training data; see the note at the top)")
    return 0
