"""Model bundles: load, verify and run one without torch.

A bundle is a directory holding ``metadata.json`` and model files that compute the same function -
standardised IMU windows ``(n, window_samples, channels)`` float32 -> logits ``(n, n_labels)`` - at
two precisions for each engine (the engines are registered in :mod:`c3t_edge.backends`; these are
the built-in ones):

=========================  =============  ==========  ==========================================
file                       engine         precision   what it is
=========================  =============  ==========  ==========================================
``model.onnx``             onnxruntime    fp32        ONNX, single file, dynamic batch
``model.int8.onnx``        onnxruntime    int8        static INT8, QDQ, per-channel weights
``model.tflite``           tflite         fp32        LiteRT flatbuffer, batch 1
``model.int8.tflite``      tflite         int8        full-integer: int8 input and output
=========================  =============  ==========  ==========================================

Normalisation (per-channel mean/std from the training windows) is applied *outside* the graph, by
:meth:`Bundle.predict_proba`, so every file takes standardised input; ``metadata.json`` states this
and carries the mean and std. Each file's sha256, engine and precision are in the metadata; a file
whose hash differs, a missing file that the metadata lists, unreadable metadata or an unknown format
version is refused with a :class:`~c3t_edge.errors.BundleError` that names the problem.
``metadata.json`` is written last, in one piece, by ``c3t-edge export``: a directory without it is
not a bundle.

This module imports numpy and the standard library only (the engine is imported when a bundle is
loaded), so the runtime path (``stream``, ``replay``, ``info``) never imports torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from c3t_edge.backends import REFERENCE_ENGINE, engine_names, get_engine, open_backend
from c3t_edge.errors import BundleError

#: ``metadata.json``'s ``format`` field and the format versions this code reads.
BUNDLE_FORMAT = "c3t-edge-bundle"
BUNDLE_FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

METADATA_FILE = "metadata.json"
#: The file every bundle has: the reference engine's fp32 model (``model.onnx``).
REFERENCE_FILE = REFERENCE_ENGINE.files["fp32"]

#: Metadata keys a bundle of format version 1 must have.
REQUIRED_KEYS = ("format", "format_version", "labels", "sample_rate_hz", "window_samples", "hop_samples",
                 "channels", "units", "input", "output", "normalization", "clip_fit", "files")


def default_bundle_path() -> Path:
    """The bundle shipped inside the installed package (``--model default``)."""
    return Path(__file__).resolve().parent / "assets" / "default_bundle"


def resolve_bundle_path(path_or_default: str | Path | None) -> Path:
    """``None`` or ``"default"`` -> the shipped default bundle; anything else -> that directory."""
    if path_or_default is None or str(path_or_default) == "default":
        return default_bundle_path()
    return Path(path_or_default).expanduser()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ metadata

def read_metadata(path: str | Path | None) -> dict:
    """Read and check a bundle's ``metadata.json`` (format, version, required fields); no file hashing."""
    bundle = resolve_bundle_path(path)
    if not bundle.exists():
        raise BundleError(f"no model bundle at {bundle}")
    if not bundle.is_dir():
        raise BundleError(f"{bundle} is not a model bundle directory")
    meta_path = bundle / METADATA_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{bundle} is not a model bundle: {METADATA_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: unreadable ({exc})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path} is corrupt: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{meta_path} is not c3t-edge bundle metadata (format is not {BUNDLE_FORMAT!r})")
    version = meta.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(f"{bundle}: unknown bundle format version {version!r} (this c3t-edge reads "
                          f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}; upgrade c3t-edge or re-export)")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise BundleError(f"{meta_path} is incomplete: missing {', '.join(missing)}")
    _check_consistent(meta, meta_path)
    return meta


def _check_consistent(meta: dict, meta_path: Path) -> None:
    labels, channels = meta["labels"], meta["channels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise BundleError(f"{meta_path} is corrupt: 'labels' must be a non-empty list of names")
    if not isinstance(channels, list) or len(meta["units"]) != len(channels):
        raise BundleError(f"{meta_path} is corrupt: 'channels' and 'units' differ in length")
    norm = meta["normalization"]
    if norm.get("applied") == "outside":
        if len(norm.get("mean", ())) != len(channels) or len(norm.get("std", ())) != len(channels):
            raise BundleError(f"{meta_path} is corrupt: normalisation mean/std do not match the channels")
    if not isinstance(meta["files"], dict) or REFERENCE_FILE not in meta["files"]:
        raise BundleError(f"{meta_path} is incomplete: it lists no {REFERENCE_FILE}")
    for name, entry in meta["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"{meta_path} is corrupt: files[{name!r}] has no sha256")


def is_bundle_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory whose ``metadata.json`` declares a c3t-edge bundle (of any
    format version; the model files are not checked). ``c3t-edge export --overwrite`` replaces only
    such a directory."""
    meta_path = Path(path) / METADATA_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == BUNDLE_FORMAT


def quantization_section(meta: Mapping[str, Any]) -> dict:
    """The metadata section that says which real windows set the INT8 activation ranges and how each
    engine quantized: ``quantization`` (``calibration`` in bundles exported before the rename)."""
    return dict(meta.get("quantization") or meta.get("calibration") or {})


def verify_file(bundle: Path, meta: dict, name: str) -> Path:
    """Check that file ``name`` of the bundle exists and matches its sha256; returns its path."""
    entry = meta["files"].get(name)
    if entry is None:
        raise BundleError(f"{bundle}: {name} is not part of this bundle")
    path = bundle / name
    if not path.is_file():
        raise BundleError(f"{bundle} is incomplete: {name} is missing")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise BundleError(f"{path}: sha256 mismatch (file is corrupt or was modified: expected "
                          f"{entry['sha256'][:12]}..., found {actual[:12]}...)")
    return path


def verify_bundle(path: str | Path | None) -> dict:
    """Read the metadata and check every file it lists (presence and sha256); returns the metadata."""
    bundle = resolve_bundle_path(path)
    meta = read_metadata(bundle)
    for name in meta["files"]:
        verify_file(bundle, meta, name)
    return meta


# ------------------------------------------------------------------------------------- bundles

def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ClipFit:
    """The bundle's ``clip_fit`` rule: fit a pre-segmented clip ``(n_samples, C)`` into one window.

    ``crop="centre"`` keeps the middle ``window`` samples of a longer clip; ``pad="edge"`` centres a
    shorter clip and repeats its first/last sample outside it (``pad="zeros"`` would fill with 0).
    """

    window: int
    crop: str = "centre"
    pad: str = "edge"

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 2 or samples.shape[0] == 0:
            raise ValueError(f"a clip is (n_samples, channels) with n_samples >= 1, got shape {samples.shape}")
        start = (samples.shape[0] - self.window) // 2
        index = np.arange(start, start + self.window)
        if self.pad == "zeros":
            out = np.zeros((self.window, samples.shape[1]), np.float32)
            inside = (index >= 0) & (index < samples.shape[0])
            out[inside] = samples[index[inside]]
            return out
        return samples[np.clip(index, 0, samples.shape[0] - 1)]


class Bundle:
    """A loaded model bundle: one model file on one engine, plus the metadata to feed it.

    Use :func:`load_bundle` to make one.
    """

    def __init__(self, path: Path, metadata: dict, engine: str, precision: str, model_path: Path,
                 backend: Any):
        self.path = path
        self.metadata = metadata
        self.engine = engine
        self.precision = precision
        self.model_path = model_path
        self._backend = backend
        norm = metadata["normalization"]
        self._outside = norm.get("applied", "outside") == "outside"
        n_ch = len(metadata["channels"])
        self._mean = np.asarray(norm.get("mean", np.zeros(n_ch)), np.float32)
        self._std = np.asarray(norm.get("std", np.ones(n_ch)), np.float32)
        # (W, C) tiles: standardising then runs as one contiguous loop per window
        window = int(metadata["window_samples"])
        self._mean_tile = np.ascontiguousarray(np.broadcast_to(self._mean, (window, n_ch)))
        self._std_tile = np.ascontiguousarray(np.broadcast_to(self._std, (window, n_ch)))
        # A backend that can (TFLite) takes raw windows and standardises - and quantizes, for an int8 input -
        # while it writes its input buffer, in one pass.
        fold = getattr(backend, "fold_normalization", None)
        self._folded = bool(self._outside and fold is not None and fold(self._mean, self._std))
        clip = metadata["clip_fit"]
        self._clip_fit = ClipFit(self.window_samples, clip.get("crop", "centre"), clip.get("pad", "edge"))

    # ------------------------------------------------------------------------------ properties
    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels in output order."""
        return tuple(self.metadata["labels"])

    @property
    def sample_rate_hz(self) -> float:
        return float(self.metadata["sample_rate_hz"])

    @property
    def window_samples(self) -> int:
        return int(self.metadata["window_samples"])

    @property
    def hop_samples(self) -> int:
        return int(self.metadata["hop_samples"])

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.metadata["channels"])

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self.metadata["units"])

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, engine={self.engine!r}, precision={self.precision!r}, "
                f"labels={len(self.labels)})")

    # -------------------------------------------------------------------------------- running
    def fit_clip(self, samples: np.ndarray) -> np.ndarray:
        """Fit one raw clip ``(n_samples, channels)`` into a window ``(window_samples, channels)``
        with the bundle's ``clip_fit`` rule (centre crop / centre pad with edge values)."""
        return self._clip_fit(samples)

    def standardize(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows (bundle units) -> the model's input: per-channel ``(x - mean) / std``."""
        x = np.asarray(windows, dtype=np.float32)
        if not self._outside:
            return np.ascontiguousarray(x)
        if x.shape[-2:] == self._mean_tile.shape:
            y = np.subtract(x, self._mean_tile)
            y /= self._std_tile
            return y
        return ((x - self._mean) / self._std).astype(np.float32)

    def _check(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float32)
        want = (self.window_samples, len(self.channels))
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(f"windows must be (n, {want[0]}, {want[1]}) = (n, window_samples, channels), "
                             f"got {x.shape}")
        return x

    def predict_logits(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows ``(n, window_samples, channels)`` in the bundle's units -> logits ``(n, n_labels)``."""
        x = self._check(windows)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self._folded:
            return self._backend.run_raw(x)
        return self._backend.run(self.standardize(x))

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows ``(n, window_samples, channels)`` in the bundle's units -> probabilities
        ``(n, n_labels)`` (softmax of the logits, float32, rows sum to 1)."""
        return softmax(self.predict_logits(windows).astype(np.float64)).astype(np.float32)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows -> class indices ``(n,)`` into :attr:`labels`."""
        return self.predict_logits(windows).argmax(axis=1)


def load_bundle(path: str | Path | None = "default", precision: str = "fp32", engine: str = "onnxruntime",
                *, threads: int | None = 1, verify: bool = True) -> Bundle:
    """Load a model bundle directory (or ``"default"``, the one shipped with c3t-edge).

    ``precision`` (``fp32`` | ``int8``) and ``engine`` (``onnxruntime`` | ``tflite``, or another
    registered in :mod:`c3t_edge.backends`) choose the model file; ``threads`` is the engine's
    intra-op thread count (1: lowest latency per window on a small device; ``None``: the engine's
    default). With ``verify`` the file's sha256 is checked against the metadata. Raises
    :class:`~c3t_edge.errors.BundleError` with one clear line when the bundle is missing, corrupt,
    incomplete, of an unknown format version, or lacks the chosen file.
    """
    if engine not in engine_names():
        raise BundleError(f"unknown engine {engine!r}: choose from {', '.join(engine_names())}")
    bundle = resolve_bundle_path(path)
    meta = read_metadata(bundle)
    name = model_file_name(bundle, meta, engine, precision)
    if verify:
        verify_file(bundle, meta, name)
    return open_model_file(bundle, meta, name, engine, precision, threads=threads)


def model_file_name(bundle: Path, meta: Mapping[str, Any], engine: str, precision: str) -> str:
    """The name of the bundle's ``precision`` file for ``engine``: the file the metadata lists with
    that engine and precision, else the engine's usual name for it. A :class:`BundleError` says
    why there is none (an unknown precision, or the reason ``missing_files`` gives)."""
    for name, entry in meta["files"].items():
        if entry.get("engine") == engine and entry.get("precision") == precision:
            return name
    usual = get_engine(engine).files
    if precision not in usual:
        raise BundleError(f"unknown precision {precision!r} for {engine}: choose from {', '.join(usual)}")
    name = usual[precision]
    if name in meta["files"]:
        return name
    why = meta.get("missing_files", {}).get(name, "it was not exported")
    raise BundleError(f"{bundle} has no {precision} {engine} model ({name}: {why})")


def open_model_file(bundle: Path, meta: dict, name: str, engine: str, precision: str, *,
                    threads: int | None = 1) -> Bundle:
    """Open file ``name`` (``engine``'s ``precision`` file) of the bundle at ``bundle``, with ``meta``
    as its metadata - not read from disk, and the file not hash-checked: :func:`load_bundle` does
    both; ``c3t-edge export`` measures parity this way before it writes ``metadata.json``."""
    model_path = bundle / name
    backend = open_backend(model_path, engine, threads=threads)
    expected = len(meta["labels"])
    if backend.n_outputs is not None and backend.n_outputs != expected:
        raise BundleError(f"{model_path}: model has {backend.n_outputs} outputs but metadata lists "
                          f"{expected} labels")
    return Bundle(bundle, meta, engine, precision, model_path, backend)


# ------------------------------------------------------------------------------------- info

def describe(meta: Mapping[str, Any], path: Path) -> dict:
    """The ``c3t-edge info --json`` object for a bundle's metadata."""
    files = meta["files"]
    return {
        "path": str(path),
        "format_version": meta["format_version"],
        "labels": list(meta["labels"]),
        "n_labels": len(meta["labels"]),
        "placement": meta.get("placement"),
        "sample_rate_hz": meta["sample_rate_hz"],
        "window_samples": meta["window_samples"],
        "hop_samples": meta["hop_samples"],
        "channels": list(meta["channels"]),
        "units": list(meta["units"]),
        "input": meta["input"],
        "output": meta["output"],
        "normalization": meta["normalization"],
        "clip_fit": meta["clip_fit"],
        "files": {name: entry["sha256"] for name, entry in files.items()},
        "file_bytes": {name: entry.get("bytes") for name, entry in files.items()},
        "missing_files": meta.get("missing_files", {}),
        "training": meta.get("training", {}),
        "evaluation": meta.get("evaluation", {}),
        "accuracy": meta.get("accuracy", {}),
        "parity": meta.get("parity", {}),
        "quantization": quantization_section(meta),
        "development_estimate": meta.get("development_estimate"),
        "note": meta.get("note"),
    }
