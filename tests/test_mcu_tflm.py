"""The full-integer model in TensorFlow Lite Micro's own interpreter (the ``tflite-micro`` package), against
LiteRT (``ai-edge-litert``), on real windows; and the tensor arena ``export --target mcu`` writes, measured
by TFLite Micro's recording allocator.

The model is the shipped default bundle's ``model.int8.tflite``; the windows are every 5th 180-sample window of
the shipped demo session (real UTD-MHAD trials with rest between), standardised and quantized once, so both
interpreters get the same int8 tensors. ``tflite-micro`` comes with the ``tflite`` extra (Linux x86-64 wheels
only), which CI installs: there a missing package fails these tests, elsewhere it skips them.
"""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from test_stream_serial import demo_samples

from c3t_edge.backends.tflite import interpreter_class, quantize
from c3t_edge.bundle import default_bundle_path
from c3t_edge.export.mcu import _cmsis_nn_op_scratch, analyse_tflite, measure_arena, write_mcu

HOP = 5  # samples between the windows compared


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        message = f"{module} is not installed (pip install 'c3t-edge[tflite]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def bundle() -> tuple[dict, bytes]:
    _require("tflite_micro")
    _require("ai_edge_litert")
    path = default_bundle_path()
    return json.loads((path / "metadata.json").read_text()), (path / "model.int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def int8_windows(bundle) -> np.ndarray:
    """(n, 1, 180, 6) int8: the demo session's windows as the model's input tensor."""
    meta, _ = bundle
    x = demo_samples()
    w = meta["window_samples"]
    starts = np.arange(0, len(x) - w + 1, HOP)
    windows = np.stack([x[s:s + w] for s in starts]).astype(np.float32)
    norm = meta["normalization"]
    z = (windows - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    q = meta["files"]["model.int8.tflite"]["input"]["quantization"]
    return quantize(z, q["scale"], q["zero_point"], np.int8)[:, None]


def litert_outputs(model: bytes, windows: np.ndarray) -> np.ndarray:
    interpreter = interpreter_class()(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    i, o = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    out = []
    for x in windows:
        interpreter.set_tensor(i, x)
        interpreter.invoke()
        out.append(interpreter.get_tensor(o)[0].copy())
    return np.stack(out)


def tflm_outputs(model: bytes, windows: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    out = []
    for x in windows:
        interpreter.set_input(x, 0)
        interpreter.invoke()
        out.append(interpreter.get_output(0)[0].copy())
    return np.stack(out)


def test_tflite_micro_agrees_with_litert_on_real_windows(bundle, int8_windows):
    meta, model = bundle
    micro, lite = tflm_outputs(model, int8_windows), litert_outputs(model, int8_windows)
    assert micro.dtype == lite.dtype == np.int8 and micro.shape == lite.shape == (len(int8_windows), 21)
    agrees = micro.argmax(1) == lite.argmax(1)
    agreement = float(np.mean(agrees))
    same = float(np.mean(np.all(micro == lite, axis=1)))
    largest = int(np.abs(micro.astype(int) - lite).max())
    ranked = np.sort(lite.astype(int), axis=1)
    margin = ranked[:, -1] - ranked[:, -2]                    # LiteRT's top-1 lead over the runner-up, LSB
    print(f"TFLite Micro vs LiteRT on {len(int8_windows)} windows: top-1 agreement {agreement:.4f}, "
          f"identical int8 outputs {same:.4f}, largest difference {largest} LSB, "
          f"disagreements at LiteRT margins {sorted(margin[~agrees].tolist())} LSB")
    assert len(int8_windows) > 800
    # The two runtimes' kernels round differently (reference vs optimised), never by more than 2 LSB
    # per logit; so the top-1 can differ only where two classes are within 4 LSB of each other (the
    # shipped bundle: 12 of 877 windows differ, all of them ties or 1 LSB apart in LiteRT).
    assert largest <= 2
    assert np.all(margin[~agrees] <= 2 * largest)
    assert agreement >= 0.98
    assert len(set(lite.argmax(1))) >= 10  # real windows: many different actions are compared, not one


def test_the_measured_arena_is_what_tflite_micro_needs(bundle, int8_windows):
    """The recording allocator's total is enough to run the model, and 256 bytes less is not."""
    _, model = bundle
    path = default_bundle_path() / "model.int8.tflite"
    measured = measure_arena(path)
    total = measured["arena_bytes_measured"]
    assert total == measured["arena_head_bytes"] + measured["arena_tail_bytes"]
    assert measured["arena_head_bytes"] >= analyse_tflite(path)["activation_peak_bytes"]
    np.testing.assert_array_equal(tflm_outputs(model, int8_windows[:3], arena_size=total),
                                  tflm_outputs(model, int8_windows[:3]))
    with pytest.raises(RuntimeError):
        tflm_outputs(model, int8_windows[:1], arena_size=total - 256)


def test_export_target_mcu_writes_the_measured_arena(bundle, tmp_path):
    """What ``export --target mcu`` writes (its writer, on the default bundle): C3T_ARENA_BYTES is the measured
    arena plus the stated margin, and the README and metadata say so."""
    meta, _ = bundle
    section = write_mcu(default_bundle_path() / "model.int8.tflite", tmp_path, meta)
    assert section["arena_source"] == "measured"
    measured, arena = section["arena_bytes_measured"], section["arena_bytes"]
    assert arena == section["arena_bytes_measured"] + section["arena_margin_bytes"] and arena % 1024 == 0
    assert measured + section["cmsis_nn_scratch_bytes"] <= arena < measured + section["cmsis_nn_scratch_bytes"] + 1024
    header = (tmp_path / "c3t_model_data.h").read_text()
    assert re.search(rf"#define C3T_ARENA_BYTES {arena}  // TFLite Micro measured {measured} \+ margin", header)
    readme = (tmp_path / "README.md").read_text()
    assert f"TFLite Micro allocated {measured} bytes" in readme and "tflite-micro" in readme


def _op(name: str, input_shape, filter_shape=None, output_shape=None, stride=1, dilation=1):
    """One op of a TFLite graph as ``analyse_tflite`` reads it (``ModelT`` objects), for ``_cmsis_nn_op_scratch``."""
    tensors = [SimpleNamespace(shape=np.array(s)) for s in (input_shape, filter_shape or [1], output_shape or [1])]
    options = SimpleNamespace(strideH=stride, strideW=stride, dilationHFactor=dilation, dilationWFactor=dilation)
    return name, SimpleNamespace(tensors=tensors), SimpleNamespace(inputs=[0, 1], outputs=[2], builtinOptions=options)


def test_cmsis_nn_scratch_is_what_cmsis_nn_asks_on_a_cortex_m4():
    """The margin's sizes against CMSIS-NN's *_get_buffer_size (ARM_MATH_DSP, no MVE), worked by hand."""
    # arm_convolve_s8_get_buffer_size: 2 x (kh*kw*input channels, rounded up to 4) int16; the default model's 5x96
    assert _cmsis_nn_op_scratch(*_op("CONV_2D", [1, 1, 64, 96], [128, 1, 5, 96])) == 2 * 480 * 2
    assert _cmsis_nn_op_scratch(*_op("CONV_2D", [1, 1, 180, 6], [48, 1, 7, 6])) == 2 * 44 * 2  # 42 -> 44
    assert _cmsis_nn_op_scratch(*_op("CONV_2D", [1, 8, 8, 16], [16, 3, 3, 8])) == 2 * 144 * 2  # grouped: input c
    assert _cmsis_nn_op_scratch(*_op("CONV_2D", [1, 1, 12, 64], [64, 1, 1, 64])) == 2 * 64 * 2  # 1x1, stride 1
    assert _cmsis_nn_op_scratch(*_op("CONV_2D", [1, 1, 12, 64], [64, 1, 1, 64], stride=2)) == 0
    # arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp: c*kh*kw int16, none for 3x3, multiplier > 1 or dilation
    assert _cmsis_nn_op_scratch(*_op("DEPTHWISE_CONV_2D", [1, 1, 60, 32], [1, 1, 5, 32])) == 32 * 5 * 2
    assert _cmsis_nn_op_scratch(*_op("DEPTHWISE_CONV_2D", [1, 8, 8, 32], [1, 3, 3, 32])) == 0
    assert _cmsis_nn_op_scratch(*_op("DEPTHWISE_CONV_2D", [1, 1, 60, 16], [1, 1, 5, 32])) == 0
    assert _cmsis_nn_op_scratch(*_op("DEPTHWISE_CONV_2D", [1, 1, 60, 32], [1, 1, 5, 32], dilation=2)) == 0
    assert _cmsis_nn_op_scratch(*_op("AVERAGE_POOL_2D", [1, 1, 12, 128])) == 128 * 4
    assert _cmsis_nn_op_scratch(*_op("FULLY_CONNECTED", [1, 128], [21, 128], [1, 21])) == 0
    assert _cmsis_nn_op_scratch(*_op("FULLY_CONNECTED", [1, 12, 128], [21, 128], [1, 12, 21])) == 128 * 4 + 21 * 8
    assert _cmsis_nn_op_scratch(*_op("PAD", [1, 1, 60, 96])) == 0
    _require("ai_edge_litert")
    assert analyse_tflite(default_bundle_path() / "model.int8.tflite")["cmsis_nn_scratch_bytes"] == 1920
