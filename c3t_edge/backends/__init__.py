"""Inference engines behind one small interface (no torch anywhere here).

A backend runs one model file: :meth:`Backend.run` takes the model's input - standardised windows
``(n, W, C)`` float32 - and returns logits ``(n, n_outputs)`` float32, quantizing the input and
dequantizing the output itself when the file is full-integer. The engine is imported when a backend
is opened, so importing this package costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class Backend(Protocol):
    """What :func:`open_backend` returns."""

    #: width of the output (number of classes), or None when the file does not say
    n_outputs: int | None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Standardised windows ``(n, W, C)`` float32 -> logits ``(n, n_outputs)`` float32."""
        ...


def open_backend(model_path: str | Path, engine: str, *, threads: int | None = 1) -> Backend:
    """Open ``model_path`` on ``engine`` (``onnxruntime`` or ``tflite``) with ``threads`` intra-op threads."""
    if engine == "onnxruntime":
        from c3t_edge.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, threads=threads)
    if engine == "tflite":
        from c3t_edge.backends.tflite import TfliteBackend

        return TfliteBackend(model_path, threads=threads)
    raise ValueError(f"unknown engine {engine!r}")
