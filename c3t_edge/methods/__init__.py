"""UMA methods behind one interface (:class:`~c3t_edge.methods.base.Method`)."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json

from c3t_edge.errors import C3TEdgeError
from c3t_edge.methods.base import Method, MethodData, TrainConfig
from c3t_edge.methods.c3t import C3TPairedHead, CrossModalTransferThroughTime
from c3t_edge.methods.ca import ContrastiveAlignment
from c3t_edge.methods.camera import CameraOnly
from c3t_edge.methods.distill_align import DistillAlign
from c3t_edge.methods.ensemble_distill import EnsembleDistill, EnsembleDistillAlignWarp
from c3t_edge.methods.st import StudentTeacher
from c3t_edge.methods.supervised import Supervised
from c3t_edge.methods.time_warp import DistillAlignWarp

#: Method name -> class (built-ins here; others through :func:`register_method`).
METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (Supervised, CameraOnly, StudentTeacher, ContrastiveAlignment,
                              CrossModalTransferThroughTime, C3TPairedHead, DistillAlign, DistillAlignWarp,
                              EnsembleDistill, EnsembleDistillAlignWarp)
}


#: The camera model every method of a seed shares (see the README's results section): depth clips
#: augmented (random scale, shift, rotation, gain), a motion channel (frame differences), a stride-2
#: stem, and a pooled head over L2-normalised clip vectors. Skeletons are not augmented (not measured).
CAMERA_DEFAULTS: dict = {"camera_augment": 1.0, "camera_augment_skeleton": 0.0, "camera_motion": True,
                         "camera_stem_stride": 2, "head_normalize": True}

_C3T_DEFAULTS: dict = {"steps": 600, "temperature": 0.2, "head": "attention",
                       "extra": {**CAMERA_DEFAULTS, "schedule": "staged", "negatives": "all",
                                 "positive_window": 1.0, "head_noise": 1.0}}

#: Per-method defaults, chosen on the development protocol (see the README's results section). Every
#: method trains ``steps`` optimiser steps per stage; ``camera``, ``st``, ``ca`` and ``c3t`` train the
#: same camera model (one per seed, reused within a process), then their own IMU side.
DEFAULTS: dict[str, dict] = {
    "supervised": {"steps": 600},
    "camera": {"steps": 600, "extra": dict(CAMERA_DEFAULTS)},
    "st": {"steps": 600, "temperature": 1.0, "extra": dict(CAMERA_DEFAULTS)},
    "ca": {"steps": 600, "temperature": 0.5, "extra": {**CAMERA_DEFAULTS, "schedule": "staged"}},
    "c3t": _C3T_DEFAULTS,
    "c3t-paired-head": {**_C3T_DEFAULTS, "extra": {**_C3T_DEFAULTS["extra"], "head_paired_weight": 1.0}},
    "distill-align": {"steps": 600, "temperature": 1.0,
                      "extra": {**CAMERA_DEFAULTS, "align_weight": 1.0, "align_temperature": 0.2,
                                "head_from_teacher": True}},
    "distill-align-warp": {"steps": 600, "temperature": 1.0,
                           "extra": {**CAMERA_DEFAULTS, "align_weight": 1.0, "align_temperature": 0.2,
                                     "head_from_teacher": True, "warp_shift_s": 1.0, "warp_dilation": 0.2,
                                     "warp_weight": 1.0}},
    "ensemble-distill": {"steps": 600, "temperature": 1.0, "extra": {**CAMERA_DEFAULTS, "members": "st,c3t"}},
    "ensemble-distill-align-warp": {"steps": 600, "temperature": 1.0,
                                    "extra": {**CAMERA_DEFAULTS, "members": "st,c3t", "align_weight": 1.0,
                                              "align_temperature": 0.2, "head_from_teacher": True,
                                              "warp_shift_s": 1.0, "warp_dilation": 0.2, "warp_weight": 1.0}},
}

#: The label-free tuning budget: for every method that reads no IMU label, the same number of
#: candidate configurations (``--set`` settings applied to its defaults; the first is the defaults),
#: each trained with the same ``steps`` per stage. ``c3t-edge evaluate`` picks one per method on
#: leave-one-subject-out folds inside the training subjects, scored by agreement with the camera
#: teacher (:mod:`c3t_edge.selection`); ``supervised`` and ``camera`` are references and are not tuned.
SEARCH_SPACES: dict[str, list[tuple[str, ...]]] = {
    "st": [(), ("imu_augment=1.0",), ("temperature=2.0", "imu_augment=1.0"),
           ("student_head=attention", "imu_augment=1.0")],
    "ca": [(), ("temperature=0.2",), ("temperature=0.1",), ("temperature=1.0",)],
    "c3t": [(), ("temperature=0.1",), ("head_noise=0.0",), ("tolerance=1",)],
    "c3t-paired-head": [(), ("temperature=0.1",), ("head_noise=0.0",), ("head_paired_weight=0.3",)],
    "distill-align": [(), ("align_weight=0.5", "imu_augment=1.0"), ("align_weight=2.0", "imu_augment=1.0"),
                      ("head_from_teacher=false", "imu_augment=1.0")],
    "distill-align-warp": [(), ("align_weight=0.5", "imu_augment=1.0"), ("head_from_teacher=false", "imu_augment=1.0"),
                           ("warp_shift_s=0.5", "imu_augment=1.0")],
    "ensemble-distill": [(), ("members=st,c3t,camera", "imu_augment=1.0"), ("temperature=2.0", "imu_augment=1.0"),
                         ("student_head=attention", "imu_augment=1.0")],
    "ensemble-distill-align-warp": [(), ("temperature=2.0", "imu_augment=1.0"),
                                    ("head_from_teacher=false", "imu_augment=1.0"),
                                    ("align_weight=0.5", "imu_augment=1.0")],
}


def default_config(method: str, **overrides) -> TrainConfig:
    """The configuration ``c3t-edge train --method METHOD`` uses, with ``overrides`` applied."""
    if method not in METHODS:
        raise C3TEdgeError(f"method {method!r} is not available (yet): choose from {', '.join(METHODS)}")
    return TrainConfig(method=method, **copy.deepcopy({**DEFAULTS.get(method, {}), **overrides}))


#: Every method option a method reads from ``TrainConfig.extra`` (documented in each method's class).
METHOD_OPTIONS = frozenset({
    # camera model (camera.py, base.camera_encoder_options)
    "camera_augment", "camera_augment_depth", "camera_augment_skeleton", "camera_augment_rgb",
    "camera_steps", "camera_width", "camera_dropout", "camera_motion", "camera_frame_dropout",
    "camera_hidden", "camera_stem_stride", "head_normalize", "camera_pseudo_weight", "camera_pseudo_threshold",
    # the students of st, distill-align(-warp), ensemble-distill(-align-warp) (augment.augment_imu)
    "imu_augment",
    # st
    "student_steps", "student_head",
    # ca (and c3t)
    "schedule", "align_weight", "align_steps", "paired_augment",
    # c3t
    "negatives", "positive_window", "tolerance", "head_position", "head_steps", "head_noise", "camera_model",
    "head_paired_weight",
    # distill-align
    "align_temperature", "head_from_teacher",
    # distill-align-warp
    "warp_shift_s", "warp_dilation", "warp_weight",
    # ensemble-distill, ensemble-distill-align-warp
    "members",
})

#: Method options of methods registered with :func:`register_method` (``--set`` accepts them too).
_REGISTERED_OPTIONS: set[str] = set()


def register_method(cls: type[Method], *, defaults: dict | None = None, options: tuple[str, ...] = (),
                    search_space: list[tuple[str, ...]] | None = None) -> type[Method]:
    """Make method ``cls`` (a :class:`Method` subclass with a ``name``) available to ``train``,
    ``evaluate``, ``export`` and run directories: ``defaults`` are its :class:`TrainConfig` overrides
    (as in :data:`DEFAULTS`), ``options`` the ``config.extra`` keys it reads (so ``--set`` accepts
    them), ``search_space`` its label-free tuning candidates (as in :data:`SEARCH_SPACES`; give one of
    the same length as the others). Returns ``cls``; :func:`unregister_method` undoes it."""
    if not (isinstance(cls, type) and issubclass(cls, Method) and getattr(cls, "name", None)):
        raise TypeError(f"{cls!r} is not a Method subclass with a name")
    METHODS[cls.name] = cls
    if defaults is not None:
        DEFAULTS[cls.name] = copy.deepcopy(defaults)
    if search_space is not None:
        SEARCH_SPACES[cls.name] = list(search_space)
    _REGISTERED_OPTIONS.update(options)
    return cls


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method` (its options stay accepted by ``--set``)."""
    METHODS.pop(name, None)
    DEFAULTS.pop(name, None)
    SEARCH_SPACES.pop(name, None)


#: TrainConfig fields that ``apply_setting`` may not change (they are set by their own flags).
_FIXED_FIELDS = ("method", "seed", "extra", "preprocess", "channels")


def apply_setting(config: TrainConfig, setting: str) -> TrainConfig:
    """Apply one ``KEY=VALUE`` setting (``c3t-edge train --set``) to ``config`` in place.

    ``KEY`` is a :class:`TrainConfig` field (``temperature``, ``head``, ``misalign_s``...) or else a
    method option of ``config.extra`` (``head_position``, ``align_steps``...). ``VALUE`` is read as
    JSON (``0.5``, ``true``, ``"all"``), falling back to the plain string. Returns ``config``.
    """
    key, sep, text = setting.partition("=")
    key = key.strip()
    if not sep or not key:
        raise C3TEdgeError(f"--set {setting!r}: expected KEY=VALUE")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if key in _FIXED_FIELDS:
        raise C3TEdgeError(f"--set {key}: not settable here (use its own flag)")
    options = METHOD_OPTIONS | _REGISTERED_OPTIONS
    if key not in fields and key not in options:
        close = difflib.get_close_matches(key, [*fields, *options], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise C3TEdgeError(f"--set {key}: no such option{hint}")
    if key in fields:
        current = getattr(config, key)
        if isinstance(current, bool) or not isinstance(value, (int, float, str)) or \
                (isinstance(current, str) != isinstance(value, str)):
            raise C3TEdgeError(f"--set {key}={text}: expected a {type(current).__name__}")
        value = type(current)(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise C3TEdgeError(f"--set {key}={text}: must not be negative")
        setattr(config, key, value)
    else:
        config.extra[key] = value
    return config


def build_method(config: TrainConfig) -> Method:
    try:
        cls = METHODS[config.method]
    except KeyError:
        raise C3TEdgeError(f"method {config.method!r} is not available (yet): "
                           f"choose from {', '.join(METHODS)}") from None
    return cls(config)


__all__ = ["DEFAULTS", "METHODS", "METHOD_OPTIONS", "SEARCH_SPACES", "Method", "MethodData", "TrainConfig",
           "apply_setting", "build_method", "default_config", "register_method", "unregister_method"]
