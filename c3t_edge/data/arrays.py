"""Preprocessed whole trials in memory (cached on disk) and the windows cut from them.

:func:`load_trial_arrays` reads every trial of a dataset once, preprocesses it
(:mod:`c3t_edge.data.preprocess`) and caches the result keyed by the dataset's files and the
preprocessing configuration. :class:`TrialArrays` then cuts paired (IMU, camera) windows on the
common time base, optionally shifted, dilated, jittered or misaligned.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from c3t_edge.data import preprocess as pp
from c3t_edge.data.trials import Dataset
from c3t_edge.errors import DataError


@dataclass
class TrialArrays:
    """Whole preprocessed trials of one dataset.

    ``imu[i]`` is (T_i, C) float32 at ``config.imu_rate_hz``, columns ``channels`` (ax..gz in g and
    deg/s, or a subset: :meth:`with_channels`); ``camera[i]`` is the camera clip (F_i, ...) (depth
    (F, s, s), skeleton (F, J*3), rgb (F, 3, s, s)) or absent when ``camera_modality`` is None.
    ``labels`` are class indices into ``class_names``.
    """

    config: pp.PreprocessConfig
    class_names: tuple[str, ...]
    names: list[str]
    subjects: np.ndarray
    trials: np.ndarray
    labels: np.ndarray
    imu: list[np.ndarray]
    camera_modality: str | None = None
    camera: list[np.ndarray] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    channels: tuple[str, ...] = pp.IMU_CHANNEL_SETS["all"]  #: names of the IMU columns, in order

    def __len__(self) -> int:
        return len(self.names)

    def with_imu_hidden(self, index: Sequence[int] | np.ndarray) -> TrialArrays:
        """A view of these trials in which the IMU of trials ``index`` is all NaN (same shapes; camera,
        labels and the other trials' IMU shared, not copied).

        This is how the labelled camera set's IMU is kept from the label-free methods: whatever path a
        method takes to an IMU window (batches, frozen-teacher tables, its own ``windows`` calls), a
        hidden trial gives NaN, and a NaN reaching a loss stops training. The view is memoised per
        ``index``, so every method fitted on the same split sees the same object (camera models are
        shared by object identity).
        """
        hidden = np.unique(np.asarray(index, dtype=np.int64))
        key = hidden.tobytes()
        views = self.__dict__.setdefault("_hidden_views", {})
        if key not in views:
            imu = list(self.imu)
            for i in hidden:  # a read-only view of one NaN: no memory per hidden trial
                imu[i] = np.broadcast_to(np.array(np.nan, dtype=self.imu[i].dtype), self.imu[i].shape)
            views[key] = TrialArrays(self.config, self.class_names, self.names, self.subjects, self.trials,
                                     self.labels, imu, self.camera_modality, self.camera, self.problems,
                                     self.channels)
        return views[key]

    def with_channels(self, channels: tuple[str, ...]) -> TrialArrays:
        """These trials with IMU columns ``channels`` only (names of the current ``channels``, e.g.
        ``("ax", "ay", "az")``); the same object when nothing changes. Every window cut from the
        result has ``len(channels)`` channels."""
        channels = tuple(channels)
        if channels == self.channels:
            return self
        missing = [name for name in channels if name not in self.channels]
        if missing:
            raise ValueError(f"IMU channels {','.join(missing)} are not in these trials ({','.join(self.channels)})")
        columns = [self.channels.index(name) for name in channels]
        imu = [np.ascontiguousarray(x[:, columns]) for x in self.imu]
        return TrialArrays(self.config, self.class_names, self.names, self.subjects, self.trials, self.labels,
                           imu, self.camera_modality, self.camera, self.problems, channels)

    @property
    def camera_shape(self) -> tuple[int, ...]:
        """Shape of one camera step, e.g. (32, 32) for depth."""
        return tuple(self.camera[0].shape[1:])

    def windows(
        self,
        index: Sequence[int] | np.ndarray,
        *,
        shift_samples: int | Sequence[int] = 0,
        dilation: float = 1.0,
        camera_offset_samples: int | Sequence[int] = 0,
        with_camera: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Paired windows for trials ``index``: IMU (n, W, C) raw units (C = ``len(channels)``), camera
        (n, S, ...).

        The IMU window is the centred window (``clip_fit``) moved by ``shift_samples`` (positive = later
        in the trial) after time-stretching the IMU by ``dilation``; the camera is taken at the IMU
        window's steps moved by ``camera_offset_samples`` (misalignment of the pair).
        """
        cfg = self.config
        index = np.asarray(index, dtype=np.int64)
        shifts = np.broadcast_to(np.asarray(shift_samples), index.shape)
        offsets = np.broadcast_to(np.asarray(camera_offset_samples), index.shape)
        imu_out = np.empty((len(index), cfg.window_samples, len(self.channels)), np.float32)
        cam_out = None
        if with_camera and self.camera_modality is not None:
            cam_out = np.empty((len(index), cfg.latent_steps) + self.camera_shape, np.float32)
        for row, (i, shift, offset) in enumerate(zip(index, shifts, offsets, strict=True)):
            imu = self.imu[i]
            n_imu = imu.shape[0]
            start = pp.centre_start(n_imu, cfg.window_samples) + int(shift)
            if dilation != 1.0:
                stretched = pp.dilate(imu, dilation)
                d_start = pp.centre_start(stretched.shape[0], cfg.window_samples) + int(shift)
                imu_out[row] = pp.take_window(stretched, d_start, cfg.window_samples)
            else:
                imu_out[row] = pp.take_window(imu, start, cfg.window_samples)
            if cam_out is not None:
                frames = self.camera[i]
                positions = pp.camera_positions(n_imu, frames.shape[0], start + int(offset), cfg)
                cam_out[row] = pp.sample_frames(frames, positions)
        return imu_out, cam_out


def _dataset_fingerprint(dataset: Dataset, modality: str) -> str:
    digest = hashlib.sha256(str(dataset.root.resolve()).encode())
    for record in dataset.trials:
        path = record.files.get(modality)
        if path is not None:
            stat = path.stat()
            digest.update(f"{record.name}|{record.label}|{record.subject}|{record.trial}|"
                          f"{record.imu_rate_hz}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$C3T_CACHE``, else ``~/.cache/c3t-edge``."""
    env = os.environ.get("C3T_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "c3t-edge"


def _preprocess(dataset: Dataset, record, modality: str, config: pp.PreprocessConfig) -> np.ndarray:
    raw = dataset.read(record, modality)
    if modality == "imu":
        return pp.resample_rate(raw, record.imu_rate_hz, config.imu_rate_hz)
    if modality == "depth":
        return pp.preprocess_depth(raw, config.depth_size, config.depth_margin)
    if modality == "skeleton":
        return pp.preprocess_skeleton(raw)
    if modality == "rgb":
        return pp.preprocess_rgb(raw, config.depth_size)
    raise ValueError(f"unknown modality {modality!r}")


#: Preprocessed trials are written to shard files of about this many bytes each, so preprocessing holds at
#: most one shard in memory, and training memory-maps them (pages are read on demand).
SHARD_BYTES = 64 << 20


def _load_modality(dataset: Dataset, modality: str, config: pp.PreprocessConfig, cache_dir: Path | None,
                   progress: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    """name -> preprocessed array for every trial that has ``modality``; problems by trial name.

    With a cache the arrays are read-only views of memory-mapped shard files (:func:`_write_shards`),
    so a dataset larger than memory loads; the cache key is the preprocessing configuration and the
    dataset's files, as before. Without one they are in memory.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"{modality}-{config.key()}-{_dataset_fingerprint(dataset, modality)}.npz"
        if cache_file.is_file():
            return _read_cache(cache_file)
    records = [r for r in dataset.trials if r.has(modality)]
    bar = _progress(records, f"preprocessing {modality}", progress)
    if cache_file is not None:
        return _write_shards(bar, dataset, modality, config, cache_file)
    out: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for record in bar:
        try:
            out[record.name] = _preprocess(dataset, record, modality, config)
        except DataError as exc:
            problems.append(f"{record.name}: {exc}")
    return out, problems


def _read_cache(cache_file: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """A cache entry: the shard index (names, shard, start, length per trial; problems) and its
    memory-mapped shards - or a single-file entry of an earlier version (read into memory)."""
    with np.load(cache_file, allow_pickle=False) as cached:
        names, lengths, problems = cached["names"].tolist(), cached["lengths"], cached["problems"].tolist()
        if "data" in cached.files:  # single-file cache of an earlier version
            data = cached["data"]
            parts = np.split(data, np.cumsum(lengths)[:-1]) if len(names) else []
            return dict(zip(names, parts, strict=True)), problems
        shard_of, starts, folder = cached["shards"], cached["starts"], str(cached["folder"])
    # plain ndarray views of the maps: a trial costs one small view object, not a memmap's attributes
    maps = [_open_shard(cache_file.parent / folder / f"{i:05d}.npy")
            for i in range(int(shard_of.max()) + 1 if len(shard_of) else 0)]
    out = {name: maps[s][a:a + n]
           for name, s, a, n in zip(names, shard_of.tolist(), starts.tolist(), lengths.tolist(), strict=True)}
    return out, problems


def _save_shard(path: Path, arrays: list[np.ndarray]) -> None:
    """``arrays`` concatenated along their first axis into the ``.npy`` file ``path``, written piece by
    piece (no concatenated copy in memory); :func:`numpy.load` reads it as one array."""
    first = arrays[0]
    shape = (sum(len(a) for a in arrays),) + first.shape[1:]
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(first.dtype),
                                                      "fortran_order": False, "shape": shape})
        for array in arrays:
            np.ascontiguousarray(array, dtype=first.dtype).tofile(handle)


def _open_shard(path: Path) -> np.ndarray:
    """A read-only memory map of shard ``path`` as a plain ndarray. Training reads it at random, so the
    kernel is told not to read ahead: only the pages of the windows used become resident."""
    mapped = np.load(path, mmap_mode="r")
    advise = getattr(getattr(mapped, "_mmap", None), "madvise", None)
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        advise(mmap.MADV_RANDOM)
    return np.asarray(mapped)


def _write_shards(records, dataset: Dataset, modality: str, config: pp.PreprocessConfig,
                  cache_file: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Preprocess ``records`` into shard files ``<cache entry>.<pid>-<random>.shards/00000.npy``... of about
    :data:`SHARD_BYTES` (trials concatenated along their first axis), then write the index
    ``cache_file`` last, atomically; returns the memory-mapped result (:func:`_read_cache`).
    A folder name of this process's own, so concurrent runs never write into each other's shards."""
    folder = f"{cache_file.stem}.{os.getpid()}-{os.urandom(4).hex()}.shards"
    shard_dir = cache_file.parent / folder
    shard_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    problems: list[str] = []
    shard_of: list[int] = []
    starts: list[int] = []
    lengths: list[int] = []
    buffer: list[np.ndarray] = []
    shard, offset, buffered = 0, 0, 0
    for record in records:
        try:
            array = _preprocess(dataset, record, modality, config)
        except DataError as exc:
            problems.append(f"{record.name}: {exc}")
            continue
        names.append(record.name)
        shard_of.append(shard)
        starts.append(offset)
        lengths.append(len(array))
        buffer.append(array)
        offset, buffered = offset + len(array), buffered + array.nbytes
        if buffered >= SHARD_BYTES:
            _save_shard(shard_dir / f"{shard:05d}.npy", buffer)
            buffer, shard, offset, buffered = [], shard + 1, 0, 0
    if buffer:
        _save_shard(shard_dir / f"{shard:05d}.npy", buffer)
    if not names:
        shard_dir.rmdir()
        return {}, problems
    tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, names=np.array(names), shards=np.array(shard_of), starts=np.array(starts),
             lengths=np.array(lengths), problems=np.array(problems, dtype=str), folder=np.array(folder))
    _publish(tmp, cache_file, shard_dir)
    return _read_cache(cache_file)


def _publish(tmp: Path, cache_file: Path, shard_dir: Path) -> None:
    """Make index ``tmp`` the cache entry ``cache_file`` unless another process was first (then its
    entry stays and these shards go): a hard link fails when the name exists. Where hard links are not
    supported the index is renamed over (the last one wins, earlier shards stay behind)."""
    try:
        os.link(tmp, cache_file)
    except FileExistsError:
        shutil.rmtree(shard_dir, ignore_errors=True)
    except OSError:
        os.replace(tmp, cache_file)
        return
    tmp.unlink()


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="trial", file=sys.stderr, leave=False)


def load_trial_arrays(
    dataset: Dataset,
    config: pp.PreprocessConfig | None = None,
    camera: str | None = "depth",
    *,
    cache_dir: Path | None | bool = True,
    progress: bool = False,
) -> TrialArrays:
    """Preprocess every trial that has an IMU file (and a ``camera`` file, unless ``camera`` is None).

    Trials that are missing a file or cannot be read are left out and named in ``problems``.
    ``cache_dir=True`` uses :func:`default_cache_dir`; ``False``/``None`` disables the cache.
    Raises :class:`DataError` when no trial is left.
    """
    config = config or pp.PreprocessConfig()
    if cache_dir is True:
        cache_dir = default_cache_dir()
    elif cache_dir is False:
        cache_dir = None
    imu, problems = _load_modality(dataset, "imu", config, cache_dir, progress)
    problems = list(dataset.problems) + problems
    cam: dict[str, np.ndarray] = {}
    if camera is not None:
        cam, cam_problems = _load_modality(dataset, camera, config, cache_dir, progress)
        problems += cam_problems
        for record in dataset.trials:
            if record.name in imu and not record.has(camera):
                problems.append(f"{record.name}: no {camera} file")
    keep = [r for r in dataset.trials if r.name in imu and (camera is None or r.name in cam)]
    if not keep:
        detail = f" ({problems[0]})" if problems else ""
        raise DataError(f"no readable trial in {dataset.root}{detail}")
    return TrialArrays(
        config=config,
        class_names=dataset.labels,
        names=[r.name for r in keep],
        subjects=np.array([r.subject for r in keep]),
        trials=np.array([r.trial for r in keep]),
        labels=np.array([dataset.label_index(r.label) for r in keep]),
        imu=[imu[r.name] for r in keep],
        camera_modality=camera,
        camera=[cam[r.name] for r in keep] if camera is not None else [],
        problems=problems,
    )
