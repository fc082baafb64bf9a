"""The streaming pipeline: bytes in, action events out.

    transport -> decoder -> channel map -> calibration -> (resampling) -> sliding windows
              -> activity gate -> model -> smoothing with hysteresis -> events -> sinks

:class:`StreamPipeline` is synchronous and deterministic: the same bytes give the same events
whatever their chunking and pacing (replay tests rely on it). :class:`PipelineFeed` is the
consumer that the one live-session driver (:class:`c3t_edge.live.LiveSession`) hands the chunks of
any transport to; :mod:`c3t_edge.runtime.runner` puts the two together. Nothing here imports torch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from c3t_edge.errors import DeviceMismatchError
from c3t_edge.protocol import ChannelMap, DeviceEvent, DeviceInfo, SampleBatch, StreamDecoder, make_decoder
from c3t_edge.runtime.events import (
    ActionEvent,
    DeviceNotice,
    GapEvent,
    LinkNotice,
    Notice,
    Summary,
    WindowResult,
)
from c3t_edge.runtime.model import WindowModel
from c3t_edge.runtime.signal import Calibration, IdentityCalibration, LinearResampler, check_rate
from c3t_edge.runtime.smoothing import ActionSmoother, ActivityGate, GateConfig, SmoothingConfig
from c3t_edge.runtime.windows import SlidingWindow

#: Latency percentiles are over at most this many recent windows (about 14 h at 2 windows/s).
LATENCY_HISTORY = 100_000

RuntimeEvent = ActionEvent | GapEvent | LinkNotice | DeviceNotice | WindowResult


class PipelineObserver(Protocol):
    """Watches the signal and every window as the pipeline runs (e.g. the live web view); set it as
    :attr:`StreamPipeline.observer`. Called synchronously inside :meth:`StreamPipeline.feed`, so it
    must only note what it gets (microseconds), never block."""

    def samples(self, t: np.ndarray, x: np.ndarray) -> None:
        """Samples after calibration (gaps filled, before resampling): ``t`` (n,) device s, ``x`` (n, C)
        float32 in the model's channel order and units (g, deg/s)."""

    def window(self, t: float, probabilities: np.ndarray | None, state: str | None, score: float,
               latency_ms: float) -> None:
        """One window decided: device time ``t`` (s) of its last sample, class ``probabilities`` (K,)
        (None for a still window the gate skipped), the smoothed ``state`` and its ``score``, and the
        window's added latency (ms)."""


@dataclass(frozen=True)
class PipelineConfig:
    """Tuning of the stages after the decoder.

    ``max_fill_s``: gaps in device time up to this long (a lost frame or two) are filled by linear
    interpolation and recognition goes on; longer ones restart windows and smoothing.
    ``report_windows``: also emit a :class:`WindowResult` per window (debugging, benchmarks).
    """

    gate: GateConfig = field(default_factory=GateConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    max_fill_s: float = 0.5
    report_windows: bool = False


class StreamPipeline:
    """Decoder-to-events pipeline for one device stream and one model.

    ``feed(data, arrival)`` takes the bytes of one transport chunk and ``arrival`` (the
    ``time.perf_counter()`` at which they were received; latency is measured from it) and returns
    the events they complete, in order. ``link_gap()`` reports a transport outage; ``finish()``
    ends the stream; :meth:`summary` gives the counters.
    """

    def __init__(self, model: WindowModel, *, calibration: Calibration | None = None,
                 config: PipelineConfig | None = None, decoder: StreamDecoder | None = None,
                 warm_up: bool = True) -> None:
        self.model = model
        self.spec = model.spec
        self.calibration = calibration or IdentityCalibration()
        self.config = config or PipelineConfig()
        self.decoder = decoder or make_decoder("binary")
        self.windows = SlidingWindow(self.spec.window, self.spec.hop, len(self.spec.channels))
        self.gate = ActivityGate(self.config.gate, self.spec.channel_indices("deg/s"),
                                 self.spec.channel_indices("g"))
        self.smoother = ActionSmoother(len(self.spec.labels), self.config.smoothing)
        self.device: DeviceInfo | None = None
        self.device_events: list[DeviceEvent] = []
        self.observer: PipelineObserver | None = None  # e.g. the live web view
        self._map: ChannelMap | None = None
        self._resampler: LinearResampler | None = None
        self._device_rate = self.spec.sample_rate_hz
        self._last_t: float | None = None
        self._last_x: np.ndarray | None = None
        self._boot = 0
        self._first_t: float | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_HISTORY)
        self._windows = 0
        self._idle = 0
        self._events = 0
        self._gaps = 0
        self._link_gaps = 0
        self._after_link = False
        self._advised: str | None = None
        self._filled = 0
        self._first_window_at: float | None = None
        if warm_up:
            self.warm_up()
        self._start = time.perf_counter()

    def warm_up(self) -> None:
        """Run the gate and the model once on still windows, so that the first real window is not
        slowed by one-time initialisation (memory arenas, lazily loaded kernels)."""
        x = np.zeros((2, self.spec.window, len(self.spec.channels)), dtype=np.float32)
        self.gate.active(x)
        self.model.predict_proba(x[:1])
        self.model.predict_proba(x)

    # ------------------------------------------------------------------ input
    def feed(self, data: bytes, arrival: float | None = None, host_time_s: float | None = None) -> list[RuntimeEvent]:
        """Decode one chunk and run every stage; the events it completed. ``host_time_s``: when the
        chunk was received (the transport's clock), for a text decoder that infers the rate from
        line timing."""
        arrival = time.perf_counter() if arrival is None else arrival
        out: list[RuntimeEvent] = []
        if host_time_s is not None and getattr(self.decoder, "takes_arrival_time", False):
            items = self.decoder.feed(data, host_time_s)
        else:
            items = self.decoder.feed(data)
        for item in items:
            self._item(item, arrival, out)
        if self.device is None:
            self._check_value_count()
        self._advice(out)
        return out

    def _advice(self, out: list[RuntimeEvent]) -> None:
        """A text decoder's one-time suggestion about units (rotation that looks like rad/s)."""
        text = getattr(self.decoder, "text", self.decoder)
        advice = getattr(text, "advice", None)
        if advice is not None and advice != self._advised:
            self._advised = advice
            out.append(Notice(advice))

    @property
    def needs_arrival_times(self) -> bool:
        """True while the decoder infers the rate from when chunks arrive (they must not be joined)."""
        return bool(getattr(self.decoder, "needs_arrival_times", False))

    def _check_value_count(self) -> None:
        """A text device whose lines hold another number of values than the model takes: one line
        naming both counts and what to do."""
        mismatch = getattr(self.decoder, "value_count_mismatch", None)
        if mismatch is None:
            return
        got, want = mismatch
        names = " ".join(self.spec.channels)
        if got < want and got == 3:
            todo = (f"stream with a bundle trained on the accelerometer alone (c3t-edge train --channels acc), "
                    f"or have the device print all {want} values per line")
        else:
            todo = f"stream with a bundle trained on {got} channels, or have the device print {want} values per line"
        raise DeviceMismatchError(f"the device prints {got} values per line but the model {self.spec.name} "
                                  f"takes {want} ({names}): {todo}")

    def finish(self) -> list[RuntimeEvent]:
        """End of stream: decode what the decoder still holds."""
        out: list[RuntimeEvent] = []
        arrival = time.perf_counter()
        for item in self.decoder.finish():
            self._item(item, arrival, out)
        return out

    def link_gap(self, notice: LinkNotice) -> list[RuntimeEvent]:
        """The transport reports an outage; the device-time gap is detected from the samples."""
        if notice.state == "reconnected":
            self._link_gaps += 1
            self._after_link = True
        return [notice]

    def _item(self, item, arrival: float, out: list[RuntimeEvent]) -> None:
        if isinstance(item, SampleBatch):
            self._samples(item, arrival, out)
        elif isinstance(item, DeviceInfo):
            self._device_info(item, out)
        elif isinstance(item, DeviceEvent):
            self.device_events.append(item)
            if item.is_error and item.seq == -1:  # an ERR line of a text device (the forwarder stops on it)
                out.append(Notice(f"the device printed an error line: {item.message}"))

    def _device_info(self, info: DeviceInfo, out: list[RuntimeEvent]) -> None:
        if info.same_stream_format(self.device):
            self.device = info
            return
        spec = self.spec
        self._map = ChannelMap.between(info, spec.channels, spec.units)
        resample = check_rate(info.sample_rate_hz, spec.sample_rate_hz)
        self._resampler = LinearResampler(info.sample_rate_hz, spec.sample_rate_hz) if resample else None
        self._device_rate = info.sample_rate_hz
        if self.device is not None:  # a different stream format mid-stream: start over
            self._restart()
        self.device = info
        out.append(DeviceNotice(info.name, info.sample_rate_hz, info.channel_names, info.firmware,
                                spec.sample_rate_hz if resample else None))
        describe = getattr(self.decoder, "describe", None)  # a text device: what was inferred or assumed
        if describe is not None and (text := describe()):
            out.append(Notice(text + (f"; resampled to {spec.sample_rate_hz:g} Hz" if resample else "")))
        warn = getattr(self.calibration, "device_warning", None)  # a profile made on another device
        if warn is not None and (message := warn(info)):
            out.append(Notice(message))

    def _restart(self) -> None:
        self.windows.reset()
        self.smoother.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self._last_t = None
        self._last_x = None

    # ------------------------------------------------------------------ samples
    def _samples(self, batch: SampleBatch, arrival: float, out: list[RuntimeEvent]) -> None:
        if self._map is None:  # samples without a device description matching the model
            self._device_info(batch.info, out)
        t = batch.t
        x = self._map.apply(batch.samples)
        x = self.calibration.apply(x)
        if self._first_t is None:
            self._first_t = float(t[0])
        if self._last_t is not None:
            t, x = self._continuity(batch, t, x, out)
        self._after_link = False
        self._last_t, self._last_x = float(t[-1]), x[-1]
        if self.observer is not None:
            self.observer.samples(t, x)
        if self._resampler is not None:
            t, x = self._resampler.push(t, x)
        windows = self.windows.push(t, x)
        if windows is not None:
            self._classify(windows, arrival, out)

    def _continuity(self, batch: SampleBatch, t: np.ndarray, x: np.ndarray,
                    out: list[RuntimeEvent]) -> tuple[np.ndarray, np.ndarray]:
        """Fill a short gap before ``batch``; restart after a long one, a reset or a time jump."""
        last_t = self._last_t
        period = 1.0 / self._device_rate
        dt = float(t[0]) - last_t
        cause = None
        if batch.boot != self._boot:
            self._boot = batch.boot
            cause = "reset"
        elif dt <= 0.0:
            cause = "time"
        elif dt > 1.5 * period:
            missing = int(round(dt / period)) - 1
            if missing * period <= self.config.max_fill_s:
                self._filled += missing
                frac = np.arange(1, missing + 1)[:, None] / (missing + 1)
                fill_x = (self._last_x[None, :] + frac * (x[0] - self._last_x)[None, :]).astype(np.float32)
                fill_t = last_t + (np.arange(1, missing + 1)) * (dt / (missing + 1))
                out.append(GapEvent(last_t, float(t[0]), "link" if self._after_link else "lost",
                                    batch.lost_before, True))
                self._gaps += 1
                return np.concatenate((fill_t, t)), np.concatenate((fill_x, x))
            cause = "link" if self._after_link else "lost" if batch.lost_before else "time"
        if cause is not None:
            self._gaps += 1
            out.append(GapEvent(last_t, float(t[0]), cause, batch.lost_before, False))
            if self.smoother.state is not None:  # the action in progress is cut off
                self._emit_state(None, 0.0, float(last_t), (last_t, last_t), 0.0, out)
            self._restart()
        return t, x

    # ------------------------------------------------------------------ windows -> events
    def _classify(self, wb, arrival: float, out: list[RuntimeEvent]) -> None:
        k = len(wb)
        active, moving = self.gate.active(wb.x)
        probs = np.zeros((k, len(self.spec.labels)), dtype=np.float64)
        if active.any():
            probs[active] = self.model.predict_proba(wb.x[active])
        labels = self.spec.labels
        for i in range(k):
            decision = self.smoother.update(probs[i] if active[i] else None)
            span = (float(wb.t[i, 0]), float(wb.t[i, -1]))
            now = time.perf_counter()
            latency = (now - arrival) * 1e3
            self._latencies.append(latency)
            if self._first_window_at is None:
                self._first_window_at = now
            if self.config.report_windows:
                top = int(np.argmax(probs[i]))
                out.append(WindowResult(span[1], span, bool(active[i]), float(moving[i]),
                                        labels[top] if active[i] else None,
                                        float(probs[i, top]) if active[i] else 0.0,
                                        labels[decision.label] if decision.label is not None else None,
                                        decision.score, latency))
            if self.observer is not None:
                self.observer.window(span[1], probs[i] if active[i] else None,
                                     labels[decision.label] if decision.label is not None else None,
                                     decision.score, latency)
            if decision.changed:
                self._emit_state(decision.label, decision.score, span[1], span, latency, out)
        self._windows += k
        self._idle += int(k - active.sum())

    def _emit_state(self, label: int | None, score: float, t: float, span: tuple[float, float],
                    latency: float, out: list[RuntimeEvent]) -> None:
        name = self.spec.labels[label] if label is not None else None
        out.append(ActionEvent(t, name, score, latency, span))
        if label is not None:
            self._events += 1

    # ------------------------------------------------------------------ summary
    def summary(self) -> Summary:
        s = self.decoder.stats
        lat = np.asarray(self._latencies)
        return Summary(
            frames=s.frames, samples=s.samples, lost=s.lost, corrupt=s.corrupt, resets=s.resets,
            windows=self._windows, idle_windows=self._idle, events=self._events, gaps=self._gaps,
            link_gaps=self._link_gaps,
            device_seconds=(s.samples / self._device_rate) if s.samples else 0.0,
            wall_seconds=time.perf_counter() - self._start,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else None,
            latency_max_ms=float(lat.max()) if lat.size else None,
            extra={**({"filled_samples": self._filled} if self._filled else {}),
                   **({"frames_without_device_info": s.no_info} if getattr(s, "no_info", 0) else {})},
        )

    def first_window_at(self) -> float | None:
        """``time.perf_counter()`` when the first window was classified (None before)."""
        return self._first_window_at


def check_device(pipeline: StreamPipeline) -> None:
    """Raise :class:`DeviceMismatchError` when the stream ended before the device described itself."""
    if pipeline.device is None and pipeline.decoder.stats.samples == 0:
        raise DeviceMismatchError("no samples arrived from the device")


#: Played as fast as possible, a source's chunks are fed to the pipeline up to this many at once, so
#: that the decoder takes its bulk path and the model sees batches of windows.
BATCH_CHUNKS = 256


class PipelineFeed:
    """The consumer a :class:`~c3t_edge.live.LiveSession` hands chunks to when streaming: each
    chunk through ``pipeline``, its events to ``emit`` as they happen.

    A chunk after a link outage (``chunk.gap``) is reported to the pipeline first (a
    :class:`LinkNotice` ``"reconnected"``). ``batch``: join up to :data:`BATCH_CHUNKS` chunks per
    feed (for a source that is not paced; the events do not depend on chunking, a window's latency
    is then its batch's processing time). ``recorded``: chunk host times are not this run's clock,
    so latency is measured from when a chunk is read; otherwise from when its bytes reached the
    host. Call :meth:`finish` when the source ended, :meth:`flush` when the run stopped.
    """

    def __init__(self, pipeline: StreamPipeline, emit: Callable[[RuntimeEvent], None], port: str, *,
                 batch: bool = False, recorded: bool = False) -> None:
        from c3t_edge.clock import host_time

        self.pipeline = pipeline
        self.emit = emit
        self.port = port
        self.batch = batch
        self.recorded = recorded
        self._host_time = host_time
        self._pending: list[bytes] = []

    def __call__(self, chunk) -> None:  # chunk: c3t_edge.transports.Chunk
        if chunk.gap is not None:
            self.flush()
            gap = chunk.gap
            notice = LinkNotice("reconnected", self.port, gap.end_s, gap.reason, gap.duration_s)
            self._emit_all(self.pipeline.link_gap(notice))
        if self.batch and not self.pipeline.needs_arrival_times:
            self._pending.append(chunk.data)
            if len(self._pending) >= BATCH_CHUNKS:
                self.flush()
            return
        arrival = time.perf_counter()
        if not self.recorded:  # measure from when the bytes reached the host, not from when they were read
            arrival -= max(0.0, self._host_time() - chunk.host_time_s)
        self._emit_all(self.pipeline.feed(chunk.data, arrival, chunk.host_time_s))

    def flush(self) -> None:
        """Feed the chunks a batch still holds."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._emit_all(self.pipeline.feed(data, time.perf_counter()))

    def finish(self) -> None:
        """The source ended: feed what is held and what the decoder still holds."""
        self.flush()
        self._emit_all(self.pipeline.finish())

    def _emit_all(self, events: list[RuntimeEvent]) -> None:
        for event in events:
            self.emit(event)
