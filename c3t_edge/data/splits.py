"""Subject-wise splits of the UMA setting (see the README, "Results": the development protocol).

A split partitions trial indices into three disjoint sets: the **labelled camera** set (camera clips
with labels; their IMU is never used), the **unlabelled paired** set (camera + IMU of the same trials,
no labels) and the **test** set (IMU only, subjects never seen in training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UmaSplit:
    """Index arrays into a :class:`~c3t_edge.data.arrays.TrialArrays`, plus what produced them."""

    name: str
    description: str
    labelled_camera: np.ndarray
    paired: np.ndarray
    test: np.ndarray
    train_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]

    @property
    def train(self) -> np.ndarray:
        """All training trials (labelled camera + paired), e.g. for the supervised upper bound."""
        return np.sort(np.concatenate([self.labelled_camera, self.paired]))


DEVELOPMENT_DESCRIPTION = "train subjects 1,3,5; test 2,4,6; labelled camera trials 1-2; paired trials 3-4"


def subject_split(
    subjects: np.ndarray,
    trials: np.ndarray,
    train_subjects: tuple[int, ...],
    test_subjects: tuple[int, ...],
    labelled_trials: tuple[int, ...] = (1, 2),
    paired_trials: tuple[int, ...] = (3, 4),
    name: str = "custom",
) -> UmaSplit:
    """Split trials by subject, then the training subjects' trials by trial number."""
    overlap = set(train_subjects) & set(test_subjects)
    if overlap:
        raise ValueError(f"subjects {sorted(overlap)} are both train and test")
    if set(labelled_trials) & set(paired_trials):
        raise ValueError("a trial number cannot be both labelled and paired")
    train = np.isin(subjects, train_subjects)
    labelled = np.nonzero(train & np.isin(trials, labelled_trials))[0]
    paired = np.nonzero(train & np.isin(trials, paired_trials))[0]
    test = np.nonzero(np.isin(subjects, test_subjects))[0]
    description = (f"train subjects {','.join(map(str, train_subjects))}; "
                   f"test {','.join(map(str, test_subjects)) or 'none'}; "
                   f"labelled camera trials {_span(labelled_trials)}; paired trials {_span(paired_trials)}")
    return UmaSplit(name, description, labelled, paired, test, tuple(train_subjects), tuple(test_subjects))


def _span(values: tuple[int, ...]) -> str:
    values = tuple(sorted(values))
    if values == tuple(range(values[0], values[-1] + 1)) and len(values) > 1:
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def development_split(subjects: np.ndarray, trials: np.ndarray) -> UmaSplit:
    """The development protocol: train subjects 1, 3, 5; test 2, 4, 6; labelled trials 1-2; paired 3-4."""
    return subject_split(subjects, trials, (1, 3, 5), (2, 4, 6), name="development")


def swapped_split(subjects: np.ndarray, trials: np.ndarray) -> UmaSplit:
    """The development protocol with the subject roles swapped: train 2, 4, 6; test 1, 3, 5."""
    return subject_split(subjects, trials, (2, 4, 6), (1, 3, 5), name="swapped")


def all_subjects_split(subjects: np.ndarray, trials: np.ndarray) -> UmaSplit:
    """Shipped models: every available subject trains (labelled 1-2, paired 3-4); no test set."""
    everyone = tuple(int(s) for s in np.unique(subjects))
    return subject_split(subjects, trials, everyone, (), name="all-subjects")


SPLITS = {"development": development_split, "swapped": swapped_split, "all-subjects": all_subjects_split}
