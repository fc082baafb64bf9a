"""``ensemble-distill``: one IMU student distilled from several label-free IMU models at once. Beyond
the paper.

ST and C3T make different mistakes (ST copies the teacher's soft labels, C3T reads aligned IMU steps
through a head that only saw camera latents): on the development split one of the two is right on
about 87% of the test windows while each alone is right on about 80%. Their averaged prediction is
therefore a better label-free teacher than either, and because both are IMU models it can be
computed on any IMU window - including windows whose camera clip says nothing, such as shifted ones.
This method trains the members, then distils their averaged prediction into one fresh student of
the usual shape, so the bundle stays one model (no ensemble at run time). No IMU label is read: the
members read none, and the student learns only their outputs on the unlabelled paired windows.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import weakref

import numpy as np
import torch

from c3t_edge import distributed
from c3t_edge.errors import C3TEdgeError
from c3t_edge.methods.alignment import distillation_loss
from c3t_edge.methods.base import Method, MethodData, optimise, sample_indices
from c3t_edge.methods.camera import frozen_camera_latents, train_camera_classifier
from c3t_edge.methods.time_warp import DistillAlignWarp

#: TrainConfig fields a member takes from the ensemble's own configuration (the data it sees, the
#: budget per stage, the seed); the rest (temperature, head, method options) are the member's defaults.
_SHARED_FIELDS = ("camera", "placement", "seed", "steps", "batch_size", "lr", "weight_decay", "latent_dim",
                  "jitter_s", "misalign_s", "channels", "preprocess")

#: Members that may be named in ``members``: label-free IMU methods, plus ``camera`` (the camera
#: teacher's prediction of the paired camera clip of the same window).
MEMBER_METHODS = ("st", "c3t", "c3t-paired-head", "distill-align", "ca", "camera")


#: Fitted members of this process, so that the candidates of a selection fold (which change the
#: student, not the members) and the two ensemble methods train each member once:
#: key -> (the arrays, the frozen IMU recogniser on the CPU, history).
_FITTED_MEMBERS: dict[tuple, tuple[weakref.ref, torch.nn.Module, list[dict]]] = {}
#: Enough for one evaluation: (3 selection folds + 5 test seeds) x 2 members, twice over; about 1 MB each.
_FITTED_MEMBERS_MAX = 32


def train_members(method: Method, names: list[str], data: MethodData, progress: bool
                  ) -> tuple[list[torch.nn.Module], list[dict]]:
    """Fit ``method``'s members ``names`` (``camera`` excluded: it is the frozen camera model) on
    ``data``; returns their IMU recognisers (frozen, on the run's device) and their history rows.

    A member is a function of its configuration and data alone (every stage seeds itself), so a fit
    with the same configuration on the same data in this process is reused rather than repeated."""
    device = distributed.current().device
    members, history = [], []
    for name in names:
        if name == "camera":
            continue
        member = method.member(name)
        key = (id(data.arrays), data.labelled.tobytes(), data.paired.tobytes(), distributed.current().world_size,
               json.dumps(dataclasses.asdict(member.config), sort_keys=True, default=repr))
        cached = _FITTED_MEMBERS.get(key)
        if cached is None or cached[0]() is not data.arrays:
            member.fit(data, progress=progress)
            if len(_FITTED_MEMBERS) >= _FITTED_MEMBERS_MAX:
                _FITTED_MEMBERS.pop(next(iter(_FITTED_MEMBERS)))
            cached = _FITTED_MEMBERS[key] = (weakref.ref(data.arrays), member.imu_recognizer(), member.history_)
        _ref, recognizer, rows = cached
        history += [{**row, "member": name} for row in rows]
        members.append(copy.deepcopy(recognizer).to(device).eval())
    return members, history


@torch.no_grad()
def averaged_prediction(members: list[torch.nn.Module], imu: torch.Tensor, camera_logits: torch.Tensor | None,
                        temperature: float) -> torch.Tensor:
    """Logits (n, n_classes) whose softmax at ``temperature`` is the mean of the members' class
    probabilities at ``temperature`` on IMU windows ``imu`` (n, W, 6), plus the camera model's
    (``camera_logits`` of the paired clips) where given."""
    logits = [member(imu) for member in members]
    if camera_logits is not None:
        logits.append(camera_logits)
    probabilities = torch.stack([torch.softmax(z / temperature, dim=-1) for z in logits]).mean(0)
    return temperature * torch.log(probabilities.clamp_min(1e-8))


class _Members:
    """The ``members`` option shared by the ensemble methods: names, unfitted members, step count."""

    def member_names(self) -> list[str]:
        names = [n.strip() for n in str(self.config.extra.get("members", "st,c3t")).split(",") if n.strip()]
        unknown = [n for n in names if n not in MEMBER_METHODS]
        if len(names) < 2 or unknown or len(set(names)) != len(names):
            raise C3TEdgeError(f"{self.name}: members={self.config.extra.get('members')!r}: give two or more "
                               f"different names from {', '.join(MEMBER_METHODS)}")
        return names

    def member(self, name: str) -> Method:
        """Member ``name``, unfitted: its method with its defaults, on this run's data, seed and budget."""
        from c3t_edge.methods import build_method, default_config  # the registry imports this module

        return build_method(default_config(name, **{f: getattr(self.config, f) for f in _SHARED_FIELDS}))

    def optimiser_steps(self) -> int:
        own = int(self.config.extra.get("student_steps", self.config.steps))
        members = [self.member(n).optimiser_steps() - self._camera_steps()
                   for n in self.member_names() if n != "camera"]
        return self._camera_steps() + sum(members) + own


class EnsembleDistill(_Members, Method):
    """Stage 1: the shared camera teacher (as ``st`` trains it). Stage 2: each member of
    ``members`` trained as its method does by default (same seed, steps per stage and data). Stage 3:
    a fresh IMU encoder + head on the paired windows, minimising distillation(student logits,
    members' averaged prediction; ``config.temperature``), where the averaged prediction is the mean
    of the members' class probabilities at that temperature on the same (jittered) window.

    ``extra``: ``members`` (``"st,c3t"``; comma-separated names from :data:`MEMBER_METHODS`),
    ``student_head`` (default ``config.head``), ``student_steps`` (default ``steps``), ``imu_augment``
    (0: the student's IMU windows, which the members also read, turned and scaled as ``st``'s).
    """

    name = "ensemble-distill"

    def build_modules(self, n_classes, camera_step_shape=None) -> None:
        self.camera_encoder = self._new_camera_encoder(camera_step_shape)
        self.camera_head = self._new_head(n_classes)
        self.imu_encoder = self._new_imu_encoder()
        self.imu_head = self._new_head(n_classes, self.config.extra.get("student_head"))

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        cfg = self.config
        names = self.member_names()
        self.build_modules(data.n_classes, data.arrays.camera_shape)
        history = train_camera_classifier(self, data, rng, progress, desc=f"{self.name} teacher")
        self.camera_encoder.eval()
        self.camera_head.eval()
        members, rows = train_members(self, names, data, progress)
        history += rows
        # Seeded on its own, so the student does not depend on what the members drew.
        torch.manual_seed(cfg.seed + 3_000_017)
        rng = np.random.default_rng([cfg.seed, 4])
        camera = frozen_camera_latents(self, data, data.paired, jitter_s=cfg.jitter_s,
                                       misalign_s=cfg.misalign_s).map(self.camera_head)
        temperature = cfg.temperature
        imu_augment = float(cfg.extra.get("imu_augment", 0.0))

        def step(_):
            imu, camera_logits = camera.batch(data, sample_indices(data.paired, cfg.batch_size, rng), rng,
                                              imu_augment=imu_augment)
            target = averaged_prediction(members, imu, camera_logits if "camera" in names else None, temperature)
            student = self.imu_head(self.imu_encoder(imu))
            return distillation_loss(student, target, temperature), {}

        steps = int(cfg.extra.get("student_steps", cfg.steps))
        history += optimise([self.imu_encoder, self.imu_head], steps, cfg, step, desc=f"{self.name} student",
                            progress=progress)
        self.history_ = history


class EnsembleDistillAlignWarp(_Members, DistillAlignWarp):
    """:class:`~c3t_edge.methods.time_warp.DistillAlignWarp` whose soft labels come from the members'
    averaged prediction instead of the camera teacher's. Beyond the paper.

    ``ensemble-distill``'s student copies its members' predictions window by window, and so copies
    what they do in a stream: name a wrong class while an action is only partly in the window, then
    correct it. The students trained on distillation and step-wise alignment in one objective
    stream far better. This method keeps that objective - distillation + ``align_weight`` x step-wise
    InfoNCE against the camera's step latents + ``warp_weight`` x distillation on a shifted and
    time-stretched view of the window - and replaces only the soft label: the members' averaged
    prediction on the (jittered, centred) paired IMU window, which is also the label of its warped
    view. No IMU label is read.

    ``extra``: ``members`` (``"st,c3t"``, as ``ensemble-distill``) and every option of
    ``distill-align-warp``.
    """

    name = "ensemble-distill-align-warp"

    def _fit(self, data: MethodData, rng: np.random.Generator, progress: bool) -> None:
        try:
            super()._fit(data, rng, progress)
        finally:
            self._members = []  # frozen members are not part of the model

    def _prepare_teacher(self, data: MethodData, progress: bool) -> list[dict]:
        names = self.member_names()
        self._camera_is_member = "camera" in names
        self._members, history = train_members(self, names, data, progress)
        return history

    def _teacher_logits(self, imu: torch.Tensor, camera_logits: torch.Tensor) -> torch.Tensor:
        camera = camera_logits if self._camera_is_member else None
        return averaged_prediction(self._members, imu, camera, self.config.temperature)
