"""Short real training runs (supervised IMU, camera), run directories and the evaluate command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from c3t_edge.methods import default_config
from c3t_edge.training import evaluate, fit_method, load_arrays, load_run, make_split, train_run

CHANCE_27 = 1 / 27


@pytest.fixture(scope="module")
def skeleton_arrays(utd_mhad_dir):
    return load_arrays(utd_mhad_dir, default_config("camera", camera="skeleton"))


def test_supervised_imu_beats_chance_by_far(skeleton_arrays):
    split = make_split(skeleton_arrays, "development")
    method, seconds = fit_method(default_config("supervised", steps=200), skeleton_arrays, split)
    result = evaluate(method, skeleton_arrays, split.test)
    assert result.n_windows == len(split.test) == 323
    assert result.accuracy > 12 * CHANCE_27, result.accuracy            # > 44% (chance 3.7%)
    assert result.confusion.sum() == 323


def test_camera_model_beats_chance_by_far(skeleton_arrays):
    split = make_split(skeleton_arrays, "development")
    method, _ = fit_method(default_config("camera", camera="skeleton", steps=200), skeleton_arrays, split)
    assert method.predicts_from == "camera"
    assert evaluate(method, skeleton_arrays, split.test).accuracy > 10 * CHANCE_27


def test_run_directory_round_trip(utd_mhad_dir, tmp_path):
    config = default_config("supervised", placement="wrist", steps=40)
    metrics = train_run(config, utd_mhad_dir, tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "model.pt", "metrics.json"}
    run = load_run(tmp_path / "run")
    assert len(run.class_names) == 21 and run.class_names[0] == "swipe left"
    arrays = load_arrays(utd_mhad_dir, run.config)
    split = make_split(arrays, "development")
    again = evaluate(run.method, arrays, split.test)
    assert again.accuracy == pytest.approx(metrics["test"]["accuracy"])
    info = run.info["data"]
    assert set(info["train_subjects"]) == {1, 3, 5} and set(info["test_subjects"]) == {2, 4, 6}
    assert not set(info["labelled_trials"]) & set(info["paired_trials"])


def test_load_run_rejects_other_folders(tmp_path):
    from c3t_edge.errors import C3TEdgeError

    with pytest.raises(C3TEdgeError, match="not a run directory"):
        load_run(tmp_path)


def test_evaluate_command_writes_json_table_and_plots(utd_mhad_dir, tmp_path):
    out = tmp_path / "results" / "smoke.json"
    result = subprocess.run(
        [sys.executable, "-m", "c3t_edge", "evaluate", "--data", str(utd_mhad_dir), "--camera", "skeleton",
         "--methods", "supervised,camera", "--seeds", "1", "--steps", "30", "--distortion", "shift",
         "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "supervised" in result.stdout and "accuracy" in result.stdout
    data = json.loads(out.read_text())
    assert data["protocol"] == "train subjects 1,3,5; test 2,4,6; labelled camera trials 1-2; paired trials 3-4"
    assert data["actions"] == "all-27" and data["camera"] == "skeleton"
    sup = data["methods"]["supervised"]
    assert len(sup["accuracies"]) == 1 and 0 <= sup["accuracy_mean"] <= 1 and sup["parameters"] > 0
    assert set(data["distortions"]["shift_s"]) == {"-1.0", "-0.5", "-0.25", "0.25", "0.5", "1.0"}
    assert "camera" not in data["distortions"]["shift_s"]["0.5"]          # the camera never sees the IMU
    assert (tmp_path / "results" / "smoke_confusion_supervised.png").stat().st_size > 1000
    assert out.with_suffix(".png").is_file()
    assert np.asarray(data["methods"]["camera"]["confusion_summed_over_seeds"]).sum() == 323

    # --add-to: a mismatched run is refused before any training, a matching one is merged
    evaluate = [sys.executable, "-m", "c3t_edge", "evaluate", "--data", str(utd_mhad_dir), "--camera", "skeleton",
                "--steps", "30", "--distortion", "shift", "--quiet", "--no-tuning", "--add-to", str(out)]
    refused = subprocess.run([*evaluate, "--methods", "st", "--seeds", "2", "--out", str(tmp_path / "x.json")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--add-to" in refused.stderr and "seeds" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()
    merged_path = tmp_path / "results" / "merged.json"
    added = subprocess.run([*evaluate, "--methods", "st,distill-align-warp", "--seeds", "1", "--out", str(merged_path)],
                           capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    merged = json.loads(merged_path.read_text())
    assert list(merged["methods"]) == ["supervised", "camera", "st", "distill-align-warp"]
    assert merged["predictions"]["supervised"] == data["predictions"]["supervised"]
    assert set(merged["distortions"]["shift_s"]["1.0"]) == {"supervised", "st", "distill-align-warp"}
    comparison = merged["comparisons"]["by_method"]["distill-align-warp"]["st"]
    labels = np.asarray(merged["test_windows"]["labels"])
    expected = 100 * ((np.asarray(merged["predictions"]["distill-align-warp"]) == labels).mean()
                      - (np.asarray(merged["predictions"]["st"]) == labels).mean())
    assert comparison["difference_points"] == pytest.approx(expected, abs=0.01)
    assert merged["targets"]["winner"] in {"st", "distill-align-warp"}
    assert [run["methods"] for run in merged["added_runs"]] == [["st", "distill-align-warp"]]


def test_wrong_flag_is_one_line():
    result = subprocess.run([sys.executable, "-m", "c3t_edge", "train", "--method", "nope", "--out", "x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_set_overrides_fields_and_method_options():
    import argparse

    from c3t_edge.commands.train import add_arguments, base_config
    from c3t_edge.errors import C3TEdgeError
    from c3t_edge.methods import apply_setting

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--method", "c3t", "--out", "x", "--set", "temperature=0.3",
                              "--set", "c3t.head_position=false", "--set", "st.student_steps=9",
                              "--set", "negatives=step"])
    config = base_config(args, "c3t")
    assert config.temperature == 0.3 and config.extra["head_position"] is False
    assert config.extra["negatives"] == "step" and "student_steps" not in config.extra
    assert base_config(args, "st").extra["student_steps"] == 9
    assert base_config(args, "st").extra.get("head_position") is None
    assert apply_setting(default_config("st"), "steps=7").steps == 7
    with pytest.raises(C3TEdgeError, match="did you mean temperature"):
        apply_setting(default_config("st"), "temprature=0.3")   # a typo is an error, not a no-op
    for bad in ("temperature", "seed=3", "steps=many", "head=3", "lr=-1", "nonsense=1"):
        with pytest.raises(C3TEdgeError, match="--set"):
            apply_setting(default_config("st"), bad)
