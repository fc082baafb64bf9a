"""Runtime stages without a trained model: windows, gate, smoothing, resampling, channel mapping,
gaps, chunking invariance, and that the runtime path never imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _runtime import AxisModel, synthetic_session

from c3t_edge.errors import DeviceMismatchError
from c3t_edge.protocol import ChannelMap
from c3t_edge.protocol.frames import default_imu_info, encode_imu_frame, encode_info_frame, wire
from c3t_edge.runtime import (
    ActionEvent,
    ActionSmoother,
    GapEvent,
    LinearResampler,
    PipelineConfig,
    SlidingWindow,
    SmoothingConfig,
    StreamPipeline,
)
from c3t_edge.runtime.sessions import Session, TruthSegment, score_events, session_stream
from c3t_edge.runtime.signal import check_rate


def run_stream(pipeline, stream, chunking=None):
    """Feed (t, bytes) frames, re-chunked into pieces of ``chunking`` bytes when given."""
    events = []
    data = b"".join(d for _, d in stream)
    if chunking is None:
        for _, d in stream:
            events += pipeline.feed(d)
    else:
        for i in range(0, len(data), chunking):
            events += pipeline.feed(data[i:i + chunking])
    return events + pipeline.finish()


def actions(events):
    return [(round(e.t, 2), e.label) for e in events if isinstance(e, ActionEvent)]


# -- windows -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pieces", [[1000], [1] * 300, [7, 93, 200, 3, 400, 297], [179, 1, 45, 775]])
def test_sliding_window_same_windows_for_any_split(pieces):
    n = sum(pieces)
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    t = np.arange(n) / 50.0
    win = SlidingWindow(180, 45, 2)
    got, i = [], 0
    for p in pieces:
        out = win.push(t[i:i + p], x[i:i + p])
        i += p
        if out is not None:
            got.append(out)
    xs = np.concatenate([w.x for w in got])
    ends = np.concatenate([w.end_index for w in got])
    expect_ends = np.arange(180, n + 1, 45)
    assert ends.tolist() == expect_ends.tolist()
    for w, e in zip(xs, ends, strict=True):
        assert np.array_equal(w, x[e - 180:e])
    assert np.allclose(np.concatenate([w.t for w in got])[:, -1], t[expect_ends - 1])


def test_sliding_window_reset_never_spans_a_discontinuity():
    win = SlidingWindow(10, 5, 1)
    assert win.push(np.arange(8.0), np.zeros((8, 1))) is None
    win.reset()
    assert win.push(np.arange(8.0), np.ones((8, 1))) is None
    out = win.push(np.arange(8.0, 12.0), np.ones((4, 1)))
    assert len(out) == 1 and out.x.min() == 1.0


# -- smoothing -------------------------------------------------------------------------------------

def test_smoother_hysteresis_and_rejection():
    sm = ActionSmoother(2, SmoothingConfig(history=1, enter=0.6, exit=0.4))
    seq = [[0.55, 0.45], [0.65, 0.35], [0.45, 0.55], [0.41, 0.59], [0.39, 0.61], None, [0.2, 0.8]]
    states = [sm.update(None if p is None else np.array(p)).label for p in seq]
    # 0.55 < enter: no action; 0.65 enters 0; it holds down to 0.41 (>= exit); 0.39 releases it and
    # label 1 at 0.61 takes over; an idle window is no action
    assert states == [None, 0, 0, 0, 1, None, 1]


def test_smoother_averages_recent_windows():
    sm = ActionSmoother(2, SmoothingConfig(history=3, enter=0.6, exit=0.4))
    d = [sm.update(np.array(p)) for p in ([1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0])]
    # label 0 scores 1, 1/2 (held: >= exit), 1/3 (released; label 1 at 2/3 enters), 0, 0
    assert [x.label for x in d] == [0, 0, 1, 1, 1]
    assert [x.changed for x in d] == [True, False, True, False, False]
    assert [round(x.score, 3) for x in d] == [1.0, 0.5, 0.667, 1.0, 1.0]
    with pytest.raises(ValueError):
        SmoothingConfig(enter=0.3, exit=0.5)


# -- signal stages ---------------------------------------------------------------------------------

def test_channel_map_reorders_and_rejects_missing_or_wrong_units():
    info = default_imu_info()
    spec = AxisModel().spec
    assert ChannelMap.between(info, spec.channels, spec.units).device_index == (0, 1, 2, 3, 4, 5)
    cm = ChannelMap.between(info, ("gz", "ax"), ("deg/s", "g"))
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert cm.apply(x).tolist() == [[5, 0], [11, 6]]
    with pytest.raises(DeviceMismatchError, match="mx is missing"):
        ChannelMap.between(info, ("ax", "mx"), ("g", "uT"))
    with pytest.raises(DeviceMismatchError, match="expects m/s2"):
        ChannelMap.between(info, ("ax",), ("m/s2",))


def test_rate_check():
    assert check_rate(50.2, 50.0) is False
    assert check_rate(100.0, 50.0) is True
    with pytest.raises(DeviceMismatchError, match="resampling is supported"):
        check_rate(25.0, 50.0)


@pytest.mark.parametrize("in_rate", [100.0, 62.5, 200.0])
def test_resampler_tracks_a_slow_signal_for_any_split(in_rate):
    t = 0.3 + np.arange(int(in_rate * 6)) / in_rate
    x = np.stack([np.sin(2 * np.pi * 0.7 * t), np.cos(2 * np.pi * 1.1 * t)], axis=1).astype(np.float32)
    outs = []
    for split in ([len(t)], [13] * (len(t) // 13) + [len(t) % 13]):
        r = LinearResampler(in_rate, 50.0)
        ts, xs, i = [], [], 0
        for p in split:
            to, xo = r.push(t[i:i + p], x[i:i + p])
            i += p
            ts.append(to)
            xs.append(xo)
        outs.append((np.concatenate(ts), np.concatenate(xs)))
    (t1, x1), (t2, x2) = outs
    assert np.allclose(t1, t2) and np.allclose(x1, x2, atol=1e-6)
    assert np.allclose(np.diff(t1), 1 / 50.0)
    ref = np.stack([np.sin(2 * np.pi * 0.7 * t1), np.cos(2 * np.pi * 1.1 * t1)], axis=1)
    assert np.abs(x1[5:] - ref[5:]).max() < 0.02
    assert abs(len(t1) - 6 * 50) <= 2


# -- the pipeline -----------------------------------------------------------------------------------

def test_pipeline_recognises_each_move_once_and_rests_as_no_action():
    s = synthetic_session([("x", 3), ("y", 2.5), ("z", 3), ("x", 2)])
    model = AxisModel()
    pipeline = StreamPipeline(model, warm_up=False)
    events = run_stream(pipeline, session_stream(s))
    acts = [e for e in events if isinstance(e, ActionEvent)]
    assert [e.label for e in acts] == ["x", None, "y", None, "z", None, "x", None]
    score = score_events(acts, s.truth, slack_s=model.spec.window_s)
    assert score.accuracy == 1.0 and score.false_events == 0 and score.extra_events == 0
    for e in acts:
        assert e.window[1] == e.t and e.window[1] - e.window[0] == pytest.approx((100 - 1) / 50)
        assert e.latency_ms >= 0
    # still windows never reach the model
    summary = pipeline.summary()
    assert summary.idle_windows > 0 and model.windows_seen == summary.windows - summary.idle_windows


def test_pipeline_events_do_not_depend_on_chunking():
    s = synthetic_session([("y", 2.5), ("z", 3), ("x", 2)], seed=3)
    stream = session_stream(s)
    ref = actions(run_stream(StreamPipeline(AxisModel()), stream))
    assert ref
    for chunking in (1, 17, 4096, 10**6):
        assert actions(run_stream(StreamPipeline(AxisModel()), stream, chunking)) == ref


def test_pipeline_resamples_a_100hz_device_to_the_model_rate():
    s50 = synthetic_session([("x", 3), ("z", 3)], seed=1)
    t50 = np.arange(len(s50.samples)) / 50.0
    t100 = np.arange(2 * len(s50.samples)) / 100.0
    x100 = np.stack([np.interp(t100, t50, s50.samples[:, c]) for c in range(6)], axis=1).astype(np.float32)
    s100 = Session(x100, 100.0, s50.t0_s, s50.truth, s50.rest_noise_std)
    events = run_stream(StreamPipeline(AxisModel()), session_stream(s100))
    assert events[0].resampled_to_hz == 50.0
    assert [e.label for e in events if isinstance(e, ActionEvent)] == ["x", None, "z", None]


def _frames(samples, t0_us=1_000_000, spf=10, rate=50.0, drop=(), seq0=1, info=True):
    info_obj = default_imu_info(rate)
    counts = np.round(samples / info_obj.scales).astype(np.int16)
    out = [wire(encode_info_frame(0, t0_us, info_obj))] if info else []
    for k, start in enumerate(range(0, len(counts), spf)):
        if k in drop:
            continue
        out.append(wire(encode_imu_frame(seq0 + k, t0_us + int(start * 1e6 / rate), counts[start:start + spf])))
    return out


def test_short_gap_is_filled_long_gap_restarts_windows():
    s = synthetic_session([("x", 4), ("x", 4)], seed=2, rest_s=3)
    # one lost frame (0.2 s): filled; 10 lost frames (2 s): windows restart
    p = StreamPipeline(AxisModel())
    events = []
    for f in _frames(s.samples, drop={20}):
        events += p.feed(f)
    gaps = [e for e in events if isinstance(e, GapEvent)]
    assert len(gaps) == 1 and gaps[0].filled and gaps[0].lost_frames == 1
    assert p.summary().lost == 1 and p.summary().extra["filled_samples"] == 10

    p = StreamPipeline(AxisModel())
    events = []
    for f in _frames(s.samples, drop=set(range(30, 40))):
        events += p.feed(f)
    gaps = [e for e in events if isinstance(e, GapEvent)]
    assert len(gaps) == 1 and not gaps[0].filled and gaps[0].cause == "lost"
    assert gaps[0].t_to - gaps[0].t_from == pytest.approx(2.02)  # last sample kept -> first after
    # an action cut by the gap is ended at the gap; recognition resumes after it
    acts = [e for e in events if isinstance(e, ActionEvent)]
    assert [e.label for e in acts][-2:] == ["x", None]
    assert any(e.label == "x" and e.t > gaps[0].t_to for e in acts)


def test_device_reset_restarts_windows():
    s = synthetic_session([("x", 3)], seed=4)
    half = len(s.samples) // 2
    p = StreamPipeline(AxisModel())
    events = []
    for f in _frames(s.samples[:half]):
        events += p.feed(f)
    for f in _frames(s.samples[half:], t0_us=500_000, seq0=1):  # rebooted: seq and time restart
        events += p.feed(f)
    assert any(isinstance(e, GapEvent) and e.cause in ("reset", "time") for e in events)


def test_mismatched_device_is_a_clear_error():
    from c3t_edge.protocol import ChannelKind, ChannelSpec, ChannelUnit
    acc_only = default_imu_info()
    acc_only = type(acc_only)(**{**{f: getattr(acc_only, f) for f in acc_only.__slots__},
                                 "channels": tuple(ChannelSpec(ChannelKind.ACC, a, ChannelUnit.G, 16 / 32768, 16)
                                                   for a in range(3))})
    p = StreamPipeline(AxisModel())
    with pytest.raises(DeviceMismatchError, match="gx is missing"):
        p.feed(wire(encode_info_frame(0, 0, acc_only)))


def test_window_reports_and_config():
    s = synthetic_session([("z", 3)], seed=5)
    p = StreamPipeline(AxisModel(), config=PipelineConfig(report_windows=True))
    events = run_stream(p, session_stream(s))
    windows = [e for e in events if e.__class__.__name__ == "WindowResult"]
    assert len(windows) == p.summary().windows > 0
    assert any(w.active and w.top_label == "z" for w in windows)
    assert any(not w.active for w in windows)
    d = windows[0].as_dict()
    assert d["type"] == "window" and set(d) >= {"t", "window", "active", "moving_fraction", "state"}


def test_scoring_counts_false_extra_and_missed():
    truth = [TruthSegment("a", 1.0, 3.0), TruthSegment("b", 6.0, 8.0), TruthSegment("c", 11.0, 12.0)]
    events = [{"t": 3.5, "label": "a"}, {"t": 4.0, "label": "a"}, {"t": 5.0, "label": "x"},
              {"t": 8.5, "label": "c"}, {"t": 9.5, "label": None}]
    s = score_events(events, truth, slack_s=1.0)
    assert (s.n_true, s.detected, s.correct, s.false_events, s.extra_events) == (3, 2, 1, 1, 1)
    assert s.accuracy == pytest.approx(1 / 3)


def test_runtime_path_never_imports_torch():
    code = (
        "import sys, c3t_edge.cli as cli, c3t_edge.runtime, c3t_edge.runtime.runner, c3t_edge.runtime.sessions\n"
        "from c3t_edge.commands import stream, replay, demo\n"
        "cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_auto_decoder_picks_binary_or_text_for_any_chunking():
    from c3t_edge.protocol import SampleBatch
    from c3t_edge.runtime.autodetect import AutoDecoder

    s = synthetic_session([("x", 1)], rest_s=1.0)
    binary = b"".join(d for _, d in session_stream(s))
    text = b"".join(",".join(f"{v:.4f}" for v in row).encode() + b"\r\n" for row in s.samples)
    text = b"\r\nc3t-imu-sim ready\r\n" + text  # a banner, as sketches print
    for data, mode in ((binary, "binary"), (text, "text")):
        for step in (1, 33, len(data)):
            dec = AutoDecoder(50.0, text_channels=6)
            items = []
            for i in range(0, len(data), step):
                items += dec.feed(data[i:i + step])
            items += dec.finish()
            assert dec.mode == mode
            n = sum(len(b) for b in items if isinstance(b, SampleBatch))
            assert n == len(s.samples) and dec.stats.samples == n
    dec = AutoDecoder(50.0)
    for _ in range(100):
        assert dec.feed(b"\x13garbage line that is not numbers\n" * 50) == []
    assert dec.mode is None and all(len(v) <= 1000 for v in dec._pending.values())
