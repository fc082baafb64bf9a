"""Export a training run's IMU recogniser as a model bundle (the torch side; see :mod:`c3t_edge.bundle`).

:func:`export_bundle` writes, into a fresh directory:

- ``model.onnx`` (FP32, opset 18, dynamic batch) from :mod:`~c3t_edge.export.to_onnx`;
- ``model.int8.onnx`` (static INT8, QDQ, per-channel), calibrated on real windows of the run's
  *training* trials (:mod:`~c3t_edge.export.int8`);
- ``model.tflite`` and ``model.int8.tflite`` (full-integer) through litert-torch when the ``tflite``
  extra is installed (:mod:`~c3t_edge.export.to_tflite`); without it they are listed under
  ``missing_files`` with the reason;
- with ``target="mcu"``, ``mcu/``: the INT8 TFLite file as a C array, the TFLite Micro op list and an
  arena estimate (:mod:`~c3t_edge.export.mcu`);
- ``metadata.json`` last (a bundle without it is not a bundle), holding every file's sha256 and the
  parity section: for each file, max |logit - torch logit|, top-1 agreement with torch and accuracy
  on the run's test windows (training-subject windows for a run without test subjects, flagged).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c3t_edge import __version__
from c3t_edge.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    METADATA_FILE,
    MODEL_FILES,
    load_bundle,
    sha256_file,
)
from c3t_edge.data.actions import IMU_CHANNELS, IMU_UNITS
from c3t_edge.errors import BundleError, C3TEdgeError, DataError, MissingDependencyError

#: Suggested hop between streaming windows: 25 samples = 0.5 s at 50 Hz.
DEFAULT_HOP_S = 0.5
#: Training windows for INT8 calibration are the centred window moved by these offsets (seconds).
CALIBRATION_SHIFTS_S = (-0.4, -0.2, 0.0, 0.2, 0.4)


@dataclass
class RealWindows:
    """Real raw windows (n, W, C) with labels, and what they are."""

    windows: np.ndarray
    labels: np.ndarray
    description: str
    subjects: tuple[int, ...]
    held_out: bool


def real_windows(run, data_dir: str | Path | None) -> tuple[RealWindows, RealWindows]:
    """(calibration windows from the training trials, evaluation windows) for ``run``.

    Calibration: every training trial's centred window and shifted copies (``CALIBRATION_SHIFTS_S``),
    never a test subject. Evaluation: the split's test trials (centred windows); a split without test
    subjects (``all-subjects``) is evaluated on its training trials, and says so (``held_out`` False).
    """
    from c3t_edge.training import load_arrays, make_split

    try:
        arrays = load_arrays(data_dir, run.config)
    except DataError as exc:
        raise DataError(f"INT8 calibration and parity need the run's real windows: {exc} "
                        "(pass --calibration-data DIR)") from None
    split = make_split(arrays, run.info["data"]["split"])
    if tuple(arrays.class_names) != tuple(run.class_names):
        raise DataError(f"the calibration data's classes differ from the run's ({len(arrays.class_names)} vs "
                        f"{len(run.class_names)})")
    train = split.train
    rate = arrays.config.imu_rate_hz
    cal = [arrays.windows(train, shift_samples=int(round(s * rate)), with_camera=False)[0]
           for s in CALIBRATION_SHIFTS_S]
    calibration = RealWindows(np.concatenate(cal), np.tile(arrays.labels[train], len(cal)),
                              f"training trials of subjects {_subjects(split.train_subjects)}, centred windows "
                              f"shifted by {', '.join(f'{s:+g}' for s in CALIBRATION_SHIFTS_S)} s",
                              tuple(split.train_subjects), False)
    if len(split.test):
        imu, _ = arrays.windows(split.test, with_camera=False)
        evaluation = RealWindows(imu, arrays.labels[split.test],
                                 f"test subjects {_subjects(split.test_subjects)} (never seen in training), "
                                 "centred windows", tuple(split.test_subjects), True)
    else:
        imu, _ = arrays.windows(train, with_camera=False)
        evaluation = RealWindows(imu, arrays.labels[train],
                                 f"training subjects {_subjects(split.train_subjects)}, centred windows: this run "
                                 "has no held-out subjects, so accuracies are training accuracies and only the "
                                 "parity figures and the INT8-vs-FP32 difference are meaningful",
                                 tuple(split.train_subjects), False)
    return calibration, evaluation


def _subjects(subjects) -> str:
    return ",".join(str(s) for s in subjects)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def export_bundle(run_dir: str | Path, out_dir: str | Path, *, calibration_data: str | Path | None = None,
                  engines: tuple[str, ...] = ("onnxruntime", "tflite"), target: str | None = None,
                  hop_samples: int | None = None, overwrite: bool = False,
                  held_out_reference: str | Path | None = None, note: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Export run ``run_dir`` into bundle ``out_dir``; returns the metadata written.

    ``calibration_data`` overrides the run's dataset folder (INT8 calibration on its training
    subjects, parity on its test subjects). ``engines`` limits the files written (ONNX is always
    written: it is the reference file of a bundle). ``target="mcu"`` also writes ``mcu/``.

    ``held_out_reference`` is a bundle exported from the same recipe trained on a split with test
    subjects: for a run without held-out subjects (``all-subjects``, i.e. a model to ship) its
    accuracy and parity on unseen subjects are copied into ``development_estimate``. ``note`` is free
    text stored in the metadata (e.g. why this model is the default).
    """
    import torch

    from c3t_edge.export.int8 import quantize_int8
    from c3t_edge.export.to_onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
    from c3t_edge.training import load_run

    say = log or (lambda _msg: None)
    if target not in (None, "mcu"):
        raise C3TEdgeError(f"unknown target {target!r}: the only target is 'mcu'")
    reference = _reference_estimate(held_out_reference) if held_out_reference else None
    if target == "mcu" and ("tflite" not in engines or importlib.util.find_spec("litert_torch") is None):
        raise MissingDependencyError("litert-torch", "tflite", "--target mcu (an INT8 TFLite model)")
    run = load_run(run_dir)
    try:
        model = run.method.imu_recognizer()
    except ValueError:
        raise BundleError(f"{run_dir}: a {run.config.method!r} run has no IMU model to export "
                          "(the camera method predicts from camera clips)") from None
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite
                                              and not (out / METADATA_FILE).exists())):
        raise BundleError(f"{out} exists and is not a bundle: choose an empty or new directory")
    pre = run.config.preprocess
    window, n_ch = pre.window_samples, len(IMU_CHANNELS)
    data_dir = calibration_data or run.info["data"].get("path")
    say(f"reading real windows from {data_dir or 'the default dataset'}")
    calibration, evaluation = real_windows(run, data_dir)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    standardize = run.method.standardizer_
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with torch.no_grad():
        torch_logits = run.method.predict_logits(standardize(evaluation.windows))

    say("exporting model.onnx (FP32)")
    export_onnx(model, out / MODEL_FILES[("onnxruntime", "fp32")], window, n_ch)
    say(f"quantizing model.int8.onnx (static INT8, QDQ, per-channel; {len(calibration.windows)} calibration windows)")
    quantize_int8(out / MODEL_FILES[("onnxruntime", "fp32")], out / MODEL_FILES[("onnxruntime", "int8")],
                  standardize(calibration.windows))

    missing: dict[str, str] = {}
    tflite_extra: dict = {}
    if "tflite" in engines:
        try:
            from c3t_edge.export.to_tflite import export_tflite

            say("converting model.tflite and model.int8.tflite (litert-torch)")
            tflite_extra = export_tflite(model, out / MODEL_FILES[("tflite", "fp32")],
                                         out / MODEL_FILES[("tflite", "int8")], standardize(calibration.windows))
        except MissingDependencyError as exc:
            print(f"warning: {exc}; the bundle has ONNX files only", file=sys.stderr)
            for precision in ("fp32", "int8"):
                missing[MODEL_FILES[("tflite", precision)]] = f"not exported: {exc}"
    else:
        for precision in ("fp32", "int8"):
            missing[MODEL_FILES[("tflite", precision)]] = "not exported (--engine onnxruntime)"

    files: dict[str, dict] = {}
    for (engine, precision), name in MODEL_FILES.items():
        path = out / name
        if path.exists():
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "engine": engine,
                           "precision": precision, **tflite_extra.get(name, {})}
    if files.get("model.onnx"):
        files["model.onnx"]["opset"] = OPSET

    labels = list(run.class_names)
    hop = hop_samples or int(round(DEFAULT_HOP_S * pre.imu_rate_hz))
    meta: dict = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "labels": labels,
        "placement": run.config.placement,
        "sensor_position": {"wrist": "right wrist", "thigh": "right thigh"}.get(run.config.placement,
                                                                               "right wrist or right thigh"),
        "sample_rate_hz": float(pre.imu_rate_hz),
        "window_samples": window,
        "window_s": window / pre.imu_rate_hz,
        "hop_samples": hop,
        "channels": list(IMU_CHANNELS),
        "units": list(IMU_UNITS),
        "clip_fit": {"crop": "centre", "pad": "edge",
                     "rule": f"a clip longer than {window} samples is centre-cropped; a shorter one is centred and "
                             "padded by repeating its first and last sample"},
        "input": {"name": INPUT_NAME, "layout": "NWC", "shape": ["n", window, n_ch], "dtype": "float32",
                  "meaning": "IMU windows standardised per channel: (x - normalization.mean) / normalization.std, "
                             "x in the units above, channels in the order above"},
        "output": {"name": OUTPUT_NAME, "shape": ["n", len(labels)], "dtype": "float32",
                   "meaning": "logits in label order; softmax gives class probabilities"},
        "normalization": {"kind": "standardize", "applied": "outside",
                          "mean": [float(v) for v in standardize.mean],
                          "std": [float(v) for v in standardize.std],
                          "note": "applied by the runtime before the model, not inside the graph"},
        "files": files,
        "missing_files": missing,
        "training": _training_section(run),
        "calibration": {"windows": int(len(calibration.windows)), "data": calibration.description,
                        "onnx": "onnxruntime quantize_static, QDQ, MinMax ranges, per-channel symmetric int8 "
                                "weights, symmetric int8 activations",
                        "tflite": "PT2E static quantization (litert-torch), per-channel symmetric int8 weights, "
                                  "int8 activations, int8 input and output"},
    }
    (out / "metadata.json").write_text(json.dumps(meta, indent=1))  # provisional, so load_bundle can read it

    say(f"measuring parity on {len(evaluation.windows)} windows")
    truth = evaluation.labels
    parity: dict = {}
    accuracy: dict = {"torch": _accuracy(torch_logits, truth)}
    for name, entry in files.items():
        bundle = load_bundle(out, precision=entry["precision"], engine=entry["engine"], threads=None)
        logits = bundle.predict_logits(evaluation.windows)
        parity[name] = {
            "max_abs_logit_diff": float(np.max(np.abs(logits - torch_logits))),
            "top1_agreement": float(np.mean(logits.argmax(1) == torch_logits.argmax(1))),
            "accuracy": _accuracy(logits, truth),
        }
        accuracy[name] = parity[name]["accuracy"]
    for engine in ("onnxruntime", "tflite"):
        fp32, int8 = MODEL_FILES[(engine, "fp32")], MODEL_FILES[(engine, "int8")]
        if fp32 in accuracy and int8 in accuracy:
            accuracy[f"{engine}_int8_minus_fp32_points"] = round(100 * (accuracy[int8] - accuracy[fp32]), 3)
    meta["evaluation"] = {"windows": int(len(evaluation.windows)), "data": evaluation.description,
                          "subjects": list(evaluation.subjects), "held_out": evaluation.held_out}
    meta["accuracy"] = accuracy
    meta["parity"] = parity
    if reference:
        meta["development_estimate"] = reference
    if note:
        meta["note"] = note

    if target == "mcu":
        from c3t_edge.export.mcu import write_mcu

        int8_tflite = out / MODEL_FILES[("tflite", "int8")]
        if not int8_tflite.exists():
            raise MissingDependencyError("litert-torch", "tflite", "--target mcu (an INT8 TFLite model)")
        say("writing mcu/ (C array, op list, arena estimate)")
        meta["mcu"] = write_mcu(int8_tflite, out / "mcu", meta)
    (out / "metadata.json").write_text(json.dumps(meta, indent=1))
    return meta


def _reference_estimate(path: str | Path) -> dict:
    """The ``development_estimate`` section from a bundle evaluated on held-out subjects."""
    from c3t_edge.bundle import read_metadata

    ref = read_metadata(path)
    evaluation = ref.get("evaluation", {})
    if not evaluation.get("held_out"):
        raise BundleError(f"{path}: its figures are not on held-out subjects, so it cannot serve as a held-out "
                          "estimate (export a run trained on the development split)")
    training = ref.get("training", {})
    return {
        "what": "accuracy to expect on people not in the training data: the same recipe trained on subjects "
                f"{_subjects(training.get('train_subjects') or [])} and exported the same way, measured on "
                f"subjects {_subjects(evaluation.get('subjects') or [])}",
        "windows": evaluation.get("windows"),
        "training": {k: training.get(k) for k in ("method", "head", "seed", "steps", "split", "protocol")},
        "accuracy": ref.get("accuracy", {}),
        "parity": ref.get("parity", {}),
    }


def _accuracy(logits: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == truth)) if len(truth) else float("nan")


def _training_section(run) -> dict:
    data = run.info["data"]
    cfg = run.config
    return {
        "method": cfg.method,
        "camera": cfg.camera if cfg.method != "supervised" else None,
        "uses_imu_labels": cfg.method == "supervised",
        "head": cfg.head,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "dataset": Path(data["path"]).name if data.get("path") else "utd-mhad (default location)",
        "split": data.get("split"),
        "protocol": data.get("protocol"),
        "train_subjects": data.get("train_subjects"),
        "test_subjects": data.get("test_subjects"),
        "preprocess": run.info["train"].get("preprocess"),
        "run_code_version": run.info.get("c3t_edge_version"),
        "export_code_version": __version__,
        "git_commit": _git_commit(),
    }
