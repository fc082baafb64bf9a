"""One conformance test run over every UMA method (scikit-learn style): it fits on a tiny dataset,
never reads an IMU label unless it is ``supervised``, predicts from IMU alone, and round-trips
through its state dict as ``load_run`` does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c3t_edge.data.arrays import TrialArrays
from c3t_edge.data.preprocess import PreprocessConfig
from c3t_edge.data.splits import development_split
from c3t_edge.methods import METHODS, MethodData, build_method, default_config
from c3t_edge.models import ImuRecognizer

N_CLASSES = 3


def tiny_arrays(camera: str, seed: int = 0) -> TrialArrays:
    """3 classes x 6 subjects x 4 trials; the IMU and camera signals depend on the class."""
    rng = np.random.default_rng(seed)
    config = PreprocessConfig(depth_size=8)
    names, subjects, trials, labels, imu, cam = [], [], [], [], [], []
    for subject in range(1, 7):
        for label in range(N_CLASSES):
            for trial in range(1, 5):
                n = int(rng.integers(150, 220))
                t = np.linspace(0, 1, n)[:, None]
                imu.append((np.sin(2 * np.pi * (label + 1) * t) + 0.3 * rng.standard_normal((n, 6)))
                           .astype(np.float32))
                frames = int(rng.integers(40, 70))
                shape = (frames, 8, 8) if camera == "depth" else (frames, 60)
                clip = rng.random(shape).astype(np.float32) * 0.2
                clip[:, label] += 1.0
                cam.append(clip)
                names.append(f"a{label + 1}_s{subject}_t{trial}")
                subjects.append(subject)
                trials.append(trial)
                labels.append(label)
    return TrialArrays(config, tuple(f"class {i}" for i in range(N_CLASSES)), names, np.array(subjects),
                       np.array(trials), np.array(labels), imu, camera, cam)


#: Every registered method with its defaults, plus the variants its options select.
VARIANTS = [(name, {}) for name in sorted(METHODS)] + [
    ("ca", {"schedule": "staged"}), ("c3t", {"schedule": "staged"}), ("c3t", {"negatives": "step"}),
    ("c3t", {"positive_window": 1.0, "head_position": False}), ("c3t", {"tolerance": 1}),
    ("c3t", {"head_noise": 1.0}),
    ("st", {"camera_augment": 1.0}), ("st", {"imu_augment": 1.0}), ("ensemble-distill-align-warp", {"imu_augment": 1.0}),
    ("camera", {"camera_pseudo_weight": 1.0, "camera_pseudo_threshold": 0.0}),
]


def fit(method_name: str, arrays: TrialArrays, camera: str, extra: dict | None = None):
    torch.set_num_threads(1)
    config = default_config(method_name, camera=camera, steps=3, batch_size=8, seed=1)
    config.extra.update(extra or {})
    method = build_method(config)
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=method.uses_imu_labels)
    return method.fit(data), split


@pytest.mark.parametrize("camera", ["depth", "skeleton"])
@pytest.mark.parametrize(("method_name", "extra"), VARIANTS, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()) or "defaults")
def test_method_conformance(method_name: str, extra: dict, camera: str) -> None:
    arrays = tiny_arrays(camera)
    method, split = fit(method_name, arrays, camera, extra)
    assert method.uses_imu_labels == (method_name == "supervised")
    imu, cam = arrays.windows(split.test)
    standardised = method.standardizer_(imu)
    if method.predicts_from == "camera":
        logits = method.predict_logits(standardised, cam)
        assert logits.shape == (len(split.test), N_CLASSES)
        return
    # Predicts from IMU alone, through the exported recogniser.
    logits = method.predict_logits(standardised)
    assert logits.shape == (len(split.test), N_CLASSES) and np.isfinite(logits).all()
    recognizer = method.imu_recognizer()
    assert isinstance(recognizer, ImuRecognizer)
    with torch.no_grad():
        direct = recognizer(torch.from_numpy(standardised)).numpy()
    np.testing.assert_allclose(direct, logits, rtol=1e-5, atol=1e-5)
    assert method.parameters_count() == sum(p.numel() for p in recognizer.parameters())

    # Never reads an IMU label: permuting the paired trials' labels changes nothing (except supervised).
    permuted = tiny_arrays(camera)
    paired = split.paired
    permuted.labels[paired] = (permuted.labels[paired] + 1) % N_CLASSES
    again, _ = fit(method_name, permuted, camera, extra)
    same = np.allclose(again.predict_logits(standardised), logits, atol=1e-6)
    assert same != method.uses_imu_labels

    # Round trip through the state dict, as load_run does.
    loaded = build_method(method.config)
    loaded.build_modules(N_CLASSES, arrays.camera_shape)
    loaded.load_state_dict(method.state_dict())
    loaded.standardizer_ = method.standardizer_
    np.testing.assert_allclose(loaded.predict_logits(standardised), logits, rtol=1e-5, atol=1e-5)


def test_paired_labels_are_hidden_from_uma_methods() -> None:
    arrays = tiny_arrays("skeleton")
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    assert (data.labels(split.paired) == -1).all()
    assert (data.labels(split.labelled_camera) >= 0).all()


@pytest.mark.parametrize("method_name", ["st", "ca", "c3t"])
def test_shared_camera_model_changes_nothing(method_name: str) -> None:
    """``evaluate`` trains one camera model per seed and reuses it: a method fitted after ``camera``
    (camera model reused) predicts exactly as one fitted alone (camera model trained)."""
    from c3t_edge.methods import camera as camera_module

    arrays = tiny_arrays("depth")
    camera_module._FITTED.clear()
    camera_module._LATENTS.clear()
    alone, split = fit(method_name, arrays, "depth")
    imu, _ = arrays.windows(split.test)
    expected = alone.predict_logits(alone.standardizer_(imu))
    camera_module._FITTED.clear()
    camera_module._LATENTS.clear()
    fit("camera", arrays, "depth")
    assert len(camera_module._FITTED) == 1
    after, _ = fit(method_name, arrays, "depth")
    assert len(camera_module._FITTED) == 1  # reused, not retrained
    np.testing.assert_allclose(after.predict_logits(after.standardizer_(imu)), expected, rtol=1e-5, atol=1e-5)


def test_shift_tolerant_alignment_is_multi_positive_info_nce() -> None:
    """``tolerance`` counts every step of the same clip within that many steps as a positive: checked
    against a direct loop, and it forgives a one-step offset between the streams."""
    from c3t_edge.methods.alignment import temporal_info_nce

    torch.manual_seed(0)
    n, steps, d, tau = 3, 5, 4, 0.5
    imu, cam = torch.randn(n, steps, d), torch.randn(n, steps, d)
    a = torch.nn.functional.normalize(imu, dim=-1).reshape(n * steps, d)
    b = torch.nn.functional.normalize(cam, dim=-1).reshape(n * steps, d)
    probs = torch.softmax(a @ b.T / tau, dim=1), torch.softmax(b @ a.T / tau, dim=1)
    expected = 0.0
    for p in probs:
        for row in range(n * steps):
            clip, step = divmod(row, steps)
            cols = [clip * steps + s for s in range(steps) if abs(s - step) <= 1]
            expected += -torch.log(p[row, cols].sum()) / (2 * n * steps)
    got = temporal_info_nce(imu, cam, tau, tolerance=1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert got < temporal_info_nce(imu, cam, tau)            # more positives, never a larger loss
    # camera one step late: exact-step alignment penalises it, tolerance 1 hardly does
    late = torch.cat([imu[:, :1], imu[:, :-1]], dim=1)
    assert temporal_info_nce(imu, late, 0.05, tolerance=1) < 0.5 * temporal_info_nce(imu, late, 0.05)


def test_camera_steps_sets_the_teacher_length_alone() -> None:
    arrays = tiny_arrays("skeleton")
    camera, _ = fit("camera", arrays, "skeleton", {"camera_steps": 5})
    assert camera.history_[-1]["step"] == 4                     # 5 camera steps, not config.steps = 3
    st, _ = fit("st", arrays, "skeleton", {"camera_steps": 5})
    steps = [h["step"] for h in st.history_]
    assert steps[:steps.index(0, 1)][-1] == 4 and steps[-1] == 2  # teacher 5 steps, student 3


def test_averaged_prediction_is_the_mean_of_the_members_probabilities() -> None:
    from c3t_edge.methods.ensemble_distill import averaged_prediction

    torch.manual_seed(0)
    a, b, camera = torch.randn(5, N_CLASSES), torch.randn(5, N_CLASSES), torch.randn(5, N_CLASSES)
    imu = torch.zeros(5, 4, 6)
    members = [lambda _x, z=a: z, lambda _x, z=b: z]
    for temperature in (1.0, 2.0):
        target = averaged_prediction(members, imu, None, temperature)
        expected = (torch.softmax(a / temperature, -1) + torch.softmax(b / temperature, -1)) / 2
        torch.testing.assert_close(torch.softmax(target / temperature, -1), expected)
        with_camera = averaged_prediction(members, imu, camera, temperature)
        expected = (torch.softmax(a / temperature, -1) + torch.softmax(b / temperature, -1) +
                    torch.softmax(camera / temperature, -1)) / 3
        torch.testing.assert_close(torch.softmax(with_camera / temperature, -1), expected)


def test_ensemble_distill_align_warp_learns_its_members_prediction_and_keeps_only_the_student() -> None:
    """Its soft label on a batch is the trained members' averaged prediction on the student's own IMU
    windows (not the camera's), its step budget counts every member's stages, and its model is the
    distill-align shape: the members are not kept."""
    from c3t_edge.methods.ensemble_distill import averaged_prediction

    torch.set_num_threads(1)
    arrays = tiny_arrays("depth")
    config = default_config("ensemble-distill-align-warp", camera="depth", steps=3, batch_size=8, seed=1)
    method = build_method(config)
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    method.build_modules(data.n_classes, data.arrays.camera_shape)
    history = method._prepare_teacher(data, progress=False)
    assert {row["member"] for row in history} == {"st", "c3t"}
    assert len(method._members) == 2
    imu, _ = arrays.windows(split.paired[:6], with_camera=False)
    imu = torch.from_numpy(data.standardizer(imu))
    camera_logits = torch.randn(6, N_CLASSES)
    target = method._teacher_logits(imu, camera_logits)
    torch.testing.assert_close(target, averaged_prediction(method._members, imu, None, config.temperature))
    method.config.extra["members"] = "st,c3t,camera"
    method._prepare_teacher(data, progress=False)                      # the same members, reused
    assert not torch.allclose(method._teacher_logits(imu, camera_logits), target)
    method.config.extra["members"] = "st,c3t"
    # camera 3 + st student 3 + c3t head 3 + c3t alignment 3 + own student 3
    assert method.optimiser_steps() == 15
    fitted = build_method(config).fit(data)
    assert fitted._members == []
    plain = build_method(default_config("distill-align", camera="depth", steps=3, batch_size=8)).fit(data)
    assert set(fitted.state_dict()) == set(plain.state_dict())


def test_members_are_trained_once_per_configuration_and_reuse_changes_nothing() -> None:
    """The candidates of a selection fold change the student, not the members: the members are fitted
    once, and a student trained on reused members is the one a fresh fit gives."""
    from c3t_edge.methods import ensemble_distill

    torch.set_num_threads(1)
    arrays = tiny_arrays("depth")
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)

    def fit_student(method_name: str, **overrides):
        config = default_config(method_name, camera="depth", steps=3, batch_size=8, seed=1)
        for key, value in overrides.items():
            setattr(config, key, value)
        return build_method(config).fit(data).state_dict()["imu_encoder"]

    ensemble_distill._FITTED_MEMBERS.clear()
    fit_student("ensemble-distill-align-warp")
    fit_student("ensemble-distill")
    assert len(ensemble_distill._FITTED_MEMBERS) == 2                   # st and c3t, once for both methods
    reused = fit_student("ensemble-distill-align-warp", temperature=2.0)
    assert len(ensemble_distill._FITTED_MEMBERS) == 2
    ensemble_distill._FITTED_MEMBERS.clear()
    fresh = fit_student("ensemble-distill-align-warp", temperature=2.0)
    for name, tensor in fresh.items():
        torch.testing.assert_close(reused[name], tensor, rtol=0, atol=0)


def test_c3t_paired_head_distils_the_teacher_on_paired_clips_and_keeps_c3t_shape() -> None:
    """``c3t-paired-head``'s temporal head learns the camera teacher's predictions of the paired
    clips (the distillation term falls while it trains) beside the labelled clips; ``c3t`` has no
    such term; the model is ``c3t``'s shape (the teacher's pooled head is not kept)."""
    torch.set_num_threads(1)
    arrays = tiny_arrays("depth")
    split = development_split(arrays.subjects, arrays.trials)
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)

    def fit_with(method_name: str):
        config = default_config(method_name, camera="depth", steps=60, batch_size=8, seed=1)
        return build_method(config).fit(data)

    paired_head = fit_with("c3t-paired-head")
    paired = [row["paired"] for row in paired_head.history_ if "paired" in row]
    assert len(paired) >= 10                                            # logged every ~5% of the steps
    assert np.mean(paired[-3:]) < 0.7 * np.mean(paired[:3]), paired
    plain = fit_with("c3t")  # reuses the camera model fitted above; its history must not carry their rows
    assert not any("paired" in row for row in plain.history_)

    def shapes(method):
        return {(module, k): v.shape for module, state in method.state_dict().items() for k, v in state.items()}

    assert shapes(plain) == shapes(paired_head)


def test_imu_augmentation_turns_both_triads_alike_and_scales_them() -> None:
    """``augment_imu``: one rotation per window shared by the accelerometer and the gyroscope (so
    each sample's norm changes only by the window's gain, and the angle between the two vectors is
    kept), the same draws for an accelerometer-only window, and nothing drawn or changed at 0."""
    from c3t_edge.methods.augment import augment_imu

    rng = np.random.default_rng(0)
    windows = rng.normal(size=(16, 20, 6)).astype(np.float32)
    channels = ("ax", "ay", "az", "gx", "gy", "gz")
    out = augment_imu(windows, channels, 1.0, np.random.default_rng(1))
    assert not np.allclose(out, windows)
    gain_acc = np.linalg.norm(out[..., :3], axis=-1) / np.linalg.norm(windows[..., :3], axis=-1)
    gain_gyro = np.linalg.norm(out[..., 3:], axis=-1) / np.linalg.norm(windows[..., 3:], axis=-1)
    np.testing.assert_allclose(gain_acc, gain_acc[:, :1].repeat(20, 1), rtol=1e-4)   # one gain per window
    np.testing.assert_allclose(gain_gyro, gain_acc, rtol=1e-4)
    assert 0.9 - 1e-4 <= gain_acc.min() and gain_acc.max() <= 1.1 + 1e-4

    def cosine(x):
        return (x[..., :3] * x[..., 3:]).sum(-1) / np.linalg.norm(x[..., :3], axis=-1) / np.linalg.norm(x[..., 3:], axis=-1)

    np.testing.assert_allclose(cosine(out), cosine(windows), atol=1e-4)              # the same rotation
    acc_only = augment_imu(windows[..., :3], channels[:3], 1.0, np.random.default_rng(1))
    np.testing.assert_allclose(acc_only, out[..., :3], rtol=1e-5, atol=1e-6)
    untouched = np.random.default_rng(2)
    assert augment_imu(windows, channels, 0.0, untouched) is windows
    assert untouched.integers(1 << 30) == np.random.default_rng(2).integers(1 << 30)  # nothing drawn


def test_camera_self_training_uses_the_paired_clips_from_half_way() -> None:
    """``camera_pseudo_weight`` > 0: from half of its steps on, the camera model also learns its own
    confident predictions of the unlabelled paired clips (logged as the share kept); 0 leaves the
    camera model exactly as before."""
    arrays = tiny_arrays("skeleton")
    plain, _ = fit("camera", arrays, "skeleton", {"camera_steps": 40})
    assert not any("pseudo_kept" in row for row in plain.history_)
    again, _ = fit("camera", arrays, "skeleton", {"camera_steps": 40, "camera_pseudo_weight": 0.0})
    for module, state in plain.state_dict().items():
        for key, tensor in state.items():
            torch.testing.assert_close(again.state_dict()[module][key], tensor, rtol=0, atol=0)
    pseudo, _ = fit("camera", arrays, "skeleton", {"camera_steps": 40, "camera_pseudo_weight": 1.0,
                                                   "camera_pseudo_threshold": 0.0})
    kept = [(row["step"], row["pseudo_kept"]) for row in pseudo.history_ if "pseudo_kept" in row]
    assert kept and min(step for step, _ in kept) >= 20 and all(share == 1.0 for _, share in kept)
