"""Parity: every written model file against the torch model it came from, on the same real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from c3t_edge.backends import engine_names, get_engine
from c3t_edge.bundle import open_model_file


def measure_parity(out: Path, meta: dict, windows: np.ndarray, labels: np.ndarray,
                   torch_logits: np.ndarray) -> tuple[dict, dict]:
    """(parity, accuracy) sections for every file in ``meta["files"]``, run from ``out`` through the
    runtime's own path (normalisation outside the graph, the file's engine).

    ``windows`` (n, W, C) raw, ``labels`` (n,), ``torch_logits`` (n, n_labels) of the torch model on
    the same windows. Parity per file: max |logit - torch logit|, top-1 agreement with torch and
    accuracy; accuracy also per engine as INT8 minus FP32 in points.
    """
    parity: dict = {}
    accuracy: dict = {"torch": _accuracy(torch_logits, labels)}
    for name, entry in meta["files"].items():
        bundle = open_model_file(out, meta, name, entry["engine"], entry["precision"], threads=None)
        logits = bundle.predict_logits(windows)
        parity[name] = {
            "max_abs_logit_diff": float(np.max(np.abs(logits - torch_logits))) if len(logits) else 0.0,
            "top1_agreement": _agreement(logits, torch_logits),
            "accuracy": _accuracy(logits, labels),
        }
        accuracy[name] = parity[name]["accuracy"]
    for engine in engine_names():
        files = get_engine(engine).files
        fp32, int8 = files.get("fp32"), files.get("int8")
        if fp32 in accuracy and int8 in accuracy:
            accuracy[f"{engine}_int8_minus_fp32_points"] = round(100 * (accuracy[int8] - accuracy[fp32]), 3)
    return parity, accuracy


def _accuracy(logits: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == truth)) if len(truth) else float("nan")


def _agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == reference.argmax(1))) if len(reference) else float("nan")
