"""TFLite backend: LiteRT's interpreter (``ai_edge_litert``), or the older ``tflite_runtime``.

FP32 files take float input; full-integer files take int8 input and give int8 output, so this
backend quantizes the standardised windows with the input tensor's scale/zero-point and dequantizes
the logits with the output tensor's. Files converted with a fixed batch of 1 are run window by window.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from c3t_edge.errors import BundleError, MissingDependencyError


def interpreter_class():
    """``ai_edge_litert.interpreter.Interpreter``, else ``tflite_runtime.interpreter.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise MissingDependencyError("ai-edge-litert", "tflite", "running a TFLite model") from None
    return Interpreter


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null while the interpreter's C++ code logs its start-up line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TfliteBackend:
    """One LiteRT interpreter on the CPU with ``threads`` threads; batch-1 files run window by window."""

    def __init__(self, model_path: str | Path, *, threads: int | None = 1):
        interpreter = interpreter_class()
        try:
            with _native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter = interpreter(model_path=str(model_path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"{model_path}: the TFLite interpreter cannot load it ({first})") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.n_outputs = int(self._out["shape"][-1])
        self._batch = int(self._in["shape"][0])

    def fold_normalization(self, mean: np.ndarray, std: np.ndarray) -> bool:
        """Fold per-channel standardisation (and, for an int8-input file, the input quantization) into
        one affine map ``x * a + b`` that :meth:`run_raw` writes straight into the interpreter's input
        buffer: one pass over a raw window instead of three. Returns True."""
        shape = tuple(int(v) for v in self._in["shape"])
        a = 1.0 / np.asarray(std, np.float64)
        b = -np.asarray(mean, np.float64) * a
        if self.input_dtype != np.float32:
            scale, zero = self._in["quantization"]
            a, b = a / scale, b / scale + zero
            info = np.iinfo(self.input_dtype)
            self._lo = np.full(shape, info.min, np.float32)
            self._hi = np.full(shape, info.max, np.float32)
        # Tiled to the whole input so that each numpy call is one contiguous loop (3-4x faster than
        # broadcasting a (C,) vector over (1, W, C)).
        self._a = np.ascontiguousarray(np.broadcast_to(a.astype(np.float32), shape))
        self._b = np.ascontiguousarray(np.broadcast_to(b.astype(np.float32), shape))
        self._scratch = np.empty(shape, np.float32)
        return True

    def run_raw(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows (n, W, C) -> logits (n, n_outputs), after :meth:`fold_normalization`."""
        x = np.asarray(windows, dtype=np.float32)
        if self._batch == len(x):
            return self._invoke_raw(x)
        return np.concatenate([self._invoke_raw(x[i:i + 1]) for i in range(len(x))])

    def _invoke_raw(self, x: np.ndarray) -> np.ndarray:
        # The input view must not outlive this block: the interpreter may move its buffers in invoke().
        view = self.interpreter.tensor(self._in["index"])()
        if self.input_dtype == np.float32:
            np.multiply(x, self._a, out=view)
            view += self._b
        else:
            y = self._scratch
            np.multiply(x, self._a, out=y)
            y += self._b
            np.rint(y, out=y)
            np.maximum(y, self._lo, out=y)
            np.minimum(y, self._hi, out=y)
            np.copyto(view, y, casting="unsafe")
        del view
        return self._invoke_and_read()

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        if self.input_dtype != np.float32:
            scale, zero = self._in["quantization"]
            x = quantize(x, scale, zero, self.input_dtype)
        self.interpreter.set_tensor(self._in["index"], x)
        return self._invoke_and_read()

    def _invoke_and_read(self) -> np.ndarray:
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])
        if self.output_dtype != np.float32:
            scale, zero = self._out["quantization"]
            return (y.astype(np.float32) - zero) * np.float32(scale)
        return y.astype(np.float32, copy=True)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Standardised windows (n, W, C) -> logits (n, n_outputs)."""
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if self._batch == len(x):
            return self._run_batch(x)
        return np.concatenate([self._run_batch(x[i:i + 1]) for i in range(len(x))])
