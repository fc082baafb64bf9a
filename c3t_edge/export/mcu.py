"""The ``mcu`` export target: the full-integer TFLite model as C source for TensorFlow Lite Micro.

Writes into ``mcu/``:

- ``c3t_model_data.cc`` / ``c3t_model_data.h``: the INT8 ``.tflite`` as a 16-byte aligned byte
  array, plus the constants a firmware needs to feed it (window, channels, per-channel mean/std,
  input/output scale and zero point, labels);
- ``c3t_model_ops.h``: a ``MicroMutableOpResolver`` with exactly the builtin ops the model uses;
- ``README.md``: the op list, the tensor arena and how to call the model.

The tensor arena (``C3T_ARENA_BYTES``) is measured: the model runs once in TensorFlow Lite Micro's own
interpreter (the ``tflite-micro`` package, reference kernels), whose ``RecordingMicroAllocator`` reports
the bytes it allocated (:func:`measure_arena`). A stated margin is added (:data:`ARENA_MARGIN`): the
largest scratch buffer TFLite Micro's CMSIS-NN kernels request for one op on a Cortex-M4 (for this model an
int8 convolution's im2col), which the reference kernels do not use, then a round-up to 1 KiB. The
measurement runs on the 64-bit host: TFLite Micro's bookkeeping structures hold pointers, so on a 32-bit
MCU the same model needs less (an upper bound).

Where ``tflite-micro`` is not installed (it has Linux x86-64 wheels only) the arena is an estimate that
replays the operator order instead: every non-constant tensor lives from the op that writes it to the
last op that reads it, the peak of the live bytes (16-byte aligned) is the activation arena, and
per-tensor/per-op bookkeeping plus a margin are added; ``arena_source`` in the metadata says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from c3t_edge.backends import get_engine
from c3t_edge.errors import C3TEdgeError
from c3t_edge.export.targets import ExportContext, TargetResult

#: TFLite builtin op name -> MicroMutableOpResolver method, where the CamelCase rule does not give it.
_RESOLVER_NAMES = {"BATCH_MATMUL": "AddBatchMatMul", "L2_NORMALIZATION": "AddL2Normalization",
                   "LOG_SOFTMAX": "AddLogSoftmax", "RELU6": "AddRelu6", "RELU_N1_TO_1": "AddReluN1To1"}
_DTYPE_BYTES = {"FLOAT32": 4, "INT32": 4, "INT8": 1, "UINT8": 1, "INT16": 2, "INT64": 8, "BOOL": 1, "FLOAT16": 2}
#: Rough TFLite Micro bookkeeping: TfLiteEvalTensor + TfLiteTensor per tensor, node + registration per op.
_PER_TENSOR_BYTES = 80
_PER_OP_BYTES = 96
#: What is added to the arena TFLite Micro measured, in words (the figures are in the metadata).
ARENA_MARGIN = ("the largest scratch buffer one of TFLite Micro's CMSIS-NN kernels requests on a Cortex-M4 (for an "
                "int8 convolution: 2 x kernel height x kernel width x input channels, rounded up to 4, int16 "
                "values), which the reference kernels measured here do not use, then rounded up to 1 KiB")
_ARENA_ROUND_BYTES = 1024


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
            "cmsis_nn_scratch_bytes": _cmsis_nn_scratch(graph, codes, type_names), "model_bytes": len(buf)}


# The scratch sizes below are CMSIS-NN's for a Cortex-M4 build (ARM_MATH_DSP defined, no MVE), from
# github.com/ARM-software/CMSIS-NN: Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c
# (arm_convolve_wrapper_s8_get_buffer_size_dsp -> arm_convolve_s8_get_buffer_size, also for 1xN; 1x1:
# arm_convolve_1x1_s8_fast_get_buffer_size), Source/ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c
# (arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp), Source/PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c
# and Source/FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c (0 without MVE). TFLite Micro's
# CMSIS-NN kernels (github.com/tensorflow/tflite-micro, tensorflow/lite/micro/kernels/cmsis_nn/conv.cc,
# depthwise_conv.cc, pooling.cc, fully_connected.cc) request them in Prepare with RequestScratchBufferInArena:
# non-persistent arena, live only while their op runs (tensorflow/lite/micro/micro_allocation_info.cc).


def _cmsis_nn_scratch(graph, codes: list[str], type_names: dict) -> int:
    """Bytes of the largest scratch buffer TFLite Micro's CMSIS-NN kernels request for one op of the graph on
    a Cortex-M4 (one op runs at a time, so the largest, not the sum, is what can add to the arena)."""
    int8_ops = (op for op in graph.operators if type_names[graph.tensors[op.inputs[0]].type] == "INT8")
    return max((_cmsis_nn_op_scratch(codes[op.opcodeIndex], graph, op) for op in int8_ops), default=0)


def _cmsis_nn_op_scratch(name: str, graph, op) -> int:
    """Scratch bytes CMSIS-NN asks for one int8 op (input NHWC, filters OHWI / 1HWC) on a Cortex-M4."""
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"):
        return 0
    shape = [int(d) for d in graph.tensors[op.inputs[0]].shape]
    if name == "AVERAGE_POOL_2D":
        return 4 * shape[3]  # arm_avgpool_s8_get_buffer_size_dsp: one int32 per channel
    if name == "FULLY_CONNECTED":  # 0 (DSP) unless run as a 1x1 convolution (output rank > 2): its buffer plus,
        out_shape, depth = graph.tensors[op.outputs[0]].shape, shape[-1]  # if per-tensor, 2 int32 per output
        return 2 * depth * 2 + 8 * int(out_shape[-1]) if len(out_shape) > 2 and depth % 4 == 0 else 0
    _, kernel_h, kernel_w, filter_channels = (int(d) for d in graph.tensors[op.inputs[1]].shape)
    options = op.builtinOptions
    plain = (options.dilationHFactor, options.dilationWFactor) == (1, 1) and filter_channels == shape[3]
    if name == "DEPTHWISE_CONV_2D":  # int16 im2col of the _opt kernel; the 3x3 kernel (padding <= 1) needs none
        use_opt = plain and shape[0] == 1 and (kernel_h, kernel_w) != (3, 3)
        return shape[3] * kernel_h * kernel_w * 2 if use_opt else 0
    if plain and (kernel_h, kernel_w) == (1, 1):  # 1x1 fast path: 2 x channels int16 with Arm Compiler 6 (GCC: 0)
        return 2 * shape[3] * 2 if (options.strideH, options.strideW) == (1, 1) else 0
    cols = kernel_h * kernel_w * shape[3]  # input channels (input_dims->c), also for a grouped convolution
    return 2 * ((cols + 3) // 4 * 4) * 2  # 2 im2col columns of int16, rounded up to 4


@contextlib.contextmanager
def _native_stderr_into(fd: int):
    """Point file descriptor 2 at ``fd`` while native code (TFLite Micro's MicroPrintf) writes to it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def measure_arena(int8_tflite: str | Path) -> dict | None:
    """The tensor arena TensorFlow Lite Micro really uses for ``int8_tflite``, or None without the
    ``tflite-micro`` package.

    The model is loaded into TFLite Micro's Python interpreter (recording allocator, reference kernels,
    an arena of 10x the model's size), run once on a zero input, and its ``RecordingMicroAllocator``
    report is read: ``arena_bytes_measured`` (total), ``arena_head_bytes`` (the non-persistent part:
    activations and scratch) and ``arena_tail_bytes`` (persistent: tensors, op data), all in bytes;
    ``measured_with`` names the package version. Raises :class:`C3TEdgeError` when TFLite Micro cannot
    run the model (an op it lacks), with its first message."""
    try:
        import tflite_micro
        from tflite_micro import runtime
    except ImportError:
        return None
    data = Path(int8_tflite).read_bytes()
    with tempfile.TemporaryFile() as log:
        try:
            with _native_stderr_into(log.fileno()):
                interpreter = runtime.Interpreter.from_bytes(data)
                details = interpreter.get_input_details(0)
                interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
                interpreter.invoke()
                interpreter.print_allocations()
        except (RuntimeError, ValueError) as exc:
            log.seek(0)
            said = log.read().decode(errors="replace").strip().splitlines() or [str(exc)]
            raise C3TEdgeError(f"{int8_tflite}: TensorFlow Lite Micro cannot run it ({said[0]})") from None
        log.seek(0)
        report = log.read().decode(errors="replace")
    figures = {key: re.search(rf"Arena allocation {key} (\d+) bytes", report) for key in ("total", "head", "tail")}
    if not all(figures.values()):
        raise C3TEdgeError(f"{int8_tflite}: TensorFlow Lite Micro's allocation report was not understood")
    total, head, tail = (int(figures[key].group(1)) for key in ("total", "head", "tail"))
    return {"arena_bytes_measured": total, "arena_head_bytes": head, "arena_tail_bytes": tail,
            "measured_with": f"tflite-micro {tflite_micro.__version__} (reference kernels, "
                            f"{platform.system()} {platform.machine()} host)"}


def arena_figures(int8_tflite: str | Path, info: dict) -> dict:
    """``arena_bytes`` (what ``C3T_ARENA_BYTES`` is) and how it was found: measured in TFLite Micro plus
    :data:`ARENA_MARGIN`, or, without ``tflite-micro``, the estimate (``arena_source`` says which)."""
    measured = measure_arena(int8_tflite)
    if measured is None:
        return {"arena_bytes": info["arena_bytes_estimate"], "arena_source": "estimate (tflite-micro not installed)",
                "arena_bytes_measured": None}
    margin_from = measured["arena_bytes_measured"] + info["cmsis_nn_scratch_bytes"]
    arena = -(-margin_from // _ARENA_ROUND_BYTES) * _ARENA_ROUND_BYTES
    return {"arena_bytes": arena, "arena_source": "measured", **measured,
            "arena_margin_bytes": arena - measured["arena_bytes_measured"], "arena_margin": ARENA_MARGIN}


def _c_floats(values) -> str:
    return ", ".join(f"{float(v):.9g}f" for v in values)


def write_mcu(int8_tflite: str | Path, out_dir: str | Path, meta: dict) -> dict:
    """Write the C sources for ``int8_tflite`` into ``out_dir``; returns the metadata ``mcu`` section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(int8_tflite).read_bytes()
    info = analyse_tflite(int8_tflite)
    arena = arena_figures(int8_tflite, info)
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
        f"#define C3T_ARENA_BYTES {arena['arena_bytes']}  // {_arena_source(arena)}, see README.md\n\n"
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
        f"- tensor arena: {_arena_readme(arena, info)}\n"
        f"- input: {meta['window_samples']} samples x {len(meta['channels'])} channels ({channels}) at "
        f"{meta['sample_rate_hz']:g} Hz, standardised with `c3t_input_mean`/`c3t_input_std`, then quantized "
        "with `C3T_INPUT_SCALE`/`C3T_INPUT_ZERO_POINT`\n"
        f"- output: {len(labels)} int8 logits in the order of `c3t_labels`; the largest is the action\n\n"
        "See `export/mcu.md` in the c3t-edge repository for a complete inference loop.\n")
    return {"files": sorted(p.name for p in out.iterdir()), **info, **arena,
            "input_quantization": q_in, "output_quantization": q_out}


def _arena_source(arena: dict) -> str:
    if arena["arena_source"] != "measured":
        return "an estimate"
    return f"TFLite Micro measured {arena['arena_bytes_measured']} + margin {arena['arena_margin_bytes']}"


def _arena_readme(arena: dict, info: dict) -> str:
    """The README's tensor-arena line: the figure and how it was found."""
    if arena["arena_source"] != "measured":
        return (f"about {arena['arena_bytes']} bytes (activation peak {info['activation_peak_bytes']} bytes + "
                "bookkeeping; an estimate, tflite-micro was not installed - measure with "
                "`tflite::RecordingMicroInterpreter` and trim)")
    return (f"`C3T_ARENA_BYTES` = {arena['arena_bytes']} bytes: TFLite Micro allocated "
            f"{arena['arena_bytes_measured']} bytes running this model ({arena['arena_head_bytes']} non-persistent: "
            f"activations; {arena['arena_tail_bytes']} persistent: tensors and op data; measured with "
            f"{arena['measured_with']}), plus a margin of {arena['arena_margin_bytes']} bytes: "
            f"{arena['arena_margin']}")


def convert(context: ExportContext) -> TargetResult:
    """Write ``mcu/`` from the bundle's ``model.int8.tflite`` (written by the ``tflite`` target, which
    this one needs); the result is the metadata's ``mcu`` section."""
    int8_tflite = context.out / get_engine("tflite").files["int8"]
    context.log("writing mcu/ (C array, op list, tensor arena measured in TFLite Micro)")
    return TargetResult(section=write_mcu(int8_tflite, context.out / "mcu", context.metadata))
