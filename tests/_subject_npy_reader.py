"""A small extra dataset reader, registered the way docs/EXTENDING.md says: one module, one registration.

Layout (made by tests/test_data.py from real UTD-MHAD trials)::

    root/
      SUBJECT_NPY        marker file: this folder is in this layout
      classes.txt        the labels, one per line, in class order
      rates.txt          "imu_rate_hz camera_fps"
      s<S>/<label index>_t<T>.imu.npy     (T, 6) float, acc g then gyro deg/s
      s<S>/<label index>_t<T>.depth.npy   (F, H, W) depth in mm               [optional]
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from c3t_edge.data import Dataset, DatasetReader, TrialRecord, register_reader
from c3t_edge.errors import DataError

NAME = "subject-npy"
_FILE = re.compile(r"^(\d+)_t(\d+)\.(imu|depth)\.npy$")


def recognises(root: Path) -> bool:
    return (root / "SUBJECT_NPY").is_file()


def scan(root: Path) -> Dataset:
    labels = tuple(line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip())
    imu_rate_hz, camera_fps = (float(x) for x in (root / "rates.txt").read_text().split())
    files: dict[tuple[int, int, int], dict[str, Path]] = {}
    problems: list[str] = []
    for path in sorted(root.glob("s*/*.npy")):
        match = _FILE.match(path.name)
        if match is None or not path.parent.name[1:].isdigit():
            problems.append(f"{path.relative_to(root)}: not s<S>/<label>_t<T>.<modality>.npy")
            continue
        key = (int(path.parent.name[1:]), int(match.group(1)), int(match.group(2)))
        files.setdefault(key, {})[match.group(3)] = path
    trials = [TrialRecord(name=f"s{s}-{label}-t{t}", subject=s, trial=t, label=labels[label], files=found,
                          imu_rate_hz=imu_rate_hz, camera_fps=camera_fps)
              for (s, label, t), found in sorted(files.items())]
    return Dataset(root=root, format=NAME, labels=labels, trials=trials, problems=problems)


def read_modality(path: Path, modality: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}") from None
    return array.astype(np.float32) if modality == "imu" else array


register_reader(DatasetReader(name=NAME, recognises=recognises, scan=scan, read_modality=read_modality,
                              expects="a SUBJECT_NPY marker file"))
