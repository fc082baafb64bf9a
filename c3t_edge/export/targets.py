"""Export targets: what ``c3t-edge export`` can write, each one converter behind one registration.

An :class:`ExportTarget` names a converter (``convert(context) -> TargetResult``) and what it writes:
the model files of one engine (:mod:`c3t_edge.backends`), one per precision, which the exporter then
hashes, lists in ``metadata.json`` and measures against torch; or, for a target with no engine, other
artefacts and a metadata section of its own (``mcu``). The built-in targets are registered at the
bottom of this module with their converters imported lazily, so this registry imports no torch
(``c3t-edge export --help`` lists the names). A new target is one module with a
``convert`` function plus one :func:`register_target` call (docs/EXTENDING.md, "Add an export
target").
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from c3t_edge.backends import get_engine
from c3t_edge.errors import C3TEdgeError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np


@dataclass
class ExportContext:
    """What a converter gets.

    ``model`` is the run's IMU recogniser (torch ``nn.Module``, eval mode): standardised windows
    ``(n, window_samples, channels)`` float32 -> logits ``(n, n_labels)``. ``quant_windows`` are real
    standardised windows ``(n, window_samples, channels)`` float32 that set INT8 activation ranges
    (never a test subject; for a label-free method, its paired trials only). ``files`` maps each
    precision of the target to the path it must write. ``metadata`` is the bundle's metadata so far
    (labels, rates, channels, units, normalisation, and ``files`` of the targets that ran before),
    for reading only. ``log`` prints one progress line.
    """

    model: Any
    out: Path
    window_samples: int
    channels: int
    quant_windows: np.ndarray
    files: dict[str, Path]
    metadata: dict
    log: Callable[[str], None]


@dataclass
class TargetResult:
    """What a converter returns: extra metadata per precision's file (merged into ``files[name]``,
    e.g. tensor quantization parameters) and, for a target that writes no model file, the metadata
    section stored under the target's name."""

    file_details: dict[str, dict] = field(default_factory=dict)
    section: dict | None = None


Converter = Callable[[ExportContext], TargetResult]


@dataclass(frozen=True)
class ExportTarget:
    """One thing ``c3t-edge export`` can write.

    - ``name``: as in ``--target NAME``; also the metadata section's key for a target without engine.
    - ``convert``: the converter (see :class:`ExportContext`, :class:`TargetResult`).
    - ``engine`` / ``precisions``: the registered engine whose files it writes, and which of them;
      ``None`` / ``()`` for a target that writes other artefacts.
    - ``needs``: targets whose files it reads (they are written first).
    - ``default``: written without ``--target``; ``required``: always written (the reference file).
    - ``modules`` / ``extra``: Python modules its converter imports and the pip extra that installs
      them; checked before anything is written. A default target whose modules are missing is left
      out with a warning (its files listed under ``missing_files``); one asked for by name fails.
    - ``quantization``: one line on how its INT8 file is quantized, for the metadata.
    """

    name: str
    convert: Converter
    help: str
    engine: str | None = None
    precisions: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    default: bool = False
    required: bool = False
    modules: tuple[str, ...] = ()
    extra: str | None = None
    quantization: str | None = None

    def file_names(self) -> dict[str, str]:
        """precision -> file name inside the bundle (empty for a target without engine)."""
        if self.engine is None:
            return {}
        usual = get_engine(self.engine).files
        return {precision: usual[precision] for precision in self.precisions}

    def missing_module(self) -> str | None:
        """The first of ``modules`` that cannot be imported, or None."""
        for module in self.modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return module
        return None

    def missing_dependency(self, purpose: str) -> MissingDependencyError:
        module = self.missing_module() or (self.modules[0] if self.modules else self.name)
        return MissingDependencyError(module.replace("_", "-"), self.extra or "train", purpose)


_TARGETS: dict[str, ExportTarget] = {}


def register_target(target: ExportTarget) -> ExportTarget:
    """Make ``target`` available to :func:`~c3t_edge.export.export_bundle` and ``--target``.

    Its engine must be registered (:func:`c3t_edge.backends.register_engine`) and have every one of
    its precisions; its ``needs`` must be registered targets. A name already taken raises ``ValueError``."""
    if target.name in _TARGETS:
        raise ValueError(f"export target {target.name!r} is already registered")
    if target.engine is not None:
        try:
            usual = get_engine(target.engine).files
        except KeyError:
            raise ValueError(f"export target {target.name!r}: engine {target.engine!r} is not registered") from None
        unknown = [p for p in target.precisions if p not in usual]
        if unknown or not target.precisions:
            raise ValueError(f"export target {target.name!r}: engine {target.engine!r} has no "
                             f"{unknown[0] if unknown else 'precision listed'!r} file")
    for need in target.needs:
        if need not in _TARGETS:
            raise ValueError(f"export target {target.name!r} needs {need!r}, which is not registered")
    _TARGETS[target.name] = target
    return target


def unregister_target(name: str) -> None:
    """Remove target ``name`` (e.g. one a test registered)."""
    if any(name in other.needs for other in _TARGETS.values()):
        raise ValueError(f"export target {name!r} is needed by another target")
    _TARGETS.pop(name, None)


def target_names() -> tuple[str, ...]:
    """Registered targets in registration order (the order they are written in)."""
    return tuple(_TARGETS)


def get_target(name: str) -> ExportTarget:
    try:
        return _TARGETS[name]
    except KeyError:
        raise C3TEdgeError(f"unknown export target {name!r}: choose from {', '.join(_TARGETS)}") from None


def choose_targets(asked: tuple[str, ...] | None) -> tuple[list[ExportTarget], list[ExportTarget]]:
    """(targets to write, default targets left out for want of their modules), in writing order.

    ``asked`` ``None`` means the default targets; the required targets are always written, and every
    target's ``needs`` with it. A target asked for by name (or needed by one) whose modules are
    missing raises :class:`MissingDependencyError` before anything is written."""
    wanted: set[str] = {name for name, t in _TARGETS.items() if t.required}
    explicit: set[str] = set()
    if asked is None:
        wanted |= {name for name, t in _TARGETS.items() if t.default}
    else:
        explicit = _with_needs(set(asked))
        wanted |= explicit
    wanted = _with_needs(wanted)
    chosen, skipped = [], []
    for name in _TARGETS:  # registration order: a target's needs are registered, so written, before it
        if name not in wanted:
            continue
        target = _TARGETS[name]
        if target.missing_module() is None:
            chosen.append(target)
        elif name in explicit or target.required:
            raise target.missing_dependency(f"--target {_asker(name, explicit)}")
        else:
            skipped.append(target)
    return chosen, skipped


def _with_needs(names: set[str]) -> set[str]:
    closed, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in closed:
            closed.add(name)
            todo.extend(get_target(name).needs)
    return closed


def _asker(name: str, explicit: set[str]) -> str:
    """The target asked for by name that brought ``name`` in (``name`` itself when asked for)."""
    for asker in sorted(explicit):
        if asker != name and name in _with_needs({asker}):
            return f"{asker} (which needs {name})"
    return name


def lazy(path: str) -> Converter:
    """A converter given as ``"package.module:function"``, imported on its first call (so that the
    registry stays free of torch)."""
    module_name, _, function = path.partition(":")

    def convert(context: ExportContext) -> TargetResult:
        return getattr(importlib.import_module(module_name), function)(context)

    convert.__qualname__ = convert.__name__ = f"lazy({path})"
    return convert


register_target(ExportTarget(
    "onnxruntime", lazy("c3t_edge.export.to_onnx:convert"),
    "model.onnx (FP32, opset 18, dynamic batch) and model.int8.onnx (static INT8, QDQ, per-channel)",
    engine="onnxruntime", precisions=("fp32", "int8"), default=True, required=True,
    modules=("onnx", "onnxscript", "onnxruntime"), extra="train",
    quantization="onnxruntime quantize_static, QDQ, MinMax ranges, per-channel symmetric int8 weights, symmetric "
                 "int8 activations"))
register_target(ExportTarget(
    "tflite", lazy("c3t_edge.export.to_tflite:convert"),
    "model.tflite (FP32, batch 1) and model.int8.tflite (full-integer), through litert-torch",
    engine="tflite", precisions=("fp32", "int8"), default=True,
    modules=("litert_torch", "ai_edge_litert"), extra="tflite",
    quantization="PT2E static quantization (litert-torch), per-channel symmetric int8 weights, int8 activations, "
                 "int8 input and output"))
register_target(ExportTarget(
    "mcu", lazy("c3t_edge.export.mcu:convert"),
    "mcu/: model.int8.tflite as a C array, its TFLite Micro op list and tensor arena (measured in TFLite Micro)",
    needs=("tflite",), modules=("ai_edge_litert",), extra="tflite"))
