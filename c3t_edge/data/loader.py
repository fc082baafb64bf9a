"""Training windows cut ahead of time by DataLoader worker processes.

A method's step asks :meth:`~c3t_edge.methods.base.MethodData.batch` for windows of trials it has just
drawn (``sample_indices``, then window shifts, from the stage's numpy generator). The draws of the next
steps are already determined by that generator's state, and steps repeat the same calls (e.g. ``ca``:
a labelled batch, then a paired batch). :class:`WindowPrefetcher` therefore replays the calls it has
seen on a *copy* of the generator, and a ``torch.utils.data.DataLoader`` with ``workers`` processes
cuts and standardises the predicted batches from the (memory-mapped) trials while the current step
computes. When the step asks, the prediction is checked against the real draws - trial indices, shifts,
offsets - and used only if equal, so training is exactly what it is without prefetching; a call it
did not foresee is computed in place and the prediction restarts from there (after 8 misses in a row
the prefetcher stops predicting).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: A batch request: (trial indices (n,), shifts (n,), camera offsets (n,), with camera).
Request = tuple


@dataclass(frozen=True)
class Call:
    """What one ``batch`` call of a step draws: ``batch_size`` trials of ``pool``, then shifts in
    +-``jitter`` and camera offsets in +-``misalign`` samples."""

    pool: np.ndarray
    batch_size: int
    jitter: int
    misalign: int
    with_camera: bool

    def same(self, other: Call) -> bool:
        return (self.pool is other.pool and self.batch_size == other.batch_size and self.jitter == other.jitter
                and self.misalign == other.misalign and self.with_camera == other.with_camera)


class _Windows:
    """Map-style dataset whose items are requests: the standardised IMU and camera windows they name."""

    def __init__(self, arrays, standardizer):
        self.arrays, self.standardizer = arrays, standardizer

    def __getitem__(self, request: Request):
        index, shift, offset, with_camera = request
        imu, cam = self.arrays.windows(index, shift_samples=shift, camera_offset_samples=offset,
                                       with_camera=with_camera)
        return request, self.standardizer(imu), cam


class _Plan:
    """The requests the next steps will make: ``cycle`` repeated, drawn from a copy of ``rng``."""

    def __init__(self, rng: np.random.Generator, cycle: list[Call],
                 draw: Callable[[np.random.Generator, Call], Request]):
        self.rng, self.cycle, self.draw = copy.deepcopy(rng), cycle, draw

    def __iter__(self) -> Iterator[Request]:
        position = 0
        while True:
            yield self.draw(self.rng, self.cycle[position % len(self.cycle)])
            position += 1


def _identity(item):
    return item


class WindowPrefetcher:
    """Predicts and prefetches the windows of upcoming ``batch`` calls in ``workers`` DataLoader processes.

    ``draw(rng, call)`` makes the draws of one call exactly as the training step does and returns its
    request; ``depth`` requests per worker are kept in flight. Counts ``hits`` and ``misses``.
    """

    MAX_MISSES = 8

    def __init__(self, arrays, standardizer, draw: Callable[[np.random.Generator, Call], Request], *,
                 workers: int = 1, depth: int = 2):
        self.arrays, self.standardizer, self.draw = arrays, standardizer, draw
        self.workers, self.depth = workers, depth
        self.calls: list[Call] = []
        self.cycle: list[Call] = []
        self.position = 0
        self.stream = None
        self.hits = self.misses = self.consecutive_misses = 0

    def take(self, call: Call, request: Request):
        """The prefetched (standardised imu, camera) windows of ``request`` (made by ``call``), or None
        when it is not the predicted one (the caller cuts them itself)."""
        if self.stream is None:
            return None
        predicted_call = self.cycle[self.position % len(self.cycle)]
        self.position += 1
        predicted, imu, cam = next(self.stream)
        if predicted_call.same(call) and _equal(predicted, request):
            self.hits += 1
            self.consecutive_misses = 0
            return imu, cam
        self.misses += 1
        self.consecutive_misses += 1
        self.close()
        return None

    def after(self, call: Call, rng: np.random.Generator, hit: bool) -> None:
        """Note ``call``; unless it was a hit, start predicting from ``rng`` (its state after the call's
        draws) once the calls repeat - or give up after :data:`MAX_MISSES` misses in a row."""
        self.calls.append(call)
        del self.calls[:-64]
        if hit or self.consecutive_misses >= self.MAX_MISSES:
            return
        cycle = _cycle(self.calls)
        if cycle is not None:
            self._start(rng, cycle)

    def _start(self, rng: np.random.Generator, cycle: list[Call]) -> None:
        import torch
        from torch.utils.data import DataLoader

        self.close()
        self.cycle, self.position = cycle, 0
        loader = DataLoader(_Windows(self.arrays, self.standardizer), batch_size=None,
                            sampler=_Plan(rng, cycle, self.draw), num_workers=self.workers,
                            prefetch_factor=self.depth, collate_fn=_identity, multiprocessing_context="fork",
                            generator=torch.Generator())  # its own: the training's torch generator is not drawn
        self.stream = iter(loader)

    def close(self) -> None:
        """Stop the workers (the next call is cut in place)."""
        stream, self.stream = self.stream, None
        if stream is not None and hasattr(stream, "_shutdown_workers"):
            stream._shutdown_workers()


def _equal(a: Request, b: Request) -> bool:
    return a[3] == b[3] and all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3], strict=True))


def _cycle(calls: list[Call]) -> list[Call] | None:
    """The calls of one period when the last two periods repeat (shortest period), starting with the
    call that follows the last one; None before a cycle is seen."""
    for period in range(1, len(calls) // 2 + 1):
        if all(calls[-i].same(calls[-i - period]) for i in range(1, period + 1)):
            return calls[-period:]
    return None
