"""Training runs: data -> split -> method -> run directory, and evaluation on held-out subjects.

A **run directory** holds ``config.json`` (the :class:`TrainConfig`, class names, standardiser,
split and data), ``model.pt`` (the method's state dicts) and ``metrics.json`` (accuracy, macro F1,
confusion matrix on the split's test subjects when it has any, training time, history).
:func:`load_run` gives the fitted method back, e.g. for ``c3t-edge export``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from c3t_edge import __version__, checkpoint, distributed
from c3t_edge.data import Standardizer, TrialArrays, UmaSplit, load_trial_arrays, open_dataset
from c3t_edge.data.actions import UTD_MHAD_ACTIONS, action_numbers_for
from c3t_edge.data.splits import SPLITS
from c3t_edge.errors import C3TEdgeError
from c3t_edge.methods import Method, MethodData, TrainConfig, build_method
from c3t_edge.methods.base import WINDOW_CHUNK


def load_arrays(data_dir: str | Path | None, config: TrainConfig, progress: bool = False) -> TrialArrays:
    """Open the dataset, keep the classes of ``config.placement``, preprocess (cached), keep the IMU
    channels of ``config.channels`` (every window cut from the result has just those)."""
    dataset = open_dataset(data_dir)
    if config.placement != "all":
        if dataset.format != "utd-mhad":
            raise C3TEdgeError("--placement wrist|thigh applies to UTD-MHAD; use 'all' for your own data")
        names = tuple(UTD_MHAD_ACTIONS[a - 1] for a in action_numbers_for(config.placement))
        dataset = dataset.restrict_labels(names)
    method = build_method(config)
    camera = config.camera if method.needs_camera() else None
    try:
        channels = method.imu_channels()
    except ValueError as exc:
        raise C3TEdgeError(str(exc)) from None
    return load_trial_arrays(dataset, config.preprocess, camera, progress=progress).with_channels(channels)


def make_split(arrays: TrialArrays, split: str) -> UmaSplit:
    try:
        return SPLITS[split](arrays.subjects, arrays.trials)
    except KeyError:
        raise C3TEdgeError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}") from None


def method_data(method: Method, arrays: TrialArrays, split: UmaSplit, loader_workers: int = 0) -> MethodData:
    """The training side of ``split`` as ``method`` may see it (paired labels hidden unless supervised);
    ``loader_workers`` > 0 cut upcoming batches in DataLoader workers (:mod:`c3t_edge.data.loader`)."""
    if len(split.labelled_camera) == 0 or len(split.paired) == 0:
        raise C3TEdgeError(f"split {split.name!r} leaves no labelled or no paired trial in this dataset")
    return MethodData(arrays, split.labelled_camera, split.paired,
                      reveal_paired_labels=method.uses_imu_labels, loader_workers=loader_workers)


@dataclass
class Evaluation:
    """Test-set figures of one fitted method (IMU only, unless the method is ``camera``)."""

    accuracy: float
    macro_f1: float
    confusion: np.ndarray  #: (n_classes, n_classes), rows = true class
    n_windows: int
    predicted: np.ndarray | None = None  #: (n_windows,) predicted class per test window

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "n_windows": self.n_windows,
                "confusion": self.confusion.tolist()}


def scores(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> Evaluation:
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (true, predicted), 1)
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(0), 1)
    recall = tp / np.maximum(confusion.sum(1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    present = confusion.sum(1) > 0
    return Evaluation(float(tp.sum() / max(len(true), 1)), float(f1[present].mean()), confusion, len(true),
                      np.asarray(predicted))


def evaluate(method: Method, arrays: TrialArrays, index: np.ndarray, *, shift_s: float = 0.0,
             dilation: float = 1.0) -> Evaluation:
    """Accuracy of ``method`` on trials ``index`` (centred windows), optionally with the test IMU
    shifted by ``shift_s`` seconds or time-stretched by ``dilation``."""
    shift = int(round(shift_s * arrays.config.imu_rate_hz))
    index = np.asarray(index)
    predicted = []
    for start in range(0, max(len(index), 1), WINDOW_CHUNK):  # pieces: memory does not grow with the test set
        imu, cam = arrays.windows(index[start:start + WINDOW_CHUNK], shift_samples=shift, dilation=dilation,
                                  with_camera=method.predicts_from == "camera")
        predicted.append(method.predict_logits(method.standardizer_(imu), cam).argmax(1))
    return scores(arrays.labels[index], np.concatenate(predicted), len(arrays.class_names))


def fit_method(config: TrainConfig, arrays: TrialArrays, split: UmaSplit, progress: bool = False,
               loader_workers: int = 0) -> tuple[Method, float]:
    """Fit one method on the training side of ``split``; returns it and the training seconds."""
    method = build_method(config)
    data = method_data(method, arrays, split, loader_workers)
    start = time.perf_counter()
    try:
        method.fit(data, progress=progress)
    finally:
        data.close()
    return method, time.perf_counter() - start


def train_run(config: TrainConfig, data_dir: str | Path | None, out_dir: str | Path, *,
              split: str = "development", progress: bool = False, resume: bool = False,
              checkpoint_every: int = 100, loader_workers: int = 0) -> dict:
    """Train ``config`` on ``data_dir`` and write a run directory; returns its metrics.

    Checkpoints go to ``out_dir/checkpoint.pt`` every ``checkpoint_every`` optimiser steps and at the
    end of each stage (:mod:`c3t_edge.checkpoint`); ``resume`` continues from it (from the start when
    there is none) and it is removed once the run directory is complete. ``loader_workers``: see
    :func:`method_data`. Under ``torchrun`` every process
    trains (:mod:`c3t_edge.distributed`) and rank 0 alone preprocesses first, evaluates and writes.
    """
    context = distributed.current()
    if not context.is_main:
        distributed.barrier()  # rank 0 preprocesses (and fills the cache) first
    arrays = load_arrays(data_dir, config, progress and context.is_main)
    if context.is_main:
        distributed.barrier()
    uma_split = make_split(arrays, split)
    out = Path(out_dir)
    signature = {"train": config.to_json(), "split": split, "world_size": context.world_size,
                 "data": str(Path(data_dir).resolve()) if data_dir else None}
    with checkpoint.session(out / checkpoint.CHECKPOINT_NAME, checkpoint_every, signature, resume):
        method, seconds = fit_method(config, arrays, uma_split, progress and context.is_main, loader_workers)
    metrics: dict = {"method": config.method, "train_seconds": round(seconds, 1),
                     "parameters": method.parameters_count(), "history": method.history_,
                     "problems": arrays.problems}
    if not context.is_main:
        return metrics
    if len(uma_split.test):
        metrics["test"] = evaluate(method, arrays, uma_split.test).to_json()
    out.mkdir(parents=True, exist_ok=True)
    run_config = {
        "c3t_edge_version": __version__,
        "train": config.to_json(),
        "class_names": list(arrays.class_names),
        "standardizer": method.standardizer_.to_json(),
        "camera_step_shape": list(arrays.camera_shape) if arrays.camera_modality else None,
        "data": {"path": str(Path(data_dir).resolve()) if data_dir else None,
                 "split": split, "protocol": uma_split.description,
                 "train_subjects": list(uma_split.train_subjects),
                 "test_subjects": list(uma_split.test_subjects),
                 "labelled_trials": [arrays.names[i] for i in uma_split.labelled_camera],
                 "paired_trials": [arrays.names[i] for i in uma_split.paired]},
    }
    if context.distributed:
        run_config["processes"] = context.world_size
    (out / "config.json").write_text(json.dumps(run_config, indent=1))
    torch.save(method.state_dict(), out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / checkpoint.CHECKPOINT_NAME).unlink(missing_ok=True)
    return metrics


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    config: TrainConfig
    class_names: tuple[str, ...]
    method: Method
    info: dict


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory written by :func:`train_run` (clear error when it is not one)."""
    path = Path(run_dir)
    try:
        info = json.loads((path / "config.json").read_text())
        config = TrainConfig.from_json(info["train"])
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise C3TEdgeError(f"{path} is not a run directory: {Path(exc.filename).name} is missing") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise C3TEdgeError(f"{path}: unreadable run directory ({type(exc).__name__}: {exc})") from None
    method = build_method(config)
    shape = tuple(info["camera_step_shape"]) if info.get("camera_step_shape") else None
    method.build_modules(len(info["class_names"]), shape)
    method.load_state_dict(state)
    method.standardizer_ = Standardizer.from_json(info["standardizer"])
    return Run(path, config, tuple(info["class_names"]), method, info)
