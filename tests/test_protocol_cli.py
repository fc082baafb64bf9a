"""``c3t-edge decode``: frames or text lines from a file, stdin or a recording -> one line per sample."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from _firmware import run_sim, simulator, write_csv

from c3t_edge.commands import decode
from c3t_edge.errors import C3TEdgeError

DATA = np.array([[0.5, -0.25, 1.0, 10.0, -20.0, 30.0], [-1.0, 0.0, 0.125, 0.5, 0.0, -100.0]] * 6)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    sim = simulator(tmp_path_factory)
    d = tmp_path_factory.mktemp("decode")
    csv = write_csv(d / "s.csv", DATA)
    (d / "s.bin").write_bytes(run_sim(sim, "--csv", str(csv)))
    (d / "bad.bin").write_bytes(
        run_sim(sim, "--csv", str(csv), "--samples-per-frame", "2", "--corrupt-every", "2")
    )
    (d / "s.txt").write_bytes(run_sim(sim, "--csv", str(csv), "--text"))
    return {"bin": d / "s.bin", "bad": d / "bad.bin", "txt": d / "s.txt", "dir": d}


def run_decode(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    decode.add_arguments(parser)
    rc = decode.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_plain_lines(files, capsys) -> None:
    rc, out, err = run_decode([str(files["bin"])], capsys)
    rows = np.array([[float(v) for v in line.split()] for line in out.splitlines()])
    assert rc == 0 and rows.shape == (12, 7)
    np.testing.assert_allclose(rows[:, 0], np.arange(12) / 50.0)
    np.testing.assert_allclose(rows[:, 1:], DATA, atol=0.031)
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("decode: frames=4 samples=12 corrupt=0 lost=0")


def test_json_lines_and_summary(files, capsys) -> None:
    rc, out, err = run_decode([str(files["bad"]), "--json"], capsys)
    objs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and set(objs[0]) == {"t", "ax", "ay", "az", "gx", "gy", "gz"}
    assert [o["t"] for o in objs] == pytest.approx([0.0, 0.02, 0.08, 0.1, 0.16, 0.18])
    assert objs[0]["ax"] == 0.5 and objs[0]["gz"] == pytest.approx(30.0, abs=0.031)
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["device_info"]["channels"][0] == {
        "name": "ax",
        "unit": "g",
        "scale": 16 / 32768,
        "range": 16.0,
    }
    assert lines[-1]["summary"] | {} == {**lines[-1]["summary"], "samples": 6, "corrupt": 3, "lost": 2}


def test_text_mode(files, capsys) -> None:
    rc, out, err = run_decode([str(files["txt"]), "--text", "--json", "--rate", "100"], capsys)
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 12 and objs[1]["t"] == pytest.approx(0.01)
    assert json.loads(err.splitlines()[-1])["summary"]["samples"] == 12


def test_stdin_and_recording(files, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(files["bin"].read_bytes())))
    rc, out, _ = run_decode(["-"], capsys)
    assert rc == 0 and len(out.splitlines()) == 12
    from c3t_edge import recording

    path = files["dir"] / "s.c3trec"
    data = files["bin"].read_bytes()
    with recording.RecordingWriter(path, port="replay://test") as w:
        for i in range(0, len(data), 50):
            w.write_chunk(data[i : i + 50], host_time_s=w.start_wall_time_s + i / 1000)
    rc, out2, _ = run_decode([str(path)], capsys)
    assert out2 == out


def test_binary_decoder_hints_at_text_mode(files, capsys) -> None:
    rc, out, err = run_decode([str(files["txt"])], capsys)
    assert out == "" and "--text" in err


def test_missing_file_is_one_clean_error(capsys) -> None:
    with pytest.raises(C3TEdgeError, match="cannot read"):
        run_decode(["/nonexistent/stream.bin"], capsys)


def test_through_the_real_command_line(files) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "c3t_edge", "decode", str(files["bin"]), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 12
    bad = subprocess.run(
        [sys.executable, "-m", "c3t_edge", "decode", "/nonexistent"], capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
