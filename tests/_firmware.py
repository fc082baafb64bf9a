"""Helpers for the protocol, firmware and simulator tests: build the C side, read the test vectors.

The C code is compiled here, by the test suite, with the compiler of the machine (no prebuilt
binaries live in the repository). Everything is built once per test session into a temporary
directory, so tests never write into the source tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from c3t_edge.protocol.cobs import CobsDecodeError, cobs_decode, cobs_encode
from c3t_edge.protocol.crc import crc16
from c3t_edge.protocol.frames import (
    check_crc,
    default_imu_info,
    encode_command_frame,
    encode_event_frame,
    encode_imu_frame,
    encode_info_frame,
    parse_header,
    wire,
)

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_bridge"
PROTOCOL_MD = FIRMWARE / "PROTOCOL.md"
UTD_INERTIAL = ROOT.parent / "shared" / "datasets" / "utd-mhad" / "Inertial"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def require_compiler() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make on this machine: the C side cannot be built")
    return cc


@lru_cache(maxsize=1)
def _build(build_dir: str) -> Path:
    """``make`` the firmware bridge into ``build_dir`` (outside the source tree)."""
    out = Path(build_dir)
    # Build from a copy so that a stale or foreign build/ in the checkout cannot be picked up.
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(FIRMWARE, src, ignore=shutil.ignore_patterns("build"))
    proc = subprocess.run(
        ["make", "-C", str(src), f"CC={require_compiler()}"], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise AssertionError(f"make -C firmware_bridge failed:\n{proc.stdout}\n{proc.stderr}")
    return src / "build"


def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_compiler()
    base = tmp_path_factory.getbasetemp() / "firmware_build"
    base.mkdir(exist_ok=True)
    return _build(str(base))


def simulator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dir(tmp_path_factory) / "c3t-imu-sim"


def run_sim(sim: Path, *args: str, input: bytes | None = None, timeout: float = 60) -> bytes:
    proc = subprocess.run([str(sim), *args], input=input, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


# ----------------------------------------------------------------------------------- test vectors
_VECTOR_LINE = re.compile(r"^(V\d+)\s+(.+?)\s+->\s+(.+?)\s*$")


def protocol_vectors() -> list[tuple[str, str, str]]:
    """``(id, input, expected)`` from the fenced test-vector block of PROTOCOL.md."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    block = text.split("<!-- test-vectors:begin -->", 1)[1].split("<!-- test-vectors:end -->", 1)[0]
    vectors = [m.groups() for line in block.splitlines() if (m := _VECTOR_LINE.match(line.strip()))]
    assert vectors, "no test vectors found in PROTOCOL.md"
    return vectors


def _fields(tokens: list[str]) -> dict[str, str]:
    return dict(t.split("=", 1) for t in tokens)


def _hex(b: bytes) -> str:
    return b.hex() if b else "-"


def _unhex(s: str) -> bytes:
    return b"" if s == "-" else bytes.fromhex(s)


def python_vector(spec: str) -> str:
    """What the Python implementation produces for one vector input (same syntax as the C tool)."""
    op, *rest = spec.split()
    f = _fields(rest[1:] if op in ("crc", "cobs", "uncobs", "parse") else rest)
    seq = int(f.get("seq", "0"), 0)
    t = int(f.get("t", "0"), 0)
    if op == "crc":
        return f"{crc16(_unhex(rest[0])):04x}"
    if op == "cobs":
        return _hex(cobs_encode(_unhex(rest[0])))
    if op == "uncobs":
        try:
            return _hex(cobs_decode(_unhex(rest[0])))
        except CobsDecodeError:
            return "error"
    if op == "imu":
        ch = int(f.get("ch", "6"))
        samples = np.array([int(v, 0) for v in f["samples"].split(",")]).reshape(-1, ch)
        return wire(encode_imu_frame(seq, t, samples)).hex()
    if op == "info":
        info = default_imu_info(
            float(f.get("rate", "50")),
            float(f.get("acc", "16")),
            float(f.get("gyro", "2000")),
            samples_per_frame=int(f.get("spf", "10")),
            name=f.get("name", ""),
            boot_id=int(f.get("boot_id", "1"), 0),
            device_id=int(f.get("device_id", "0"), 0),
        )
        return wire(encode_info_frame(seq, t, info)).hex()
    if op == "event":
        code, detail = int(f.get("code", "0"), 0), int(f.get("detail", "0"), 0)
        return wire(encode_event_frame(seq, t, code, detail, f.get("msg", ""))).hex()
    if op == "command":
        return wire(encode_command_frame(seq, int(f["code"], 0), _unhex(f.get("args", "-")))).hex()
    if op == "parse":
        data = _unhex(rest[0])
        try:
            raw = cobs_decode(data.rstrip(b"\x00"))
        except CobsDecodeError:
            return "error"
        if not check_crc(raw) or len(raw) < 13:
            return "error"
        version, ftype, seq, _ = parse_header(raw)
        if ftype != 0x10:
            return "error"
        if version != 1:  # PROTOCOL.md 3.4: dropped, answered with an UNSUPPORTED event
            return f"unsupported version={version}"
        return f"code={raw[10]} seq={seq} args={_hex(raw[11:-2])}"
    raise ValueError(f"unknown vector operation {op!r}")


def c_vectors(tool: Path, specs: list[str]) -> list[str]:
    """What the C library produces for the vector inputs (one c3t-proto-tool run)."""
    proc = subprocess.run(
        [str(tool)], input="\n".join(specs) + "\n", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(specs), proc.stdout
    return lines


# ----------------------------------------------------------------------------------- real data
def utd_trials(limit: int | None = None) -> list[Path]:
    """UTD-MHAD inertial trials (``d_iner``, (T, 6), g and deg/s, 50 Hz), or a skip with the reason."""
    if not UTD_INERTIAL.is_dir():
        pytest.skip(f"UTD-MHAD inertial folder not found at {UTD_INERTIAL}: real-data tests skipped")
    files = sorted(UTD_INERTIAL.glob("a*_s*_t*_inertial.mat"))
    if not files:
        pytest.skip(f"no a*_s*_t*_inertial.mat files in {UTD_INERTIAL}")
    return files if limit is None else files[:: max(1, len(files) // limit)][:limit]


def load_inertial(path: Path) -> np.ndarray:
    scipy_io = pytest.importorskip("scipy.io", reason="scipy is needed to read UTD-MHAD .mat files")
    return np.asarray(scipy_io.loadmat(str(path))["d_iner"], dtype=np.float64)


def write_csv(path: Path, samples: np.ndarray, header: bool = True) -> Path:
    with open(path, "w", encoding="ascii") as f:
        if header:
            f.write("ax,ay,az,gx,gy,gz\n")
        np.savetxt(f, samples, delimiter=",", fmt="%.9g")
    return path
