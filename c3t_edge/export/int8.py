"""ONNX FP32 -> static INT8 with onnxruntime: QDQ format, per-channel symmetric int8 weights, symmetric
int8 activations.

The quantization windows that set the activation ranges are real, standardised IMU windows of the
trials whose IMU the run's model was trained on (never a test subject). The model
keeps float input and output (a QuantizeLinear node at the input, a DequantizeLinear at the output),
so it is a drop-in replacement for ``model.onnx``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from c3t_edge.export.metadata import INPUT_NAME


class _WindowReader:
    """onnxruntime's CalibrationDataReader protocol over an array of windows, ``batch`` at a time."""

    def __init__(self, windows: np.ndarray, batch: int = 64):
        self._batches = [windows[i:i + batch] for i in range(0, len(windows), batch)]
        self._next = 0

    def get_next(self) -> dict | None:
        if self._next >= len(self._batches):
            return None
        batch = self._batches[self._next]
        self._next += 1
        return {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}

    def rewind(self) -> None:
        self._next = 0


def quantize_int8(fp32_path: str | Path, out_path: str | Path, quant_windows: np.ndarray) -> Path:
    """Quantize ``fp32_path`` into ``out_path`` with activation ranges from ``quant_windows``
    (n, W, C) float32, standardised.

    Activation ranges are MinMax over the quantization windows, symmetric: on two development runs
    that kept 97-98% top-1 agreement with FP32, against 92-96% for asymmetric MinMax, entropy or
    percentile ranges, at the same accuracy within a point.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), _WindowReader(quant_windows),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return out_path
