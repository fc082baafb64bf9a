"""Reader for the official UTD-MHAD layout, unchanged from the download.

``Inertial/aA_sS_tT_inertial.mat`` (key ``d_iner``, (T, 6): acc g, gyro deg/s, 50 Hz),
``Depth/aA_sS_tT_depth.mat`` (key ``d_depth``, (240, 320, F) uint16 mm),
``Skeleton/aA_sS_tT_skeleton.mat`` (key ``d_skel``, (20, 3, F) metres) and, when present,
``RGB/aA_sS_tT_color.avi``. Trials are named by their IMU file; a camera file that is missing is
reported by name and the trial is kept for the modalities it has. Registered as the ``utd-mhad``
reader: a folder holding any of those sub-folders is read with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from c3t_edge.data.actions import UTD_MHAD_ACTIONS, UTD_MHAD_IMU_RATE_HZ
from c3t_edge.data.trials import Dataset, DatasetReader, TrialRecord, register_reader
from c3t_edge.errors import DataError, MissingDependencyError

_NAME = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_(inertial|depth|skeleton|color)\.(mat|avi)$")
_FOLDERS = {"imu": ("Inertial", "inertial.mat"), "depth": ("Depth", "depth.mat"),
            "skeleton": ("Skeleton", "skeleton.mat"), "rgb": ("RGB", "color.avi")}
_MAT_KEYS = {"imu": "d_iner", "depth": "d_depth", "skeleton": "d_skel"}
#: Kinect v1 frame rate of the depth, skeleton and RGB streams (frames per second).
KINECT_FPS = 30.0


def scan(root: Path) -> Dataset:
    """List the trials under ``root`` (no array is loaded). Unparseable names are reported."""
    by_name: dict[str, dict[str, Path]] = {}
    problems: list[str] = []
    for modality, (folder, _suffix) in _FOLDERS.items():
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".mat", ".avi"):
                continue
            match = _NAME.match(path.name)
            if match is None:
                problems.append(f"{folder}/{path.name}: name is not aA_sS_tT_<modality>.<ext>")
                continue
            a, s, t = (int(match.group(i)) for i in (1, 2, 3))
            by_name.setdefault(f"a{a}_s{s}_t{t}", {})[modality] = path
    trials = []
    for name, files in sorted(by_name.items(), key=lambda kv: _sort_key(kv[0])):
        a, s, t = _sort_key(name)
        if not 1 <= a <= len(UTD_MHAD_ACTIONS):
            problems.append(f"{name}: action {a} is not one of UTD-MHAD's 27")
            continue
        if "imu" not in files:
            problems.append(f"{name}: no Inertial/{name}_inertial.mat")
        trials.append(TrialRecord(name=name, subject=s, trial=t, label=UTD_MHAD_ACTIONS[a - 1],
                                  files=files, imu_rate_hz=UTD_MHAD_IMU_RATE_HZ, camera_fps=KINECT_FPS))
    return Dataset(root=root, format="utd-mhad", labels=UTD_MHAD_ACTIONS, trials=trials, problems=problems)


def recognises(root: Path) -> bool:
    """True when ``root`` holds at least one of the official sub-folders (Inertial, Depth, ...)."""
    return any((root / folder).is_dir() for folder, _suffix in _FOLDERS.values())


def _sort_key(name: str) -> tuple[int, int, int]:
    a, s, t = re.match(r"a(\d+)_s(\d+)_t(\d+)", name).groups()  # type: ignore[union-attr]
    return int(a), int(s), int(t)


def read_modality(path: Path, modality: str) -> np.ndarray:
    """Read one file; shapes as in :data:`c3t_edge.data.trials.MODALITIES` (frames first)."""
    if modality == "rgb":
        return read_avi(path)
    from scipy.io import loadmat

    try:
        array = loadmat(str(path))[_MAT_KEYS[modality]]
    except Exception as exc:  # scipy raises several types for truncated or foreign files
        raise DataError(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    if modality == "imu":
        if array.ndim != 2 or array.shape[1] != 6:
            raise DataError(f"{path.name}: d_iner has shape {array.shape}, expected (T, 6)")
        return np.ascontiguousarray(array, dtype=np.float32)
    if modality == "depth":
        if array.ndim != 3:
            raise DataError(f"{path.name}: d_depth has shape {array.shape}, expected (H, W, F)")
        return np.ascontiguousarray(np.moveaxis(array, 2, 0))
    if array.ndim != 3 or array.shape[1] != 3:
        raise DataError(f"{path.name}: d_skel has shape {array.shape}, expected (J, 3, F)")
    return np.ascontiguousarray(np.transpose(array, (2, 0, 1)), dtype=np.float32)


def read_avi(path: Path) -> np.ndarray:
    """Frames of an RGB ``*_color.avi`` as (F, H, W, 3) uint8, RGB order (needs OpenCV)."""
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("opencv-python-headless", "rgb", "reading RGB video") from None
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    capture.release()
    if not frames:
        raise DataError(f"cannot read {path.name}: no video frames decoded")
    return np.stack(frames)


register_reader(DatasetReader(
    name="utd-mhad", recognises=recognises, scan=scan, read_modality=read_modality,
    expects="UTD-MHAD's Inertial/aA_sS_tT_inertial.mat files",
))
