"""Model bundles on the runtime path: the shipped default bundle, verification, backends, ``info``.

Nothing here needs torch or the dataset: the default bundle ships inside the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from c3t_edge import load_bundle
from c3t_edge.backends import model_files
from c3t_edge.bundle import (
    BUNDLE_FORMAT_VERSION,
    default_bundle_path,
    is_bundle_dir,
    read_metadata,
    sha256_file,
    verify_bundle,
)
from c3t_edge.cli import main
from c3t_edge.data.actions import IMU_CHANNELS, IMU_UNITS, UTD_MHAD_ACTIONS
from c3t_edge.data.preprocess import fit_clip
from c3t_edge.errors import BundleError

DEFAULT = default_bundle_path()


def _tflite_interpreter_available() -> bool:
    try:
        from c3t_edge.backends.tflite import interpreter_class

        interpreter_class()
    except Exception:
        return False
    return True


#: ai-edge-litert is in the 'dev' extra: in CI (``CI`` set) a missing interpreter fails these tests.
needs_tflite_interpreter = pytest.mark.skipif(
    not _tflite_interpreter_available() and not os.environ.get("CI"),
    reason="no TFLite interpreter: pip install ai-edge-litert (in the 'dev' and 'tflite' extras)")


def _windows(n: int = 8, seed: int = 0) -> np.ndarray:
    """Plausible raw wrist IMU windows: gravity on one axis, g-scale acc noise, deg/s-scale gyro."""
    rng = np.random.default_rng(seed)
    acc = rng.normal(0, 0.3, (n, 180, 3)) + np.array([0.0, -1.0, 0.0])
    gyro = rng.normal(0, 60.0, (n, 180, 3))
    return np.concatenate([acc, gyro], axis=2).astype(np.float32)


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    """A private copy of the default bundle to damage."""
    out = tmp_path / "bundle"
    shutil.copytree(DEFAULT, out)
    return out


# ----------------------------------------------------------------------------- default bundle

def test_default_bundle_metadata_has_the_contract_fields():
    meta = verify_bundle("default")
    assert meta["format_version"] == BUNDLE_FORMAT_VERSION
    assert meta["labels"] == list(UTD_MHAD_ACTIONS[:21])  # wrist actions 1-21, spelled as in the dataset
    assert meta["sample_rate_hz"] == 50.0
    assert meta["window_samples"] == 180 and meta["hop_samples"] == 25
    assert meta["channels"] == list(IMU_CHANNELS) and meta["units"] == list(IMU_UNITS)
    assert meta["normalization"]["applied"] == "outside"
    assert len(meta["normalization"]["mean"]) == len(meta["normalization"]["std"]) == 6
    assert meta["input"]["name"] == "imu" and meta["output"]["name"] == "logits"
    assert meta["clip_fit"]["crop"] == "centre" and meta["clip_fit"]["pad"] == "edge"
    assert meta["training"]["method"] and meta["training"]["seed"] is not None
    assert {"model.onnx", "model.int8.onnx"} <= set(meta["files"])
    for name, entry in meta["files"].items():
        assert sha256_file(DEFAULT / name) == entry["sha256"]
        assert entry["bytes"] < 800_000  # the shipped bundle stays small
        assert name in meta["parity"]
    assert meta["parity"]["model.onnx"]["max_abs_logit_diff"] <= 1e-4


def test_load_bundle_default_predicts_probabilities():
    bundle = load_bundle("default")
    assert bundle.labels == tuple(UTD_MHAD_ACTIONS[:21])
    for key in ("sample_rate_hz", "window_samples", "hop_samples", "channels", "units", "labels"):
        assert key in bundle.metadata
    proba = bundle.predict_proba(_windows())
    assert proba.shape == (8, 21) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    assert bundle.predict_proba(_windows(0)).shape == (0, 21)


def test_int8_onnx_tracks_fp32_on_the_default_bundle():
    x = _windows(32, seed=1)
    fp32 = load_bundle("default", precision="fp32").predict_logits(x)
    int8 = load_bundle("default", precision="int8").predict_logits(x)
    spread = fp32.max() - fp32.min()
    assert np.abs(int8 - fp32).max() < 0.5 * spread  # synthetic windows: a loose bound; real ones in test_export
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.75


def test_predict_rejects_wrong_shapes():
    bundle = load_bundle("default")
    with pytest.raises(ValueError, match=r"\(n, 180, 6\)"):
        bundle.predict_proba(np.zeros((180, 6), np.float32))
    with pytest.raises(ValueError, match=r"\(n, 180, 6\)"):
        bundle.predict_proba(np.zeros((2, 180, 3), np.float32))


def test_fit_clip_is_the_training_rule():
    bundle = load_bundle("default")
    rng = np.random.default_rng(2)
    for n in (1, 57, 179, 180, 181, 400):
        clip = rng.normal(size=(n, 6)).astype(np.float32)
        fitted = bundle.fit_clip(clip)
        assert fitted.shape == (180, 6)
        np.testing.assert_array_equal(fitted, fit_clip(clip, 180))
    short = np.arange(60, dtype=np.float32)[:, None].repeat(6, 1)
    fitted = bundle.fit_clip(short)
    assert (fitted[:60] == 0).all() and (fitted[-60:] == 59).all()  # centred, edge values repeated
    with pytest.raises(ValueError):
        bundle.fit_clip(np.zeros((0, 6)))


def test_bundle_threads_and_repr():
    bundle = load_bundle("default", threads=None)
    assert "onnxruntime" in repr(bundle) and bundle.model_path.name == "model.onnx"


@needs_tflite_interpreter
def test_tflite_files_of_the_default_bundle_match_onnx():
    meta = read_metadata("default")
    assert {"model.tflite", "model.int8.tflite"} <= set(meta["files"]), meta.get("missing_files")
    x = _windows(6, seed=3)
    onnx_fp32 = load_bundle("default").predict_logits(x)
    tfl_fp32 = load_bundle("default", engine="tflite").predict_logits(x)
    assert np.abs(tfl_fp32 - onnx_fp32).max() <= 1e-4
    tfl = load_bundle("default", precision="int8", engine="tflite")
    assert tfl._backend.input_dtype == np.int8 and tfl._backend.output_dtype == np.int8  # full-integer
    assert meta["files"]["model.int8.tflite"]["input"]["dtype"] == "int8"
    int8 = tfl.predict_logits(x)
    assert (int8.argmax(1) == onnx_fp32.argmax(1)).mean() >= 0.5
    np.testing.assert_allclose(tfl.predict_proba(x).sum(1), 1.0, atol=1e-5)


def test_int8_files_are_at_most_30_percent_of_fp32():
    meta = read_metadata("default")
    files = model_files()
    for engine in ("onnxruntime", "tflite"):  # the shipped bundle has both engines' files
        fp32, int8 = files[(engine, "fp32")], files[(engine, "int8")]
        assert meta["files"][int8]["bytes"] <= 0.30 * meta["files"][fp32]["bytes"]


# ------------------------------------------------------------------------------- refusals

def test_tampered_model_is_refused(bundle_copy):
    path = bundle_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 mismatch"):
        load_bundle(bundle_copy)
    load_bundle(bundle_copy, precision="int8")  # the other file is still good
    with pytest.raises(BundleError, match="sha256 mismatch"):
        verify_bundle(bundle_copy)


def test_missing_model_file_is_incomplete(bundle_copy):
    (bundle_copy / "model.int8.onnx").unlink()
    with pytest.raises(BundleError, match=r"incomplete: model\.int8\.onnx is missing"):
        load_bundle(bundle_copy, precision="int8")
    with pytest.raises(BundleError, match="incomplete"):
        verify_bundle(bundle_copy)


def _edit_metadata(bundle: Path, edit) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    edit(meta)
    (bundle / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "unknown bundle format version 99"),
    (lambda m: m.pop("format_version"), "unknown bundle format version None"),
    (lambda m: m.update(format="something-else"), "not c3t-edge bundle metadata"),
    (lambda m: m.pop("labels"), "incomplete: missing labels"),
    (lambda m: m.pop("hop_samples"), "incomplete: missing hop_samples"),
    (lambda m: m["files"].pop("model.onnx"), "lists no model.onnx"),
    (lambda m: m["files"]["model.onnx"].pop("sha256"), "has no sha256"),
    (lambda m: m.update(labels=m["labels"][:-1]), "outputs but metadata lists 20 labels"),
    (lambda m: m["normalization"].update(mean=[0.0]), "mean/std do not match"),
])
def test_bad_metadata_is_refused(bundle_copy, edit, message):
    _edit_metadata(bundle_copy, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_corrupt_or_absent_metadata_is_refused(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="no model bundle at"):
        load_bundle(tmp_path / "nowhere")
    (bundle_copy / "metadata.json").write_text('{"format": "c3t-edge-bundle", "labels": [')
    with pytest.raises(BundleError, match="corrupt: not valid JSON"):
        load_bundle(bundle_copy)
    (bundle_copy / "metadata.json").unlink()
    with pytest.raises(BundleError, match="metadata.json is missing"):
        load_bundle(bundle_copy)


def test_truncated_model_with_matching_hash_is_refused_by_the_engine(bundle_copy):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    _edit_metadata(bundle_copy, lambda m: m["files"]["model.onnx"].update(sha256=sha256_file(path)))
    with pytest.raises(BundleError, match="onnxruntime cannot load it"):
        load_bundle(bundle_copy)


def test_unknown_engine_precision_and_absent_file(bundle_copy):
    with pytest.raises(BundleError, match="unknown engine"):
        load_bundle("default", engine="coreml")
    with pytest.raises(BundleError, match="unknown precision"):
        load_bundle("default", precision="fp16")
    _edit_metadata(bundle_copy, lambda m: (m["files"].pop("model.tflite", None),
                                           m.setdefault("missing_files", {}).update(
                                               {"model.tflite": "not exported: no litert-torch"})))
    with pytest.raises(BundleError, match=r"no fp32 tflite model \(model.tflite: not exported"):
        load_bundle(bundle_copy, engine="tflite")


def test_is_bundle_dir_is_what_export_may_replace(bundle_copy, tmp_path):
    assert is_bundle_dir(DEFAULT) and is_bundle_dir(bundle_copy)
    (tmp_path / "plain").mkdir()
    assert not is_bundle_dir(tmp_path / "plain") and not is_bundle_dir(tmp_path / "nowhere")
    _edit_metadata(bundle_copy, lambda m: m.update(format_version=99))
    assert is_bundle_dir(bundle_copy)  # a bundle of another format version is still a bundle
    (bundle_copy / "metadata.json").write_text('{"format": "something-else"}')
    assert not is_bundle_dir(bundle_copy)
    (bundle_copy / "metadata.json").write_text('{"format": "c3t-edge-bundle", ')
    assert not is_bundle_dir(bundle_copy)


# ------------------------------------------------------------------------------------- info

def test_info_json_fields(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("path", "labels", "sample_rate_hz", "window_samples", "hop_samples", "channels", "units",
                "files", "accuracy", "parity"):
        assert key in info, key
    assert Path(info["path"]) == DEFAULT
    assert info["files"]["model.onnx"] == sha256_file(DEFAULT / "model.onnx")
    assert len(info["labels"]) == 21


def test_info_text_and_loading_a_file(capsys):
    assert main(["info", "--model", "default", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "model.int8.onnx" in out and "sha256 verified" in out and "loaded" in out


@pytest.mark.parametrize("key", ["quantization", "calibration"])
def test_info_reports_the_quantization_data_under_the_new_and_the_old_key(bundle_copy, key, capsys):
    """Bundles exported before the rename call the section ``calibration``; both are read."""
    def rename(meta):
        section = meta.pop("quantization", None) or meta.pop("calibration")
        meta[key] = section

    _edit_metadata(bundle_copy, rename)
    assert main(["info", "--model", str(bundle_copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["quantization"]["windows"] > 0 and "subjects" in info["quantization"]["data"]
    assert main(["info", "--model", str(bundle_copy)]) == 0
    assert f"INT8 ranges  from {info['quantization']['windows']} windows" in capsys.readouterr().out


def test_info_refuses_a_tampered_bundle_in_one_line(bundle_copy):
    (bundle_copy / "model.int8.onnx").write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "c3t_edge", "info", "--model", str(bundle_copy)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256 mismatch" in lines[0] and "model.int8.onnx" in lines[0]


# ----------------------------------------------------------------------- no torch at runtime

_NO_TORCH = """
import sys, json, io, contextlib
import numpy as np
import c3t_edge
light = "c3t_edge.bundle" not in sys.modules and "onnxruntime" not in sys.modules
from c3t_edge import load_bundle
b = load_bundle("default", precision="int8")
p = b.predict_proba(np.zeros((2, 180, 6), np.float32))
from c3t_edge.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["info", "--json"])
print(json.dumps({"light": light, "torch": "torch" in sys.modules, "shape": list(p.shape)}))
"""


def test_runtime_path_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"light": True, "torch": False, "shape": [2, 21]}


def test_info_default_is_quick():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "c3t_edge", "info", "--model", "default", "--json"],
                          capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert seconds < 5.0  # bench/bench_bundle.py measures the < 1 s target on an idle machine


@needs_tflite_interpreter
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tflite_one_pass_input_matches_the_two_step_path(precision):
    """Bundle folds normalisation (and int8 quantization) into one pass; it must equal doing it in steps."""
    bundle = load_bundle("default", precision=precision, engine="tflite")
    x = _windows(5, seed=4)
    folded = bundle.predict_logits(x)
    stepwise = bundle._backend.run(bundle.standardize(x))
    step = bundle._backend._out["quantization"][0] or 1e-6
    assert np.abs(folded - stepwise).max() <= 4 * step  # an input exactly on a rounding edge may move one step
    assert (folded.argmax(1) == stepwise.argmax(1)).all()
