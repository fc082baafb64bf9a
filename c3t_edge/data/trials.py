"""Trial records: what a dataset folder holds, read lazily, whatever its on-disk format.

A dataset is a list of :class:`TrialRecord` (one recorded repetition of one action by one subject,
with a file per modality) plus the ordered class labels. Every on-disk format is a
:class:`DatasetReader` that its own module registers with :func:`register_reader`: the official
UTD-MHAD layout (:mod:`c3t_edge.data.utd_mhad`) and the documented folder format for a team's own
recordings (:mod:`c3t_edge.data.folder`) are two such modules. :func:`open_dataset` asks each
registered reader, in registration order, whether it recognises the folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
        return reader_named(self.format).read_modality(path, modality)


@dataclass(frozen=True)
class DatasetReader:
    """One on-disk dataset format.

    ``name`` is what :attr:`Dataset.format` says for datasets it read. ``recognises(root)`` answers,
    cheaply (no array read), whether the folder ``root`` is in this format; ``scan(root)`` lists its
    trials as a :class:`Dataset` whose ``format`` is ``name`` (no array read; unreadable entries go
    to ``problems``); ``read_modality(path, modality)`` reads one file of one trial with the shapes
    and units of :data:`MODALITIES`, raising :class:`DataError` naming the file when it cannot.
    ``expects`` is a short phrase for the error when no trial is found ("a manifest.csv").
    """

    name: str
    recognises: Callable[[Path], bool]
    scan: Callable[[Path], Dataset]
    read_modality: Callable[[Path, str], np.ndarray]
    expects: str


#: Registered readers by name, in registration order (the order :func:`open_dataset` asks them).
READERS: dict[str, DatasetReader] = {}


def register_reader(reader: DatasetReader) -> DatasetReader:
    """Make ``reader`` known to :func:`open_dataset` (a reader module calls this once, at import).

    Registering a name again replaces that reader in place. Returns ``reader``.
    """
    READERS[reader.name] = reader
    return reader


def reader_named(name: str) -> DatasetReader:
    """The registered reader called ``name``; :class:`DataError` listing the known ones otherwise."""
    try:
        return READERS[name]
    except KeyError:
        raise DataError(f"unknown dataset format {name!r}: known formats are {', '.join(READERS)}") from None


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


def open_dataset(path: str | os.PathLike | None = None, *, format: str | None = None) -> Dataset:
    """Open a dataset folder with the first registered reader that recognises it (see :data:`READERS`).

    ``path=None`` uses :func:`default_data_dir`; ``format`` names the reader to use instead of asking
    each one. Raises :class:`DataError` with one clear line when the folder does not exist, no reader
    recognises it, or it holds no trial.
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
    if format is not None:
        reader: DatasetReader | None = reader_named(format)
    else:
        reader = next((r for r in READERS.values() if r.recognises(root)), None)
    dataset = reader.scan(root) if reader is not None else None
    if dataset is None or not dataset.trials:
        expected = " or ".join(r.expects for r in ([reader] if reader is not None else READERS.values()))
        raise DataError(f"no trials found in {root}: expected {expected} "
                        "(see the README's 'Bring your own recordings')")
    return dataset
