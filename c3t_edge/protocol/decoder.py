"""The incremental binary-frame decoder: bytes in, device descriptions / sample batches / events out.

:class:`FrameDecoder` accepts any chunking of the byte stream (one byte at a time, or megabytes),
never raises on bad input, resynchronises at the next ``0x00`` after any damage and counts what
happened in :attr:`FrameDecoder.stats`. This module cuts the bytes into COBS frames; what the
frames mean across the stream (sequence numbers, device time, frame types) is
:class:`~c3t_edge.protocol.sequencing.FrameSequencer`'s.

Speed: the CRC is :func:`binascii.crc_hqx` (C). A chunk with a few frames (a live serial or BLE
read) is decoded in plain Python; a large one (a recording, a big read) with numpy: COBS chains are
walked for all frames in lock-step, headers are gathered at once, runs of in-order sample frames
are taken together, and all samples are gathered with one mask.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from c3t_edge.protocol.frames import MAX_ENCODED_SIZE, MAX_FRAME_SIZE, MIN_FRAME_SIZE
from c3t_edge.protocol.messages import DecodedItem, DecoderStats, DeviceInfo
from c3t_edge.protocol.sequencing import FrameBlock, FrameSequencer
from c3t_edge.protocol.text import TextDecoder

#: Up to this many frames in a block, COBS code bytes are walked in Python rather than numpy.
_PY_CHAIN_MAX_FRAMES = 256
#: Blocks of at most this many frames are decoded without numpy (cheaper per call).
_SMALL_BLOCK_FRAMES = 32


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

    @property
    def info(self) -> DeviceInfo | None:
        """The device description in force (None until one is known)."""
        ...

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
    ``duplicates``, ``resets``, ``seq_wraps``, ``time_wraps``, ``time_backsteps``,
    ``unknown_frames``, ``refused_info``...); :attr:`refusal` says why a DEVICE_INFO was refused.

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
        self._pending = bytearray()
        self._discarding = False
        self._sequencer = FrameSequencer(self.stats, info, duplicate_window)

    @property
    def info(self) -> DeviceInfo | None:
        """The device description in force: the last DEVICE_INFO received (or the one given)."""
        return self._sequencer.info

    @property
    def refusal(self) -> str | None:
        """Why the last refused DEVICE_INFO was refused (one sentence; ``stats.refused_info``
        counts them), or None when none was."""
        return self._sequencer.refusal

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
        return self._sequencer.sequence(FrameBlock.parse(dec.tobytes(), ds.tolist(), de.tolist()))

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
        return self._sequencer.sequence(FrameBlock.parse(b"".join(frames), ds_l, de_l))

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


def make_decoder(mode: str = "binary", **kwargs) -> StreamDecoder:
    """A decoder for ``mode`` ``"binary"`` (:class:`FrameDecoder`) or ``"text"``
    (:class:`~c3t_edge.protocol.text.TextDecoder`); ``kwargs`` go to its constructor."""
    if mode == "binary":
        return FrameDecoder(**kwargs)
    if mode == "text":
        return TextDecoder(**kwargs)
    raise ValueError(f"unknown decoder mode {mode!r} (binary or text)")
