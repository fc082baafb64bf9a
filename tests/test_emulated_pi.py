"""The runtime on an emulated Raspberry Pi OS (64-bit Debian bookworm, arm64, under qemu-user).

`scripts/emulate_pi.sh` builds the arm64 root once (debootstrap, cached under .cache/pi-root/: the
first run of this file takes several minutes, later runs seconds), installs the checkout into it
with `pip install .` (aarch64 wheels of numpy and onnxruntime), and runs the command there. The test
replays the shipped demo recording inside (on the Raspberry Pi 5's core and on the Pi 4's) and on the
host and requires the same records: every event and every window's decision, with the same
probabilities (4 decimals, the last may differ by one). Timings are not compared (emulated time is not
Pi time).

Needs root and the Debian packages debootstrap, qemu-user-static and binfmt-support (CI installs
them and runs as root); without them the test fails and says what is missing, it is never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "emulate_pi.sh"
RECORDING = ROOT / "c3t_edge" / "assets" / "demo" / "wrist_session.c3trec"
TOOLS = ("debootstrap", "qemu-aarch64-static", "update-binfmts", "chroot")
#: per-run figures that depend on the machine, not on what was recognised
MACHINE_DEPENDENT = {"latency_ms", "wall_seconds", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
                     "first_window_after_s", "max_rss_mb", "ready_after_s"}


def _require_emulator() -> None:
    if os.geteuid() != 0:
        pytest.fail("the emulated Raspberry Pi needs root (debootstrap, binfmt_misc, chroot): run the tests as root")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install debootstrap qemu-user-static binfmt-support")


def _records(stdout: str) -> list[dict]:
    """The JSON lines of a replay, without the machine-dependent figures."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in MACHINE_DEPENDENT} for row in rows]


def _same(actual: dict, expected: dict) -> bool:
    """Equal records; probabilities (printed with 4 decimals) may differ by one unit in the last decimal,
    as arm64 and x86 kernels sum in different orders (about 1e-7 apart before rounding)."""
    if actual.keys() != expected.keys():
        return False
    for key, want in expected.items():
        got = actual[key]
        if isinstance(want, float) and isinstance(got, float):
            if abs(got - want) > 1.5e-4:
                return False
        elif got != want:
            return False
    return True


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a72"])  # Pi 5, Pi 4: onnxruntime picks other int8 kernels
def test_replay_inside_the_emulated_pi_gives_the_host_events(cpu, precision):
    _require_emulator()
    args = ["replay", "--json", "--windows", "--as-fast-as-possible", "--precision", precision, str(RECORDING)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "C3T_PI_CPU": cpu}
    host = subprocess.run([sys.executable, "-m", "c3t_edge", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert host.returncode == 0, host.stderr
    # first call: debootstrap + pip install inside (minutes); uname -m shows which machine ran it
    pi = subprocess.run(["bash", str(SCRIPT), "bash", "-c", 'uname -m >&2 && exec c3t-edge "$@"', "-", *args],
                        capture_output=True, text=True, env=env, timeout=1800, cwd=ROOT)
    assert pi.returncode == 0, f"emulate_pi.sh failed:\n{pi.stderr[-3000:]}"
    assert "aarch64" in pi.stderr.splitlines(), f"not run on arm64:\n{pi.stderr[-2000:]}"
    want, got = _records(host.stdout), _records(pi.stdout)
    assert [r["type"] for r in got] == [r["type"] for r in want]
    events = [r for r in want if r["type"] in ("action", "no_action")]
    assert len(events) >= 16, "the demo recording should give at least its 16 actions' events"
    for expected, actual in zip(want, got, strict=True):
        assert _same(actual, expected), f"emulated Pi {actual} != host {expected}"
    summary = got[-1]
    assert summary["type"] == "summary" and summary["windows"] > 100 and summary["torch_imported"] is False
