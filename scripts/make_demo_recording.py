#!/usr/bin/env python
"""Build the recording that `c3t-edge demo` replays (c3t_edge/assets/demo/) from real UTD-MHAD trials.

    python scripts/make_demo_recording.py [--data ../shared/datasets/utd-mhad] [--out c3t_edge/assets/demo]

A wrist session: 16 real trials of 16 different wrist actions (UTD-MHAD actions 1-21), the subjects
taken in turn from 1 to 6, each trial's samples unchanged, with 2 s of still wrist between them and
before/after (a slow drift between the poses that end one trial and start the next, plus sensor noise
whose per-channel std is measured on the still starts of the chosen trials; see
c3t_edge/runtime/sessions.py). The stream is encoded exactly as a device sends it (DEVICE_INFO, then
IMU_SAMPLES frames of 10 int16 samples, +-16 g / +-2000 deg/s) and stored in the recording format
(docs/RECORDING.md), one frame per record. Beside it, wrist_session.json holds the true actions with
their device times and where each trial comes from. Deterministic: the same data give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from c3t_edge.data import open_dataset  # noqa: E402
from c3t_edge.data.actions import UTD_MHAD_ACTIONS  # noqa: E402
from c3t_edge.runtime.sessions import compose_session, truth_document, write_session_recording  # noqa: E402

#: The 16 wrist actions of the demo (1-based UTD-MHAD numbers), in the order they are performed.
DEMO_ACTIONS = (1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 16, 18, 19, 21)
#: Trial number used for every action (UTD-MHAD has trials 1-4; where one is missing, the latest other).
DEMO_TRIAL = 4
REST_S = 2.0
SEED = 5


def pick_trials(dataset, actions=DEMO_ACTIONS, trial=DEMO_TRIAL, first_subject=1):
    """(label, samples, source, subject) for each action, subjects 1..6 in turn."""
    out = []
    subjects = dataset.subjects()
    for i, number in enumerate(actions):
        label = UTD_MHAD_ACTIONS[number - 1]
        subject = subjects[(first_subject - 1 + i) % len(subjects)]
        found = sorted((r for r in dataset.trials if r.label == label and r.subject == subject and r.has("imu")),
                       key=lambda r: (r.trial != trial, -r.trial))  # trial `trial`, else the latest one
        if not found:
            raise SystemExit(f"no trial of action {number} by subject {subject} in {dataset.root}")
        rec = found[0]
        out.append((label, dataset.read(rec, "imu"), f"a{number}_s{subject}_t{rec.trial}", subject))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="UTD-MHAD folder (default: ../shared/datasets/utd-mhad)")
    parser.add_argument("--out", default=str(ROOT / "c3t_edge" / "assets" / "demo"))
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    trials = pick_trials(dataset)
    session = compose_session(trials, rate_hz=50.0, rest_s=REST_S, seed=SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = write_session_recording(session, out / "wrist_session.c3trec",
                                  extra={"made_by": "scripts/make_demo_recording.py"})
    doc = truth_document(
        session,
        made_by="scripts/make_demo_recording.py",
        dataset="UTD-MHAD (Inertial, wrist actions 1-21)",
        subjects=sorted({s for *_, s in trials}),
        trial_number=DEMO_TRIAL,
        rest_s=REST_S,
        seed=SEED,
        rest="still wrist: smoothstep drift from the pose ending one trial to the pose starting the next, "
             "plus Gaussian noise with the per-channel std of the still starts of the chosen trials "
             "(25th percentile over trials of the std of their first 8 samples)",
        encoding="protocol v1 frames, 10 samples per frame, +-16 g, +-2000 deg/s, one frame per record",
    )
    (out / "wrist_session.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"{rec} ({rec.stat().st_size} bytes, {session.duration_s:.1f} s, {len(trials)} actions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
