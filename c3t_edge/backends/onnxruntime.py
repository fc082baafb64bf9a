"""onnxruntime backend: FP32 and QDQ INT8 ONNX files (float input, float output, dynamic batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from c3t_edge.errors import BundleError, MissingDependencyError


class OnnxRuntimeBackend:
    """One ``InferenceSession`` on the CPU, sequential execution, ``threads`` intra-op threads."""

    def __init__(self, model_path: str | Path, *, threads: int | None = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", "train", "running an ONNX model") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"{model_path}: onnxruntime cannot load it ({first})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        width = self.session.get_outputs()[0].shape[-1]
        self.n_outputs = width if isinstance(width, int) else None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)
