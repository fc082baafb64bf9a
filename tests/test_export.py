"""``c3t-edge export`` on a real, briefly trained run: every file runs in its real engine, parity and
INT8 accuracy are asserted, and the MCU target is generated.

Needs the UTD-MHAD folder (skips without it) and torch; the TFLite files need the optional
``tflite`` extra (litert-torch), which CI installs: there (``CI`` set) a missing converter fails these
tests; elsewhere they check instead that the export still writes the ONNX files and says why the
TFLite ones are missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="export needs the 'train' extra (torch)")
pytest.importorskip("onnx", reason="export needs the 'train' extra (onnx)")

from c3t_edge import load_bundle  # noqa: E402
from c3t_edge.backends import register_engine, unregister_engine  # noqa: E402
from c3t_edge.bundle import is_bundle_dir, sha256_file, verify_bundle  # noqa: E402
from c3t_edge.cli import main  # noqa: E402
from c3t_edge.data.actions import UTD_MHAD_ACTIONS  # noqa: E402
from c3t_edge.errors import BundleError  # noqa: E402
from c3t_edge.export.targets import ExportTarget, register_target, unregister_target  # noqa: E402

#: CI installs the 'tflite' extra: there the TFLite tests must run, and fail if the converter is missing.
HAVE_CONVERTER = importlib.util.find_spec("litert_torch") is not None or bool(os.environ.get("CI"))
needs_converter = pytest.mark.skipif(not HAVE_CONVERTER,
                                     reason="TFLite conversion needs the 'tflite' extra (pip install litert-torch)")


@pytest.fixture(scope="session")
def dev_run(utd_mhad_dir, tmp_path_factory) -> Path:
    """A supervised wrist run on the development split (train 1,3,5; test 2,4,6), briefly trained."""
    from c3t_edge.methods import default_config
    from c3t_edge.training import train_run

    out = tmp_path_factory.mktemp("export-run") / "run"
    train_run(default_config("supervised", placement="wrist", steps=300), utd_mhad_dir, out)
    return out


@pytest.fixture(scope="session")
def bundle_dir(dev_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-bundle") / "bundle"
    args = ["export", str(dev_run), "--out", str(out), "--quiet"]
    if HAVE_CONVERTER:
        args += ["--target", "mcu"]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def meta(bundle_dir) -> dict:
    return verify_bundle(bundle_dir)


@pytest.fixture(scope="session")
def test_windows(dev_run, utd_mhad_dir):
    """Raw test-subject windows, labels, and the torch logits of the run's model on them."""
    from c3t_edge.training import load_arrays, load_run, make_split

    run = load_run(dev_run)
    arrays = load_arrays(utd_mhad_dir, run.config)
    split = make_split(arrays, "development")
    imu, _ = arrays.windows(split.test, with_camera=False)
    logits = run.method.predict_logits(run.method.standardizer_(imu))
    return imu, arrays.labels[split.test], logits


def _files(meta: dict) -> list[tuple[str, str, str]]:
    return [(name, e["engine"], e["precision"]) for name, e in meta["files"].items()]


def test_metadata_describes_the_run(meta):
    assert meta["labels"] == list(UTD_MHAD_ACTIONS[:21])
    assert meta["training"]["method"] == "supervised" and meta["training"]["split"] == "development"
    assert meta["training"]["train_subjects"] == [1, 3, 5] and meta["training"]["test_subjects"] == [2, 4, 6]
    # a supervised run read the IMU of every training trial: its quantization data are those, never a test subject
    assert meta["quantization"]["data"].startswith("training trials of subjects 1,3,5")
    assert meta["evaluation"]["subjects"] == [2, 4, 6] and meta["evaluation"]["held_out"] is True
    assert meta["hop_samples"] == 25 and meta["window_samples"] == 180
    assert set(meta["parity"]) == set(meta["files"])


def test_fp32_files_match_torch(meta, bundle_dir, test_windows):
    imu, _, torch_logits = test_windows
    for name, engine, precision in _files(meta):
        if precision != "fp32":
            continue
        assert meta["parity"][name]["max_abs_logit_diff"] <= 1e-4, name
        assert meta["parity"][name]["top1_agreement"] == 1.0, name
        logits = load_bundle(bundle_dir, precision="fp32", engine=engine).predict_logits(imu)
        assert np.abs(logits - torch_logits).max() <= 1e-4, name


def test_int8_files_lose_at_most_one_accuracy_point(meta, bundle_dir, test_windows):
    imu, labels, _ = test_windows
    fp32 = np.mean(load_bundle(bundle_dir).predict(imu) == labels)
    assert fp32 == pytest.approx(meta["accuracy"]["model.onnx"])
    for name, engine, precision in _files(meta):
        if precision != "int8":
            continue
        accuracy = np.mean(load_bundle(bundle_dir, precision="int8", engine=engine).predict(imu) == labels)
        assert accuracy == pytest.approx(meta["accuracy"][name]), name
        assert accuracy >= fp32 - 0.01, (name, accuracy, fp32)
        assert meta["parity"][name]["top1_agreement"] >= 0.9, name


def test_int8_files_are_small(meta):
    assert meta["files"]["model.int8.onnx"]["bytes"] <= 0.30 * meta["files"]["model.onnx"]["bytes"]
    if "model.int8.tflite" in meta["files"]:
        assert meta["files"]["model.int8.tflite"]["bytes"] <= 0.30 * meta["files"]["model.tflite"]["bytes"]


def test_onnx_files_are_single_file_dynamic_batch_qdq(bundle_dir, test_windows):
    import onnx

    fp32 = onnx.load(str(bundle_dir / "model.onnx"))
    assert max(o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not [t for t in fp32.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    dims = fp32.graph.input[0].type.tensor_type.shape.dim
    assert fp32.graph.input[0].name == "imu" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [180, 6]
    assert fp32.graph.output[0].name == "logits"
    int8 = onnx.load(str(bundle_dir / "model.int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    per_channel = [n for n in int8.graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute)]
    assert per_channel, "weights are quantized per channel"
    imu = test_windows[0]
    for precision in ("fp32", "int8"):
        bundle = load_bundle(bundle_dir, precision=precision)
        one = bundle.predict_logits(imu[:1])
        many = bundle.predict_logits(imu[:7])
        np.testing.assert_allclose(one[0], many[0], atol=1e-4)


def test_tflite_files_or_the_reason_they_are_missing(meta, bundle_dir):
    if not HAVE_CONVERTER:
        assert set(meta["missing_files"]) == {"model.tflite", "model.int8.tflite"}
        assert "litert-torch" in meta["missing_files"]["model.tflite"]
        assert (bundle_dir / "model.onnx").exists() and (bundle_dir / "model.int8.onnx").exists()
        return
    assert {"model.tflite", "model.int8.tflite"} <= set(meta["files"])
    int8 = meta["files"]["model.int8.tflite"]
    assert int8["input"]["dtype"] == "int8" and int8["output"]["dtype"] == "int8"
    assert int8["input"]["quantization"]["scale"] > 0


@needs_converter
def test_mcu_target(meta, bundle_dir):
    mcu = bundle_dir / "mcu"
    source = (mcu / "c3t_model_data.cc").read_text()
    assert len(re.findall(r"0x[0-9a-f]{2}", source)) == meta["files"]["model.int8.tflite"]["bytes"]
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(meta["mcu"]["ops"])
    assert "QUANTIZE" not in meta["mcu"]["ops"] and "DEQUANTIZE" not in meta["mcu"]["ops"]  # full-integer
    ops_header = (mcu / "c3t_model_ops.h").read_text()
    assert "resolver.AddConv2D();" in ops_header and "resolver.AddFullyConnected();" in ops_header
    assert f"MicroMutableOpResolver<{len(meta['mcu']['ops'])}>" in ops_header
    assert meta["mcu"]["arena_bytes_estimate"] > meta["mcu"]["activation_peak_bytes"] > 0
    # CI installs tflite-micro (the tflite extra): the arena is the one TFLite Micro measured, plus the margin
    assert meta["mcu"]["arena_source"] == "measured"
    assert meta["mcu"]["arena_bytes"] >= meta["mcu"]["arena_bytes_measured"] > meta["mcu"]["activation_peak_bytes"]
    header = (mcu / "c3t_model_data.h").read_text()
    assert f"#define C3T_ARENA_BYTES {meta['mcu']['arena_bytes']}  // TFLite Micro measured" in header
    assert "#define C3T_WINDOW 180" in header and "#define C3T_LABELS 21" in header
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler:
        proc = subprocess.run([compiler, "-std=c++11", "-fsyntax-only", "-Wall", "-Werror",
                               str(mcu / "c3t_model_data.cc")], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr


def test_info_json_on_an_exported_bundle(bundle_dir, capsys):
    assert main(["info", "--model", str(bundle_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["evaluation"]["held_out"] is True
    assert info["parity"]["model.onnx"]["max_abs_logit_diff"] <= 1e-4
    assert set(info["files"]) == set(verify_bundle(bundle_dir)["files"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True, timeout=300)


def test_camera_run_has_no_imu_model(utd_mhad_dir, tmp_path):
    from c3t_edge.methods import default_config
    from c3t_edge.training import train_run

    run = tmp_path / "camera-run"
    train_run(default_config("camera", camera="skeleton", placement="wrist", steps=2), utd_mhad_dir, run)
    proc = _cli("export", str(run), "--out", str(tmp_path / "b"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no IMU model" in lines[0]


def test_export_refusals(dev_run, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    proc = _cli("export", str(dev_run), "--out", str(busy))
    assert proc.returncode == 1 and "is not a bundle" in proc.stderr and (busy / "notes.txt").exists()
    proc = _cli("export", str(dev_run), "--out", str(tmp_path / "b"), "--quiet",
                "--quant-data", str(tmp_path / "nope"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "does not exist" in proc.stderr
    proc = _cli("export", str(tmp_path / "no-run"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 1 and "not a run directory" in proc.stderr


_WITHOUT_LITERT = """
import sys
sys.modules["litert_torch"] = None  # as if the 'tflite' extra were not installed
from c3t_edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_the_tflite_extra(dev_run, tmp_path):
    out = tmp_path / "onnx-only"
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_LITERT, "export", str(dev_run), "--out", str(out),
                           "--quiet", "--target", "mcu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "--target mcu" in proc.stderr and "pip install 'c3t-edge[tflite]'" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_LITERT, "export", str(dev_run), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "litert-torch" in proc.stderr
    assert "the bundle is written without model.tflite, model.int8.tflite" in proc.stderr
    meta = verify_bundle(out)
    assert set(meta["files"]) == {"model.onnx", "model.int8.onnx"}
    assert set(meta["missing_files"]) == {"model.tflite", "model.int8.tflite"}
    assert meta["parity"]["model.onnx"]["max_abs_logit_diff"] <= 1e-4


def test_held_out_reference(bundle_dir):
    from c3t_edge.bundle import default_bundle_path
    from c3t_edge.errors import BundleError
    from c3t_edge.export.metadata import reference_estimate

    estimate = reference_estimate(bundle_dir)
    assert "subjects 1,3,5" in estimate["what"] and "subjects 2,4,6" in estimate["what"]
    assert estimate["accuracy"]["model.onnx"] == verify_bundle(bundle_dir)["accuracy"]["model.onnx"]
    with pytest.raises(BundleError, match="not on held-out subjects"):
        reference_estimate(default_bundle_path())  # an all-subjects bundle


def test_default_bundle_carries_a_held_out_estimate():
    meta = verify_bundle("default")
    assert meta["evaluation"]["held_out"] is False
    estimate = meta["development_estimate"]
    assert estimate["training"]["split"] == "development" and estimate["windows"] > 0
    fp32 = estimate["accuracy"]["model.onnx"]
    assert estimate["accuracy"]["model.int8.onnx"] >= fp32 - 0.01


# ------------------------------------------------------------------ the --out directory and crashes

def _export(run: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return _cli("export", str(run), "--out", str(out), "--quiet", *args)


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_out_is_replaced_only_when_it_is_a_bundle_and_overwrite_is_given(dev_run, bundle_dir, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):  # a directory that is not a bundle: refused, even with --overwrite
        proc = _export(dev_run, busy, "--target", "onnxruntime", *extra)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "is not a bundle" in lines[0], proc.stderr
        assert _contents(busy) == {"notes.txt": b"mine"}
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    proc = _export(dev_run, a_file, "--overwrite")
    assert proc.returncode == 1 and "is not a directory" in proc.stderr and a_file.read_text() == "mine"

    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    before = _contents(bundle)
    proc = _export(dev_run, bundle, "--target", "onnxruntime")  # a bundle without --overwrite: refused
    assert proc.returncode == 1 and "already holds a bundle: pass --overwrite" in proc.stderr
    assert _contents(bundle) == before

    (bundle / "left-by-hand.txt").write_text("stale")
    proc = _export(dev_run, bundle, "--target", "onnxruntime", "--overwrite")  # a bundle with --overwrite: replaced
    assert proc.returncode == 0, proc.stderr
    meta = verify_bundle(bundle)
    assert sorted(p.name for p in bundle.iterdir()) == ["metadata.json", "model.int8.onnx", "model.onnx"]
    assert set(meta["missing_files"]) == {"model.tflite", "model.int8.tflite"}
    assert "targets asked for: onnxruntime" in meta["missing_files"]["model.tflite"]
    assert meta["files"]["model.onnx"]["sha256"] == sha256_file(bundle_dir / "model.onnx")  # export is deterministic

    empty = tmp_path / "empty"
    empty.mkdir()
    assert _export(dev_run, empty, "--target", "onnxruntime").returncode == 0  # an empty directory is fine
    assert is_bundle_dir(empty)


_CRASH = """
import os, sys
from c3t_edge.export.targets import ExportTarget, register_target

def crash(*_args, **_kwargs):
    os._exit(3)  # a hard crash: no exception, no clean-up

if sys.argv[1] == "conversion":  # a converter dies after the reference files are written
    register_target(ExportTarget("crash", crash, "dies mid-way", needs=("onnxruntime",)))
    args = ["--target", "crash"]
else:  # every file is written; the process dies while measuring parity
    import c3t_edge.export.parity
    c3t_edge.export.parity.measure_parity = crash
    args = ["--target", "onnxruntime"]
from c3t_edge.cli import main
sys.exit(main(sys.argv[2:] + args))
"""


@pytest.mark.parametrize("stage", ["conversion", "parity"])
def test_a_crash_mid_export_leaves_no_loadable_bundle(dev_run, tmp_path, stage):
    out = tmp_path / "crashed"
    proc = subprocess.run([sys.executable, "-c", _CRASH, stage, "export", str(dev_run), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert (out / "model.onnx").is_file() and (out / "model.int8.onnx").is_file()  # written before the crash
    assert not (out / "metadata.json").exists() and not is_bundle_dir(out)
    with pytest.raises(BundleError, match="metadata.json is missing"):
        load_bundle(out)
    left = _contents(out)
    proc = _export(dev_run, out, "--overwrite")  # what a crash left is not a bundle: never deleted
    assert proc.returncode == 1 and "is not a bundle" in proc.stderr and _contents(out) == left


def test_a_failed_conversion_removes_what_it_wrote(dev_run, bundle_dir, tmp_path, capsys):
    def broken(context):
        (context.out / "half-written.bin").write_bytes(b"\0" * 64)
        raise BundleError("the converter broke")

    register_target(ExportTarget("broken", broken, "fails after writing a file", needs=("onnxruntime",)))
    try:
        out = tmp_path / "new"
        assert main(["export", str(dev_run), "--out", str(out), "--quiet", "--target", "broken"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "the converter broke" in err[0]
        assert not out.exists()
        replaced = tmp_path / "replaced"
        shutil.copytree(bundle_dir, replaced)
        assert main(["export", str(dev_run), "--out", str(replaced), "--quiet", "--overwrite",
                     "--target", "broken"]) == 1
        assert replaced.is_dir() and list(replaced.iterdir()) == []  # neither the old bundle nor half a new one
    finally:
        unregister_target("broken")


def test_quant_data_replaces_calibration_data(dev_run, tmp_path):
    proc = _export(dev_run, tmp_path / "b", "--calibration-data", str(tmp_path / "nope"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 2
    assert "--calibration-data is deprecated, use --quant-data" in lines[0] and "does not exist" in lines[1]
    assert "--quant-data" in lines[1]
    help_text = _cli("export", "--help").stdout
    assert "--quant-data" in help_text and "--calibration-data" not in help_text


# ---------------------------------------------------------------------------- an extra export target

@pytest.fixture
def torch_export_target():
    """The ``torch-export`` engine and target of tests/_torch_export_target.py, registered for one test."""
    from _torch_export_target import ENGINE, TARGET

    register_engine(ENGINE)
    register_target(TARGET)
    yield TARGET
    unregister_target(TARGET.name)
    unregister_engine(ENGINE.name)


def test_an_extra_target_and_its_engine_export_and_load(dev_run, tmp_path, torch_export_target, test_windows,
                                                        capsys):
    out = tmp_path / "with-pt2"
    assert main(["export", str(dev_run), "--out", str(out), "--quiet", "--target", "torch-export"]) == 0
    capsys.readouterr()
    meta = verify_bundle(out)
    assert set(meta["files"]) == {"model.onnx", "model.int8.onnx", "model.pt2"}  # it, and the reference target
    entry = meta["files"]["model.pt2"]
    assert entry["engine"] == "torch-export" and entry["precision"] == "fp32" and entry["torch"]
    assert entry["sha256"] == sha256_file(out / "model.pt2")
    assert meta["parity"]["model.pt2"]["max_abs_logit_diff"] <= 1e-4
    assert meta["parity"]["model.pt2"]["top1_agreement"] == 1.0
    imu, _, torch_logits = test_windows
    bundle = load_bundle(out, engine="torch-export")
    assert bundle.model_path.name == "model.pt2"
    np.testing.assert_allclose(bundle.predict_logits(imu), torch_logits, atol=1e-4)
    assert main(["info", "--model", str(out), "--engine", "torch-export"]) == 0
    assert "loaded       model.pt2 on torch-export: ok" in capsys.readouterr().out


# ------------------------------------------------------- quantization data of label-free methods

def _label_free_methods() -> list[str]:
    from c3t_edge.methods import METHODS

    return [name for name, cls in METHODS.items() if not cls.uses_imu_labels and cls.predicts_from == "imu"]


@pytest.fixture(scope="session")
def development_arrays(utd_mhad_dir):
    from c3t_edge.methods import default_config
    from c3t_edge.training import load_arrays, make_split

    arrays = load_arrays(utd_mhad_dir, default_config("supervised", placement="wrist"))
    return arrays, make_split(arrays, "development")


@pytest.mark.parametrize("method_name", _label_free_methods())
def test_quantization_data_of_a_label_free_method_are_its_paired_trials(development_arrays, method_name):
    from c3t_edge.export.quant_data import QUANT_SHIFTS_S, quantization_windows
    from c3t_edge.methods import build_method, default_config

    arrays, split = development_arrays
    method = build_method(default_config(method_name, placement="wrist"))
    # The IMU this method must never see - the labelled camera set's and the test subjects' - is NaN here.
    guarded = arrays.with_imu_hidden(np.concatenate([split.labelled_camera, split.test]))
    quant = quantization_windows(method, guarded, split)
    assert np.isfinite(quant.windows).all()
    assert sorted(set(quant.trials)) == sorted(split.paired)
    assert len(quant.windows) == len(QUANT_SHIFTS_S) * len(split.paired)
    assert set(arrays.subjects[quant.trials]) <= set(split.train_subjects)
    first_shift = int(round(QUANT_SHIFTS_S[0] * arrays.config.imu_rate_hz))
    np.testing.assert_array_equal(quant.windows[:len(split.paired)],
                                  arrays.windows(split.paired, shift_samples=first_shift, with_camera=False)[0])
    assert quant.description.startswith("paired trials")


def test_quantization_data_of_supervised_are_all_training_trials(development_arrays):
    from c3t_edge.export.quant_data import quantization_windows
    from c3t_edge.methods import build_method, default_config

    arrays, split = development_arrays
    method = build_method(default_config("supervised", placement="wrist"))
    assert sorted(set(quantization_windows(method, arrays, split).trials)) == sorted(split.train)
    guarded = arrays.with_imu_hidden(split.labelled_camera)  # supervised did read this IMU: the guard shows it
    assert np.isnan(quantization_windows(method, guarded, split).windows).any()


def test_a_label_free_bundle_is_quantized_on_its_paired_trials(utd_mhad_dir, tmp_path):
    from c3t_edge.export.quant_data import QUANT_SHIFTS_S
    from c3t_edge.methods import default_config
    from c3t_edge.training import train_run

    run = tmp_path / "st-run"
    train_run(default_config("st", camera="skeleton", placement="wrist", steps=20), utd_mhad_dir, run)
    paired = json.loads((run / "config.json").read_text())["data"]["paired_trials"]
    out = tmp_path / "st-bundle"
    assert _export(run, out, "--target", "onnxruntime").returncode == 0
    meta = verify_bundle(out)
    assert meta["training"]["method"] == "st" and meta["training"]["uses_imu_labels"] is False
    assert meta["quantization"]["windows"] == len(QUANT_SHIFTS_S) * len(paired)
    assert meta["quantization"]["data"].startswith("paired trials")
    assert "subjects 1,3,5" in meta["quantization"]["data"]
