"""Trial records: what a dataset folder holds, read lazily, whatever its on-disk format.

A dataset is a list of :class:`TrialRecord` (one recorded repetition of one action by one subject,
with a file per modality) plus the ordered class labels. Two formats are read by the same code path:
the official UTD-MHAD layout (:mod:`c3t_edge.data.utd_mhad`) and the documented folder format for a
team's own recordings (:mod:`c3t_edge.data.folder`). :func:`open_dataset` picks the format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from c3t_edge.errors import DataError

#: Modalities a trial can carry. ``imu`` is (T, 6) float in g and deg/s; ``depth`` (F, H, W) depth in
#: mm; ``skeleton`` (F, J, 3) joint positions in metres; ``rgb`` (F, H, W, 3) uint8.
MODALITIES = ("imu", "depth", "skeleton", "rgb")
CAMERA_MODALITIES = ("depth", "skeleton", "rgb")


@dataclass(frozen=True)
class TrialRecord:
    """One trial: identity, label and the file holding each modality (``None`` when absent)."""

    name: str
    subject: int
    trial: int
    label: str
    files: dict[str, Path] = field(default_factory=dict, compare=False, hash=False)
    imu_rate_hz: float = 50.0
    camera_fps: float | None = None

    def has(self, modality: str) -> bool:
        return modality in self.files


@dataclass
class Dataset:
    """The trials of a dataset folder, the labels in class-index order, and what could not be read."""

    root: Path
    format: str
    labels: tuple[str, ...]
    trials: list[TrialRecord]
    problems: list[str] = field(default_factory=list)

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def subjects(self) -> list[int]:
        return sorted({t.subject for t in self.trials})

    def restrict_labels(self, labels: tuple[str, ...]) -> Dataset:
        """The same dataset holding only trials of ``labels``, which become the class order."""
        keep = [t for t in self.trials if t.label in labels]
        return Dataset(self.root, self.format, tuple(labels), keep, list(self.problems))

    def read(self, record: TrialRecord, modality: str) -> np.ndarray:
        """Read one modality of one trial (see :data:`MODALITIES` for shapes and units).

        Raises :class:`DataError` naming the file when it is missing or unreadable.
        """
        path = record.files.get(modality)
        if path is None:
            raise DataError(f"trial {record.name} has no {modality} file")
        if self.format == "utd-mhad":
            from c3t_edge.data import utd_mhad

            return utd_mhad.read_modality(path, modality)
        from c3t_edge.data import folder

        return folder.read_modality(path, modality)


def default_data_dir() -> Path | None:
    """``$C3T_DATA`` if set, else ``../shared/datasets/utd-mhad`` beside the checkout when it exists."""
    env = os.environ.get("C3T_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "datasets" / "utd-mhad"
        if candidate.is_dir():
            return candidate
    cwd_candidate = Path.cwd().parent / "shared" / "datasets" / "utd-mhad"
    return cwd_candidate if cwd_candidate.is_dir() else None


def open_dataset(path: str | os.PathLike | None = None) -> Dataset:
    """Open a dataset folder: a ``manifest.csv`` folder or the official UTD-MHAD layout.

    ``path=None`` uses :func:`default_data_dir`. Raises :class:`DataError` with one clear line when the
    folder does not exist, is of neither format, or holds no readable trial.
    """
    if path is None:
        path = default_data_dir()
        if path is None:
            raise DataError("no dataset given: pass --data DIR or set C3T_DATA")
    root = Path(path)
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder")
    if (root / "manifest.csv").is_file():
        from c3t_edge.data import folder

        dataset = folder.scan(root)
    else:
        from c3t_edge.data import utd_mhad

        dataset = utd_mhad.scan(root)
    if not dataset.trials:
        raise DataError(
            f"no trials found in {root}: expected UTD-MHAD's Inertial/aA_sS_tT_inertial.mat files "
            "or a manifest.csv (see the README's 'Bring your own recordings')"
        )
    return dataset
