"""The data layer: readers (official layout and folder format), preprocessing, cache, splits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat

from c3t_edge.data import PreprocessConfig, Standardizer, load_trial_arrays, open_dataset
from c3t_edge.data import preprocess as pp
from c3t_edge.data.actions import UTD_MHAD_ACTIONS
from c3t_edge.data.folder import write_trial
from c3t_edge.data.splits import all_subjects_split, development_split
from c3t_edge.errors import DataError
from c3t_edge.methods import MethodData


def _depth_clip(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A (60, 80, F) uint16 depth clip: a 'person' box at ~2.5 m that moves right over time."""
    depth = np.zeros((60, 80, frames), np.uint16)
    for f in range(frames):
        x = 5 + (55 * f) // max(frames - 1, 1)
        depth[10:50, x:x + 12, f] = 2500 + rng.integers(-50, 50, size=(40, 12))
    return depth


def _skeleton_clip(frames: int, rng: np.random.Generator) -> np.ndarray:
    skeleton = rng.normal(0, 0.2, size=(20, 3, frames))
    skeleton[3] = np.array([0.5, -0.2, 2.5])[:, None]          # hip centre
    skeleton[1] = np.array([0.5, 0.3, 2.5])[:, None]           # shoulder centre: torso 0.5 m
    return skeleton


def make_official_tree(root, actions=(1, 2), subjects=(1, 2, 3, 4), trials=(1, 2, 3, 4), seed=0):
    """Write a tiny UTD-MHAD tree in the official layout and names; returns its path."""
    rng = np.random.default_rng(seed)
    for folder in ("Inertial", "Depth", "Skeleton"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for a in actions:
        for s in subjects:
            for t in trials:
                name = f"a{a}_s{s}_t{t}"
                n_imu = int(rng.integers(120, 240))
                n_frames = int(n_imu / rng.uniform(2.4, 4.5))
                imu = np.zeros((n_imu, 6))
                imu[:, 0] = -1.0 + 0.01 * rng.normal(size=n_imu)          # gravity on -x, in g
                imu[:, 3 + a % 3] = 100 * np.sin(np.linspace(0, 2 * np.pi * a, n_imu))  # deg/s
                savemat(root / "Inertial" / f"{name}_inertial.mat", {"d_iner": imu})
                savemat(root / "Depth" / f"{name}_depth.mat", {"d_depth": _depth_clip(n_frames, rng)})
                savemat(root / "Skeleton" / f"{name}_skeleton.mat", {"d_skel": _skeleton_clip(n_frames, rng)})
    return root


# --------------------------------------------------------------------------------------- readers

def test_official_layout_is_parsed(tmp_path):
    root = make_official_tree(tmp_path / "utd")
    dataset = open_dataset(root)
    assert dataset.format == "utd-mhad"
    assert len(dataset.trials) == 2 * 4 * 4
    assert dataset.labels == UTD_MHAD_ACTIONS
    record = next(t for t in dataset.trials if t.name == "a2_s3_t4")
    assert (record.subject, record.trial, record.label) == (3, 4, "swipe right")
    assert set(record.files) == {"imu", "depth", "skeleton"}
    assert dataset.problems == []


def test_missing_and_corrupt_trials_are_named_and_the_rest_kept(tmp_path):
    root = make_official_tree(tmp_path / "utd")
    (root / "Depth" / "a1_s2_t3_depth.mat").unlink()
    (root / "Depth" / "a2_s1_t1_depth.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    (root / "Inertial" / "a1_s4_t2_inertial.mat").write_bytes(b"\x00" * 40)
    (root / "Inertial" / "notes.mat").write_bytes(b"")
    dataset = open_dataset(root)
    arrays = load_trial_arrays(dataset, camera="depth", cache_dir=None)
    text = "\n".join(arrays.problems)
    assert "a1_s2_t3: no depth file" in text
    assert "a2_s1_t1" in text and "a1_s4_t2" in text and "notes.mat" in text
    assert len(arrays) == 32 - 3
    assert {"a1_s2_t3", "a2_s1_t1", "a1_s4_t2"}.isdisjoint(arrays.names)


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no trials found"):
        open_dataset(tmp_path / "empty")
    root = tmp_path / "allbad"
    (root / "Inertial").mkdir(parents=True)
    (root / "Inertial" / "a1_s1_t1_inertial.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable trial"):
        load_trial_arrays(open_dataset(root), camera=None, cache_dir=None)


@pytest.mark.parametrize("setup, expected", [
    ("missing", "does not exist"), ("empty", "no trials found"), ("corrupt", "no readable trial"),
])
def test_cli_bad_data_is_one_line_and_nonzero(tmp_path, setup, expected):
    target = tmp_path / "data"
    if setup != "missing":
        target.mkdir()
    if setup == "corrupt":
        (target / "Inertial").mkdir()
        (target / "Inertial" / "a1_s1_t1_inertial.mat").write_bytes(b"not a mat file")
    result = subprocess.run([sys.executable, "-m", "c3t_edge", "train", "--method", "supervised", "--data",
                             str(target), "--out", str(tmp_path / "run"), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr


def test_folder_format_with_its_own_rates(tmp_path):
    root = tmp_path / "mine"
    rng = np.random.default_rng(1)
    rows = ["file,subject,trial,label,imu_rate_hz,camera_fps"]
    for subject in (1, 2):
        for trial in (1, 2, 3, 4):
            for label in ("wave", "squat"):
                name = f"trials/{label}_{subject}_{trial}.npz"
                imu = rng.normal(size=(400, 6)).astype(np.float32)           # 4 s at 100 Hz
                write_trial(root / name, imu=imu, skeleton=_skeleton_clip(60, rng).transpose(2, 0, 1))
                rows.append(f"{name},{subject},{trial},{label},100,15")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "labels.txt").write_text("wave\nsquat\n")
    dataset = open_dataset(root)
    assert dataset.format == "folder" and dataset.labels == ("wave", "squat")
    arrays = load_trial_arrays(dataset, camera="skeleton", cache_dir=None)
    assert len(arrays) == 16
    assert all(imu.shape == (200, 6) for imu in arrays.imu)        # resampled to 50 Hz
    imu, cam = arrays.windows(np.arange(4))
    assert imu.shape == (4, 180, 6) and cam.shape == (4, 12, 60)


def test_folder_format_reports_bad_rows(tmp_path):
    root = tmp_path / "mine"
    write_trial(root / "t.npz", imu=np.zeros((100, 6), np.float32))
    (root / "manifest.csv").write_text("file,subject,trial,label,imu_rate_hz,camera_fps\n"
                                       "t.npz,1,1,wave,50,\nmissing.npz,1,2,wave,50,\nt.npz,x,1,wave,50,\n")
    dataset = open_dataset(root)
    assert len(dataset.trials) == 1
    assert any("missing.npz does not exist" in p for p in dataset.problems)
    assert any("line 4" in p for p in dataset.problems)
    (root / "manifest.csv").write_text("file,subject\n")
    with pytest.raises(DataError, match="missing column"):
        open_dataset(root)


@pytest.fixture
def subject_npy_reader():
    """Imports tests/_subject_npy_reader.py (which registers its reader), unregisters it afterwards."""
    import importlib

    from c3t_edge.data.trials import READERS

    module = importlib.import_module("_subject_npy_reader")
    yield module
    READERS.pop(module.NAME, None)
    sys.modules.pop("_subject_npy_reader", None)


def test_a_registered_extra_reader_is_used_by_open_dataset(utd_mhad_dir, tmp_path, subject_npy_reader):
    """Real UTD-MHAD trials re-packed into another layout read back, through open_dataset and the same
    preprocessing, exactly as the official reader gives them."""
    from c3t_edge.data import utd_mhad

    picked = [(a, s, t) for a in (1, 7) for s in (2, 5) for t in (1, 3)]
    official, mine = tmp_path / "official", tmp_path / "mine"
    (mine / "SUBJECT_NPY").parent.mkdir()
    (mine / "SUBJECT_NPY").write_text("")
    labels = (UTD_MHAD_ACTIONS[0], UTD_MHAD_ACTIONS[6])
    (mine / "classes.txt").write_text("\n".join(labels) + "\n")
    (mine / "rates.txt").write_text("50 30\n")
    for a, s, t in picked:
        for folder, suffix, modality in (("Inertial", "inertial", "imu"), ("Depth", "depth", "depth")):
            source = utd_mhad_dir / folder / f"a{a}_s{s}_t{t}_{suffix}.mat"
            (official / folder).mkdir(parents=True, exist_ok=True)
            (official / folder / source.name).symlink_to(source)
            (mine / f"s{s}").mkdir(exist_ok=True)
            np.save(mine / f"s{s}" / f"{int(a == 7)}_t{t}.{modality}.npy", utd_mhad.read_modality(source, modality))
    dataset = open_dataset(mine)
    assert dataset.format == subject_npy_reader.NAME and dataset.labels == labels and dataset.problems == []
    assert len(dataset.trials) == len(picked)
    assert open_dataset(mine, format="subject-npy").trials == dataset.trials
    got = load_trial_arrays(dataset, camera="depth", cache_dir=None)
    want = load_trial_arrays(open_dataset(official), camera="depth", cache_dir=None)
    got_order = np.lexsort((got.trials, got.subjects, [got.class_names[i] for i in got.labels]))
    want_order = np.lexsort((want.trials, want.subjects, [want.class_names[i] for i in want.labels]))
    assert len(got) == len(want) == len(picked)
    for g, w in zip(got_order, want_order, strict=True):
        assert (got.subjects[g], got.trials[g]) == (want.subjects[w], want.trials[w])
        assert got.class_names[got.labels[g]] == want.class_names[want.labels[w]]
        np.testing.assert_array_equal(got.imu[g], want.imu[w])
        np.testing.assert_array_equal(got.camera[g], want.camera[w])
    with pytest.raises(DataError, match="unknown dataset format 'nope': known formats are folder, utd-mhad, "
                                        "subject-npy"):
        open_dataset(mine, format="nope")
    (mine / "SUBJECT_NPY").unlink()  # no reader recognises the folder now: the error names every format
    with pytest.raises(DataError, match="expected a manifest.csv or UTD-MHAD's .* or a SUBJECT_NPY marker file"):
        open_dataset(mine)


# --------------------------------------------------------------------------------- preprocessing

def test_clip_fit_centre_crops_and_edge_pads():
    clip = np.arange(10, dtype=np.float32)[:, None].repeat(6, 1)
    assert pp.fit_clip(clip, 4)[:, 0].tolist() == [3, 4, 5, 6]
    padded = pp.fit_clip(clip, 14)[:, 0]
    assert padded.tolist() == [0, 0] + list(range(10)) + [9, 9]


def test_common_time_base_pairs_the_same_instants():
    """IMU and camera encode their own time as a fraction of the trial; paired steps must agree."""
    config = PreprocessConfig()
    for n_imu, n_frames in ((250, 60), (150, 62), (180, 40)):
        imu_time = (np.arange(n_imu) + 0.5) / n_imu
        frame_time = (np.arange(n_frames) + 0.5) / n_frames
        start = pp.centre_start(n_imu, config.window_samples)
        positions = pp.camera_positions(n_imu, n_frames, start, config)
        camera_time = pp.sample_frames(frame_time[:, None], positions)[:, 0]
        step_centres = np.clip(start + (np.arange(12) + 0.5) * 15, 0, n_imu - 1)
        expected = np.interp(step_centres, np.arange(n_imu), imu_time)
        inside = (step_centres > 0) & (step_centres < n_imu - 1)
        assert np.allclose(camera_time[inside], expected[inside], atol=1.0 / n_frames)


def test_depth_is_person_centred(tmp_path):
    rng = np.random.default_rng(0)
    depth = np.moveaxis(_depth_clip(20, rng), 2, 0)
    out = pp.preprocess_depth(depth, size=32, margin=0.1)
    assert out.shape == (20, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0 and 0.9 < out.max() < 1.2           # person ~1, background 0
    mass = out.sum(axis=(1, 2))
    columns = (out.sum(axis=1) * np.arange(32)).sum(1) / mass
    assert columns[0] < 12 and columns[-1] > 20              # the person crosses the crop
    assert np.all(out[:, :2, :].sum((1, 2)) < out[:, 10:20, :].sum((1, 2)))  # margin above the head


def test_skeleton_is_body_centred_and_scaled():
    rng = np.random.default_rng(0)
    skeleton = np.transpose(_skeleton_clip(30, rng), (2, 0, 1))
    out = pp.preprocess_skeleton(skeleton).reshape(30, 20, 3)
    assert np.allclose(out[:, 3], 0)                                     # hip centre at the origin
    assert np.allclose(np.linalg.norm(out[:, 1], axis=-1).mean(), 1.0)   # one torso length


def test_standardizer_is_fitted_on_training_trials_only(tmp_path):
    arrays = load_trial_arrays(open_dataset(make_official_tree(tmp_path / "utd")), camera="depth", cache_dir=None)
    split = development_split(arrays.subjects, arrays.trials)
    arrays.imu = [imu + (100.0 if s in (2, 4) else 0.0) for imu, s in zip(arrays.imu, arrays.subjects, strict=True)]
    data = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=False)
    paired_imu, _ = arrays.windows(split.paired, with_camera=False)     # UMA: the labelled set's IMU unused
    assert np.allclose(data.standardizer.mean, Standardizer.fit(paired_imu).mean)
    assert np.all(np.abs(data.standardizer.mean) < 50)                   # test subjects' offset unseen
    assert (data.labels(split.paired) == -1).all() and (data.labels(split.labelled_camera) >= 0).all()
    rng = np.random.default_rng(0)
    imu, cam, _ = data.batch(split.labelled_camera[:4], rng, jitter_s=0.0)
    assert np.isnan(imu.numpy()).all() and np.isfinite(cam.numpy()).all()
    imu, _, _ = data.batch(split.paired[:4], rng, jitter_s=0.0)
    assert np.isfinite(imu.numpy()).all()
    supervised = MethodData(arrays, split.labelled_camera, split.paired, reveal_paired_labels=True)
    train_imu, _ = arrays.windows(split.train, with_camera=False)
    assert np.allclose(supervised.standardizer.mean, Standardizer.fit(train_imu).mean)


def test_cache_is_keyed_by_configuration(tmp_path, monkeypatch):
    dataset = open_dataset(make_official_tree(tmp_path / "utd", subjects=(1,), trials=(1, 2)))
    cache = tmp_path / "cache"
    first = load_trial_arrays(dataset, camera="depth", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2

    def fail(*_args):
        raise AssertionError("read from disk although cached")

    monkeypatch.setattr(type(dataset), "read", fail)
    again = load_trial_arrays(dataset, camera="depth", cache_dir=cache)
    assert all(np.array_equal(a, b) for a, b in zip(first.camera, again.camera, strict=True))
    with pytest.raises(AssertionError, match="read from disk"):
        load_trial_arrays(dataset, PreprocessConfig(depth_size=16), camera="depth", cache_dir=cache)


# ---------------------------------------------------------------------------------------- splits

def _assert_no_leak(split, subjects, trials):
    train_subjects = set(subjects[split.train])
    assert train_subjects.isdisjoint(subjects[split.test])
    assert set(split.labelled_camera).isdisjoint(split.paired)
    assert set(split.train).isdisjoint(split.test)
    assert set(trials[split.labelled_camera]) <= {1, 2} and set(trials[split.paired]) <= {3, 4}


def test_development_split_never_leaks(utd_mhad_dir):
    arrays = load_trial_arrays(open_dataset(utd_mhad_dir), camera=None)
    split = development_split(arrays.subjects, arrays.trials)
    _assert_no_leak(split, arrays.subjects, arrays.trials)
    assert set(arrays.subjects[split.train]) == {1, 3, 5} and set(arrays.subjects[split.test]) == {2, 4, 6}
    names = np.array(arrays.names)
    assert len(set(names[split.train]) | set(names[split.test])) == len(arrays)   # every trial has one role
    shipped = all_subjects_split(arrays.subjects, arrays.trials)
    assert len(shipped.test) == 0 and set(arrays.subjects[shipped.train]) == {1, 2, 3, 4, 5, 6}


def test_real_utd_mhad_shapes_and_units(utd_mhad_dir):
    dataset = open_dataset(utd_mhad_dir)
    assert len(dataset.trials) == 646 and dataset.problems == []
    arrays = load_trial_arrays(dataset, camera="skeleton")
    imu, skeleton = arrays.windows(np.arange(0, 646, 20))
    assert imu.shape == (33, 180, 6) and skeleton.shape == (33, 12, 60)
    acc_norm = np.linalg.norm(imu[:, :, :3], axis=-1)
    assert 0.8 < np.median(acc_norm) < 1.2                         # gravity: accelerometer in g
    assert np.abs(imu[:, :, 3:]).max() > 50                        # gyroscope in deg/s, not rad/s
    record = dataset.trials[0]
    depth = dataset.read(record, "depth")
    assert depth.ndim == 3 and depth.shape[1:] == (240, 320) and depth.dtype == np.uint16
