"""CRC-16/CCITT-FALSE, the frame check of the wire protocol.

Polynomial 0x1021, initial value 0xFFFF, not reflected, no final XOR; check value
``crc16(b"123456789") == 0x29B1``. The standard library's :func:`binascii.crc_hqx` computes
exactly this CRC in C when seeded with 0xFFFF, so no table is needed here.
"""

from __future__ import annotations

import binascii

#: Initial register value of CRC-16/CCITT-FALSE.
CRC16_INIT = 0xFFFF


def crc16(data: bytes | bytearray | memoryview, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (continue a running CRC by passing it as ``crc``)."""
    return binascii.crc_hqx(data, crc)
