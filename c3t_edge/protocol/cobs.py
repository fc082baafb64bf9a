"""Consistent Overhead Byte Stuffing (COBS), one frame at a time.

The wire protocol sends every frame COBS-encoded and followed by one ``0x00`` delimiter, so a
receiver finds frame boundaries by looking for zero bytes alone. These two functions are the
reference (and the encoder the host uses for commands); the streaming decoder in
:mod:`c3t_edge.protocol.decoder` decodes many frames at once with numpy instead.
"""

from __future__ import annotations


class CobsDecodeError(ValueError):
    """An encoded frame that is not valid COBS (a zero byte, or a code that runs past the end)."""


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` (any bytes) into COBS: the result has no ``0x00`` and is at most
    ``len(data) + len(data) // 254 + 1`` bytes long. The delimiter is *not* appended."""
    out = bytearray()
    data = bytes(data)
    start = 0
    n = len(data)
    while True:
        # One block: up to 254 non-zero bytes, ended by a zero, the 254-byte limit or the end.
        end = data.find(b"\x00", start, start + 254)
        if end < 0:
            end = min(start + 254, n)
            out.append(end - start + 1)
            out += data[start:end]
            if end >= n:
                return bytes(out)
            start = end  # a full 254-byte block: the next block starts right after it
        else:
            out.append(end - start + 1)
            out += data[start:end]
            start = end + 1
            if start > n:
                return bytes(out)


def cobs_decode(encoded: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS frame (without its delimiter). Raises :class:`CobsDecodeError`."""
    enc = bytes(encoded)
    out = bytearray()
    i = 0
    n = len(enc)
    if n == 0:
        raise CobsDecodeError("empty COBS frame")
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsDecodeError(f"zero byte at offset {i}")
        end = i + code
        if end > n:
            raise CobsDecodeError(f"code {code} at offset {i} runs past the end ({n} bytes)")
        block = enc[i + 1 : end]
        if 0 in block:
            raise CobsDecodeError(f"zero byte inside the block at offset {i}")
        out += block
        if code != 0xFF and end < n:
            out.append(0)
        i = end
    return bytes(out)
