"""Every code number a frame carries (``firmware_bridge/PROTOCOL.md``), in one place.

Frame types (header byte 1), command and event codes (first payload byte of COMMAND and EVENT
frames), and the channel kinds, units and axes a DEVICE_INFO frame declares. No imports: every
other protocol module may use these.
"""

from __future__ import annotations

import enum


class FrameType(enum.IntEnum):
    """Frame types (byte 1 of the header)."""

    DEVICE_INFO = 0x01
    IMU_SAMPLES = 0x02
    EVENT = 0x03
    COMMAND = 0x10  #: host -> device


class CommandCode(enum.IntEnum):
    """First payload byte of a COMMAND frame."""

    START = 0x01
    STOP = 0x02
    SEND_INFO = 0x03
    HELLO = 0x04  #: argument: highest protocol version the host speaks (u8)


class EventCode(enum.IntEnum):
    """First payload byte of an EVENT frame: code u8, detail u16, message (UTF-8, rest)."""

    BOOT = 0x01
    STARTED = 0x02
    STOPPED = 0x03
    ACK = 0x04  #: detail = the command code acknowledged
    NACK = 0x05  #: detail = the command code refused; message says why
    OVERRUN = 0x06  #: detail = samples the device itself had to drop (FIFO/buffer overrun)
    LOG = 0x07  #: informational message
    UNSUPPORTED = 0x08  #: detail = the protocol version of a command frame the device dropped
    ERROR = 0x7F  #: detail = device-specific error code; message says what


class ChannelKind(enum.IntEnum):
    """What a channel measures (channel descriptor byte 0 in DEVICE_INFO)."""

    OTHER = 0
    ACC = 1
    GYRO = 2
    MAG = 3
    TEMPERATURE = 4


class ChannelUnit(enum.IntEnum):
    """The unit of a channel's values after scaling (channel descriptor byte 2 in DEVICE_INFO)."""

    COUNTS = 0
    G = 1
    DEG_PER_S = 2
    MICROTESLA = 3
    DEG_C = 4


#: Channel descriptor byte 1 (axis: 0 = x, 1 = y, 2 = z) for a channel without an axis.
AXIS_NONE = 0xFF
