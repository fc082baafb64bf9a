"""Data layer: dataset readers, preprocessing, on-disk cache and UMA splits.

Flow: :func:`open_dataset` (files) -> :func:`load_trial_arrays` (preprocessed whole trials, cached)
-> :class:`UmaSplit` (which trials play which role) -> :meth:`TrialArrays.windows` (model inputs).
"""

from c3t_edge.data.arrays import TrialArrays, load_trial_arrays
from c3t_edge.data.preprocess import PreprocessConfig, Standardizer
from c3t_edge.data.splits import UmaSplit, all_subjects_split, development_split
from c3t_edge.data.trials import Dataset, TrialRecord, default_data_dir, open_dataset

__all__ = [
    "Dataset", "PreprocessConfig", "Standardizer", "TrialArrays", "TrialRecord", "UmaSplit",
    "all_subjects_split", "default_data_dir", "development_split", "load_trial_arrays", "open_dataset",
]
