"""``c3t-edge evaluate``: several methods x seeds on one split, chosen label-free, with paired statistics.

The protocol (the README's "How the numbers are made"):

1. **Label-free selection.** Every method that reads no IMU label has a search space of the same
   size (:data:`~c3t_edge.methods.SEARCH_SPACES`); one configuration per method is chosen on
   leave-one-subject-out folds inside the training subjects, by agreement with the camera teacher
   (:mod:`c3t_edge.selection`). No test subject and no IMU label is used. ``supervised`` (the upper
   bound) and ``camera`` (the teacher's own accuracy) are references and are not tuned.
2. **One test.** Each chosen configuration is trained on the split's training subjects for every seed
   and tested once on the test subjects (IMU only; ``camera`` on camera clips). Per-window predictions
   are kept, so any comparison can be recomputed.
3. **Statistics.** Mean and *sample* standard deviation over seeds; for every label-free method, a
   paired bootstrap 95% interval of its accuracy difference against each paper baseline (``st``,
   ``ca``) over the same test windows (window correctness averaged over seeds, windows resampled).

Distortions: the test IMU shifted by +-s seconds (``shift``), time-stretched by a factor
(``dilate``), and training with a random camera/IMU offset of up to s seconds in the paired set
(``misalign``, which retrains).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from c3t_edge.data.arrays import TrialArrays
from c3t_edge.data.splits import UmaSplit
from c3t_edge.distributed import current, spread
from c3t_edge.methods import METHODS, SEARCH_SPACES, Method, TrainConfig, default_config
from c3t_edge.selection import candidates, needs_selection, select
from c3t_edge.training import evaluate, fit_method, load_arrays, make_split

SHIFT_LEVELS_S = (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0)
DILATION_LEVELS = (0.8, 0.9, 1.1, 1.2)
#: Training-time misalignment levels (each retrains the label-free methods for every seed).
MISALIGN_LEVELS_S = (0.5,)
#: The paper's baselines: every other label-free method is compared with each of them, paired.
PAPER_BASELINES = ("st", "ca")
BOOTSTRAP_RESAMPLES = 10_000


def run_evaluation(configs: dict[str, TrainConfig], seeds: int | Sequence[int], data_dir, distortions: list[str],
                   *, split: str = "development", command: str = "", progress: bool = True, tune: bool = True,
                   selection_seeds: Sequence[int] = (0,), log=sys.stderr) -> dict:
    """Select (label-free), train and test every method (label -> its base configuration) for seeds
    0..seeds-1 (or the given seeds). A label is a name (e.g. ``c3t-nopos``); what runs is its
    configuration's ``method``. With ``tune=False`` the base configurations are used as they are.

    All methods share the camera modality and placement of the first configuration, and therefore
    the same trials, split and test windows. Returns the results dictionary.
    """
    started = time.perf_counter()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    base = next(iter(configs.values()))
    arrays = load_arrays(data_dir, replace(base, method="camera"), progress)
    uma_split = make_split(arrays, split)
    configs = dict(configs)
    selection = {}
    if tune:
        selection = _select_all(configs, arrays, uma_split, selection_seeds, progress, log)
        for name, record in selection.items():
            configs[name] = candidates(configs[name], [record["chosen"]])[0].config
    results: dict = {"methods": {}, "distortions": {}, "selection": selection}
    predictions: dict[str, list[list[int]]] = {}
    for name, config in configs.items():
        results["methods"][name], predictions[name] = _test_method(
            name, config, seed_list, arrays, uma_split, distortions, results["distortions"], progress, log)
    labels = arrays.labels[uma_split.test]
    results.update({
        "protocol": uma_split.description, "split": uma_split.name, "camera": base.camera,
        "actions": "all-27" if base.placement == "all" and len(arrays.class_names) == 27 else
                   f"{base.placement} ({len(arrays.class_names)} actions)",
        "class_names": list(arrays.class_names), "seeds": seed_list, "command": command,
        "configs": {n: {k: v for k, v in c.to_json().items() if k != "seed"} for n, c in configs.items()},
        "test_windows": {"trials": [arrays.names[i] for i in uma_split.test], "labels": labels.tolist(),
                         "window": "centred window of each test trial"},
        "predictions": predictions,
        "machine": _machine(),
    })
    results["comparisons"] = paired_comparisons(results, predictions, labels)
    _finish_distortions(results)
    results["distortion_drop"] = _drops(results)
    results["targets"] = _targets(results)
    results["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    return results


def _select_all(configs: dict[str, TrainConfig], arrays: TrialArrays, uma_split: UmaSplit,
                selection_seeds: Sequence[int], progress: bool, log) -> dict:
    """The label-free selection record of every tunable method in ``configs`` (label -> record)."""
    base = next(iter(configs.values()))
    teacher = next((c for c in configs.values() if c.method == "camera"), None) or default_config(
        "camera", camera=base.camera, placement=base.placement, steps=base.steps, preprocess=base.preprocess)
    cache: dict = {}

    def fit(config: TrainConfig, fold: UmaSplit) -> Method:
        key = (json.dumps(config.to_json(), sort_keys=True, default=str), fold.name)
        if key not in cache:  # the teacher of a fold is fitted once and scored against by everyone
            cache[key] = fit_method(config, arrays, fold, progress)[0]
        return cache[key]

    def choose(name: str, config: TrainConfig) -> dict:
        record = select(name, config, SEARCH_SPACES[config.method], teacher, arrays, uma_split, fit,
                        seeds=selection_seeds, log=log)
        for key in [k for k in cache if json.loads(k[0])["method"] != "camera"]:
            del cache[key]  # keep the fold teachers, drop the students
        return record

    tunable = [name for name, config in configs.items()
               if SEARCH_SPACES.get(config.method) and needs_selection(config.method)]
    # Under torchrun the methods' selections run on different processes (distributed.spread).
    return dict(zip(tunable, spread([partial(choose, name, configs[name]) for name in tunable]), strict=True))


def _test_method(name: str, config: TrainConfig, seeds: list[int], arrays: TrialArrays, uma_split: UmaSplit,
                 distortions: list[str], store: dict, progress: bool, log) -> tuple[dict, list[list[int]]]:
    """Train ``config`` for every seed on the split's training side, test once; returns its entry of
    ``results["methods"]`` and its predictions (seeds x test windows). Distorted accuracies go to ``store``.
    Under torchrun the seeds run on different processes (distributed.spread); the entry is the same."""
    runs = spread([partial(_test_seed, name, config, seed, arrays, uma_split, distortions, progress, log)
                   for seed in seeds])
    for run in runs:
        for kind, levels in run["distorted"].items():
            for level, accs in levels.items():
                store.setdefault(kind, {}).setdefault(level, {}).setdefault(name, []).extend(accs[name])
    accs, f1s, secs = [r["accuracy"] for r in runs], [r["macro_f1"] for r in runs], [r["seconds"] for r in runs]
    preds, params, steps = [r["predicted"] for r in runs], runs[-1]["parameters"], runs[-1]["steps"]
    confusion = 0
    for run in runs:
        confusion = confusion + run["confusion"]
    cls = METHODS[config.method]
    if "misalign" in distortions and needs_selection(config.method):
        for level in MISALIGN_LEVELS_S:
            level_accs = spread([partial(_misaligned_accuracy, config, seed, level, arrays, uma_split, progress)
                                 for seed in seeds])
            store.setdefault("misalignment_s", {}).setdefault(str(level), {})[name] = level_accs
    entry = {
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": _sample_std(accs),
        "accuracies": [float(a) for a in accs], "macro_f1_mean": float(np.mean(f1s)),
        "train_seconds_mean": float(np.mean(secs)), "parameters": int(params), "optimiser_steps": int(steps),
        "tested_on": "camera clips" if cls.predicts_from == "camera" else "IMU only",
        "reads_imu_labels": cls.uses_imu_labels,
        "confusion_summed_over_seeds": np.asarray(confusion).tolist(),
    }
    return entry, preds


def _test_seed(name: str, config: TrainConfig, seed: int, arrays: TrialArrays, uma_split: UmaSplit,
               distortions: list[str], progress: bool, log) -> dict:
    """One seed of :func:`_test_method`: fit, test, distorted tests (figures only, so it can travel)."""
    method, seconds = fit_method(replace(config, seed=seed), arrays, uma_split, progress)
    ev = evaluate(method, arrays, uma_split.test)
    print(f"{name:>14} seed {seed}: accuracy {ev.accuracy:.3f}  macro-F1 {ev.macro_f1:.3f}  ({seconds:.0f} s)",
          file=log, flush=True)
    distorted: dict = {}
    if method.predicts_from == "imu":
        _distorted(distorted, name, method, arrays, uma_split.test, distortions)
    return {"accuracy": ev.accuracy, "macro_f1": ev.macro_f1, "seconds": seconds, "predicted": ev.predicted.tolist(),
            "parameters": method.parameters_count(), "steps": method.optimiser_steps(), "confusion": ev.confusion,
            "distorted": distorted}


def _misaligned_accuracy(config: TrainConfig, seed: int, level: float, arrays: TrialArrays, uma_split: UmaSplit,
                         progress: bool) -> float:
    """Test accuracy of ``config`` (seed ``seed``) trained with a random camera/IMU offset of up to ``level`` s."""
    method = fit_method(replace(config, seed=seed, misalign_s=level), arrays, uma_split, progress)[0]
    return evaluate(method, arrays, uma_split.test).accuracy


def _sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _machine() -> dict:
    """Where the evaluation ran (the results file records it)."""
    import torch

    return {"device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "training_device": current().device, "processes": current().world_size,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def paired_comparison(a: np.ndarray, b: np.ndarray, labels: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> dict:
    """Accuracy difference a - b (points) over the same test windows, with a paired bootstrap 95%
    interval: predictions ``a``, ``b`` are (seeds, windows); each window's correctness is averaged
    over seeds, then windows are resampled with replacement ``resamples`` times."""
    correct_a = (np.asarray(a) == labels).mean(axis=0)
    correct_b = (np.asarray(b) == labels).mean(axis=0)
    difference = correct_a - correct_b
    rng = np.random.default_rng(seed)
    boot = difference[rng.integers(0, len(difference), size=(resamples, len(difference)))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"difference_points": round(100 * float(difference.mean()), 2),
            "ci95_points": [round(100 * float(low), 2), round(100 * float(high), 2)],
            "excludes_zero": bool(low > 0 or high < 0), "windows": int(len(difference)),
            "resamples": resamples}


def paired_comparisons(results: dict, predictions: dict, labels: np.ndarray) -> dict:
    """Every label-free IMU method against each paper baseline present (label -> baseline -> figures),
    and which baseline is the best one (highest mean accuracy)."""
    methods = results["methods"]
    baselines = [b for b in PAPER_BASELINES if b in methods]
    if not baselines:
        return {}
    best = max(baselines, key=lambda b: methods[b]["accuracy_mean"])
    out: dict = {"best_baseline": best, "by_method": {}}
    for name in methods:
        config = results["configs"][name]
        if name in baselines or not needs_selection(config["method"]):
            continue
        out["by_method"][name] = {b: paired_comparison(predictions[name], predictions[b], labels) for b in baselines}
    return out


#: What two results files must share for methods of one to be added to the other.
_SAME_PROTOCOL = ("split", "protocol", "camera", "actions", "class_names", "seeds")


def add_to_results(previous: dict, added: dict) -> dict:
    """``previous`` results (a file ``c3t-edge evaluate`` wrote) with the methods of ``added`` (a run on
    the same split, camera, actions, seeds, test windows and distortions) added, or replacing those of
    the same name; paired comparisons, distortion drops and targets are recomputed from the per-window
    predictions, so the merged file is what one run of all its methods would report (each method's
    own training is independent of the others'). ``added_runs`` records what was added, by which
    command, where and how long it took."""
    from c3t_edge.errors import C3TEdgeError

    differing = [key for key in _SAME_PROTOCOL if previous.get(key) != added.get(key)]
    if previous.get("test_windows", {}).get("trials") != added.get("test_windows", {}).get("trials"):
        differing.append("test windows")
    if set(previous.get("distortions", {})) != set(added.get("distortions", {})):
        differing.append("distortions")
    if differing:
        raise C3TEdgeError(f"--add-to: the results file was made with another {', '.join(differing)}; "
                           "run the same split, camera, placement, seeds and --distortion flags")
    merged = json.loads(json.dumps(previous))
    for name in added["methods"]:
        for key in ("methods", "configs", "predictions", "selection"):
            if name in added.get(key, {}):
                merged.setdefault(key, {})[name] = added[key][name]
    for kind, levels in added["distortions"].items():
        for level, accs in levels.items():
            merged["distortions"].setdefault(kind, {}).setdefault(level, {}).update(accs)
    merged.setdefault("added_runs", []).append({
        "methods": list(added["methods"]), "command": added.get("command", ""), "machine": added.get("machine"),
        "evaluation_seconds": added.get("evaluation_seconds")})
    labels = np.asarray(merged["test_windows"]["labels"])
    merged["comparisons"] = paired_comparisons(merged, merged["predictions"], labels)
    merged["distortion_drop"] = _drops(merged)
    merged["targets"] = _targets(merged)
    return merged


def _finish_distortions(results: dict) -> None:
    """Distortion entries hold per-seed lists until here; turn them into means."""
    for levels in results["distortions"].values():
        for level in levels.values():
            for name in level:
                level[name] = float(np.mean(level[name]))


def _drops(results: dict) -> dict:
    """Accuracy lost under each shift / dilation level: clean mean minus distorted mean (points)."""
    drops: dict = {}
    for kind in ("shift_s", "dilation", "misalignment_s"):
        for level, accs in results["distortions"].get(kind, {}).items():
            for name, acc in accs.items():
                clean = results["methods"][name]["accuracy_mean"]
                drops.setdefault(kind, {}).setdefault(level, {})[name] = round(100 * (clean - acc), 2)
    return drops


def label_free_winner(results: dict) -> str | None:
    """The label-free IMU method with the highest mean test accuracy (None when there is none)."""
    free = [n for n, c in results["configs"].items() if needs_selection(c["method"])]
    return max(free, key=lambda n: results["methods"][n]["accuracy_mean"]) if free else None


def _targets(results: dict) -> dict:
    """The issue's targets, checked on this file's numbers (only those its methods allow)."""
    methods = results["methods"]
    winner = label_free_winner(results)
    if winner is None:
        return {}
    acc = methods[winner]["accuracy_mean"]
    out: dict = {"winner": winner, "winner_accuracy": round(100 * acc, 2)}
    for reference in ("camera", "supervised"):
        if reference in methods:
            out[f"winner_over_{reference}"] = round(acc / max(methods[reference]["accuracy_mean"], 1e-9), 4)
    against = results.get("comparisons", {}).get("by_method", {}).get(winner, {})
    if "st" in against:
        out["winner_above_st_ci95_excludes_zero"] = against["st"]["excludes_zero"] and \
            against["st"]["difference_points"] > 0
    drops = results.get("distortion_drop", {})
    for kind, levels in (("shift_s", ("-1.0", "1.0")), ("dilation", ("0.8", "1.2"))):
        worst = [drops.get(kind, {}).get(level, {}).get(winner) for level in levels]
        if all(w is not None for w in worst):
            out[f"winner_worst_drop_{kind}_points"] = max(worst)
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


def _comparison_text(results: dict, name: str) -> str:
    """``+1.2 [-0.4, 2.9] vs st`` against the best baseline (empty when not compared)."""
    comparisons = results.get("comparisons", {})
    best = comparisons.get("best_baseline")
    figures = comparisons.get("by_method", {}).get(name, {}).get(best)
    if not figures:
        return ""
    low, high = figures["ci95_points"]
    return f"{figures['difference_points']:+.1f} [{low:+.1f}, {high:+.1f}] vs {best}"


def selection_agreement(results: dict, name: str) -> float | None:
    """The inner-fold teacher agreement of method ``name``'s chosen configuration (None if untuned)."""
    record = results.get("selection", {}).get(name)
    if not record:
        return None
    return next(c["teacher_agreement"] for c in record["candidates"] if c["label"] == record["chosen_label"])


def label_free_pick(results: dict) -> str | None:
    """The label-free method a user without IMU labels would choose: the highest inner-fold teacher
    agreement of the chosen configurations (no test subject, no IMU label); None if none was tuned."""
    scores = {name: selection_agreement(results, name) for name in results["methods"]}
    scores = {name: score for name, score in scores.items() if score is not None}
    return max(scores, key=scores.get) if scores else None


def format_table(results: dict) -> str:
    """A plain-text table: mean accuracy, sample std, macro-F1, the paired difference against the best
    paper baseline with its 95% interval, and the configuration chosen label-free."""
    lines = [f"{'method':>14}  {'accuracy':>9}  {'std':>5}  {'macro-F1':>8}  {'vs best baseline [95% CI]':>30}  "
             f"{'params':>8}  {'agreement':>9}  chosen (label-free)"]
    for name, m in results["methods"].items():
        chosen = results.get("selection", {}).get(name, {}).get("chosen_label", "-")
        agreement = selection_agreement(results, name)
        lines.append(f"{name:>14}  {100 * m['accuracy_mean']:8.1f}%  {100 * m['accuracy_std']:5.1f}  "
                     f"{100 * m['macro_f1_mean']:7.1f}%  {_comparison_text(results, name):>30}  "
                     f"{m['parameters']:8d}  {'-' if agreement is None else f'{100 * agreement:.1f}%':>9}  {chosen}")
    pick = label_free_pick(results)
    if pick:
        lines.append(f"label-free pick (highest inner-fold teacher agreement): {pick}")
    for kind, levels in results.get("distortions", {}).items():
        names = sorted({n for level in levels.values() for n in level})
        lines.append(f"\n{kind:>14}  " + "  ".join(f"{n:>13}" for n in names))
        for level, accs in sorted(levels.items(), key=lambda kv: float(kv[0])):
            lines.append(f"{level:>14}  " + "  ".join(f"{100 * accs.get(n, float('nan')):12.1f}%" for n in names))
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> list[Path]:
    """Write the JSON, its tables as Markdown, a confusion-matrix PNG per method and an
    accuracy/distortion plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    markdown = out.with_suffix(".md")
    commands = [results.get("command", "")] + [run["command"] for run in results.get("added_runs", [])]
    markdown.write_text("".join(f"`{c}`\n\n" for c in commands) + f"{format_markdown(results)}\n")
    written = [out, markdown]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    labels = results["class_names"]
    for name, entry in results["methods"].items():
        matrix = np.asarray(entry["confusion_summed_over_seeds"], float)
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
    """Markdown tables (clean accuracy with paired comparisons; accuracy under each distortion level)."""
    methods = results["methods"]
    pick = label_free_pick(results)
    lines = ["| method | accuracy (mean ± sample std) | per seed | macro-F1 | vs best baseline, paired 95% CI "
             "(points) | chosen label-free | inner-fold teacher agreement | parameters | tested on |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in methods.items():
        seeds = ", ".join(f"{100 * a:.1f}" for a in m["accuracies"])
        chosen = results.get("selection", {}).get(name, {}).get("chosen_label", "—")
        agreement = selection_agreement(results, name)
        agreement_text = "—" if agreement is None else f"{100 * agreement:.1f}" + (" (pick)" if name == pick else "")
        lines.append(f"| {name} | {100 * m['accuracy_mean']:.1f} ± {100 * m['accuracy_std']:.1f} | {seeds} | "
                     f"{100 * m['macro_f1_mean']:.1f} | {_comparison_text(results, name) or '—'} | {chosen} | "
                     f"{agreement_text} | {m['parameters']:,} | {m.get('tested_on', '')} |")
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
