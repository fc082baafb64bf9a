"""Label-free model selection: choose a method's configuration without an IMU label or a test subject.

The UMA setting has no IMU labels, so a configuration cannot be chosen by IMU accuracy. Instead,
inside the *training* subjects of a split, each subject in turn is held out (leave-one-subject-out
folds); every candidate configuration is trained on the other training subjects and scored by its
**agreement with the camera teacher** on the held-out subject's paired clips: the fraction of clips
on which the IMU model (seeing only the IMU) predicts the class the camera teacher (trained on the
fold's labelled camera set, seeing only the camera) predicts. The fold subject's IMU accuracy is
computed beside it for the record and never used. The split's test subjects are not touched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from c3t_edge.data.arrays import TrialArrays
from c3t_edge.data.splits import UmaSplit, subject_split
from c3t_edge.methods import METHODS, Method, TrainConfig, apply_setting


@dataclass(frozen=True)
class Candidate:
    """One configuration in a method's search space: ``settings`` (``KEY=VALUE``) applied to its base."""

    settings: tuple[str, ...]
    config: TrainConfig

    @property
    def label(self) -> str:
        return ",".join(self.settings) or "defaults"


def candidates(base: TrainConfig, space: Sequence[Sequence[str]]) -> list[Candidate]:
    """The candidates of ``space`` (each a tuple of ``KEY=VALUE`` settings) applied to ``base``."""
    out = []
    for settings in space:
        config = replace(base, extra=dict(base.extra))
        for setting in settings:
            apply_setting(config, setting)
        out.append(Candidate(tuple(settings), config))
    return out


def inner_folds(arrays: TrialArrays, split: UmaSplit) -> list[UmaSplit]:
    """One split per training subject of ``split``: the other training subjects train (the same
    labelled/paired trial roles), and the held-out subject's *paired* trials are the fold's test set."""
    labelled_trials = tuple(int(t) for t in np.unique(arrays.trials[split.labelled_camera]))
    paired_trials = tuple(int(t) for t in np.unique(arrays.trials[split.paired]))
    folds = []
    for held_out in split.train_subjects:
        rest = tuple(s for s in split.train_subjects if s != held_out)
        fold = subject_split(arrays.subjects, arrays.trials, rest, (held_out,), labelled_trials, paired_trials,
                             name=f"{split.name}/without-{held_out}")
        folds.append(replace(fold, test=fold.test[np.isin(arrays.trials[fold.test], paired_trials)]))
    return folds


def teacher_agreement(student: Method, teacher: Method, arrays: TrialArrays, index: np.ndarray
                      ) -> tuple[float, float]:
    """(agreement, accuracy) of ``student`` on trials ``index`` (centred windows): agreement is the
    fraction of windows where its IMU prediction equals ``teacher``'s camera prediction (no label
    read); accuracy (IMU labels) is for the record only."""
    imu, camera = arrays.windows(index, with_camera=True)
    teacher_pred = teacher.predict_logits(imu, camera).argmax(1)
    student_pred = student.predict_logits(student.standardizer_(imu)).argmax(1)
    return float(np.mean(student_pred == teacher_pred)), float(np.mean(student_pred == arrays.labels[index]))


FitFn = Callable[[TrainConfig, UmaSplit], Method]


def score_configs(configs: dict[str, TrainConfig], teacher: TrainConfig, arrays: TrialArrays, split: UmaSplit,
                  fit: FitFn, *, seeds: Sequence[int] = (0,), log=sys.stderr) -> list[dict]:
    """Each configuration (label -> config) trained on every inner fold of ``split`` (and seed) and
    scored by agreement with the camera teacher ``teacher`` (a ``camera`` configuration) on the
    held-out subject's paired clips. ``fit(config, split)`` returns a fitted method. One row per
    label: mean agreement, the fold accuracy (IMU labels; for the record, never for choosing),
    per-fold agreements and the optimiser steps of one fit."""
    folds = inner_folds(arrays, split)
    rows = []
    for label, config in configs.items():
        agreements, accuracies, steps = [], [], 0
        for seed in seeds:
            for fold in folds:
                camera = fit(replace(teacher, seed=seed), fold)
                student = fit(replace(config, seed=seed), fold)
                steps = student.optimiser_steps()
                agreement, accuracy = teacher_agreement(student, camera, arrays, fold.test)
                agreements.append(agreement)
                accuracies.append(accuracy)
        rows.append({"label": label, "optimiser_steps": steps, "teacher_agreement": float(np.mean(agreements)),
                     "fold_accuracy_not_used": float(np.mean(accuracies)),
                     "per_fold_agreement": [round(a, 4) for a in agreements]})
        print(f"  score {label:<40} agreement {rows[-1]['teacher_agreement']:.3f}  "
              f"(fold accuracy, not used: {rows[-1]['fold_accuracy_not_used']:.3f})", file=log, flush=True)
    return rows


def select(name: str, base: TrainConfig, space: Sequence[Sequence[str]], teacher: TrainConfig,
           arrays: TrialArrays, split: UmaSplit, fit: FitFn, *, seeds: Sequence[int] = (0,), log=sys.stderr) -> dict:
    """Choose ``name``'s configuration from ``space`` on the inner folds of ``split`` by mean agreement
    with the camera teacher (:func:`score_configs`; ties: the earlier candidate). Returns the record
    stored in the results file (``chosen``, every candidate's scores, the budget)."""
    options = candidates(base, space)
    rows = score_configs({f"{name} {c.label}": c.config for c in options}, teacher, arrays, split, fit,
                         seeds=seeds, log=log)
    for row, candidate in zip(rows, options, strict=True):
        row.update(label=candidate.label, settings=list(candidate.settings))
    best = max(range(len(rows)), key=lambda i: (rows[i]["teacher_agreement"], -i))
    folds = inner_folds(arrays, split)
    return {"chosen": rows[best]["settings"], "chosen_label": rows[best]["label"], "candidates": rows,
            "folds": [f"train {','.join(map(str, f.train_subjects))}; score on subject {f.test_subjects[0]}'s "
                      f"paired trials ({len(f.test)} clips)" for f in folds],
            "budget": {"configurations": len(rows), "folds": len(folds), "seeds": list(seeds),
                       "fits": len(rows) * len(folds) * len(seeds),
                       "optimiser_steps": sum(r["optimiser_steps"] for r in rows) * len(folds) * len(seeds)},
            "score": "agreement of the IMU prediction with the camera teacher's prediction on the held-out "
                     "training subject's paired clips (no IMU label)"}


def needs_selection(method: str) -> bool:
    """Whether ``method`` is tuned label-free (it reads no IMU label and predicts from the IMU)."""
    cls = METHODS[method]
    return not cls.uses_imu_labels and cls.predicts_from == "imu"
