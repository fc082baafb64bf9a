"""Export a training run's IMU recogniser as a model bundle (the torch side; see :mod:`c3t_edge.bundle`).

:func:`export_bundle` writes, into a new or empty directory (or a bundle it may replace):

- the files of each export target (:mod:`~c3t_edge.export.targets`), in registration order:
  ``onnxruntime`` - ``model.onnx`` (FP32, opset 18, dynamic batch) and ``model.int8.onnx`` (static
  INT8, QDQ, per-channel), always written; ``tflite`` - ``model.tflite`` and ``model.int8.tflite``
  (full-integer) through litert-torch, written by default when the ``tflite`` extra is installed
  (otherwise listed under ``missing_files`` with the reason); ``mcu`` (asked for) - ``mcu/``: the INT8
  TFLite file as a C array, the TFLite Micro op list and the tensor arena measured in TFLite Micro;
- ``metadata.json`` last, once, atomically (:func:`~c3t_edge.export.metadata.write_metadata`), holding
  every file's sha256 and the parity section: for each file, max |logit - torch logit|, top-1
  agreement with torch and accuracy on the run's test windows (training-subject windows for a run
  without test subjects, flagged). A directory without it is not a bundle.

INT8 activation ranges come from the run's *quantization data* (:mod:`~c3t_edge.export.quant_data`):
real windows of the trials whose IMU the model was trained on - the paired trials only for a
label-free method - never a test subject.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from c3t_edge.bundle import METADATA_FILE, is_bundle_dir
from c3t_edge.errors import BundleError
from c3t_edge.export.metadata import contract_sections, file_entry, reference_estimate, write_metadata
from c3t_edge.export.quant_data import RealWindows, real_windows
from c3t_edge.export.targets import (
    ExportContext,
    ExportTarget,
    TargetResult,
    choose_targets,
    get_target,
    register_target,
    target_names,
    unregister_target,
)

__all__ = ["ExportContext", "ExportTarget", "TargetResult", "check_destination", "export_bundle",
           "register_target", "target_names", "unregister_target"]


def export_bundle(run_dir: str | Path, out_dir: str | Path, *, quant_data: str | Path | None = None,
                  targets: tuple[str, ...] | None = None, hop_samples: int | None = None,
                  overwrite: bool = False, held_out_reference: str | Path | None = None,
                  note: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Export run ``run_dir`` into bundle ``out_dir``; returns the metadata written.

    ``quant_data`` overrides the run's dataset folder (INT8 quantization data from its training side,
    parity on its test subjects). ``targets`` names the export targets to write (None: the default
    ones; the reference target ``onnxruntime`` and every target's needs are always added).
    ``out_dir`` must be new, an empty directory, or - with ``overwrite`` - a bundle, which is then
    replaced; anything else is refused before any work. An export that fails leaves no bundle there.

    ``held_out_reference`` is a bundle exported from the same recipe trained on a split with test
    subjects: for a run without held-out subjects (``all-subjects``, i.e. a model to ship) its
    accuracy and parity on unseen subjects are copied into ``development_estimate``. ``note`` is free
    text stored in the metadata (e.g. why this model is the default).
    """
    say = log or (lambda _msg: None)
    chosen, unavailable = choose_targets(targets)
    reference = reference_estimate(held_out_reference) if held_out_reference else None
    run, model = _load_imu_model(run_dir)
    out = Path(out_dir)
    check_destination(out, overwrite)
    data_dir = quant_data or run.info["data"].get("path")
    say(f"reading real windows from {data_dir or 'the default dataset'}")
    quant, evaluation = real_windows(run, data_dir)

    meta = contract_sections(run, hop_samples)
    meta["missing_files"] = _missing_files(chosen, unavailable, targets)
    meta["quantization"] = {"windows": int(len(quant.windows)), "data": quant.description,
                            **{t.name: t.quantization for t in chosen if t.quantization}}
    with _writing_into(out, overwrite):
        sections = _write_targets(chosen, model, out, meta, run.method.standardizer_(quant.windows), say)
        _add_parity(run, out, meta, evaluation, say)
        if reference:
            meta["development_estimate"] = reference
        if note:
            meta["note"] = note
        meta.update(sections)
        write_metadata(out, meta)
    return meta


def _load_imu_model(run_dir: str | Path) -> tuple:
    """(the loaded run, its IMU recogniser as a torch module); a camera-only run has none."""
    from c3t_edge.training import load_run

    run = load_run(run_dir)
    try:
        return run, run.method.imu_recognizer()
    except ValueError:
        raise BundleError(f"{run_dir}: a {run.config.method!r} run has no IMU model to export "
                          "(the camera method predicts from camera clips)") from None


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that an export must not replace: anything but a new path, an empty
    directory, or a bundle with ``overwrite``. A directory that is not a bundle is never deleted."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"{out} exists and is not a directory: choose a new directory for the bundle")
    if not any(out.iterdir()):
        return
    if not is_bundle_dir(out):
        raise BundleError(f"{out} exists and is not a bundle: choose an empty or new directory "
                          "(export never deletes a directory that is not a bundle)")
    if not overwrite:
        raise BundleError(f"{out} already holds a bundle: pass --overwrite to replace it")


@contextlib.contextmanager
def _writing_into(out: Path, overwrite: bool) -> Iterator[Path]:
    """Make ``out`` an empty directory and yield it; if the block raises, remove what it wrote.

    A bundle being replaced loses its ``metadata.json`` first, so it stops being a bundle before any
    of its files goes. The destination is checked again here: it may have changed since the first
    check (reading the windows takes a while)."""
    check_destination(out, overwrite)
    created = not out.exists()
    if not created:
        (out / METADATA_FILE).unlink(missing_ok=True)
        _empty(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        _empty(out)
        if created:
            out.rmdir()
        raise


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _missing_files(chosen: list[ExportTarget], unavailable: list[ExportTarget],
                   asked: tuple[str, ...] | None) -> dict[str, str]:
    """``missing_files``: each default target's files that are not written, and why (a warning line
    for each default target whose converter is not installed)."""
    missing: dict[str, str] = {}
    for target in unavailable:
        exc = target.missing_dependency(f"the {target.name} files")
        print(f"warning: {exc}; the bundle is written without {', '.join(target.file_names().values())}",
              file=sys.stderr)
        missing.update({name: f"not exported: {exc}" for name in target.file_names().values()})
    left_out = [get_target(name) for name in target_names()
                if get_target(name).default and get_target(name) not in chosen + unavailable]
    for target in left_out:
        why = f"not exported (targets asked for: {', '.join(asked or ())})"
        missing.update({name: why for name in target.file_names().values()})
    return missing


def _write_targets(chosen: list[ExportTarget], model, out: Path, meta: dict, quant_windows, say) -> dict:
    """Run each chosen target's converter; its model files go into ``meta["files"]`` as soon as it
    returns (a later target, e.g. ``mcu``, reads them). Returns the sections of targets without files."""
    pre_shape = meta["input"]["shape"]
    sections: dict = {}
    for target in chosen:
        paths = {precision: out / name for precision, name in target.file_names().items()}
        context = ExportContext(model=model, out=out, window_samples=int(pre_shape[1]), channels=int(pre_shape[2]),
                                quant_windows=quant_windows, files=paths, metadata=meta, log=say)
        result = target.convert(context)
        for precision, path in paths.items():
            if not path.is_file():
                raise BundleError(f"export target {target.name!r} did not write {path.name}")
            details = result.file_details.get(precision, {})
            meta["files"][path.name] = file_entry(path, target.engine, precision, details)
        if result.section is not None:
            sections[target.name] = result.section
    return sections


def _add_parity(run, out: Path, meta: dict, evaluation: RealWindows, say) -> None:
    """Measure every written file against torch on the evaluation windows; fills ``evaluation``,
    ``accuracy`` and ``parity``."""
    import torch

    from c3t_edge.export.parity import measure_parity

    say(f"measuring parity on {len(evaluation.windows)} windows")
    with torch.no_grad():
        torch_logits = run.method.predict_logits(run.method.standardizer_(evaluation.windows))
    parity, accuracy = measure_parity(out, meta, evaluation.windows, evaluation.labels, torch_logits)
    meta["evaluation"] = {"windows": int(len(evaluation.windows)), "data": evaluation.description,
                          "subjects": list(evaluation.subjects), "held_out": evaluation.held_out}
    meta["accuracy"] = accuracy
    meta["parity"] = parity
