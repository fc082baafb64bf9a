"""`replay --speed X` reaches the pacing: the run of a short recording at 0.25x lasts at least four times
its recorded span (a lower bound that pacing sleeps guarantee, however busy the machine), where 1x
would end after about one span. The exact pacing arithmetic is checked on a virtual clock in
tests/test_transports.py."""

from __future__ import annotations

import json

from _runtime import require_default_bundle, synthetic_session

from c3t_edge.cli import main as cli_main
from c3t_edge.recording import RecordingWriter
from c3t_edge.runtime.sessions import session_stream

START = 1.75e9


def test_replay_speed_reaches_the_pacing(tmp_path, capsys):
    require_default_bundle()
    frames = session_stream(synthetic_session([("x", 0.4)], rest_s=0.2), samples_per_frame=5)
    path = tmp_path / "short.c3trec"
    t0 = frames[0][0]
    with RecordingWriter(path, port="sim", start_wall_time_s=START, fsync_interval_s=None) as writer:
        for t, data in frames:
            writer.write_chunk(data, START + t - t0)
    span = frames[-1][0] - t0
    assert 0.3 < span < 3
    assert cli_main(["replay", str(path), "--speed", "0.25", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["type"] == "summary" and summary["frames"] == len(frames)
    assert summary["wall_seconds"] >= 0.97 * span / 0.25, (summary["wall_seconds"], span)
