"""The host-built device simulator (firmware_bridge/build/c3t-imu-sim) against the host decoder."""

from __future__ import annotations

import os
import subprocess
import time
import tty

import numpy as np
import pytest
from _firmware import load_inertial, run_sim, simulator, utd_trials, write_csv

from c3t_edge.protocol import (
    CommandCode,
    DeviceEvent,
    DeviceInfo,
    EventCode,
    FrameDecoder,
    SampleBatch,
    TextDecoder,
    command_bytes,
)
from c3t_edge.protocol.frames import encode_command_frame, wire


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    return simulator(tmp_path_factory)


@pytest.fixture(scope="module")
def utd(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, np.ndarray, object]]:
    """About 30 real trials (every action, several subjects) as CSV files."""
    out = tmp_path_factory.mktemp("utd")
    trials = []
    for path in utd_trials(limit=30):
        data = load_inertial(path)
        trials.append((path.stem, data, write_csv(out / f"{path.stem}.csv", data)))
    return trials


@pytest.fixture(scope="module")
def one_trial(utd) -> tuple[np.ndarray, object]:
    _, data, csv = utd[0]
    return data, csv


def decode(data: bytes, decoder=None) -> tuple[list, FrameDecoder]:
    dec = decoder or FrameDecoder()
    return dec.feed(data) + dec.finish(), dec


def batches(items) -> list[SampleBatch]:
    return [i for i in items if isinstance(i, SampleBatch)]


def concat(items) -> tuple[np.ndarray, np.ndarray]:
    b = batches(items)
    return np.concatenate([x.samples for x in b]), np.concatenate([x.t for x in b])


@pytest.mark.parametrize(("acc_range", "gyro_range"), [(16.0, 2000.0), (8.0, 1000.0)])
def test_real_trials_round_trip_within_one_int16_step(sim, utd, acc_range, gyro_range) -> None:
    for name, data, csv in utd:
        stream = run_sim(
            sim, "--csv", str(csv), "--acc-range", str(acc_range), "--gyro-range", str(gyro_range)
        )
        items, dec = decode(stream)
        samples, t = concat(items)
        assert samples.shape == data.shape, name
        step = np.array([acc_range / 32768] * 3 + [gyro_range / 32768] * 3)
        assert np.all(np.abs(samples - data) <= step * 1.0001), name
        np.testing.assert_allclose(t, np.arange(len(data)) / 50.0, atol=1e-6)
        assert dec.stats.corrupt == dec.stats.lost == dec.stats.malformed == 0
        assert dec.info.sample_rate_hz == 50.0 and dec.info.name == "c3t-imu-sim"


def test_real_trial_in_text_mode(sim, one_trial) -> None:
    data, csv = one_trial
    text = run_sim(sim, "--csv", str(csv), "--text")
    assert text.startswith(b"\r\n") and text.count(b"\r\n") == len(data) + 1
    dec = TextDecoder(sample_rate_hz=50)
    items = dec.feed(text) + dec.finish()
    samples, t = concat(items)
    step = np.array([16 / 32768] * 3 + [2000 / 32768] * 3)
    assert samples.shape == data.shape
    assert np.all(np.abs(samples - data) <= step + 1e-5)
    np.testing.assert_allclose(t, np.arange(len(data)) / 50.0)


@pytest.mark.parametrize("spf", [1, 7, 19, 84])
def test_samples_per_frame(sim, one_trial, spf) -> None:
    data, csv = one_trial
    items, dec = decode(run_sim(sim, "--csv", str(csv), "--samples-per-frame", str(spf)))
    samples, _ = concat(items)
    assert samples.shape == data.shape
    assert dec.stats.frames == 2 + -(-len(data) // spf)  # DEVICE_INFO, BOOT event, sample frames
    assert dec.info.max_samples_per_frame == spf


def test_drop_every_counts_lost_frames(sim, one_trial) -> None:
    data, csv = one_trial
    n_frames = -(-len(data) // 10)
    items, dec = decode(run_sim(sim, "--csv", str(csv), "--drop-every", "3"))
    dropped = [k for k in range(1, n_frames + 1) if k % 3 == 0]
    trailing = 1 if n_frames % 3 == 0 else 0  # a loss at the very end cannot be seen
    assert dec.stats.lost == len(dropped) - trailing and dec.stats.corrupt == 0
    keep = np.concatenate(
        [np.arange((k - 1) * 10, min(k * 10, len(data))) for k in range(1, n_frames + 1) if k % 3]
    )
    samples, t = concat(items)
    np.testing.assert_allclose(t, keep / 50.0, atol=1e-6)
    assert all(b.lost_before == 1 for b in batches(items)[1:])


def test_corrupt_every_counts_corrupt_frames(sim, one_trial) -> None:
    data, csv = one_trial
    n_frames = -(-len(data) // 10)
    items, dec = decode(run_sim(sim, "--csv", str(csv), "--corrupt-every", "4"))
    assert dec.stats.corrupt == n_frames // 4
    assert dec.stats.lost == n_frames // 4 - (1 if n_frames % 4 == 0 else 0)
    samples, _ = concat(items)
    assert len(samples) == len(data) - sum(
        min(10, len(data) - (k - 1) * 10) for k in range(4, n_frames + 1, 4)
    )


def test_reset_at_restarts_sequence_time_and_boot(sim, one_trial) -> None:
    data, csv = one_trial
    items, dec = decode(run_sim(sim, "--csv", str(csv), "--reset-at", "5"))
    assert dec.stats.resets == 1 and dec.stats.lost == 0 and dec.stats.duplicates == 0
    infos = [i for i in items if isinstance(i, DeviceInfo)]
    assert [i.boot_id for i in infos] == [1, 2] and all(i.boot for i in infos)
    first, second = batches(items)
    assert (first.boot, second.boot, len(first)) == (0, 1, 50)
    np.testing.assert_allclose(second.t, np.arange(len(data) - 50) / 50.0, atol=1e-6)
    assert second.seq == 2  # DEVICE_INFO 0, BOOT event 1, then samples
    boots = [i for i in items if isinstance(i, DeviceEvent) and i.code == EventCode.BOOT]
    assert len(boots) == 2


def test_sequence_and_time_wraps(sim, one_trial) -> None:
    data, csv = one_trial
    stream = run_sim(sim, "--csv", str(csv), "--seq-start", "4294967290", "--time-start-us", "4294000000")
    items, dec = decode(stream)
    assert dec.stats.seq_wraps == 1 and dec.stats.time_wraps == 1 and dec.stats.lost == 0
    _, t = concat(items)
    np.testing.assert_allclose(t, 4294.0 + np.arange(len(data)) / 50.0, atol=1e-6)


def test_info_every(sim, one_trial) -> None:
    _, csv = one_trial
    items, dec = decode(run_sim(sim, "--csv", str(csv), "--info-every", "5"))
    infos = [i for i in items if isinstance(i, DeviceInfo)]
    assert len(infos) > 2 and infos[0].boot and not any(i.boot for i in infos[1:])
    assert dec.stats.resets == 0


def test_out_to_a_file_replaces_it(sim, one_trial, tmp_path) -> None:
    data, csv = one_trial
    out = tmp_path / "stream.bin"
    out.write_bytes(b"\xff" * 100_000)  # longer than the stream: must not survive
    run_sim(sim, "--csv", str(csv), "--out", str(out))
    assert out.read_bytes() == run_sim(sim, "--csv", str(csv))


def test_stdin_without_header_and_rate(sim) -> None:
    csv = b"0.5,0,-0.5,10,20,30\n1,0,-1,-10,-20,-30\n"
    items, dec = decode(run_sim(sim, "--csv", "-", "--rate", "200", input=csv))
    samples, t = concat(items)
    np.testing.assert_allclose(samples, [[0.5, 0, -0.5, 10, 20, 30], [1, 0, -1, -10, -20, -30]], atol=0.031)
    np.testing.assert_allclose(t, [0, 0.005])
    assert dec.info.sample_rate_hz == 200


def test_loop_repeats_with_running_time(sim) -> None:
    proc = subprocess.Popen(
        [str(sim), "--csv", "-", "--loop", "--samples-per-frame", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    proc.stdin.write(b"ax,ay,az,gx,gy,gz\n0.1,0,0,0,0,0\n0.2,0,0,0,0,0\n")
    proc.stdin.close()
    data = proc.stdout.read(30 * 40)
    proc.kill()
    proc.wait()
    items, _ = decode(data)
    samples, t = concat(items)
    assert len(samples) >= 20
    np.testing.assert_allclose(samples[:20, 0], [0.1, 0.2] * 10, atol=1e-3)
    np.testing.assert_allclose(t[:20], np.arange(20) / 50.0, atol=1e-6)


def test_speed_and_realtime_pacing(sim, tmp_path) -> None:
    csv = write_csv(tmp_path / "ten.csv", np.zeros((20, 6)))
    t0 = time.monotonic()
    run_sim(sim, "--csv", str(csv), "--speed", "4")  # 20 samples at 50 Hz = 0.4 s, 4x faster
    assert 0.07 <= time.monotonic() - t0 < 5
    t0 = time.monotonic()
    run_sim(sim, "--csv", str(csv), "--realtime", "--samples-per-frame", "5")
    assert 0.29 <= time.monotonic() - t0 < 5
    t0 = time.monotonic()
    run_sim(sim, "--csv", str(csv))
    assert time.monotonic() - t0 < 1


def test_speed_below_one_stretches_the_stream(sim, tmp_path) -> None:
    """--speed is applied, not read as 1x: at 0.25x the 0.38 s of device time (last frame of 20 samples
    at 50 Hz, frames of 10) take at least four times as long. Pacing sleeps until each frame is due,
    so this lower bound holds on any machine, however busy; a 1x pace would end after ~0.4 s."""
    csv = write_csv(tmp_path / "twenty.csv", np.zeros((20, 6)))
    t0 = time.monotonic()
    run_sim(sim, "--csv", str(csv), "--realtime")
    realtime = time.monotonic() - t0
    t0 = time.monotonic()
    run_sim(sim, "--csv", str(csv), "--speed", "0.25")
    slow = time.monotonic() - t0
    assert realtime >= 0.36 and slow >= 4 * 0.36, (realtime, slow)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "50"], "--csv"),
        (["--csv", "-", "--bogus"], "unknown option"),
        (["--csv", "-", "--samples-per-frame", "85"], "larger than"),
        (["--csv", "-", "--rate", "abc"], "expected a number"),
        (["--csv", "/nonexistent/x.csv"], "cannot open"),
    ],
)
def test_bad_options_fail_with_one_line(sim, args, message) -> None:
    proc = subprocess.run([str(sim), *args], input=b"", capture_output=True, timeout=10)
    assert proc.returncode != 0 and message in proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1


def test_bad_csv_row_names_its_line(sim) -> None:
    proc = subprocess.run([str(sim), "--csv", "-"], input=b"ax,ay,az,gx,gy,gz\n1,2,3\n", capture_output=True)
    assert proc.returncode == 2 and b"line 2" in proc.stderr


def test_help(sim) -> None:
    out = run_sim(sim, "--help").decode()
    for option in (
        "--csv",
        "--rate",
        "--out",
        "--realtime",
        "--speed",
        "--text",
        "--samples-per-frame",
        "--loop",
        "--drop-every",
        "--corrupt-every",
        "--reset-at",
    ):
        assert option in out


def _read_until(fd: int, dec: FrameDecoder, want, timeout: float = 5.0) -> list:
    items: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        items += dec.feed(chunk)
        if want(items):
            return items
    raise AssertionError(f"timed out; got {items}")


def test_answers_host_commands_on_a_pty(sim, tmp_path) -> None:
    csv = write_csv(tmp_path / "cmd.csv", np.tile([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]], (40, 1)))
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    proc = subprocess.Popen(
        [str(sim), "--csv", str(csv), "--out", os.ttyname(slave), "--wait-start", "--hold", "--realtime"],
        stderr=subprocess.PIPE,
    )
    try:
        dec = FrameDecoder()

        def events(items, code):
            return [i for i in items if isinstance(i, DeviceEvent) and i.code == code]

        boot = _read_until(master, dec, lambda it: events(it, EventCode.BOOT))
        assert isinstance(boot[0], DeviceInfo)
        os.write(master, command_bytes(CommandCode.SEND_INFO, seq=1))
        got = _read_until(master, dec, lambda it: any(isinstance(i, DeviceInfo) for i in it))
        assert events(got, EventCode.ACK)[0].detail == CommandCode.SEND_INFO
        os.write(master, command_bytes(CommandCode.HELLO, seq=2, args=bytes([7])))  # host speaks up to 7
        got = _read_until(master, dec, lambda it: any(isinstance(i, DeviceInfo) for i in it))
        assert events(got, EventCode.ACK)[0].detail == CommandCode.HELLO  # device answers in version 1
        os.write(master, command_bytes(CommandCode.HELLO, seq=2, args=bytes([0])))
        got = _read_until(master, dec, lambda it: events(it, EventCode.NACK))
        assert "version" in events(got, EventCode.NACK)[0].message
        os.write(master, command_bytes(0x55, seq=3))
        got = _read_until(master, dec, lambda it: events(it, EventCode.NACK))
        assert events(got, EventCode.NACK)[0].detail == 0x55
        # a START in version 2, which this device does not speak: dropped, and the device says so
        os.write(master, wire(encode_command_frame(4, CommandCode.START, version=2)))
        got = _read_until(master, dec, lambda it: events(it, EventCode.UNSUPPORTED))
        unsupported = events(got, EventCode.UNSUPPORTED)[0]
        assert unsupported.detail == 2 and "version" in unsupported.message and unsupported.is_error
        assert not events(got, EventCode.ACK) and not events(got, EventCode.STARTED) and not batches(got)
        os.write(master, b"\x12\x34garbage\x00" + command_bytes(CommandCode.START, seq=4))
        got = _read_until(master, dec, lambda it: sum(len(b) for b in batches(it)) >= 20)
        assert events(got, EventCode.STARTED)
        samples, _ = concat(got)
        np.testing.assert_allclose(samples[:, 2], 1.0)
        os.write(master, command_bytes(CommandCode.STOP, seq=5))
        got = _read_until(master, dec, lambda it: events(it, EventCode.STOPPED))
        assert dec.stats.corrupt == 0 and dec.stats.lost == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
