"""The ``tflite`` export target: torch -> TFLite (LiteRT) through litert-torch, the optional ``tflite`` extra.

- ``model.tflite``: FP32, batch 1, float input and output.
- ``model.int8.tflite``: full-integer. PT2E static quantization (symmetric per-channel int8 weights,
  int8 activations) with activation ranges from the same real quantization windows as the ONNX INT8
  file; litert-torch
  then lowers it with int8 input and int8 output tensors, whose scale/zero-point are read from the
  file by the runtime (and recorded in the metadata for MCU users).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from c3t_edge.errors import MissingDependencyError
from c3t_edge.export.targets import ExportContext, TargetResult


@contextlib.contextmanager
def _quiet():
    """litert-torch prints progress lines and absl/torch warnings: keep the export's output clean."""
    sink = io.StringIO()
    levels = {name: logging.getLogger(name).level for name in ("torch", "absl", "litert_torch")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _litert_torch():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet():  # torchao reports optional CUDA kernels it cannot load
            import litert_torch
            from litert_torch.quantize import pt2e_quantizer, quant_config
            from torchao.quantization.pt2e import quantize_pt2e
    except ImportError:
        raise MissingDependencyError("litert-torch", "tflite", "TFLite export") from None
    return litert_torch, pt2e_quantizer, quant_config, quantize_pt2e


def convert(context: ExportContext) -> TargetResult:
    """Write ``model.tflite`` and ``model.int8.tflite``; each file's entry records its input/output
    dtypes, shapes and quantization parameters."""
    fp32, int8 = context.files["fp32"], context.files["int8"]
    context.log(f"converting {fp32.name} and {int8.name} (litert-torch)")
    export_tflite(context.model, fp32, int8, context.quant_windows)
    return TargetResult(file_details={"fp32": _io_details(fp32), "int8": _io_details(int8)})


def export_tflite(model: nn.Module, fp32_path: str | Path, int8_path: str | Path,
                  quant_windows: np.ndarray, max_quant_windows: int = 1024) -> None:
    """Write the FP32 and full-integer INT8 TFLite files. ``quant_windows`` (n, W, C) float32,
    standardised, set the activation ranges (at most ``max_quant_windows`` of them, a fixed random
    choice, are run)."""
    litert_torch, pt2e_quantizer, quant_config, quantize_pt2e = _litert_torch()
    model = model.eval()
    example = (torch.from_numpy(np.ascontiguousarray(quant_windows[:1], np.float32)),)
    with _quiet(), torch.no_grad():
        litert_torch.convert(model, example).export(str(fp32_path))

        graph = torch.export.export(model, example).module()
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
        rng = np.random.default_rng(0)
        chosen = quant_windows if len(quant_windows) <= max_quant_windows else \
            quant_windows[np.sort(rng.choice(len(quant_windows), max_quant_windows, replace=False))]
        for window in chosen:
            prepared(torch.from_numpy(np.ascontiguousarray(window[None], np.float32)))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, example,
                             quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)).export(str(int8_path))


def _io_details(path: str | Path) -> dict:
    from c3t_edge.backends.tflite import interpreter_class

    interpreter = interpreter_class()(model_path=str(path))
    details = {}
    for side, info in (("input", interpreter.get_input_details()[0]),
                       ("output", interpreter.get_output_details()[0])):
        entry = {"dtype": np.dtype(info["dtype"]).name, "shape": [int(v) for v in info["shape"]]}
        scale, zero = info["quantization"]
        if scale:
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
        details[side] = entry
    return details
