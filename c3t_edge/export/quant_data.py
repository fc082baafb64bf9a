"""The real windows an export needs: quantization data (INT8 activation ranges) and evaluation windows.

*Quantization data* are raw IMU windows of the trials whose IMU the run's model was trained on - the
centred window of each trial and copies shifted by :data:`QUANT_SHIFTS_S` - standardised by the
exporter before a converter sees them. Which trials:

- a method that reads IMU labels (``supervised``) trained on every training trial's IMU: all of them;
- a label-free method (``Method.uses_imu_labels`` False: ``st``, ``ca``, ``c3t``, ...) trained its IMU
  side on the **paired** trials only; the labelled camera set's IMU is never shown to it, so the
  quantization data are the paired trials alone.

Test subjects are never quantization data. Evaluation windows are the split's test trials (centred
windows); a split without test subjects (``all-subjects``) is evaluated on its training trials, and
says so (``held_out`` False).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c3t_edge.errors import DataError

#: Quantization windows are each trial's centred window moved by these offsets (seconds).
QUANT_SHIFTS_S = (-0.4, -0.2, 0.0, 0.2, 0.4)


@dataclass
class RealWindows:
    """Raw windows ``(n, W, C)`` float32 in the dataset's units, their labels ``(n,)``, the trial index
    each window was cut from ``(n,)``, and what they are."""

    windows: np.ndarray
    labels: np.ndarray
    trials: np.ndarray
    description: str
    subjects: tuple[int, ...]
    held_out: bool


def quantization_trials(method, split) -> tuple[np.ndarray, str]:
    """(trial indices whose IMU sets the INT8 ranges, what they are) for a fitted ``method`` on ``split``:
    the paired trials for a label-free method, every training trial for one that reads IMU labels."""
    if method.uses_imu_labels:
        return split.train, "training trials"
    return split.paired, "paired trials (the IMU this label-free method was trained on)"


def quantization_windows(method, arrays, split) -> RealWindows:
    """The quantization data of ``method`` fitted on ``split`` of ``arrays``: each chosen trial's
    centred window and its copies shifted by :data:`QUANT_SHIFTS_S` (raw units, not standardised)."""
    trials, what = quantization_trials(method, split)
    rate = arrays.config.imu_rate_hz
    shifted = [arrays.windows(trials, shift_samples=int(round(s * rate)), with_camera=False)[0]
               for s in QUANT_SHIFTS_S]
    copies = len(QUANT_SHIFTS_S)
    return RealWindows(np.concatenate(shifted), np.tile(arrays.labels[trials], copies), np.tile(trials, copies),
                       f"{what} of subjects {_subjects(split.train_subjects)}, centred windows shifted by "
                       f"{', '.join(f'{s:+g}' for s in QUANT_SHIFTS_S)} s",
                       tuple(split.train_subjects), False)


def evaluation_windows(arrays, split) -> RealWindows:
    """Centred windows of the split's test trials, or of its training trials when it has none."""
    if len(split.test):
        imu, _ = arrays.windows(split.test, with_camera=False)
        return RealWindows(imu, arrays.labels[split.test], split.test,
                           f"test subjects {_subjects(split.test_subjects)} (never seen in training), centred windows",
                           tuple(split.test_subjects), True)
    imu, _ = arrays.windows(split.train, with_camera=False)
    return RealWindows(imu, arrays.labels[split.train], split.train,
                       f"training subjects {_subjects(split.train_subjects)}, centred windows: this run has no "
                       "held-out subjects, so accuracies are training accuracies and only the parity figures and "
                       "the INT8-vs-FP32 difference are meaningful", tuple(split.train_subjects), False)


def real_windows(run, data_dir: str | Path | None) -> tuple[RealWindows, RealWindows]:
    """(quantization data, evaluation windows) of ``run`` from the dataset at ``data_dir`` (None: the
    default location), cut with the run's preprocessing and split."""
    from c3t_edge.training import load_arrays, make_split

    try:
        arrays = load_arrays(data_dir, run.config)
    except DataError as exc:
        raise DataError(f"INT8 quantization and parity need the run's real windows: {exc} "
                        "(pass --quant-data DIR)") from None
    if tuple(arrays.class_names) != tuple(run.class_names):
        raise DataError(f"the quantization data's classes differ from the run's ({len(arrays.class_names)} vs "
                        f"{len(run.class_names)})")
    split = make_split(arrays, run.info["data"]["split"])
    return quantization_windows(run.method, arrays, split), evaluation_windows(arrays, split)


def _subjects(subjects) -> str:
    return ",".join(str(s) for s in subjects)
