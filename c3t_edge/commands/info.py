"""Describe a model bundle: labels, rate, window, channels, files (verified by sha256), accuracy, parity.

Without --model the default bundle shipped with c3t-edge is described. Every file the metadata lists
is checked against its sha256; --precision/--engine also load that file in its engine.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from c3t_edge.backends import engine_names, precisions

    parser.add_argument("--model", default="default", metavar="BUNDLE",
                        help="model bundle directory, or 'default' (the bundle shipped with c3t-edge)")
    parser.add_argument("--precision", choices=precisions(), default=None,
                        help="also load this precision's file (with --engine, default onnxruntime)")
    parser.add_argument("--engine", choices=engine_names(), default=None,
                        help="also load this engine's file (with --precision, default fp32)")
    parser.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace) -> int:
    from c3t_edge.bundle import describe, load_bundle, resolve_bundle_path, verify_bundle

    path = resolve_bundle_path(args.model)
    meta = verify_bundle(path)
    info = describe(meta, path.resolve())
    if args.precision or args.engine:
        bundle = load_bundle(path, precision=args.precision or "fp32", engine=args.engine or "onnxruntime",
                             verify=False)
        info["loaded"] = {"file": bundle.model_path.name, "engine": bundle.engine, "precision": bundle.precision}
    if args.json:
        print(json.dumps(info))
        return 0
    print(_text(info))
    return 0


def _text(info: dict) -> str:
    train = info["training"]
    lines = [
        f"bundle       {info['path']} (format {info['format_version']})",
        f"model        {train.get('method', '?')} ({train.get('split', '?')}: {train.get('protocol', '?')}), "
        f"seed {train.get('seed', '?')}, code {train.get('export_code_version', '?')}",
        f"placement    {info.get('placement')}",
        f"input        {info['window_samples']} samples at {info['sample_rate_hz']:g} Hz "
        f"({info['window_samples'] / info['sample_rate_hz']:.2f} s), hop {info['hop_samples']} samples; channels "
        + ", ".join(f"{c} [{u}]" for c, u in zip(info["channels"], info["units"], strict=True)),
        f"normalise    per-channel mean/std, applied {info['normalization'].get('applied')} the graph",
        f"labels       {info['n_labels']}: " + ", ".join(info["labels"]),
        "files        (sha256 verified)",
    ]
    parity, evaluation = info["parity"], info["evaluation"]
    for name, digest in info["files"].items():
        p = parity.get(name, {})
        extra = ""
        if p:
            extra = (f"  acc {100 * p['accuracy']:.1f}%  agree {100 * p['top1_agreement']:.1f}%  "
                     f"max|dlogit| {p['max_abs_logit_diff']:.2g}")
        size = info["file_bytes"].get(name)
        lines.append(f"  {name:<18} {size / 1024:8.1f} KiB  {digest[:12]}{extra}")
    for name, why in info.get("missing_files", {}).items():
        lines.append(f"  {name:<18} missing: {why}")
    if evaluation:
        lines.append(f"evaluated on {evaluation.get('windows')} windows: {evaluation.get('data')}")
    quantization = info.get("quantization")
    if quantization:
        lines.append(f"INT8 ranges  from {quantization.get('windows')} windows: {quantization.get('data')}")
    estimate = info.get("development_estimate")
    if estimate:
        acc = estimate.get("accuracy", {})
        figures = ", ".join(f"{name} {100 * acc[name]:.1f}%" for name in info["files"] if name in acc)
        lines.append(f"held-out     {figures} ({estimate.get('windows')} windows of unseen subjects, same recipe)")
    if info.get("note"):
        lines.append(f"note         {info['note']}")
    if "loaded" in info:
        lines.append(f"loaded       {info['loaded']['file']} on {info['loaded']['engine']}: ok")
    return "\n".join(lines)
