"""The folder format for a team's own camera + IMU recordings.

Layout (see the README, "Bring your own recordings")::

    my-data/
      manifest.csv      one row per trial: file,subject,trial,label,imu_rate_hz,camera_fps
      labels.txt        optional: one label per line, the class order (default: sorted labels)
      trials/....npz    one file per trial, arrays named by modality:
                          imu       (T, 6) float, acc x/y/z in g then gyro x/y/z in deg/s
                          depth     (F, H, W) depth in mm (0 = no reading)     [optional]
                          skeleton  (F, J, 3) joint positions in metres         [optional]
                          rgb       (F, H, W, 3) uint8                          [optional]

The camera and IMU of a trial must cover the same time span (start and end together); their rates
may differ per trial, which is what ``imu_rate_hz`` and ``camera_fps`` say. Registered as the
``folder`` reader: a folder holding a ``manifest.csv`` is read with it.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from c3t_edge.data.trials import MODALITIES, Dataset, DatasetReader, TrialRecord, register_reader
from c3t_edge.errors import DataError

MANIFEST_COLUMNS = ("file", "subject", "trial", "label", "imu_rate_hz", "camera_fps")


def recognises(root: Path) -> bool:
    """True when ``root`` holds a ``manifest.csv``."""
    return (root / "manifest.csv").is_file()


def scan(root: Path) -> Dataset:
    """Read ``manifest.csv`` (and ``labels.txt``); check every row, report missing files by name."""
    manifest = root / "manifest.csv"
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{manifest}: missing column(s) {', '.join(missing)}")
        trials, problems = _scan_rows(root, reader)
    labels_file = root / "labels.txt"
    if labels_file.is_file():
        labels = tuple(x.strip() for x in labels_file.read_text().splitlines() if x.strip())
        unknown = sorted({t.label for t in trials} - set(labels))
        if unknown:
            raise DataError(f"{labels_file}: labels {unknown} used in manifest.csv are not listed")
    else:
        labels = tuple(sorted({t.label for t in trials}))
    return Dataset(root=root, format="folder", labels=labels, trials=trials, problems=problems)


def _scan_rows(root: Path, rows) -> tuple[list[TrialRecord], list[str]]:
    """Trial records of the manifest ``rows`` (read one at a time: memory holds the records, not the
    file) and the problems found."""
    trials, problems = [], []
    for line, row in enumerate(rows, start=2):
        path = root / row["file"]
        try:
            subject, trial = int(row["subject"]), int(row["trial"])
            imu_rate = float(row["imu_rate_hz"])
            camera_fps = float(row["camera_fps"]) if row["camera_fps"].strip() else None
        except ValueError as exc:
            problems.append(f"manifest.csv line {line}: {exc}")
            continue
        if not path.is_file():
            problems.append(f"manifest.csv line {line}: {row['file']} does not exist")
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                names = {Path(n).stem for n in archive.namelist()}
        except (zipfile.BadZipFile, OSError) as exc:
            problems.append(f"{row['file']}: not a readable .npz ({exc})")
            continue
        files = {m: path for m in MODALITIES if m in names}
        trials.append(TrialRecord(name=Path(row["file"]).stem, subject=subject, trial=trial,
                                  label=row["label"], files=files, imu_rate_hz=imu_rate,
                                  camera_fps=camera_fps))
    return trials, problems


def read_modality(path: Path, modality: str) -> np.ndarray:
    """One array of a trial's ``.npz`` (shapes and units in the module docstring)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            array = archive[modality]
    except Exception as exc:
        raise DataError(f"cannot read {modality} from {path.name}: {type(exc).__name__}: {exc}") from None
    if modality == "imu" and (array.ndim != 2 or array.shape[1] != 6):
        raise DataError(f"{path.name}: imu has shape {array.shape}, expected (T, 6)")
    return np.asarray(array, dtype=np.float32) if modality in ("imu", "skeleton") else array


register_reader(DatasetReader(
    name="folder", recognises=recognises, scan=scan, read_modality=read_modality, expects="a manifest.csv",
))


def write_trial(path: Path, **arrays: np.ndarray) -> None:
    """Write one trial file (``imu=..., depth=..., skeleton=...``) in this format."""
    unknown = set(arrays) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
