"""Benchmark of the host decoder and the protocol's size budget.

    .venv/bin/python bench/bench_decoder.py [--samples 300000] [--repeat 5]

Prints (1) decoder throughput in samples/s for 6-channel frames of 10, 20 and 50 samples, fed as
one buffer, in 4096-byte reads (serial) and in 244-byte pieces (BLE notifications at MTU 247),
against numpy.frombuffer of the same payload bytes; (2) protocol overhead per sample at 50 and
200 Hz, what fits a 115200-baud link, and what fits one BLE notification at MTU 23 and 247.
Sample data: real UTD-MHAD inertial trials when ../shared/datasets/utd-mhad is present, else a
synthetic signal of the same ranges.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from c3t_edge.protocol import FrameDecoder, SampleBatch, default_imu_info
from c3t_edge.protocol.frames import encode_imu_frame, encode_info_frame, wire

UTD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "utd-mhad" / "Inertial"
BAUD_115200_BYTES_PER_S = 115200 / 10  # 8N1: 10 bits per byte
INFO = default_imu_info(50.0, 16.0, 2000.0)


def sample_data(n: int) -> tuple[np.ndarray, str]:
    """(n, 6) int16 counts at the default scales (16 g, 2000 deg/s)."""
    files = sorted(UTD.glob("a*_s*_t*_inertial.mat")) if UTD.is_dir() else []
    if files:
        import scipy.io  # bench only: the decoder itself never needs scipy

        parts, total = [], 0
        for f in files:
            parts.append(scipy.io.loadmat(str(f))["d_iner"])
            total += len(parts[-1])
            if total >= n:
                break
        data = np.concatenate(parts)
        source = f"UTD-MHAD inertial, {len(parts)} trials"
    else:
        t = np.arange(n) / 50.0
        data = np.stack([np.sin(t * (k + 1)) * (1.0 if k < 3 else 200.0) for k in range(6)], axis=1)
        source = "synthetic (UTD-MHAD not found)"
    data = np.resize(data, (n, 6))
    counts = np.clip(np.round(data / INFO.scales.astype(np.float64)), -32768, 32767).astype(np.int16)
    return counts, source


def build_stream(counts: np.ndarray, spf: int) -> tuple[bytes, bytes]:
    """The wire stream (DEVICE_INFO + sample frames) and the concatenated sample payload bytes."""
    parts = [wire(encode_info_frame(0, 0, INFO))]
    for k in range(len(counts) // spf):
        parts.append(wire(encode_imu_frame(k + 1, k * spf * 20000, counts[k * spf : (k + 1) * spf])))
    n = (len(counts) // spf) * spf
    return b"".join(parts), counts[:n].tobytes()


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def decode_all(stream: bytes, chunk: int | None) -> int:
    dec = FrameDecoder()
    n = 0
    if chunk is None:
        items = dec.feed(stream)
    else:
        items = []
        for i in range(0, len(stream), chunk):
            items += dec.feed(stream[i : i + chunk])
    for it in items:
        if isinstance(it, SampleBatch):
            n += len(it)
    assert dec.stats.corrupt == 0 and dec.stats.lost == 0
    return n


def throughput(n_samples: int, repeat: int) -> None:
    counts, source = sample_data(n_samples)
    print(f"Decoder throughput, 6-channel int16 frames, {n_samples} samples ({source}); best of {repeat}")
    print(f"{'spf':>4} {'feed':>16} {'samples/s':>12} {'MB/s':>7} {'frombuffer samples/s':>22} {'ratio':>7}")
    scales = INFO.scales
    for spf in (10, 20, 50):
        stream, payload = build_stream(counts, spf)
        n = len(payload) // 12

        def baseline(payload=payload) -> np.ndarray:
            return np.frombuffer(payload, dtype="<i2").reshape(-1, 6).astype(np.float32) * scales

        t_base = best_time(baseline, repeat)
        t_view = best_time(
            lambda payload=payload: np.frombuffer(payload, dtype="<i2").reshape(-1, 6).copy(), repeat
        )
        for label, chunk in (("one buffer", None), ("4096-byte reads", 4096), ("244-byte pieces", 244)):
            assert decode_all(stream, chunk) == n
            t = best_time(lambda stream=stream, chunk=chunk: decode_all(stream, chunk), repeat)
            if chunk is not None and chunk < 1000:
                # small pieces: time a fifth of the stream (the rate does not depend on the length)
                part = stream[: len(stream) // 5]
                n_part = decode_all(part, chunk)
                t = best_time(lambda part=part, chunk=chunk: decode_all(part, chunk), repeat) * n / n_part
            print(
                f"{spf:>4} {label:>16} {n / t:>12,.0f} {len(stream) / t / 1e6:>7.1f} {n / t_base:>22,.0f} "
                f"{t / t_base:>6.1f}x"
            )
        print(
            f"{'':>4} {'':>16} (numpy.frombuffer + float32 scaling = the decoder's output: {n / t_base:,.0f} "
            f"samples/s; frombuffer + copy alone: {n / t_view:,.0f} samples/s)"
        )
    stream, _ = build_stream(counts[:20000], 10)
    frames = [f + b"\x00" for f in stream.split(b"\x00")[:-1]]
    dec = FrameDecoder()
    dec.feed(frames[0])
    t0 = time.perf_counter()
    for f in frames[1:]:
        dec.feed(f)
    per_call = (time.perf_counter() - t0) / (len(frames) - 1)
    print(f"one 10-sample frame per feed() call (a live serial/BLE stream): {per_call * 1e6:.0f} us per call")
    print()


def wire_size(spf: int, counts: np.ndarray) -> float:
    """Mean bytes on the wire per frame of ``spf`` real samples (COBS + delimiter included)."""
    sizes = [len(wire(encode_imu_frame(k, 0, counts[k * spf : (k + 1) * spf]))) for k in range(50)]
    return float(np.mean(sizes))


def budget() -> None:
    counts, _ = sample_data(5000)
    print("Protocol overhead (6 channels, 12 payload bytes per sample; frame = 10 header + 2 count/channels")
    print("+ 2 CRC + COBS code bytes + 1 delimiter); 115200 baud 8N1 = 11520 bytes/s")
    print(
        f"{'spf':>4} {'bytes/frame':>11} {'bytes/sample':>12} {'overhead/sample':>15} "
        f"{'50 Hz B/s':>9} {'%115k2':>7} {'200 Hz B/s':>10} {'%115k2':>7} {'max Hz @115k2':>13} "
        f"{'latency@50Hz':>12}"
    )
    for spf in (1, 5, 10, 19, 20, 50, 84):
        size = wire_size(spf, counts)
        per = size / spf
        print(
            f"{spf:>4} {size:>11.1f} {per:>12.2f} {per - 12:>15.2f} {per * 50:>9.0f} "
            f"{100 * per * 50 / BAUD_115200_BYTES_PER_S:>6.1f}% {per * 200:>10.0f} "
            f"{100 * per * 200 / BAUD_115200_BYTES_PER_S:>6.1f}% {BAUD_115200_BYTES_PER_S / per:>13.0f} "
            f"{1000 * spf / 50:>10.0f}ms"
        )
    scales = INFO.scales.astype(np.float64)
    text = b"".join(
        (",".join(f"{v:.6f}" for v in row * scales) + "\r\n").encode()
        for row in counts[:1000].astype(np.float64)
    )
    per_text = len(text) / 1000
    load = BAUD_115200_BYTES_PER_S
    print(f"text mode (6 values '%.6f', comma, CRLF): {per_text:.1f} bytes/sample;", end=" ")
    print(f"50 Hz {per_text * 50:.0f} B/s ({100 * per_text * 50 / load:.1f}%),", end=" ")
    print(
        f"200 Hz {per_text * 200:.0f} B/s ({100 * per_text * 200 / load:.1f}%), max {load / per_text:.0f} Hz"
    )
    print()
    print("BLE notifications (payload = ATT MTU - 3). A frame may span notifications (byte stream);")
    print("'fits' = largest frame that travels in a single notification.")
    for mtu in (23, 247):
        payload = mtu - 3
        fit = max((n for n in range(1, 85) if wire_size(n, counts) <= payload), default=0)
        line = f"MTU {mtu:>3}: {payload} bytes/notification; "
        line += f"largest frame in one notification: {fit} samples" if fit else "no frame with a sample fits"
        line += f" (1 sample = {wire_size(1, counts):.0f} bytes)"
        print(line)
        for rate in (50, 200):
            spf = fit if fit else 10
            per = wire_size(spf, counts) / spf
            print(
                f"   {rate:>3} Hz at {spf} samples/frame: {per * rate:.0f} B/s = "
                f"{per * rate / payload:.1f} full notifications/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    throughput(args.samples, args.repeat)
    budget()


if __name__ == "__main__":
    main()
