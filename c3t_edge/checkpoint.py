"""Checkpoints of one training run, so that ``c3t-edge train --resume`` continues after a crash.

A method's fit is a sequence of **stages** (each call of ``c3t_edge.methods.base.optimise``: e.g. the
camera model, then the IMU alignment). While a :class:`Session` is active (``train_run`` opens one),
every ``every`` optimiser steps - counted over all stages - and at the end of each stage, rank 0 writes
``checkpoint.pt`` (atomically: a temporary file, then a rename) holding:

- every finished stage: its modules' state dicts and history (a resumed fit loads them instead of
  training that stage again);
- the stage in progress: the next step, its modules, the AdamW and one-cycle scheduler states, the
  history so far, the torch generator state of every rank (CPU and CUDA) and the state of every numpy
  generator the stage draws its batches from (recorded by ``sample_indices``; a resumed stage restores
  each one when it first draws from it, so the batches continue exactly where they stopped).

Resuming therefore gives the same weights as a run that never stopped (bit for bit on one CPU
process; the test checks it). A checkpoint is bound to the run's configuration and number of
processes: resuming with another one is an error. ``$C3T_CRASH_AT_STEP=k`` makes training raise after
global step k (after that step's checkpoint, if any): the tests use it to inject a crash.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from c3t_edge import distributed
from c3t_edge.errors import C3TEdgeError

CHECKPOINT_NAME = "checkpoint.pt"
CRASH_ENV = "C3T_CRASH_AT_STEP"


class InjectedCrash(RuntimeError):
    """Raised at the step ``$C3T_CRASH_AT_STEP`` names (tests only)."""


def _cpu_state(state):
    """A detached CPU copy of a (nested) state dict."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu_state(v) for v in state)
    return state


class Stage:
    """One ``optimise`` call of the fit: what a resumed run restores for it."""

    def __init__(self, session: Session, index: int, desc: str, steps: int):
        self.session, self.index, self.desc, self.steps = session, index, desc, steps
        saved = session.saved
        self.finished: dict | None = None
        self.partial: dict | None = None
        if saved is not None:
            if index < len(saved["stages"]):
                self.finished = self._checked(saved["stages"][index])
            elif saved["current"] is not None and index == len(saved["stages"]):
                self.partial = self._checked(saved["current"])
        self._rngs: list[np.random.Generator] = []
        self._pending_rngs: list[dict] = list(self.partial["numpy"]) if self.partial else []

    def _checked(self, record: dict) -> dict:
        if (record["desc"], record["steps"]) != (self.desc, self.steps):
            raise C3TEdgeError(f"checkpoint stage {self.index} is {record['desc']!r} ({record['steps']} steps), "
                               f"this run's is {self.desc!r} ({self.steps} steps): not the same run")
        return record

    # ------------------------------------------------------------------------------- restoring
    def restore_finished(self, modules) -> list[dict]:
        """Load the finished stage's modules; returns its history."""
        for module, state in zip(modules, self.finished["modules"], strict=True):
            module.load_state_dict(state)
        self.session.global_step += self.steps
        return [dict(h) for h in self.finished["history"]]

    def restore_partial(self, modules, optimizer, schedule) -> tuple[int, list[dict]]:
        """Load the interrupted stage (modules, optimiser, scheduler, torch generators); returns the next
        step and the history so far. Numpy generators are restored by :meth:`track` on first use."""
        import torch

        record = self.partial
        for module, state in zip(modules, record["modules"], strict=True):
            module.load_state_dict(state)
        optimizer.load_state_dict(record["optimizer"])
        schedule.load_state_dict(record["scheduler"])
        rank = distributed.current().rank
        torch.set_rng_state(record["torch_rng"][rank])
        if record["cuda_rng"][rank] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(record["cuda_rng"][rank])
        self.session.global_step += record["step"]
        return record["step"], [dict(h) for h in record["history"]]

    def track(self, rng: np.random.Generator) -> None:
        """Note a numpy generator this stage draws batches from; restore its saved state on first use."""
        if any(rng is known for known in self._rngs):
            return
        self._rngs.append(rng)
        if self._pending_rngs:
            rng.bit_generator.state = self._pending_rngs.pop(0)

    # --------------------------------------------------------------------------------- saving
    def step_done(self, step: int, modules, optimizer, schedule, history: list[dict]) -> None:
        """After step ``step``: checkpoint every ``every`` global steps; the injected crash."""
        session = self.session
        session.global_step += 1
        if session.every and session.global_step % session.every == 0 and step + 1 < self.steps:
            session.write(self._partial_record(step + 1, modules, optimizer, schedule, history))
        crash = os.environ.get(CRASH_ENV)
        if crash and session.global_step == int(crash):
            raise InjectedCrash(f"{CRASH_ENV}={crash}: crash injected after global step {crash}")

    def _partial_record(self, next_step: int, modules, optimizer, schedule, history) -> dict:
        import torch

        cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        states = distributed.all_gather_objects((torch.get_rng_state(), cuda))
        return {"desc": self.desc, "steps": self.steps, "step": next_step,
                "modules": [_cpu_state(m.state_dict()) for m in modules],
                "optimizer": _cpu_state(optimizer.state_dict()), "scheduler": schedule.state_dict(),
                "history": [dict(h) for h in history], "torch_rng": [s[0] for s in states],
                "cuda_rng": [s[1] for s in states], "numpy": [r.bit_generator.state for r in self._rngs]}

    def finish(self, modules, history: list[dict]) -> None:
        """The stage is done: remember its modules and history, and checkpoint."""
        self.session.finished.append({"desc": self.desc, "steps": self.steps,
                                      "modules": [_cpu_state(m.state_dict()) for m in modules],
                                      "history": [dict(h) for h in history]})
        self.session.write(None)
        self.session.stage = None


class Session:
    """Checkpointing of one fit into ``path`` every ``every`` global steps (0: only at stage ends),
    continuing from ``saved`` (a checkpoint's contents) when resuming."""

    def __init__(self, path: Path, every: int, signature: dict, saved: dict | None = None):
        self.path, self.every, self.signature, self.saved = Path(path), int(every), signature, saved
        self.global_step = 0
        self.finished: list[dict] = []
        self.stage: Stage | None = None
        self._count = 0
        if saved is not None:
            if saved.get("signature") != signature:
                raise C3TEdgeError(f"{self.path} belongs to another run (configuration, data or number of "
                                   "processes differ): remove it or use another --out")
            self.finished = list(saved["stages"])

    def begin_stage(self, desc: str, steps: int) -> Stage:
        self.stage = Stage(self, self._count, desc, steps)
        self._count += 1
        return self.stage

    def write(self, current: dict | None) -> None:
        """Rank 0 writes the finished stages and ``current`` (the stage in progress, or None)."""
        if not distributed.current().is_main:
            return
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        torch.save({"format": 1, "signature": self.signature, "global_step": self.global_step,
                    "stages": self.finished, "current": current}, tmp)
        os.replace(tmp, self.path)


_ACTIVE: Session | None = None


def active_stage() -> Stage | None:
    """The stage in progress of the active session (None outside ``train_run`` or between stages)."""
    return _ACTIVE.stage if _ACTIVE is not None else None


def begin_stage(desc: str, steps: int) -> Stage | None:
    """Called by ``optimise`` at the start of each stage (None when no session is active)."""
    return _ACTIVE.begin_stage(desc, steps) if _ACTIVE is not None else None


def track_rng(rng: np.random.Generator) -> None:
    """Called by ``sample_indices``: the active stage draws batches from ``rng``."""
    stage = active_stage()
    if stage is not None:
        stage.track(rng)


def load(path: Path) -> dict | None:
    """The contents of checkpoint ``path`` (None when there is none)."""
    if not path.is_file():
        return None
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: say which
        raise C3TEdgeError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


@contextmanager
def session(path: Path, every: int, signature: dict, resume: bool):
    """Checkpoint the fits run inside this block into ``path``; with ``resume``, continue from it."""
    global _ACTIVE
    saved = load(path) if resume else None
    _ACTIVE = Session(path, every, signature, saved)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None
