"""Decoded frames, in stream order -> device descriptions, sample batches and events.

:class:`FrameSequencer` is the decoder's state machine: it follows sequence numbers (loss, the
32-bit wrap, duplicates, device resets) and device time (the 32-bit microsecond wrap, stragglers
from before a wrap) across frames and feed() calls, and turns the accepted frames into items.

There is one update path: every frame is judged by :meth:`FrameSequencer._judge`, with every check
and counter. For speed, :class:`FrameBlock` marks *runs*: regular sample frames that each follow
the one before (sequence number +1 without a wrap, time step in [0, 2**31] us, same channel
count). When the first frame of a run is accepted as an in-order sample frame, the judge would
accept each of the others in turn with no counter but ``frames`` changing, so they are taken
together (:meth:`FrameSequencer._take_rest_of_run`); when it is not (a duplicate, no device
description yet), the next frame is judged on its own.

Device time (PROTOCOL.md section 5): the step from one frame's 32-bit time to the next is read
forwards, ``(t - last) mod 2**32``, so that an outage of any length under 2**32 us (71.58 min)
moves time forwards; only a step back by at most :data:`BACKSTEP_MAX_US` is read as time going
back (counted in ``stats.time_backsteps``: the device broke the rule that its clock is monotonic).
The result depends only on the frames, never on how the bytes were cut into feed() calls.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

from c3t_edge.protocol.codes import FrameType
from c3t_edge.protocol.frames import (
    HEADER_SIZE,
    IMU_PREFIX_SIZE,
    PROTOCOL_VERSION,
    info_refusal,
    parse_event_payload,
    parse_info_payload,
)
from c3t_edge.protocol.messages import DecodedItem, DecoderStats, DeviceInfo, SampleBatch

_U32 = 0xFFFFFFFF
_HALF = 0x80000000
_WRAP = 1 << 32
_SAMPLE_OFFSET = HEADER_SIZE + IMU_PREFIX_SIZE
_INFO = int(FrameType.DEVICE_INFO)
_IMU = int(FrameType.IMU_SAMPLES)
_EVENT = int(FrameType.EVENT)
_COMMAND = int(FrameType.COMMAND)
#: A step of device time back by at most this many microseconds (60 s) is read as the clock going
#: back; any other step is read forwards (an outage, across the 32-bit wrap when there is one).
BACKSTEP_MAX_US = 60_000_000
#: version, type, seq, t_us, n_samples, n_channels: the first 12 bytes of a sample frame.
_PREFIX = struct.Struct("<BBIIBB")
#: Blocks of at least this many frames have their headers gathered by numpy and their runs
#: marked; smaller blocks are parsed in Python and every frame is judged on its own.
_RUNS_MIN_FRAMES = 4
#: Up to this many sample frames, their payloads are joined in Python rather than gathered by numpy.
_JOIN_MAX_FRAMES = 64


@dataclass(slots=True)
class FrameBlock:
    """The decoded frames of one fed block, column by column (one list entry per frame).

    Frame ``k`` is ``data[start[k]:end[k]]`` (header, payload, CRC). The header columns are read
    from every frame, valid or not (a frame is at least header + CRC long). ``runs``: increasing
    frame indices, starting with 0 and ending with the frame count; frames ``runs[r]`` ..
    ``runs[r + 1] - 1`` form a run (see the module docstring); a frame outside any longer run is a
    run of one.
    """

    data: bytes
    start: list[int]
    end: list[int]
    crc: list[int]  #: the CRC each frame carries
    crc_ok: list[bool]  #: whether it matches the frame's bytes
    version: list[int]
    frame_type: list[int]
    seq: list[int]  #: u32 sequence number
    t_raw: list[int]  #: u32 device time in microseconds, as sent (wrapping)
    n_samples: list[int]  #: IMU prefix byte 0 (meaningful for sample frames only)
    n_channels: list[int]  #: IMU prefix byte 1 (meaningful for sample frames only)
    runs: list[int]

    @classmethod
    def parse(cls, data: bytes, start: list[int], end: list[int]) -> FrameBlock:
        """Check the CRCs and read the headers of frames ``data[start[k]:end[k]]`` (each at
        least header + CRC bytes long); mark runs when there are enough frames to pay for numpy."""
        mv = memoryview(data)
        crc_hqx = binascii.crc_hqx
        crcs = [data[b - 2] | data[b - 1] << 8 for b in end]
        crc_ok = [crc_hqx(mv[a : b - 2], 0xFFFF) == c for a, b, c in zip(start, end, crcs, strict=True)]
        n_frames = len(start)
        if n_frames < _RUNS_MIN_FRAMES:
            heads = [_PREFIX.unpack_from(data, a) for a in start]
            version, ftype, seq, t_raw, ns, nc = (list(col) for col in zip(*heads, strict=True))
            return cls(data, start, end, crcs, crc_ok, version, ftype, seq, t_raw, ns, nc, list(range(n_frames + 1)))
        dec = np.frombuffer(data, dtype=np.uint8)
        ds = np.asarray(start, dtype=np.int64)
        de = np.asarray(end, dtype=np.int64)
        hdr = dec[ds[:, None] + np.arange(_SAMPLE_OFFSET)]
        seq_t = np.ascontiguousarray(hdr[:, 2:10]).view("<u4").astype(np.int64)
        ns = hdr[:, 10].astype(np.int64)
        nc = hdr[:, 11].astype(np.int64)
        regular = (
            np.asarray(crc_ok, dtype=bool)
            & (hdr[:, 0] == PROTOCOL_VERSION)
            & (hdr[:, 1] == _IMU)
            & (ns > 0)
            & ((de - ds) == _SAMPLE_OFFSET + 2 + 2 * ns * nc)
        )
        dt = np.diff(seq_t[:, 1])
        follows = np.zeros(n_frames, dtype=bool)
        follows[1:] = (
            regular[1:]
            & regular[:-1]
            & (np.diff(seq_t[:, 0]) == 1)
            & (dt >= 0)
            & (dt <= _HALF)
            & (np.diff(nc) == 0)
        )
        runs = np.flatnonzero(~follows).tolist()
        runs.append(n_frames)
        return cls(
            data,
            start,
            end,
            crcs,
            crc_ok,
            hdr[:, 0].tolist(),
            hdr[:, 1].tolist(),
            seq_t[:, 0].tolist(),
            seq_t[:, 1].tolist(),
            ns.tolist(),
            nc.tolist(),
            runs,
        )

    def payload(self, k: int) -> bytes:
        """Frame ``k``'s payload (between header and CRC)."""
        return self.data[self.start[k] + HEADER_SIZE : self.end[k] - 2]


@dataclass(slots=True)
class _PendingBatch:
    """Sample frames that will become one :class:`SampleBatch` (frame indices into the block)."""

    info: DeviceInfo
    lost_before: int
    boot: int
    first_seq: int
    frames: list[int]
    t0_us: list[int]  #: unwrapped device time of each frame's first sample, us
    n_samples: list[int]


class FrameSequencer:
    """Sequence numbers, device time and frame types across frames: frames in, items out.

    ``stats``: the decoder's counters (updated in place). ``info``: the device description in force
    (None until the device sends one). ``duplicate_window``: how many frames back (a power of two)
    a repeated sequence number with the same CRC is a duplicate rather than a device reset.
    """

    def __init__(self, stats: DecoderStats, info: DeviceInfo | None, duplicate_window: int):
        self.stats = stats
        self.info = info
        self._window = duplicate_window
        self._last_seq: int | None = None
        self._last_t: int | None = None  #: raw time of the last frame of this boot, us
        self._t_epoch = 0  #: added to raw times to unwrap them, us (a multiple of 2**32)
        self._max_epoch = 0  #: the largest epoch of this boot (a wrap is counted once, on reaching a new one)
        self._boot = 0
        self._boot_id: int | None = None  #: the first non-zero boot id seen in this boot
        #: Why the last DEVICE_INFO was refused (one sentence), None when none was.
        self.refusal: str | None = None
        self._lost_pending = 0  #: frames lost since the last sample frame taken
        self._ring_seq = [-1] * duplicate_window
        self._ring_crc = [0] * duplicate_window
        self._items: list[DecodedItem | _PendingBatch] = []
        self._batch: _PendingBatch | None = None

    def sequence(self, block: FrameBlock) -> list[DecodedItem]:
        """Judge the frames of ``block`` in order; return the items they make, in stream order."""
        self._items = []
        runs = block.runs
        for r in range(len(runs) - 1):
            k, run_end = runs[r], runs[r + 1]
            while k < run_end:
                k = self._judge(block, k, run_end)
        self._close_batch()
        items, self._items = self._items, []
        if not any(isinstance(it, _PendingBatch) for it in items):
            return items  # type: ignore[return-value]
        return self._build_batches(items, block)

    # ------------------------------------------------------------------ the one update path
    def _judge(self, block: FrameBlock, k: int, run_end: int) -> int:
        """Judge frame ``k`` (every check and counter) and, when it starts a run and is taken as an
        in-order sample frame, the rest of its run (frames before ``run_end``). Returns the next
        frame to judge."""
        ftype = self._frame_type(block, k)
        if ftype is None:
            return k + 1
        new_info = self._read_info(block, k) if ftype == _INFO else None
        if not self._advance_sequence(block.seq[k], block.crc[k], self._is_reboot(new_info)):
            return k + 1
        t_us = self._advance_time(block.t_raw[k])
        if ftype == _IMU:
            if self._take_samples(block, k, t_us) and k + 1 < run_end:
                self._take_rest_of_run(block, k + 1, run_end)
                return run_end
        elif ftype == _INFO:
            self._take_info(new_info)
        elif ftype == _EVENT:
            self._take_event(block, k, t_us)
        else:  # a frame type of a newer device: its sequence number counts as received
            self.stats.unknown_frames += 1
        return k + 1

    def _frame_type(self, block: FrameBlock, k: int) -> int | None:
        """Frame ``k``'s type, or None (counted) when its CRC fails, its version is not spoken here
        (a frame of another version may lay out its header differently: nothing of it is used), or
        it is a COMMAND (host -> device: an echo of the host's own commands, whose sequence numbers
        are not the device's)."""
        if not block.crc_ok[k]:
            self.stats.corrupt += 1
            return None
        if block.version[k] != PROTOCOL_VERSION or block.frame_type[k] == _COMMAND:
            self.stats.unsupported += 1
            return None
        return block.frame_type[k]

    def _read_info(self, block: FrameBlock, k: int) -> DeviceInfo | None:
        """The device description of DEVICE_INFO frame ``k``, or None (counted) when it is
        malformed or breaks PROTOCOL.md 3.1 (then :attr:`refusal` says why)."""
        info = parse_info_payload(block.payload(k))
        if info is None:
            self.stats.malformed += 1
            return None
        refusal = info_refusal(info)
        if refusal is not None:
            self.stats.refused_info += 1
            self.refusal = f"DEVICE_INFO (frame {block.seq[k]}) refused: {refusal}"
            return None
        return info

    def _is_reboot(self, new_info: DeviceInfo | None) -> bool:
        """True when a device description names a boot other than this boot's.

        Boot id 0 means "unknown" (PROTOCOL.md section 4): it never signals a reset, and the first
        non-zero id after it (or after a reset) is taken as this boot's without one."""
        return (
            new_info is not None
            and new_info.boot_id != 0
            and self._boot_id is not None
            and new_info.boot_id != self._boot_id
        )

    def _advance_sequence(self, seq: int, crc: int, reset: bool) -> bool:
        """Account for sequence number ``seq`` (loss, wrap, duplicate, reset); False when the
        frame is a duplicate and must be dropped."""
        last = self._last_seq
        mask = self._window - 1
        if last is not None and not reset:
            gap = (seq - last - 1) & _U32
            if gap < _HALF:  # forwards: ``gap`` frames lost in between
                self.stats.lost += gap
                self._lost_pending += gap
                if seq < last:
                    self.stats.seq_wraps += 1
            elif (
                (last - seq) & _U32 < self._window
                and self._ring_seq[seq & mask] == seq
                and self._ring_crc[seq & mask] == crc
            ):
                self.stats.duplicates += 1
                return False
            else:  # far backwards and not seen recently: the device restarted its count
                reset = True
        if reset:
            self._restart()
        self._last_seq = seq
        self._ring_seq[seq & mask] = seq
        self._ring_crc[seq & mask] = crc
        self.stats.frames += 1
        return True

    def _restart(self) -> None:
        """The device rebooted: a new batch, a new boot count, time and sequence start afresh."""
        self._close_batch()
        self.stats.resets += 1
        self._boot += 1
        self._last_t = None
        self._t_epoch = 0
        self._max_epoch = 0
        self._boot_id = None
        self._lost_pending = 0
        self._ring_seq[:] = [-1] * self._window

    def _advance_time(self, t_raw: int) -> int:
        """Unwrap the 32-bit microsecond time ``t_raw`` of the next frame of this boot (see the
        module docstring): the device time in us since boot."""
        last_t = self._last_t
        self._last_t = t_raw
        if last_t is None:
            return self._t_epoch + t_raw
        if t_raw != last_t and (last_t - t_raw) & _U32 <= BACKSTEP_MAX_US:
            self.stats.time_backsteps += 1
            self._close_batch()  # time went back: the times within a batch stay increasing
            if t_raw > last_t:  # back across the wrap
                self._t_epoch -= _WRAP
        elif t_raw < last_t:  # forwards across the wrap
            self._t_epoch += _WRAP
            if self._t_epoch > self._max_epoch:
                self._max_epoch = self._t_epoch
                self.stats.time_wraps += 1
        return self._t_epoch + t_raw

    def _take_samples(self, block: FrameBlock, k: int, t_us: int) -> bool:
        """Add sample frame ``k`` (first sample at ``t_us``) to the batch; False (counted) when no
        device description is known yet or the frame contradicts it."""
        info = self.info
        if info is None:
            self.stats.no_info += 1
            return False
        n = block.n_samples[k]
        nch = len(info.channels)
        if n == 0 or block.n_channels[k] != nch or block.end[k] - block.start[k] != _SAMPLE_OFFSET + 2 + 2 * n * nch:
            self.stats.malformed += 1
            return False
        self._add_to_batch(block, k, k + 1, info, [t_us])
        return True

    def _take_rest_of_run(self, block: FrameBlock, i: int, j: int) -> None:
        """Frames ``i`` .. ``j - 1`` follow the in-order sample frame ``i - 1`` of their run: take
        them as the judge would, one after the other (see the module docstring)."""
        seqs = block.seq
        mask = self._window - 1
        for k in range(max(i, j - self._window), j):
            self._ring_seq[seqs[k] & mask] = seqs[k]
            self._ring_crc[seqs[k] & mask] = block.crc[k]
        self._last_seq = seqs[j - 1]
        self._last_t = block.t_raw[j - 1]
        self.stats.frames += j - i
        epoch = self._t_epoch
        assert self.info is not None
        self._add_to_batch(block, i, j, self.info, [epoch + t for t in block.t_raw[i:j]])

    def _take_info(self, new_info: DeviceInfo | None) -> None:
        if new_info is None:
            return
        self._close_batch()
        self.info = new_info
        if new_info.boot_id and self._boot_id is None:
            self._boot_id = new_info.boot_id
        self._items.append(new_info)

    def _take_event(self, block: FrameBlock, k: int, t_us: int) -> None:
        event = parse_event_payload(block.payload(k), block.seq[k], t_us / 1e6)
        if event is None:
            self.stats.malformed += 1
            return
        self._close_batch()
        self.stats.events += 1
        if event.is_error:
            self.stats.errors += 1
        self._items.append(event)

    # ------------------------------------------------------------------ batches
    def _add_to_batch(self, block: FrameBlock, i: int, j: int, info: DeviceInfo, t0_us: list[int]) -> None:
        """Append sample frames ``i`` .. ``j - 1`` (in order, no loss between them) to the batch,
        starting a new batch after a loss, a reset or under a new device description."""
        batch = self._batch
        if self._lost_pending or batch is None or batch.info is not info or batch.boot != self._boot:
            self._close_batch()
            batch = _PendingBatch(info, self._lost_pending, self._boot, block.seq[i], [], [], [])
            self._batch = batch
            self._lost_pending = 0
        batch.frames.extend(range(i, j))
        batch.t0_us.extend(t0_us)
        batch.n_samples.extend(block.n_samples[i:j])

    def _close_batch(self) -> None:
        if self._batch is not None:
            self._items.append(self._batch)
            self._batch = None

    def _build_batches(self, items: list, block: FrameBlock) -> list[DecodedItem]:
        """Replace the pending batches in ``items`` with SampleBatch objects (one gather for all)."""
        pending = [it for it in items if isinstance(it, _PendingBatch)]
        sample_bytes = self._gather_samples(block, [k for p in pending for k in p.frames])
        out: list[DecodedItem] = []
        offset = 0
        for it in items:
            if not isinstance(it, _PendingBatch):
                out.append(it)
                continue
            batch = self._make_batch(it, sample_bytes, offset)
            offset += batch.raw.nbytes
            out.append(batch)
        return out

    @staticmethod
    def _gather_samples(block: FrameBlock, frames: list[int]) -> np.ndarray:
        """The sample bytes of ``frames`` (indices into ``block``), concatenated, as uint8."""
        data, start, end = block.data, block.start, block.end
        if len(frames) <= _JOIN_MAX_FRAMES:
            joined = b"".join(data[start[k] + _SAMPLE_OFFSET : end[k] - 2] for k in frames)
            return np.frombuffer(joined, dtype=np.uint8)
        dec = np.frombuffer(data, dtype=np.uint8)
        idx = np.asarray(frames, dtype=np.int64)
        mark = np.zeros(dec.size + 1, dtype=np.int8)
        mark[np.asarray(start, dtype=np.int64)[idx] + _SAMPLE_OFFSET] = 1
        mark[np.asarray(end, dtype=np.int64)[idx] - 2] = -1
        return dec[np.cumsum(mark[:-1], dtype=np.int32).astype(bool)]

    def _make_batch(self, pending: _PendingBatch, sample_bytes: np.ndarray, offset: int) -> SampleBatch:
        """One SampleBatch from ``pending``, its samples at ``sample_bytes[offset:]``."""
        info = pending.info
        nch = len(info.channels)
        ns = np.asarray(pending.n_samples, dtype=np.int64)
        total = int(ns.sum())
        raw = sample_bytes[offset : offset + 2 * total * nch].view("<i2").reshape(total, nch)
        period_us = 1e6 / info.sample_rate_hz
        t0 = np.asarray(pending.t0_us, dtype=np.float64)
        if ns.min() == ns.max():
            t_us = (t0[:, None] + np.arange(ns[0]) * period_us).ravel()
        else:
            within = np.arange(total) - np.repeat(np.cumsum(ns) - ns, ns)
            t_us = np.repeat(t0, ns) + within * period_us
        samples = raw.astype(np.float32)
        samples *= info.scales
        self.stats.samples += total
        return SampleBatch(
            t=t_us / 1e6,
            samples=samples,
            raw=raw,
            info=info,
            seq=pending.first_seq,
            n_frames=len(pending.frames),
            lost_before=pending.lost_before,
            boot=pending.boot,
        )
