"""``c3t-edge evaluate``: several methods x seeds on one split, with temporal distortions.

Every method is trained on the same data, budget and seeds, and tested on IMU windows of the split's
test subjects (``camera`` on camera clips). Distortions: the test IMU shifted by +-s seconds
(``shift``), time-stretched by a factor (``dilate``), and training with a random camera/IMU offset of
up to s seconds in the paired set (``misalign``, which retrains).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from c3t_edge.data.arrays import TrialArrays
from c3t_edge.methods import TrainConfig
from c3t_edge.training import evaluate, fit_method, load_arrays, make_split

SHIFT_LEVELS_S = (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0)
DILATION_LEVELS = (0.8, 0.9, 1.1, 1.2)
#: Training-time misalignment levels (each retrains st/ca/c3t for every seed; 0.5 s is the issue's level).
MISALIGN_LEVELS_S = (0.5,)


def run_evaluation(configs: dict[str, TrainConfig], seeds: int | Sequence[int], data_dir, distortions: list[str],
                   *, split: str = "development", command: str = "", progress: bool = True,
                   log=sys.stderr) -> dict:
    """Train and test every method (name -> its configuration) for seeds 0..seeds-1 (or the given
    seeds). A name is a label (e.g. ``c3t-nopos``); what runs is its configuration's ``method``.

    All methods share the camera modality and placement of the first configuration, and therefore
    the same trials, split and test windows. Returns the results dictionary.
    """
    started = time.perf_counter()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    base = next(iter(configs.values()))
    arrays = load_arrays(data_dir, replace(base, method="camera"), progress)
    uma_split = make_split(arrays, split)
    results: dict = {"methods": {}, "distortions": {}}
    confusions: dict[str, np.ndarray] = {}
    for name, config in configs.items():
        accs, f1s, secs, params = [], [], [], 0
        for seed in seed_list:
            seeded = replace(config, seed=seed)
            method, seconds = fit_method(seeded, arrays, uma_split, progress)
            ev = evaluate(method, arrays, uma_split.test)
            accs.append(ev.accuracy)
            f1s.append(ev.macro_f1)
            secs.append(seconds)
            params = method.parameters_count()
            confusions[name] = confusions.get(name, 0) + ev.confusion
            print(f"{name:>10} seed {seed}: accuracy {ev.accuracy:.3f}  macro-F1 {ev.macro_f1:.3f}  "
                  f"({seconds:.0f} s)", file=log, flush=True)
            if method.predicts_from == "imu":
                _distorted(results["distortions"], name, method, arrays, uma_split.test, distortions)
        if "misalign" in distortions and config.method not in ("supervised", "camera"):
            for level in MISALIGN_LEVELS_S:
                level_accs = []
                for seed in seed_list:
                    method, _ = fit_method(replace(config, seed=seed, misalign_s=level), arrays, uma_split,
                                           progress)
                    level_accs.append(evaluate(method, arrays, uma_split.test).accuracy)
                results["distortions"].setdefault("misalignment_s", {}).setdefault(str(level), {})[name] = \
                    float(np.mean(level_accs))
        results["methods"][name] = {
            "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "accuracies": [float(a) for a in accs], "macro_f1_mean": float(np.mean(f1s)),
            "train_seconds_mean": float(np.mean(secs)), "parameters": int(params),
            "tested_on": "camera clips" if config.method == "camera" else "IMU only",
        }
    # Distortion entries hold sums over seeds until here; turn them into means.
    for kind in ("shift_s", "dilation"):
        for level in results["distortions"].get(kind, {}).values():
            for name in level:
                level[name] = float(np.mean(level[name]))
    results.update({
        "protocol": uma_split.description, "camera": base.camera,
        "actions": "all-27" if base.placement == "all" and len(arrays.class_names) == 27 else
                   f"{base.placement} ({len(arrays.class_names)} actions)",
        "class_names": list(arrays.class_names), "seeds": seed_list, "command": command,
        "configs": {n: {k: v for k, v in c.to_json().items() if k != "seed"} for n, c in configs.items()},
        "confusion_summed_over_seeds": {k: v.tolist() for k, v in confusions.items()},
    })
    results["distortion_drop"] = _drops(results)
    results["targets"] = _targets(results)
    results["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    return results


def _drops(results: dict) -> dict:
    """Accuracy lost under each shift / dilation level: clean mean minus distorted mean (points)."""
    drops: dict = {}
    for kind in ("shift_s", "dilation", "misalignment_s"):
        for level, accs in results["distortions"].get(kind, {}).items():
            for name, acc in accs.items():
                clean = results["methods"][name]["accuracy_mean"]
                drops.setdefault(kind, {}).setdefault(level, {})[name] = round(100 * (clean - acc), 2)
    return drops


def _targets(results: dict) -> dict:
    """The issue's targets, checked on this file's numbers (only those its methods allow)."""
    methods = results["methods"]
    acc = {name: m["accuracy_mean"] for name, m in methods.items()}
    out: dict = {}
    if {"c3t", "st", "ca"} <= acc.keys():
        best_baseline = max(acc["st"], acc["ca"])
        out["c3t_best_uma"] = acc["c3t"] >= best_baseline
        out["c3t_minus_best_of_st_ca_points"] = round(100 * (acc["c3t"] - best_baseline), 2)
        drops = results.get("distortion_drop", {})
        robust = [d["c3t"] <= min(d["st"], d["ca"]) for kind in ("shift_s", "dilation")
                  for d in drops.get(kind, {}).values()]
        if robust:
            out["c3t_most_robust"] = all(robust)
            out["c3t_most_robust_levels"] = f"{sum(robust)}/{len(robust)}"
    if {"c3t", "supervised"} <= acc.keys():
        out["c3t_over_supervised"] = round(acc["c3t"] / max(acc["supervised"], 1e-9), 4)
        out["c3t_at_least_95pct_supervised"] = acc["c3t"] >= 0.95 * acc["supervised"]
    return out


def _distorted(store: dict, name: str, method, arrays: TrialArrays, test: np.ndarray,
               distortions: list[str]) -> None:
    if "shift" in distortions:
        for level in SHIFT_LEVELS_S:
            acc = evaluate(method, arrays, test, shift_s=level).accuracy
            store.setdefault("shift_s", {}).setdefault(str(level), {}).setdefault(name, []).append(acc)
    if "dilate" in distortions:
        for level in DILATION_LEVELS:
            acc = evaluate(method, arrays, test, dilation=level).accuracy
            store.setdefault("dilation", {}).setdefault(str(level), {}).setdefault(name, []).append(acc)


def format_table(results: dict) -> str:
    """A plain-text table of the methods' mean accuracy, std and macro-F1."""
    lines = [f"{'method':>10}  {'accuracy':>9}  {'std':>6}  {'macro-F1':>8}  {'train s':>7}  {'params':>8}"]
    for name, m in results["methods"].items():
        lines.append(f"{name:>10}  {100 * m['accuracy_mean']:8.1f}%  {100 * m['accuracy_std']:5.1f}  "
                     f"{100 * m['macro_f1_mean']:7.1f}%  {m['train_seconds_mean']:7.0f}  {m['parameters']:8d}")
    for kind, levels in results.get("distortions", {}).items():
        names = sorted({n for level in levels.values() for n in level})
        lines.append(f"\n{kind:>10}  " + "  ".join(f"{n:>10}" for n in names))
        for level, accs in sorted(levels.items(), key=lambda kv: float(kv[0])):
            lines.append(f"{level:>10}  " + "  ".join(f"{100 * accs.get(n, float('nan')):9.1f}%" for n in names))
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> list[Path]:
    """Write the JSON, its tables as Markdown, a confusion-matrix PNG per method and an
    accuracy/distortion plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    markdown = out.with_suffix(".md")
    markdown.write_text(f"`{results.get('command', '')}`\n\n{format_markdown(results)}\n")
    written = [out, markdown]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    labels = results["class_names"]
    for name, confusion in results["confusion_summed_over_seeds"].items():
        matrix = np.asarray(confusion, float)
        matrix = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(9, 8))
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: accuracy {100 * results['methods'][name]['accuracy_mean']:.1f}% "
                     f"(rows normalised, summed over seeds)")
        fig.tight_layout()
        path = out.with_name(f"{out.stem}_confusion_{name}.png")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    kinds = [k for k in ("shift_s", "dilation") if results["distortions"].get(k)]
    fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(5 * (1 + len(kinds)), 4))
    axes = np.atleast_1d(axes)
    names = list(results["methods"])
    means = [100 * results["methods"][n]["accuracy_mean"] for n in names]
    stds = [100 * results["methods"][n]["accuracy_std"] for n in names]
    axes[0].bar(names, means, yerr=stds, color="tab:blue")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("clean test (mean +- std over seeds)")
    for ax, kind in zip(axes[1:], kinds, strict=True):
        levels = sorted(results["distortions"][kind], key=float)
        for name in sorted({n for lv in results["distortions"][kind].values() for n in lv}):
            clean = results["methods"][name]["accuracy_mean"]
            xs = sorted([float(x) for x in levels] + [0.0 if kind == "shift_s" else 1.0])
            ys = [100 * (clean if x in (0.0, 1.0) and str(x) not in results["distortions"][kind]
                         else results["distortions"][kind][_key(results["distortions"][kind], x)][name])
                  for x in xs]
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xlabel("test IMU shift (s)" if kind == "shift_s" else "test IMU dilation (x)")
        ax.set_ylabel("accuracy (%)")
        ax.legend()
    fig.tight_layout()
    path = out.with_suffix(".png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    written.append(path)
    return written


def _key(levels: dict, value: float) -> str:
    for key in levels:
        if float(key) == value:
            return key
    raise KeyError(value)


def format_markdown(results: dict) -> str:
    """Markdown tables (clean accuracy; accuracy under each distortion level) for the README."""
    methods = results["methods"]
    lines = ["| method | accuracy (mean ± std) | per seed | macro-F1 | train s | parameters | tested on |",
             "|---|---|---|---|---|---|---|"]
    for name, m in methods.items():
        seeds = ", ".join(f"{100 * a:.1f}" for a in m["accuracies"])
        lines.append(f"| {name} | {100 * m['accuracy_mean']:.1f} ± {100 * m['accuracy_std']:.1f} | {seeds} | "
                     f"{100 * m['macro_f1_mean']:.1f} | {m['train_seconds_mean']:.0f} | {m['parameters']:,} | "
                     f"{m.get('tested_on', '')} |")
    titles = {"shift_s": "test IMU shift (s)", "dilation": "test IMU dilation (x)",
              "misalignment_s": "training misalignment (s)"}
    for kind, levels in results.get("distortions", {}).items():
        names = [n for n in methods if any(n in lv for lv in levels.values())]
        lines += ["", f"| {titles.get(kind, kind)} | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        lines.append("| clean | " + " | ".join(f"{100 * methods[n]['accuracy_mean']:.1f}" for n in names) + " |")
        for level, accs in sorted(levels.items(), key=lambda kv: float(kv[0])):
            lines.append(f"| {level} | " + " | ".join(f"{100 * accs[n]:.1f}" if n in accs else "—"
                                                     for n in names) + " |")
    return "\n".join(lines)
