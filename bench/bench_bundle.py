"""Benchmark of a model bundle's four files and of ``c3t-edge info``.

    .venv/bin/python bench/bench_bundle.py [--model default|BUNDLE] [--windows 2000] [--rounds 5]

Prints, in one run so the ratios compare like with like:

1. per-window latency at batch 1 on one thread for each file the bundle has (``model.onnx``,
   ``model.int8.onnx``, ``model.tflite``, ``model.int8.tflite``): ``Bundle.predict_logits`` (raw
   window -> logits: normalisation, int8 quantization where the file takes int8, the engine,
   dequantization), the engine call alone on pre-converted input, and ``Bundle.predict_proba``;
   median over ``--rounds`` interleaved rounds of ``--windows`` calls each; the INT8/FP32 ratio per
   engine is of ``predict_logits``;
2. file sizes and the INT8/FP32 size ratio;
3. the wall time of ``c3t-edge info --model default`` in a fresh process (median of 5), and whether
   that process (and a fresh process that loads a bundle and predicts) imported torch.

Windows are real UTD-MHAD wrist windows when ../shared/datasets/utd-mhad is present, else synthetic
windows of the same ranges (latency does not depend on the values).

It also runs on the emulated Raspberry Pi (``sudo scripts/emulate_pi.sh python bench/bench_bundle.py``)
and then says that its times are qemu's, not a Pi's; bench/bench_emulated_pi.py counts instructions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from c3t_edge.backends import model_files
from c3t_edge.bundle import load_bundle, read_metadata, resolve_bundle_path

MODEL_FILES = model_files()  # (engine, precision) -> file name

UTD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "utd-mhad" / "Inertial"

_TORCH_PROBE = """
import sys, io, contextlib, numpy as np
from c3t_edge.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["info", "--model", {model!r}, "--json"])
from c3t_edge import load_bundle
load_bundle({model!r}, precision="int8").predict_proba(np.zeros((1, 180, 6), np.float32))
print("torch" in sys.modules)
"""


def windows(n: int) -> tuple[np.ndarray, str]:
    files = sorted(UTD.glob("a*_s*_t*_inertial.mat")) if UTD.is_dir() else []
    if files:
        import scipy.io

        from c3t_edge.data.preprocess import fit_clip, resample_rate

        clips = [fit_clip(resample_rate(scipy.io.loadmat(str(f))["d_iner"].astype(np.float32), 50.0, 50.0), 180)
                 for f in files[:n]]
        out = np.stack([clips[i % len(clips)] for i in range(n)])
        return out, f"{len(clips)} real UTD-MHAD windows (cycled)"
    rng = np.random.default_rng(0)
    acc = rng.normal(0, 0.3, (n, 180, 3)) + np.array([0.0, -1.0, 0.0])
    gyro = rng.normal(0, 60.0, (n, 180, 3))
    return np.concatenate([acc, gyro], axis=2).astype(np.float32), "synthetic windows"


def _engine_input(bundle, data: np.ndarray) -> np.ndarray:
    """What the engine itself takes: standardised float windows, or int8 for a full-integer file."""
    x = bundle.standardize(data)
    backend = bundle._backend
    if getattr(backend, "input_dtype", np.float32) != np.float32:
        from c3t_edge.backends.tflite import quantize

        x = quantize(x, *backend._in["quantization"], backend.input_dtype)
    return x


def _engine_call(bundle):
    backend = bundle._backend
    if bundle.engine == "tflite":
        def call(x):
            backend.interpreter.set_tensor(backend._in["index"], x)
            return backend._invoke_and_read()
        return call
    return backend.run


def time_calls(fn, inputs: np.ndarray) -> float:
    """Mean seconds per call of ``fn`` over ``inputs`` (one window each)."""
    start = time.perf_counter()
    for i in range(len(inputs)):
        fn(inputs[i:i + 1])
    return (time.perf_counter() - start) / len(inputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    path = resolve_bundle_path(args.model)
    meta = read_metadata(path)
    data, source = windows(args.windows)
    print(f"bundle {path}; {source}; batch 1, 1 thread, {args.rounds} rounds x {args.windows} windows")
    emulated = os.environ.get("C3T_EMULATED")  # set by scripts/emulate_pi.sh
    if emulated:
        print(f"EMULATED ({emulated}): the times below are qemu's translation speed, not a Raspberry Pi's, and "
              "so are their ratios; bench/bench_emulated_pi.py counts the instructions instead")

    bundles = {}
    for (engine, precision), name in MODEL_FILES.items():
        if name in meta["files"]:
            try:
                bundles[name] = load_bundle(path, precision=precision, engine=engine, threads=1)
            except Exception as exc:  # e.g. no TFLite interpreter installed
                print(f"  {name}: skipped ({exc})")
    engine_inputs = {name: _engine_input(b, data) for name, b in bundles.items()}
    timings: dict[str, dict[str, list[float]]] = {name: {"engine": [], "logits": [], "proba": []} for name in bundles}
    for bundle in bundles.values():  # warm-up
        time_calls(bundle.predict_logits, data[:200])
    for _ in range(args.rounds):
        for name, bundle in bundles.items():
            timings[name]["engine"].append(time_calls(_engine_call(bundle), engine_inputs[name]))
            timings[name]["logits"].append(time_calls(bundle.predict_logits, data))
            timings[name]["proba"].append(time_calls(bundle.predict_proba, data))

    results: dict = {"latency_us": {}, "engine_only_us": {}, "predict_proba_us": {}, "bytes": {}, "ratios": {},
                     "emulated": emulated}
    print(f"\n{'file':<20}{'predict_logits µs':>18}{'engine only µs':>16}{'predict_proba µs':>18}{'KiB':>9}")
    for name in bundles:
        t = {k: 1e6 * float(np.median(v)) for k, v in timings[name].items()}
        size = meta["files"][name]["bytes"]
        results["latency_us"][name] = round(t["logits"], 1)
        results["engine_only_us"][name] = round(t["engine"], 1)
        results["predict_proba_us"][name] = round(t["proba"], 1)
        results["bytes"][name] = size
        print(f"{name:<20}{t['logits']:>18.1f}{t['engine']:>16.1f}{t['proba']:>18.1f}{size / 1024:>9.1f}")
    for engine in ("onnxruntime", "tflite"):
        fp32, int8 = MODEL_FILES[(engine, "fp32")], MODEL_FILES[(engine, "int8")]
        if fp32 in results["latency_us"] and int8 in results["latency_us"]:
            speed = results["latency_us"][int8] / results["latency_us"][fp32]
            size = results["bytes"][int8] / results["bytes"][fp32]
            results["ratios"][engine] = {"int8_over_fp32_latency": round(speed, 3),
                                         "int8_over_fp32_size": round(size, 3)}
            print(f"{engine}: INT8/FP32 latency {speed:.2f}, size {size:.2f}")
    best = min(results["latency_us"], key=results["latency_us"].get)
    print(f"best file: {best}, {results['latency_us'][best]:.1f} µs per window")

    walls = []
    for _ in range(5):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "c3t_edge", "info", "--model", "default"],
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            print(f"info failed: {proc.stderr.strip()}")
            return 1
    probe = subprocess.run([sys.executable, "-c", _TORCH_PROBE.format(model=args.model)],
                           capture_output=True, text=True)
    imported_torch = probe.stdout.strip().splitlines()[-1] if probe.returncode == 0 else f"error: {probe.stderr}"
    results["info_default_wall_s"] = round(float(np.median(walls)), 3)
    results["runtime_imports_torch"] = imported_torch
    print(f"c3t-edge info --model default: {np.median(walls):.3f} s wall (median of 5, min {min(walls):.3f} s); "
          f"info + load + predict imported torch: {imported_torch}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
