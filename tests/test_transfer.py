"""Label-free transfer: every method that reads no IMU label learns from real data, never sees the
labelled set's IMU, and is chosen and compared by the honest protocol (inner folds, paired intervals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c3t_edge.data.splits import development_split
from c3t_edge.evaluation import paired_comparison
from c3t_edge.methods import METHODS, SEARCH_SPACES, MethodData, default_config
from c3t_edge.methods.frozen import FrozenCameraOutputs
from c3t_edge.selection import inner_folds, needs_selection, select
from c3t_edge.training import evaluate, fit_method, load_arrays, make_split

LABEL_FREE = sorted(name for name in METHODS if needs_selection(name))


@pytest.fixture(scope="module")
def skeleton_arrays(utd_mhad_dir):
    return load_arrays(utd_mhad_dir, default_config("camera", camera="skeleton"))


@pytest.mark.parametrize("method_name", LABEL_FREE)
def test_label_free_method_learns_from_real_data(method_name, skeleton_arrays):
    """A short real run (skeleton camera -> IMU, all 27 actions, development split): the IMU model,
    trained without one IMU label, recognises held-out subjects far above chance. A method that
    outputs constant logits scores 1/27 here."""
    torch.set_num_threads(1)
    split = make_split(skeleton_arrays, "development")
    config = default_config(method_name, camera="skeleton", steps=150)
    method, _ = fit_method(config, skeleton_arrays, split)
    result = evaluate(method, skeleton_arrays, split.test)
    assert not method.uses_imu_labels
    # measured ~0.77-0.82 for every label-free method at 150 steps; chance (or constant logits) is 0.037
    assert result.accuracy > 0.5, result.accuracy
    assert len(set(result.predicted.tolist())) > 18                     # not a constant or near-constant guess


def test_labelled_set_imu_is_hidden_on_every_path():
    """The labelled camera set's IMU reads as NaN for every label-free method, whatever the path:
    training batches, the frozen-teacher tables, or the arrays themselves. ``supervised`` sees it."""
    from test_methods import tiny_arrays

    arrays = tiny_arrays("depth")
    split = development_split(arrays.subjects, arrays.trials)
    hidden = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    seen = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=True)
    rng = np.random.default_rng(0)
    imu, _cam, _labels = hidden.batch(split.labelled_camera[:4], rng, jitter_s=0.2)
    assert torch.isnan(imu).all()
    direct, _ = hidden.arrays.windows(split.labelled_camera, with_camera=False)
    assert np.isnan(direct).all()
    encoder = torch.nn.Flatten(2)
    table = FrozenCameraOutputs(encoder, hidden, split.labelled_camera, jitter_s=0.1, misalign_s=0.0)
    frozen_imu, _ = table.batch(hidden, split.labelled_camera[:4], rng)
    assert torch.isnan(frozen_imu).all()
    paired, _ = hidden.arrays.windows(split.paired, with_camera=False)
    assert np.isfinite(paired).all()                                      # paired IMU is there to align
    assert np.isfinite(seen.arrays.windows(split.labelled_camera, with_camera=False)[0]).all()
    # the same view for every method of a split, so the shared camera model is still shared
    again = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    assert again.arrays is hidden.arrays


def test_selection_never_touches_test_subjects_and_gives_every_method_the_same_budget():
    from test_methods import tiny_arrays

    torch.set_num_threads(1)
    arrays = tiny_arrays("skeleton")
    split = development_split(arrays.subjects, arrays.trials)
    folds = inner_folds(arrays, split)
    assert [f.test_subjects for f in folds] == [(1,), (3,), (5,)]
    for fold in folds:
        assert set(arrays.subjects[fold.train]) | set(arrays.subjects[fold.test]) <= {1, 3, 5}
        assert set(arrays.trials[fold.test]) == {3, 4}                    # the held-out subject's paired clips
    seen_splits = []

    def fit(config, fold):
        seen_splits.append(fold)
        return fit_method(config, arrays, fold)[0]

    teacher = default_config("camera", camera="skeleton", steps=3, batch_size=8)
    budgets = {}
    for name in ("st", "c3t"):
        base = default_config(name, camera="skeleton", steps=3, batch_size=8)
        record = select(name, base, SEARCH_SPACES[name], teacher, arrays, split, fit, log=None)
        budgets[name] = record["budget"]["configurations"], record["budget"]["fits"]
        assert record["chosen"] in [list(c) for c in SEARCH_SPACES[name]]
        scores = [c["teacher_agreement"] for c in record["candidates"]]
        assert record["chosen"] == record["candidates"][int(np.argmax(scores))]["settings"]
    assert budgets["st"] == budgets["c3t"] == (len(SEARCH_SPACES["st"]), len(SEARCH_SPACES["st"]) * 3)
    assert {len(space) for space in SEARCH_SPACES.values()} == {len(SEARCH_SPACES["st"])}
    assert set(SEARCH_SPACES) == set(LABEL_FREE)
    for fold in seen_splits:
        assert not set(arrays.subjects[np.concatenate([fold.train, fold.test])]) & {2, 4, 6}


def test_paired_comparison_is_a_paired_bootstrap_of_window_correctness():
    labels = np.array([0, 1, 2, 3] * 25)
    a = np.stack([labels, labels])                                          # always right
    b = np.stack([labels, np.where(np.arange(100) < 50, labels, -1)])       # right, then half right
    result = paired_comparison(a, b, labels, resamples=2000)
    assert result["difference_points"] == pytest.approx(25.0)
    low, high = result["ci95_points"]
    assert low < 25.0 < high and result["excludes_zero"]
    same = paired_comparison(a, a, labels, resamples=500)
    assert same["difference_points"] == 0 and same["ci95_points"] == [0, 0] and not same["excludes_zero"]


def test_label_free_pick_is_the_highest_inner_fold_agreement_of_the_tuned_methods():
    """The method a user without IMU labels would choose is read from the selection records only: the
    chosen configuration's teacher agreement, never the test accuracy; untuned references are skipped."""
    from c3t_edge.evaluation import format_markdown, label_free_pick, selection_agreement

    def record(chosen, scores):
        return {"chosen_label": chosen, "candidates": [{"label": label, "teacher_agreement": score}
                                                       for label, score in scores.items()]}

    def method(accuracy):
        return {"accuracy_mean": accuracy, "accuracy_std": 0.0, "accuracies": [accuracy], "macro_f1_mean": accuracy,
                "parameters": 10}

    results = {"methods": {"supervised": method(0.9), "st": method(0.8), "c3t": method(0.7)},
               "selection": {"st": record("defaults", {"defaults": 0.55, "temperature=2.0": 0.60}),
                             "c3t": record("tolerance=1", {"defaults": 0.50, "tolerance=1": 0.58})}}
    assert selection_agreement(results, "st") == 0.55                   # the chosen one, not the best candidate
    assert selection_agreement(results, "supervised") is None
    assert label_free_pick(results) == "c3t"                            # though st is better on the test
    assert "58.0 (pick)" in format_markdown(results)
    assert label_free_pick({"methods": {"supervised": method(0.9)}, "selection": {}}) is None
