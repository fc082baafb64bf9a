"""The method extension path (docs/EXTENDING.md, "Add a method"): a small extra method, registered with
``c3t_edge.methods.register_method``, trained on real UTD-MHAD data through ``fit_method`` and
``c3t-edge train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _pseudo_label_method import PseudoLabel

from c3t_edge.cli import main as cli_main
from c3t_edge.methods import METHODS, apply_setting, default_config, register_method, unregister_method
from c3t_edge.training import evaluate, fit_method, load_arrays, load_run, make_split

CHANCE_21 = 1 / 21


@pytest.fixture
def registered():
    """PseudoLabel registered for one test (the one registration a new method module needs)."""
    register_method(PseudoLabel, defaults={"steps": 150}, options=("pseudo_label_confidence",))
    yield PseudoLabel.name
    unregister_method(PseudoLabel.name)
    assert PseudoLabel.name not in METHODS


def test_registration_brings_defaults_and_options(registered):
    config = default_config(registered)
    assert config.steps == 150
    assert apply_setting(config, "pseudo_label_confidence=0.5").extra["pseudo_label_confidence"] == 0.5


@pytest.fixture(scope="module")
def wrist_skeleton_arrays(utd_mhad_dir):
    return load_arrays(utd_mhad_dir, default_config("camera", camera="skeleton", placement="wrist"))


def test_an_extra_method_trains_through_fit_method(registered, wrist_skeleton_arrays):
    config = default_config(registered, camera="skeleton", placement="wrist", steps=150)
    split = make_split(wrist_skeleton_arrays, "development")
    method, _seconds = fit_method(config, wrist_skeleton_arrays, split)
    assert isinstance(method, PseudoLabel) and not method.uses_imu_labels
    truth = wrist_skeleton_arrays.labels[split.paired]
    teacher_agreement = float((method.pseudo_labels_.numpy() == truth).mean())
    assert teacher_agreement > 12 * CHANCE_21, teacher_agreement  # the camera teacher learned (~94%)
    result = evaluate(method, wrist_skeleton_arrays, split.test)
    assert result.n_windows == len(split.test)
    assert result.accuracy > 6 * CHANCE_21, result.accuracy           # IMU only, no IMU label (~60%)


def test_an_extra_method_trains_through_the_command_line(registered, utd_mhad_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli_main(["train", "--method", registered, "--data", str(utd_mhad_dir), "--camera", "skeleton",
                     "--placement", "wrist", "--steps", "20", "--out", str(run_dir), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["method"] == registered and 0.0 <= summary["accuracy"] <= 1.0
    run = load_run(run_dir)  # the run directory loads back into the registered class
    assert isinstance(run.method, PseudoLabel) and len(run.class_names) == 21
    metrics = json.loads((run_dir / "metrics.json").read_text())
    arrays = load_arrays(utd_mhad_dir, run.config)
    again = evaluate(run.method, arrays, make_split(arrays, "development").test)
    assert again.accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert np.isfinite([h["loss"] for h in metrics["history"]]).all()


def test_an_unregistered_method_name_is_refused_in_one_line(capsys, tmp_path):
    try:
        code = cli_main(["train", "--method", PseudoLabel.name, "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # refused by argparse (exit 2) or by the command (exit 1): either is fine
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "pseudo-label" in err and "supervised" in err
    assert not (tmp_path / "run").exists()
