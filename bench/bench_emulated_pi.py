"""arm64 instructions per window on the emulated Raspberry Pi: the bundle's ONNX files compared.

    sudo .venv/bin/python bench/bench_emulated_pi.py [--model default] [--windows 10] [--cpu cortex-a76,cortex-a72]

Emulated timings are not Raspberry Pi timings: qemu-user translates each arm64 instruction into x86
code at a cost that differs per instruction class (a NEON multiply-accumulate costs many x86
instructions, an add one), so neither the milliseconds nor their ratios under qemu say how fast a Pi
is. What the emulator does know exactly is which arm64 instructions the Pi's software executes: this
bench counts them, inside onnxruntime, per window, for ``model.onnx`` (FP32) and ``model.int8.onnx``
(INT8) on each emulated core - cortex-a76 (Raspberry Pi 5: has the int8 dot-product instructions)
and cortex-a72 (Pi 4: has not), for which onnxruntime picks different kernels - and prints the
INT8/FP32 ratio. Instruction counts are not cycles either (a Cortex-A76 issues several simple
instructions per cycle, a load can stall): they compare the work, not the time.

How: ``scripts/emulate_pi.sh`` (root needed) runs this file with ``--child`` inside the root; the
child loads one file with onnxruntime on one thread, runs one warm-up window, calls libc's
``ctermid`` (a marker nothing else calls), runs N windows one by one, and calls ``ctermid`` again.
qemu logs every translated block (``-d in_asm``) and every block execution (``-d exec,nochain``)
whose address lies in onnxruntime's code (``-dfilter``: the executable mapping of
``onnxruntime_pybind11_state.so``) or at the marker, both found by a first, unlogged run (with
``QEMU_RESERVED_VA`` the addresses repeat from run to run; every run checks them). The log goes
through a FIFO to this process, which adds up the instruction counts of onnxruntime's blocks executed
between the two markers, and divides by N. Loading and session set-up are outside the markers (they
vary from run to run by a few percent: onnxruntime's hash tables). Not counted: numpy
(standardisation) and libc (memcpy), outside onnxruntime's mapping. The TFLite files are not run: the
emulated root has the runtime only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
SCRIPT = CHECKOUT / "scripts" / "emulate_pi.sh"
ORT_LIBRARY = "onnxruntime_pybind11_state"
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
#: qemu reserves this much guest address space up front, so libraries load at the same address every run
RESERVED_VA = "0x4000000000"


def child(model: str, precision: str, n_windows: int) -> None:
    """Inside the emulator: load, warm up, marker, ``n_windows`` windows, marker; print the addresses."""
    import ctypes

    import numpy as np

    from c3t_edge import load_bundle

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_bundle import windows

    bundle = load_bundle(model, precision=precision, engine="onnxruntime", threads=1)
    data = bundle.standardize(windows(n_windows + 1)[0]).astype(np.float32)
    backend = bundle._backend
    backend.run(data[:1])  # warm-up: one-time allocations and kernel selection
    os.ctermid()
    for i in range(1, n_windows + 1):
        backend.run(data[i:i + 1])
    os.ctermid()
    with open("/proc/self/maps", encoding="ascii") as maps:
        spans = [line.split()[0] for line in maps if ORT_LIBRARY in line and " r-xp " in line]
    marker = ctypes.cast(ctypes.CDLL(None).ctermid, ctypes.c_void_p).value
    print(json.dumps({"code": spans, "marker": f"{marker:x}"}))


class InstructionCounter(threading.Thread):
    """Reads a qemu ``in_asm,exec,nochain`` log from a FIFO; ``total``: arm64 instructions executed in
    blocks other than the marker's, between the first and the second execution of the marker."""

    def __init__(self, fifo: Path, marker: int):
        super().__init__(daemon=True)
        self.fifo = fifo
        self.marker = marker
        self.total = 0
        self.markers_seen = 0
        self.opened = False

    def run(self) -> None:
        sizes: dict[int, int] = {}  # block address -> instructions in the block
        block_pc = None
        with open(self.fifo, "rb") as log:
            self.opened = True
            for line in log:
                if line.startswith(b"Trace "):  # Trace CPU: HOSTPTR [CS_BASE/PC/FLAGS/CFLAGS]
                    pc = int(line.split(b"/", 2)[1], 16)
                    if pc == self.marker:
                        self.markers_seen += 1
                    elif self.markers_seen == 1:
                        self.total += sizes[pc]
                elif line.startswith(b"IN:"):
                    block_pc = None
                elif line.startswith(b"0x") and b":  " in line:  # one instruction of the block
                    if block_pc is None:
                        block_pc = int(line.split(b":", 1)[0], 16)
                        sizes[block_pc] = 0
                    sizes[block_pc] += 1


def emulated(args: list[str], cpu: str, qemu_log: dict[str, str] | None = None) -> dict:
    """Run this file with ``--child ARGS`` inside the emulated Pi; the child's JSON line."""
    qemu_env = {"QEMU_RESERVED_VA": RESERVED_VA, **(qemu_log or {})}
    inner = ["env", *[f"{k}={v}" for k, v in qemu_env.items()],  # the child python only, not the shells
             "python", str(Path(__file__).resolve()), "--child", *args]
    env = {**os.environ, "C3T_PI_CPU": cpu, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(SCRIPT), *inner], capture_output=True, text=True, env=env, cwd=CHECKOUT)
    if proc.returncode != 0:
        raise SystemExit(f"emulated run failed ({' '.join(args)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count(args: list[str], cpu: str, where: dict, workdir: Path) -> int | None:
    """arm64 instructions executed in onnxruntime between the child's markers, or None when the
    addresses in ``where`` (from an earlier run) were not this run's."""
    fifo = workdir / "qemu.log"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    marker = int(where["marker"], 16)
    counter = InstructionCounter(fifo, marker)
    counter.start()
    start, end = where["code"][0].split("-")
    qemu_log = {"QEMU_LOG": "in_asm,exec,nochain", "QEMU_LOG_FILENAME": str(fifo),
                "QEMU_DFILTER": f"0x{start}..0x{int(end, 16) - 1:x},0x{marker:x}..0x{marker + 3:x}"}
    try:
        result = emulated(args, cpu, qemu_log)
    finally:
        if not counter.opened:  # the child never opened the log: unblock the reader
            with open(fifo, "wb"):
                pass
        counter.join()
    if result != where:
        where.update(result)
        return None
    if counter.markers_seen != 2:
        raise SystemExit(f"expected 2 marker calls in the log, found {counter.markers_seen}")
    return counter.total


def per_window(model: str, precision: str, n_windows: int, cpu: str, workdir: Path) -> float:
    """Instructions per window for one file on one core (addresses found first; 3 tries)."""
    args = [model, precision, str(n_windows)]
    where = emulated(args, cpu)
    if len(where["code"]) != 1:
        raise SystemExit(f"expected one executable mapping of {ORT_LIBRARY}, found {where['code']}")
    for _ in range(3):
        total = count(args, cpu, where, workdir)
        if total is not None:
            return total / n_windows
    raise SystemExit("onnxruntime's address moved in every logged run; run again")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="bundle (default: the shipped one)")
    parser.add_argument("--windows", type=int, default=10, help="windows counted per file (default 10)")
    parser.add_argument("--cpu", default="cortex-a76,cortex-a72", help="emulated cores (default both Pi cores)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "PRECISION", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    results: dict = {"instructions_per_window": {}, "int8_over_fp32": {}}
    print(f"arm64 instructions executed inside onnxruntime per window (batch 1, 1 thread, {args.windows} windows), "
          "counted under qemu-user: emulated timings are not Pi timings and are not reported")
    with tempfile.TemporaryDirectory(dir=CHECKOUT / ".cache") as tmp:  # the checkout is visible inside
        for cpu in args.cpu.split(","):
            counts = {}
            for precision, name in FILES.items():
                counts[name] = per_window(args.model, precision, args.windows, cpu, Path(tmp))
                print(f"  {cpu:<11} {name:<16} {counts[name]:>14,.0f}", flush=True)
            ratio = counts[FILES["int8"]] / counts[FILES["fp32"]]
            print(f"  {cpu:<11} INT8/FP32 instructions per window: {ratio:.3f}")
            results["instructions_per_window"][cpu] = {k: round(v) for k, v in counts.items()}
            results["int8_over_fp32"][cpu] = round(ratio, 3)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
