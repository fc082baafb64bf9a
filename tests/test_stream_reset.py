"""Device-reset detection in the pipeline: a device that reboots mid-stream (a new boot id in its
DEVICE_INFO, sequence numbers from 1 again) restarts windows and smoothing even when its clock
happens to continue seamlessly, so no window ever mixes samples from before and after the reboot."""

from __future__ import annotations

import numpy as np
from _runtime import AxisModel, synthetic_session
from test_runtime import _frames

from c3t_edge.protocol.frames import default_imu_info, encode_info_frame, wire
from c3t_edge.runtime import ActionEvent, GapEvent, StreamPipeline


def test_a_reboot_with_a_seamless_clock_is_still_a_reset():
    s = synthetic_session([("x", 4)], seed=5, rest_s=2)
    half = (len(s.samples) // 2) // 10 * 10  # a frame boundary in the middle of the action
    p = StreamPipeline(AxisModel())
    events = []
    for f in _frames(s.samples[:half]):
        events += p.feed(f)
    assert not [e for e in events if isinstance(e, GapEvent)]
    # rebooted: new boot id, sequence from 1, and a clock that by chance continues where it was
    t0_us = 1_000_000 + int(half * 1e6 / 50.0)
    rebooted = wire(encode_info_frame(0, t0_us, default_imu_info(50.0, boot_id=2)))
    events += p.feed(rebooted)
    for f in _frames(s.samples[half:], t0_us=t0_us, seq0=1, info=False):
        events += p.feed(f)
    gaps = [e for e in events if isinstance(e, GapEvent)]
    assert [g.cause for g in gaps] == ["reset"] and not gaps[0].filled
    assert p.summary().resets == 1
    # the action in progress was cut at the reboot (ended, no label), then recognised afresh
    acts = [e for e in events if isinstance(e, ActionEvent)]
    assert [e.label for e in acts] == ["x", None, "x"]
    assert acts[1].t == gaps[0].t_from  # ended at the last sample before the reboot
    assert acts[2].t >= gaps[0].t_to + 99 / 50.0  # a full window of post-reboot samples first
    assert np.isclose(gaps[0].t_to - gaps[0].t_from, 1 / 50.0)
