"""``metadata.json`` of an exported bundle: its sections, and the one atomic write that makes a directory
a bundle.

The *contract* sections (labels, rate, window, hop, channels, units, clip fit, input, output,
normalisation) are what a runtime needs to feed the model; ``files`` and ``missing_files`` list the
model files; ``training``, ``quantization``, ``evaluation``, ``accuracy``, ``parity``,
``development_estimate`` and ``note`` say where the model comes from and how well each file does.
:func:`write_metadata` is called once, after every file is written and measured.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path

from c3t_edge import __version__
from c3t_edge.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, METADATA_FILE, read_metadata, sha256_file
from c3t_edge.data.preprocess import imu_channels, imu_units
from c3t_edge.errors import BundleError

#: Suggested hop between streaming windows: 25 samples = 0.5 s at 50 Hz.
DEFAULT_HOP_S = 0.5
INPUT_NAME = "imu"
OUTPUT_NAME = "logits"


def contract_sections(run, hop_samples: int | None) -> dict:
    """The sections a runtime reads to feed the model of ``run`` (format, labels, rate, window, hop,
    channels, units, clip fit, input, output, normalisation), with empty ``files`` and
    ``missing_files`` to be filled, and the ``training`` section."""
    pre = run.config.preprocess
    window, labels = pre.window_samples, list(run.class_names)
    channels = imu_channels(run.config.channels)
    standardize = run.method.standardizer_
    return {
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
        "hop_samples": hop_samples or int(round(DEFAULT_HOP_S * pre.imu_rate_hz)),
        "channels": list(channels),
        "units": list(imu_units(channels)),
        "clip_fit": {"crop": "centre", "pad": "edge",
                     "rule": f"a clip longer than {window} samples is centre-cropped; a shorter one is centred and "
                             "padded by repeating its first and last sample"},
        "input": {"name": INPUT_NAME, "layout": "NWC", "shape": ["n", window, len(channels)], "dtype": "float32",
                  "meaning": "IMU windows standardised per channel: (x - normalization.mean) / normalization.std, "
                             "x in the units above, channels in the order above"},
        "output": {"name": OUTPUT_NAME, "shape": ["n", len(labels)], "dtype": "float32",
                   "meaning": "logits in label order; softmax gives class probabilities"},
        "normalization": {"kind": "standardize", "applied": "outside",
                          "mean": [float(v) for v in standardize.mean],
                          "std": [float(v) for v in standardize.std],
                          "note": "applied by the runtime before the model, not inside the graph"},
        "files": {},
        "missing_files": {},
        "training": training_section(run),
    }


def file_entry(path: Path, engine: str, precision: str, details: dict) -> dict:
    """The ``files[name]`` entry of a written model file: sha256, size, engine, precision, and the
    converter's ``details`` (opset, tensor quantization, ...)."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size, "engine": engine, "precision": precision,
            **details}


def training_section(run) -> dict:
    """Where the model comes from: method, camera, seed, steps, data, split, code versions."""
    data = run.info["data"]
    cfg = run.config
    return {
        "method": cfg.method,
        "camera": cfg.camera if run.method.needs_camera() else None,
        "uses_imu_labels": bool(run.method.uses_imu_labels),
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


def reference_estimate(path: str | Path) -> dict:
    """The ``development_estimate`` section from a bundle evaluated on held-out subjects."""
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


def write_metadata(out: Path, meta: dict) -> Path:
    """Write ``out/metadata.json`` in one step, after every file it lists: the model files are flushed
    to disk, the JSON goes to a temporary file that is flushed too, then ``os.replace`` puts it in
    place. A crash at any point leaves either no ``metadata.json`` (not a bundle) or all of it."""
    for name in meta["files"]:
        _fsync(out / name)
    final = out / METADATA_FILE
    temporary = out / f".{METADATA_FILE}.partial"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(meta, indent=1))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    try:
        _fsync(out)  # the rename itself; a directory cannot be opened for this on Windows
    except OSError:
        pass
    return final


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory's entries on POSIX) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _subjects(subjects) -> str:
    return ",".join(str(s) for s in subjects)
