"""Inference engines behind one small interface, and the registry that names them (no torch here).

A backend runs one model file: :meth:`Backend.run` takes the model's input - standardised windows
``(n, W, C)`` float32 - and returns logits ``(n, n_outputs)`` float32, quantizing the input and
dequantizing the output itself when the file is full-integer.

An :class:`Engine` is what a bundle's ``files[...]["engine"]`` names: the backend class that runs
its files (imported only when a file is opened, so importing this package costs nothing - not even
numpy) and the name each precision's file has inside a bundle. The built-in engines are registered
at the bottom of this module; a new file format registers its engine once with
:func:`register_engine` (docs/EXTENDING.md, "Add an export target").
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class Backend(Protocol):
    """What :func:`open_backend` returns."""

    #: width of the output (number of classes), or None when the file does not say
    n_outputs: int | None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Standardised windows ``(n, W, C)`` float32 -> logits ``(n, n_outputs)`` float32."""
        ...


@dataclass(frozen=True)
class Engine:
    """An inference engine that runs some of a bundle's model files.

    ``backend`` is ``"package.module:Class"``; ``Class(model_path, threads=N)`` opens one file and
    has ``n_outputs`` and ``run`` (:class:`Backend`). ``files`` maps each precision the engine has
    (``"fp32"``, ``"int8"``, ...) to the file's name inside a bundle.
    """

    name: str
    backend: str
    files: Mapping[str, str]


_ENGINES: dict[str, Engine] = {}


def register_engine(engine: Engine) -> Engine:
    """Make ``engine`` known to :func:`open_backend`, ``load_bundle`` and the ``--engine`` options.

    Registering the same engine twice is harmless; a different engine under a taken name, or a file
    name another engine already uses, raises ``ValueError``."""
    known = _ENGINES.get(engine.name)
    if known is not None:
        if known != engine:
            raise ValueError(f"engine {engine.name!r} is already registered with other settings")
        return known
    taken = {name for other in _ENGINES.values() for name in other.files.values()}
    clash = sorted(taken & set(engine.files.values()))
    if clash:
        raise ValueError(f"engine {engine.name!r}: file name {clash[0]!r} belongs to another engine")
    _ENGINES[engine.name] = engine
    return engine


def unregister_engine(name: str) -> None:
    """Forget engine ``name`` (e.g. one a test registered); the built-in engines stay."""
    if name in _BUILT_IN:
        raise ValueError(f"engine {name!r} is built in")
    _ENGINES.pop(name, None)


def engine_names() -> tuple[str, ...]:
    """Registered engine names, in registration order (``onnxruntime`` first: its fp32 file is the
    reference file of every bundle)."""
    return tuple(_ENGINES)


def get_engine(name: str) -> Engine:
    """The registered engine ``name``; ``KeyError`` when there is none."""
    return _ENGINES[name]


def model_files() -> dict[tuple[str, str], str]:
    """(engine, precision) -> file name inside a bundle, for every registered engine."""
    return {(engine.name, precision): name for engine in _ENGINES.values() for precision, name in engine.files.items()}


def precisions() -> tuple[str, ...]:
    """Every precision some registered engine has, first-registered first."""
    return tuple(dict.fromkeys(p for engine in _ENGINES.values() for p in engine.files))


def open_backend(model_path: str | Path, engine: str, *, threads: int | None = 1) -> Backend:
    """Open ``model_path`` on the registered ``engine`` with ``threads`` intra-op threads (None: the
    engine's default)."""
    try:
        spec = _ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(_ENGINES)}") from None
    module_name, _, class_name = spec.backend.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(model_path, threads=threads)


#: The reference engine: every bundle has its fp32 file.
REFERENCE_ENGINE = register_engine(Engine(
    "onnxruntime", "c3t_edge.backends.onnxruntime:OnnxRuntimeBackend",
    {"fp32": "model.onnx", "int8": "model.int8.onnx"}))
_BUILT_IN = (REFERENCE_ENGINE.name, register_engine(Engine(
    "tflite", "c3t_edge.backends.tflite:TfliteBackend",
    {"fp32": "model.tflite", "int8": "model.int8.tflite"})).name)
