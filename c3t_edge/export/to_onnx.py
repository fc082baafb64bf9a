"""The ``onnxruntime`` export target: torch -> ONNX FP32 (one file, opset 18, dynamic batch, input ``imu``
(n, W, C), output ``logits``), then static INT8 (:mod:`~c3t_edge.export.int8`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from c3t_edge.errors import MissingDependencyError
from c3t_edge.export.metadata import INPUT_NAME, OUTPUT_NAME
from c3t_edge.export.targets import ExportContext, TargetResult

OPSET = 18


def export_onnx(model: nn.Module, path: str | Path, window_samples: int, channels: int) -> Path:
    """Write ``model`` (standardised (n, W, C) -> logits) as a single-file ONNX model at ``path``."""
    try:
        import onnx  # noqa: F401  (the dynamo exporter needs onnx + onnxscript)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnx", "train", "ONNX export") from None
    path = Path(path)
    model = model.eval()
    example = torch.zeros(2, window_samples, channels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", irrelevant here
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},),
                                        opset_version=OPSET, optimize=True, verbose=False)
    finally:
        onnx_logger.setLevel(level)
    program.save(str(path), external_data=False)
    return path


def convert(context: ExportContext) -> TargetResult:
    """Write ``model.onnx`` (FP32) and ``model.int8.onnx`` (static INT8, activation ranges from the
    context's quantization windows); the FP32 entry records the opset."""
    from c3t_edge.export.int8 import quantize_int8

    fp32, int8 = context.files["fp32"], context.files["int8"]
    context.log(f"exporting {fp32.name} (FP32)")
    export_onnx(context.model, fp32, context.window_samples, context.channels)
    context.log(f"quantizing {int8.name} (static INT8, QDQ, per-channel; {len(context.quant_windows)} "
                "quantization windows)")
    quantize_int8(fp32, int8, context.quant_windows)
    return TargetResult(file_details={"fp32": {"opset": OPSET}})
