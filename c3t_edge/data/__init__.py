"""Data layer: dataset readers, preprocessing, on-disk cache and UMA splits.

Flow: :func:`open_dataset` (files) -> :func:`load_trial_arrays` (preprocessed whole trials, cached)
-> :class:`UmaSplit` (which trials play which role) -> :meth:`TrialArrays.windows` (model inputs).
Dataset readers register themselves when imported (:func:`register_reader`); the two built-in ones
are imported here, ``folder`` first so a folder with a ``manifest.csv`` is read as one.
"""

# Imported for their registration, in this order (folder first):
from c3t_edge.data import folder, utd_mhad  # noqa: F401
from c3t_edge.data.arrays import TrialArrays, load_trial_arrays
from c3t_edge.data.preprocess import PreprocessConfig, Standardizer
from c3t_edge.data.splits import UmaSplit, all_subjects_split, development_split
from c3t_edge.data.trials import (
    Dataset,
    DatasetReader,
    TrialRecord,
    default_data_dir,
    open_dataset,
    register_reader,
)

__all__ = [
    "Dataset", "DatasetReader", "PreprocessConfig", "Standardizer", "TrialArrays", "TrialRecord", "UmaSplit",
    "all_subjects_split", "default_data_dir", "development_split", "load_trial_arrays", "open_dataset",
    "register_reader",
]
