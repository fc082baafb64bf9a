"""The ``mcu`` export target: the full-integer TFLite model as C source for TensorFlow Lite Micro.

Writes into ``mcu/``:

- ``c3t_model_data.cc`` / ``c3t_model_data.h``: the INT8 ``.tflite`` as a 16-byte aligned byte
  array, plus the constants a firmware needs to feed it (window, channels, per-channel mean/std,
  input/output scale and zero point, labels);
- ``c3t_model_ops.h``: a ``MicroMutableOpResolver`` with exactly the builtin ops the model uses;
- ``README.md``: the op list, the arena estimate and how to call the model.

The arena estimate replays the model's operator order: every non-constant tensor lives from the op
that writes it to the last op that reads it, and the peak of the live bytes (16-byte aligned) is the
activation arena; per-tensor/per-op bookkeeping and per-channel quantization data are added, plus a
margin. It is an estimate: TFLite Micro's ``RecordingMicroInterpreter`` gives the exact figure on a
device (kernels such as CMSIS-NN may ask for extra scratch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from c3t_edge.backends import get_engine
from c3t_edge.export.targets import ExportContext, TargetResult

#: TFLite builtin op name -> MicroMutableOpResolver method, where the CamelCase rule does not give it.
_RESOLVER_NAMES = {"BATCH_MATMUL": "AddBatchMatMul", "L2_NORMALIZATION": "AddL2Normalization",
                   "LOG_SOFTMAX": "AddLogSoftmax", "RELU6": "AddRelu6", "RELU_N1_TO_1": "AddReluN1To1"}
_DTYPE_BYTES = {"FLOAT32": 4, "INT32": 4, "INT8": 1, "UINT8": 1, "INT16": 2, "INT64": 8, "BOOL": 1, "FLOAT16": 2}
#: Rough TFLite Micro bookkeeping: TfLiteEvalTensor + TfLiteTensor per tensor, node + registration per op.
_PER_TENSOR_BYTES = 80
_PER_OP_BYTES = 96


def resolver_method(op_name: str) -> str:
    if op_name in _RESOLVER_NAMES:
        return _RESOLVER_NAMES[op_name]
    return "Add" + "".join(part.upper() if part[0].isdigit() else part.capitalize() for part in op_name.split("_"))


def analyse_tflite(path: str | Path) -> dict:
    """Op list and arena estimate of a single-subgraph ``.tflite`` file (flatbuffer read, not run)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = [op_names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    graph = model.subgraphs[0]

    def is_constant(t) -> bool:
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        return (data is not None and len(data) > 0) or bool(getattr(model.buffers[t.buffer], "size", 0))

    def nbytes(t) -> int:
        n = int(np.prod(t.shape)) if t.shape is not None else 1
        return (n * _DTYPE_BYTES.get(type_names[t.type], 4) + 15) // 16 * 16

    n_ops = len(graph.operators)
    first, last = {}, {}
    for i in graph.inputs:
        first[int(i)] = 0
    for step, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0:
                last[int(t)] = step
        for t in op.outputs:
            first.setdefault(int(t), step)
            last.setdefault(int(t), step)
    for o in graph.outputs:
        last[int(o)] = n_ops - 1
    live = [t for t in first if not is_constant(graph.tensors[t])]
    peak = max((sum(nbytes(graph.tensors[t]) for t in live if first[t] <= step <= last[t])
                for step in range(n_ops)), default=0)
    channels = sum(len(t.quantization.scale) for t in graph.tensors
                   if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) > 1)
    persistent = _PER_TENSOR_BYTES * len(graph.tensors) + _PER_OP_BYTES * n_ops + 8 * channels
    estimate = int(np.ceil((peak * 1.1 + persistent + 2048) / 1024) * 1024)
    used = sorted({codes[op.opcodeIndex] for op in graph.operators})
    return {"ops": used, "operators": n_ops, "activation_peak_bytes": int(peak),
            "persistent_bytes_estimate": int(persistent), "arena_bytes_estimate": estimate,
            "model_bytes": len(buf)}


def _c_floats(values) -> str:
    return ", ".join(f"{float(v):.9g}f" for v in values)


def write_mcu(int8_tflite: str | Path, out_dir: str | Path, meta: dict) -> dict:
    """Write the C sources for ``int8_tflite`` into ``out_dir``; returns the metadata ``mcu`` section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(int8_tflite).read_bytes()
    info = analyse_tflite(int8_tflite)
    io = meta["files"].get(Path(int8_tflite).name, {})
    q_in = io.get("input", {}).get("quantization", {"scale": 1.0, "zero_point": 0})
    q_out = io.get("output", {}).get("quantization", {"scale": 1.0, "zero_point": 0})
    norm = meta["normalization"]
    labels = meta["labels"]
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    (out / "c3t_model_data.cc").write_text(
        "// Generated by `c3t-edge export --target mcu`: the bundle's model.int8.tflite (full-integer).\n"
        '#include "c3t_model_data.h"\n\n'
        "alignas(16) const unsigned char c3t_model_data[] = {\n  " + ",\n  ".join(rows) + "\n};\n"
        f"const unsigned int c3t_model_data_len = {len(data)};\n\n"
        f"const float c3t_input_mean[C3T_CHANNELS] = {{{_c_floats(norm['mean'])}}};\n"
        f"const float c3t_input_std[C3T_CHANNELS] = {{{_c_floats(norm['std'])}}};\n"
        "const char* const c3t_labels[C3T_LABELS] = {\n  "
        + ",\n  ".join(json.dumps(label) for label in labels) + "\n};\n")
    channels = ", ".join(f"{c} [{u}]" for c, u in zip(meta["channels"], meta["units"], strict=True))
    (out / "c3t_model_data.h").write_text(
        "// Generated by `c3t-edge export --target mcu`. Input: int8 [1][C3T_WINDOW][C3T_CHANNELS], each value\n"
        "// q = round(((x - c3t_input_mean[c]) / c3t_input_std[c]) / C3T_INPUT_SCALE) + C3T_INPUT_ZERO_POINT,\n"
        f"// x in the channel's unit ({channels}), sampled at {meta['sample_rate_hz']:g} Hz.\n"
        "// Output: int8 [1][C3T_LABELS] logits; logit = (q - C3T_OUTPUT_ZERO_POINT) * C3T_OUTPUT_SCALE.\n"
        "#pragma once\n\n"
        f"#define C3T_WINDOW {meta['window_samples']}\n"
        f"#define C3T_HOP {meta['hop_samples']}\n"
        f"#define C3T_CHANNELS {len(meta['channels'])}\n"
        f"#define C3T_LABELS {len(labels)}\n"
        f"#define C3T_SAMPLE_RATE_HZ {meta['sample_rate_hz']:g}f\n"
        f"#define C3T_INPUT_SCALE {q_in['scale']:.9g}f\n"
        f"#define C3T_INPUT_ZERO_POINT {q_in['zero_point']}\n"
        f"#define C3T_OUTPUT_SCALE {q_out['scale']:.9g}f\n"
        f"#define C3T_OUTPUT_ZERO_POINT {q_out['zero_point']}\n"
        f"#define C3T_ARENA_BYTES {info['arena_bytes_estimate']}  // estimate, see README.md\n\n"
        "extern const unsigned char c3t_model_data[];\n"
        "extern const unsigned int c3t_model_data_len;\n"
        "extern const float c3t_input_mean[C3T_CHANNELS];\n"
        "extern const float c3t_input_std[C3T_CHANNELS];\n"
        "extern const char* const c3t_labels[C3T_LABELS];\n")
    adds = "\n".join(f"  resolver.{resolver_method(op)}();" for op in info["ops"])
    (out / "c3t_model_ops.h").write_text(
        "// Generated by `c3t-edge export --target mcu`: exactly the TFLite Micro ops the model uses.\n"
        "#pragma once\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"using C3tOpResolver = tflite::MicroMutableOpResolver<{len(info['ops'])}>;\n\n"
        "inline void c3t_register_ops(C3tOpResolver& resolver) {\n" + adds + "\n}\n")
    (out / "README.md").write_text(
        "# c3t-edge model for TensorFlow Lite Micro\n\n"
        f"- model: `c3t_model_data.cc`, {len(data)} bytes (full-integer INT8, int8 input and output)\n"
        f"- ops ({len(info['ops'])}): {', '.join(info['ops'])} - registered by `c3t_register_ops()` in "
        "`c3t_model_ops.h`\n"
        f"- tensor arena: about {info['arena_bytes_estimate']} bytes (activation peak "
        f"{info['activation_peak_bytes']} bytes + bookkeeping; an estimate - measure with "
        "`tflite::RecordingMicroInterpreter` and trim)\n"
        f"- input: {meta['window_samples']} samples x {len(meta['channels'])} channels ({channels}) at "
        f"{meta['sample_rate_hz']:g} Hz, standardised with `c3t_input_mean`/`c3t_input_std`, then quantized "
        "with `C3T_INPUT_SCALE`/`C3T_INPUT_ZERO_POINT`\n"
        f"- output: {len(labels)} int8 logits in the order of `c3t_labels`; the largest is the action\n\n"
        "See `export/mcu.md` in the c3t-edge repository for a complete inference loop.\n")
    return {"files": sorted(p.name for p in out.iterdir()), **info,
            "input_quantization": q_in, "output_quantization": q_out}


def convert(context: ExportContext) -> TargetResult:
    """Write ``mcu/`` from the bundle's ``model.int8.tflite`` (written by the ``tflite`` target, which
    this one needs); the result is the metadata's ``mcu`` section."""
    int8_tflite = context.out / get_engine("tflite").files["int8"]
    context.log("writing mcu/ (C array, op list, arena estimate)")
    return TargetResult(section=write_mcu(int8_tflite, context.out / "mcu", context.metadata))
