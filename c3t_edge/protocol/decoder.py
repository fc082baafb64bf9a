"""The incremental binary-frame decoder: bytes in, device descriptions / sample batches / events out.

:class:`FrameDecoder` accepts any chunking of the byte stream (one byte at a time, or megabytes),
never raises on bad input, resynchronises at the next ``0x00`` after any damage and counts what
happened in :attr:`FrameDecoder.stats`.

Speed: the CRC is :func:`binascii.crc_hqx` (C). A chunk with a few frames (a live serial or BLE
read) is decoded in plain Python; a large one (a recording, a big read) with numpy: COBS chains are
walked for all frames in lock-step, headers are gathered at once, runs of in-order sample frames
skip the per-frame state machine, and all samples are gathered with one mask.
"""

from __future__ import annotations

import binascii
import struct
from typing import Protocol

import numpy as np

from c3t_edge.protocol.frames import (
    HEADER_SIZE,
    IMU_PREFIX_SIZE,
    MAX_ENCODED_SIZE,
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    PROTOCOL_VERSION,
    FrameType,
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
#: Runs of at least this many regular sample frames skip the per-frame loop.
_MIN_BULK = 4
#: Up to this many frames in a block, COBS code bytes are walked in Python rather than numpy.
_PY_CHAIN_MAX_FRAMES = 256
#: version, type, seq, t_us, n_samples, n_channels: the first 12 bytes of a sample frame.
_PREFIX = struct.Struct("<BBIIBB")
#: Blocks of at most this many frames are decoded without numpy (cheaper per call).
_SMALL_BLOCK_FRAMES = 32
#: Up to this many sample frames, their payloads are joined in Python rather than gathered by numpy.
_JOIN_MAX_FRAMES = 64


def _cobs_decode_or_none(enc: bytes) -> bytes | None:
    """COBS-decode one frame that contains no 0x00; None when a code runs past the end.

    Every code byte after the first stands exactly where the decoded data has a zero, so (without
    0xFF blocks, i.e. for frames under 254 bytes) decoding is: zero those, drop the first."""
    n = len(enc)
    i = enc[0]
    if i == 0xFF:
        return _cobs_decode_blocks(enc)
    out = bytearray(enc)
    while i < n:
        code = enc[i]
        if code == 0xFF:
            return _cobs_decode_blocks(enc)
        out[i] = 0
        i += code
    if i != n:
        return None
    del out[0]
    return bytes(out)


def _cobs_decode_blocks(enc: bytes) -> bytes | None:
    """Block-by-block COBS decoding (handles 0xFF blocks); None when a code runs past the end."""
    out = bytearray()
    i = 0
    n = len(enc)
    while i < n:
        code = enc[i]
        j = i + code
        if j > n:
            return None
        out += enc[i + 1 : j]
        if code != 0xFF and j < n:
            out.append(0)
        i = j
    return bytes(out)


class StreamDecoder(Protocol):
    """What every decoder offers (binary :class:`FrameDecoder`, text
    :class:`~c3t_edge.protocol.text.TextDecoder`)."""

    stats: DecoderStats
    info: DeviceInfo | None

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[DecodedItem]: ...

    def finish(self) -> list[DecodedItem]: ...


class FrameDecoder:
    """Incremental decoder of the binary protocol (COBS frames, ``0x00``-delimited).

    ``feed(chunk)`` returns, in stream order, a list of:

    - :class:`DeviceInfo` — the device described itself (also kept in :attr:`info`; its channel
      scales apply to every following sample),
    - :class:`SampleBatch` — ``t`` (n,) float64 device seconds, ``samples`` (n, C) float32 in the
      declared units (acc in g, gyro in deg/s), ``raw`` (n, C) int16; consecutive frames without a
      gap are merged into one batch,
    - :class:`DeviceEvent` — boot, start/stop, command acks, device errors and log messages.

    Bad bytes are never raised: they are counted in :attr:`stats` (``corrupt``, ``lost``,
    ``duplicates``, ``resets``, ``seq_wraps``, ``time_wraps``...).

    ``info``: the device description to assume until the device sends one (for a stream that
    starts mid-way); without it, sample frames before the first DEVICE_INFO are counted in
    ``stats.no_info`` and dropped, because their units are unknown.
    ``duplicate_window``: how far back (in frames) a repeated sequence number is recognised as a
    duplicate (same sequence number and CRC) rather than a device reset.
    """

    def __init__(self, info: DeviceInfo | None = None, *, duplicate_window: int = 1024):
        if duplicate_window < 1 or duplicate_window & (duplicate_window - 1):
            raise ValueError("duplicate_window must be a power of two")
        self.stats = DecoderStats()
        self.info: DeviceInfo | None = info
        self._window = duplicate_window
        self._pending = bytearray()
        self._discarding = False
        self._last_seq: int | None = None
        self._boot = 0
        self._boot_id: int | None = None
        self._t_epoch = 0
        self._last_t: int | None = None
        self._lost_pending = 0
        self._ring_seq = [-1] * duplicate_window
        self._ring_crc = [0] * duplicate_window

    # ------------------------------------------------------------------ bytes -> frame chunks
    def feed(self, chunk: bytes | bytearray | memoryview) -> list[DecodedItem]:
        """Decode ``chunk`` (any length, any split) and return the items it completed."""
        data = bytes(chunk)
        if not data:
            return []
        self.stats.bytes += len(data)
        start = 0
        if self._discarding:
            start = data.find(b"\x00")
            if start < 0:
                return []
            self._discarding = False
            start += 1
        last = data.rfind(b"\x00", start)
        if last < 0:
            self._pending += data[start:] if start else data
            self._check_pending()
            return []
        if self._pending:
            block = bytes(self._pending) + data[start : last + 1]
        else:
            block = data[start : last + 1] if start or last + 1 < len(data) else data
        self._pending = bytearray(data[last + 1 :])
        self._check_pending()
        return self._decode_block(block)

    def finish(self) -> list[DecodedItem]:
        """End of stream: decode a last frame that lacks its delimiter, or count it as corrupt."""
        if not self._pending:
            return []
        block = bytes(self._pending) + b"\x00"
        self._pending.clear()
        return self._decode_block(block)

    def _check_pending(self) -> None:
        if len(self._pending) > MAX_ENCODED_SIZE:
            # No delimiter for longer than any frame can be: drop it all up to the next 0x00.
            self.stats.corrupt += 1
            self._pending.clear()
            self._discarding = True

    # ------------------------------------------------------------------ frame chunks -> items
    def _decode_block(self, block: bytes) -> list[DecodedItem]:
        """Decode ``block``: whole COBS frames, each followed by 0x00 (the last byte is 0x00)."""
        if block.count(0) <= _SMALL_BLOCK_FRAMES:
            return self._decode_small_block(block)
        stats = self.stats
        a = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(a == 0)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lens = ends - starts
        good_len = (lens > MIN_FRAME_SIZE) & (lens <= MAX_ENCODED_SIZE)
        stats.corrupt += int(np.count_nonzero(lens)) - int(np.count_nonzero(good_len))
        s = starts[good_len]
        e = ends[good_len]
        if s.size == 0:
            return []

        # COBS: find every frame's chain of code bytes (a code byte says where the next one is).
        is_code = np.zeros(a.size, dtype=bool)
        after_ff = np.zeros(a.size, dtype=bool)
        if s.size <= _PY_CHAIN_MAX_FRAMES:
            ok = self._cobs_chains_python(block, s.tolist(), e.tolist(), is_code, after_ff)
        else:
            ok = self._cobs_chains_numpy(a, s, e, is_code, after_ff)
        stats.corrupt += int(s.size - np.count_nonzero(ok))
        s = s[ok]
        e = e[ok]
        if s.size == 0:
            return []
        # Decoded bytes: frame interiors (minus the first code byte), code bytes become 0x00 except
        # the one after a 0xFF block (which stands for no zero).
        d = np.zeros(a.size + 1, dtype=np.int8)
        d[s + 1] = 1
        d[e] = -1
        keep = np.cumsum(d[:-1], dtype=np.int32).astype(bool)
        keep &= ~after_ff
        vals = a.copy()
        vals[is_code] = 0
        dec = vals[keep]
        kept = np.cumsum(keep, dtype=np.int64)
        ds = kept[s]
        de = kept[e]
        flen = de - ds
        size_ok = (flen >= MIN_FRAME_SIZE) & (flen <= MAX_FRAME_SIZE)
        stats.corrupt += int(flen.size - np.count_nonzero(size_ok))
        ds = ds[size_ok]
        de = de[size_ok]
        if ds.size == 0:
            return []
        return self._process_frames(dec.tobytes(), ds.tolist(), de.tolist())

    def _decode_small_block(self, block: bytes) -> list[DecodedItem]:
        """The same as :meth:`_decode_block` for a few frames, without numpy's per-call overhead."""
        stats = self.stats
        frames: list[bytes] = []
        for piece in block.split(b"\x00")[:-1]:
            if not piece:
                continue
            raw = _cobs_decode_or_none(piece) if MIN_FRAME_SIZE < len(piece) <= MAX_ENCODED_SIZE else None
            if raw is None or not MIN_FRAME_SIZE <= len(raw) <= MAX_FRAME_SIZE:
                stats.corrupt += 1
                continue
            frames.append(raw)
        if not frames:
            return []
        ds_l: list[int] = []
        de_l: list[int] = []
        pos = 0
        for raw in frames:
            ds_l.append(pos)
            pos += len(raw)
            de_l.append(pos)
        return self._process_frames(b"".join(frames), ds_l, de_l)

    @staticmethod
    def _cobs_chains_python(
        block: bytes, starts: list[int], ends: list[int], is_code: np.ndarray, after_ff: np.ndarray
    ) -> np.ndarray:
        """Walk each frame's code bytes in Python (fast for a few frames): mark code bytes and the
        code bytes that follow a 0xFF block; return which frames end exactly at their delimiter."""
        codes: list[int] = []
        after: list[int] = []
        ok = []
        append = codes.append
        for p, end in zip(starts, ends, strict=True):
            while p < end:
                append(p)
                c = block[p]
                p += c
                if c == 0xFF and p < end:
                    after.append(p)
            ok.append(p == end)
        is_code[codes] = True
        if after:
            after_ff[after] = True
        return np.array(ok, dtype=bool)

    @staticmethod
    def _cobs_chains_numpy(
        a: np.ndarray, s: np.ndarray, e: np.ndarray, is_code: np.ndarray, after_ff: np.ndarray
    ) -> np.ndarray:
        """The same for many frames: follow all chains in lock-step, one numpy step per code byte."""
        ok = np.zeros(s.size, dtype=bool)
        active = np.arange(s.size)
        pos = s
        fend = e
        while active.size:
            is_code[pos] = True
            code = a[pos]
            nxt = pos + code
            done = nxt == fend
            if done.any():
                ok[active[done]] = True
            cont = nxt < fend
            if not cont.all():
                active = active[cont]
                nxt = nxt[cont]
                code = code[cont]
                fend = fend[cont]
            after_ff[nxt[code == 0xFF]] = True
            pos = nxt
        return ok

    def _process_frames(self, raw_bytes: bytes, ds_l: list[int], de_l: list[int]) -> list[DecodedItem]:
        """Check, sequence and collect the decoded frames ``raw_bytes[ds_l[i]:de_l[i]]`` (CRC included)."""
        mv = memoryview(raw_bytes)
        crc_hqx = binascii.crc_hqx
        crcs = [raw_bytes[b - 2] | raw_bytes[b - 1] << 8 for b in de_l]
        crc_ok = [crc_hqx(mv[a_ : b - 2], 0xFFFF) == c for a_, b, c in zip(ds_l, de_l, crcs, strict=True)]
        n_frames = len(ds_l)
        if n_frames < _MIN_BULK:
            # Too few frames for bulk handling: plain Python, every frame through the general path.
            heads = [_PREFIX.unpack_from(raw_bytes, a_) for a_ in ds_l]
            version_l, type_l, seq_l, t_l, ns_l, nc_l = (list(col) for col in zip(*heads, strict=True))
            return self._sequence_frames(
                raw_bytes, ds_l, de_l, crcs, crc_ok, version_l, type_l, seq_l, t_l, ns_l, nc_l, None
            )
        dec = np.frombuffer(raw_bytes, dtype=np.uint8)
        ds = np.asarray(ds_l, dtype=np.int64)
        de = np.asarray(de_l, dtype=np.int64)
        hdr = dec[ds[:, None] + np.arange(HEADER_SIZE + IMU_PREFIX_SIZE)]
        seq_t = np.ascontiguousarray(hdr[:, 2:10]).view("<u4").astype(np.int64)
        version_l = hdr[:, 0].tolist()
        type_l = hdr[:, 1].tolist()
        seq_l = seq_t[:, 0].tolist()
        t_l = seq_t[:, 1].tolist()
        ns_arr = hdr[:, 10].astype(np.int64)
        nc_arr = hdr[:, 11].astype(np.int64)
        ns_l = ns_arr.tolist()
        nc_l = nc_arr.tolist()

        # Sample frames that are valid on their own and follow their predecessor without a gap
        # are handled in bulk; every other frame goes through the general per-frame path.
        regular = (
            np.asarray(crc_ok, dtype=bool)
            & (hdr[:, 0] == PROTOCOL_VERSION)
            & (hdr[:, 1] == _IMU)
            & (ns_arr > 0)
            & ((de - ds) == _SAMPLE_OFFSET + 2 + 2 * ns_arr * nc_arr)
        )
        follows = np.zeros(n_frames, dtype=bool)
        follows[1:] = regular[1:] & regular[:-1] & (np.diff(seq_t[:, 0]) == 1) & (np.diff(seq_t[:, 1]) >= 0)
        breaks = np.flatnonzero(~follows).tolist()
        breaks.append(n_frames)
        return self._sequence_frames(
            raw_bytes,
            ds_l,
            de_l,
            crcs,
            crc_ok,
            version_l,
            type_l,
            seq_l,
            t_l,
            ns_l,
            nc_l,
            (breaks, seq_t, nc_arr),
        )

    def _sequence_frames(
        self,
        raw_bytes: bytes,
        ds_l: list[int],
        de_l: list[int],
        crcs: list[int],
        crc_ok: list[bool],
        version_l: list[int],
        type_l: list[int],
        seq_l: list[int],
        t_l: list[int],
        ns_l: list[int],
        nc_l: list[int],
        bulk_plan: tuple[list[int], np.ndarray, np.ndarray] | None,
    ) -> list[DecodedItem]:
        """Sequence numbers, time, frame types: the state machine over the frames, in order.

        ``bulk_plan`` (breaks, seq/time array, channel counts) marks runs of regular sample frames
        that skip the per-frame path; None sends every frame through it."""
        stats = self.stats
        n_frames = len(ds_l)
        if bulk_plan is None:
            breaks = list(range(n_frames + 1))
            seq_t = nc_arr = None
        else:
            breaks, seq_t, nc_arr = bulk_plan
        items: list = []
        # A run of in-order sample frames that becomes one SampleBatch: (frame indices, t0 us, n).
        run_idx: list[int] = []
        run_t0: list[int] = []
        run_ns: list[int] = []
        run_meta: tuple[DeviceInfo, int, int, int] | None = None  # info, lost_before, boot, first seq
        window_mask = self._window - 1
        ring_seq = self._ring_seq
        ring_crc = self._ring_crc

        def close_run() -> None:
            nonlocal run_idx, run_t0, run_ns, run_meta
            if run_idx:
                items.append((run_idx, run_t0, run_ns, run_meta))
                run_idx, run_t0, run_ns = [], [], []
            run_meta = None

        def add_samples(i: int, j: int, info: DeviceInfo, t0: list[int]) -> None:
            """Append sample frames i..j-1 (all in order) to the current run."""
            nonlocal run_meta
            if self._lost_pending or run_meta is None or run_meta[0] is not info or run_meta[2] != self._boot:
                close_run()
                run_meta = (info, self._lost_pending, self._boot, seq_l[i])
                self._lost_pending = 0
            run_idx.extend(range(i, j))
            run_t0.extend(t0)
            run_ns.extend(ns_l[i:j])

        def bulk(i: int, j: int) -> bool:
            """Frames i..j-1 are regular and consecutive: take them without a per-frame loop."""
            info = self.info
            last, last_t = self._last_seq, self._last_t
            if (
                info is None
                or (last is not None and seq_l[i] != (last + 1) & _U32)
                or (last_t is not None and t_l[i] < last_t)
                or not np.all(nc_arr[i:j] == len(info.channels))
            ):
                return False
            if seq_l[i] == 0 and last is not None:
                stats.seq_wraps += 1
            for k in range(max(i, j - self._window), j):
                ring_seq[seq_l[k] & window_mask] = seq_l[k]
                ring_crc[seq_l[k] & window_mask] = crcs[k]
            self._last_seq = seq_l[j - 1]
            self._last_t = t_l[j - 1]
            stats.frames += j - i
            add_samples(i, j, info, (seq_t[i:j, 1] + self._t_epoch).tolist())
            return True

        def one(i: int) -> None:
            """The general path for frame i: every check, counter and frame type."""
            if not crc_ok[i]:
                stats.corrupt += 1
                return
            ftype = type_l[i]
            if version_l[i] != PROTOCOL_VERSION or ftype not in (_IMU, _INFO, _EVENT):
                stats.unsupported += 1
                return
            seq = seq_l[i]
            crc = crcs[i]
            new_info: DeviceInfo | None = None
            if ftype == _INFO:
                new_info = parse_info_payload(raw_bytes[ds_l[i] + HEADER_SIZE : de_l[i] - 2])
                if new_info is None:
                    stats.malformed += 1
            # -- sequence numbers: loss, wrap, duplicate, reset
            last = self._last_seq
            reset = (
                new_info is not None
                and new_info.boot_id != 0
                and self._boot_id is not None
                and new_info.boot_id != self._boot_id
            )
            if last is not None and not reset:
                gap = (seq - last - 1) & _U32
                if gap == 0:
                    if seq == 0:
                        stats.seq_wraps += 1
                elif gap < _HALF:
                    stats.lost += gap
                    self._lost_pending += gap
                    if seq < last:
                        stats.seq_wraps += 1
                else:
                    slot = seq & window_mask
                    back = (last - seq) & _U32
                    if back < self._window and ring_seq[slot] == seq and ring_crc[slot] == crc:
                        stats.duplicates += 1
                        return
                    reset = True
            if reset:
                close_run()
                stats.resets += 1
                self._boot += 1
                self._last_t = None
                self._t_epoch = 0
                self._lost_pending = 0
                ring_seq[:] = [-1] * self._window
            self._last_seq = seq
            slot = seq & window_mask
            ring_seq[slot] = seq
            ring_crc[slot] = crc
            stats.frames += 1
            # -- device time: unwrap the 32-bit microsecond counter
            t_raw = t_l[i]
            last_t = self._last_t
            epoch = self._t_epoch
            if last_t is not None:
                if t_raw < last_t and last_t - t_raw > _HALF:
                    epoch += _WRAP
                    self._t_epoch = epoch
                    stats.time_wraps += 1
                    self._last_t = t_raw
                elif t_raw > last_t and t_raw - last_t > _HALF:
                    epoch -= _WRAP  # a straggler from before the last wrap
                else:
                    self._last_t = t_raw
            else:
                self._last_t = t_raw
            t_us = epoch + t_raw

            if ftype == _IMU:
                info = self.info
                if info is None:
                    stats.no_info += 1
                    return
                n = ns_l[i]
                nch = len(info.channels)
                if n == 0 or nc_l[i] != nch or de_l[i] - ds_l[i] != _SAMPLE_OFFSET + 2 + 2 * n * nch:
                    stats.malformed += 1
                    return
                add_samples(i, i + 1, info, [t_us])
            elif ftype == _INFO:
                if new_info is None:
                    return
                close_run()
                self.info = new_info
                if new_info.boot_id:
                    self._boot_id = new_info.boot_id
                items.append(new_info)
            else:
                event = parse_event_payload(raw_bytes[ds_l[i] + HEADER_SIZE : de_l[i] - 2], seq, t_us / 1e6)
                if event is None:
                    stats.malformed += 1
                    return
                close_run()
                stats.events += 1
                if event.is_error:
                    stats.errors += 1
                items.append(event)

        for b in range(len(breaks) - 1):
            i, j = breaks[b], breaks[b + 1]
            if j - i >= _MIN_BULK:
                if bulk(i, j):
                    continue
                one(i)  # e.g. the first frame after a gap; the rest still follow it
                if bulk(i + 1, j):
                    continue
                i += 1
            for k in range(i, j):
                one(k)
        close_run()
        if not any(isinstance(it, tuple) for it in items):
            return items
        return self._build_batches(items, raw_bytes, ds_l, de_l)

    def _build_batches(
        self, items: list, raw_bytes: bytes, ds_l: list[int], de_l: list[int]
    ) -> list[DecodedItem]:
        """Replace the run markers in ``items`` with SampleBatch objects (one gather for all)."""
        runs = [it for it in items if isinstance(it, tuple)]
        n_run_frames = sum(len(r[0]) for r in runs)
        if n_run_frames <= _JOIN_MAX_FRAMES:
            sample_bytes = np.frombuffer(
                b"".join(raw_bytes[ds_l[i] + _SAMPLE_OFFSET : de_l[i] - 2] for r in runs for i in r[0]),
                dtype=np.uint8,
            )
        else:
            dec = np.frombuffer(raw_bytes, dtype=np.uint8)
            idx = np.concatenate([np.asarray(r[0], dtype=np.int64) for r in runs])
            ps = np.asarray(ds_l, dtype=np.int64)[idx] + _SAMPLE_OFFSET
            pe = np.asarray(de_l, dtype=np.int64)[idx] - 2
            mark = np.zeros(dec.size + 1, dtype=np.int8)
            mark[ps] = 1
            mark[pe] = -1
            sample_bytes = dec[np.cumsum(mark[:-1], dtype=np.int32).astype(bool)]
        out: list[DecodedItem] = []
        offset = 0
        for it in items:
            if not isinstance(it, tuple):
                out.append(it)
                continue
            run_idx, run_t0, run_ns, (info, lost_before, boot, first_seq) = it
            nch = len(info.channels)
            ns = np.asarray(run_ns, dtype=np.int64)
            total = int(ns.sum())
            nbytes = 2 * total * nch
            raw = sample_bytes[offset : offset + nbytes].view("<i2").reshape(total, nch)
            offset += nbytes
            period_us = 1e6 / info.sample_rate_hz
            t0 = np.asarray(run_t0, dtype=np.float64)
            if ns.min() == ns.max():
                t_us = (t0[:, None] + np.arange(ns[0]) * period_us).ravel()
            else:
                within = np.arange(total) - np.repeat(np.cumsum(ns) - ns, ns)
                t_us = np.repeat(t0, ns) + within * period_us
            samples = raw.astype(np.float32)
            samples *= info.scales
            self.stats.samples += total
            out.append(
                SampleBatch(
                    t=t_us / 1e6,
                    samples=samples,
                    raw=raw,
                    info=info,
                    seq=first_seq,
                    n_frames=len(run_idx),
                    lost_before=lost_before,
                    boot=boot,
                )
            )
        return out


def make_decoder(mode: str = "binary", **kwargs) -> StreamDecoder:
    """A decoder for ``mode`` ``"binary"`` (:class:`FrameDecoder`) or ``"text"``
    (:class:`~c3t_edge.protocol.text.TextDecoder`); ``kwargs`` go to its constructor."""
    if mode == "binary":
        return FrameDecoder(**kwargs)
    if mode == "text":
        from c3t_edge.protocol.text import TextDecoder

        return TextDecoder(**kwargs)
    raise ValueError(f"unknown decoder mode {mode!r} (binary or text)")
