"""Benchmark of a model bundle's four files and of ``c3t-edge info``.

    .venv/bin/python bench/bench_bundle.py [--model default|BUNDLE] [--windows 2000] [--rounds 5]

Prints, in one run so the ratios compare like with like:

1. per-window latency at batch 1 on one thread for each file the bundle has (``model.onnx``,
   ``model.int8.onnx``, ``model.tflite``, ``model.int8.tflite``): the engine call alone and the
   whole ``Bundle.predict_proba`` (normalisation + engine + softmax), median over ``--rounds``
   interleaved rounds of ``--windows`` calls each; INT8/FP32 ratio per engine;
2. file sizes and the INT8/FP32 size ratio;
3. the wall time of ``c3t-edge info --model default`` in a fresh process (median of 5), and whether
   that process (and a fresh process that loads a bundle and predicts) imported torch.

Windows are real UTD-MHAD wrist windows when ../shared/datasets/utd-mhad is present, else synthetic
windows of the same ranges (latency does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from c3t_edge.bundle import MODEL_FILES, load_bundle, read_metadata, resolve_bundle_path

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

    bundles = {}
    for (engine, precision), name in MODEL_FILES.items():
        if name in meta["files"]:
            try:
                bundles[name] = load_bundle(path, precision=precision, engine=engine, threads=1)
            except Exception as exc:  # e.g. no TFLite interpreter installed
                print(f"  {name}: skipped ({exc})")
    standardised = {name: b.standardize(data) for name, b in bundles.items()}
    engine_s: dict[str, list[float]] = {name: [] for name in bundles}
    full_s: dict[str, list[float]] = {name: [] for name in bundles}
    for name, bundle in bundles.items():  # warm-up
        time_calls(bundle._backend.run, standardised[name][:200])
    for _ in range(args.rounds):
        for name, bundle in bundles.items():
            engine_s[name].append(time_calls(bundle._backend.run, standardised[name]))
            full_s[name].append(time_calls(bundle.predict_proba, data))

    results: dict = {"latency_us": {}, "predict_proba_us": {}, "bytes": {}, "ratios": {}}
    print(f"\n{'file':<20}{'engine µs':>12}{'predict_proba µs':>18}{'KiB':>10}")
    for name in bundles:
        e, f = 1e6 * float(np.median(engine_s[name])), 1e6 * float(np.median(full_s[name]))
        size = meta["files"][name]["bytes"]
        results["latency_us"][name] = round(e, 1)
        results["predict_proba_us"][name] = round(f, 1)
        results["bytes"][name] = size
        print(f"{name:<20}{e:>12.1f}{f:>18.1f}{size / 1024:>10.1f}")
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
