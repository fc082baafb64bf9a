"""Frame layout of the wire protocol (version 1): constants, encoders and single-frame parsers.

Normative reference: ``firmware_bridge/PROTOCOL.md``. A frame on the wire is
``COBS(header | payload | crc16) 0x00``; all multi-byte fields are little-endian:

====== ==== ===========================================================================
offset size field
====== ==== ===========================================================================
0      1    protocol version (1)
1      1    frame type (:class:`~c3t_edge.protocol.codes.FrameType`)
2      4    sequence number, u32, +1 per frame the device sends, wraps to 0
6      4    device timestamp in microseconds, u32 (wraps every 2**32 us, ~71.6 min)
10     n    payload (type-dependent)
10+n   2    CRC-16/CCITT-FALSE of bytes [0, 10+n), little-endian
====== ==== ===========================================================================

The encoders here are what the host uses to talk to a device (commands) and what the tests use to
build streams; the device side is the C library in ``firmware_bridge/``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from c3t_edge.protocol.cobs import cobs_encode
from c3t_edge.protocol.codes import ChannelKind, ChannelUnit, FrameType
from c3t_edge.protocol.crc import crc16
from c3t_edge.protocol.messages import ChannelSpec, DeviceEvent, DeviceInfo

PROTOCOL_VERSION = 1
HEADER_SIZE = 10
CRC_SIZE = 2
#: Smallest frame: header + CRC, empty payload.
MIN_FRAME_SIZE = HEADER_SIZE + CRC_SIZE
#: Largest decoded frame (header + payload + CRC) a receiver must accept.
MAX_FRAME_SIZE = 1024
MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - MIN_FRAME_SIZE
#: Largest COBS-encoded frame, without its delimiter.
MAX_ENCODED_SIZE = MAX_FRAME_SIZE + (MAX_FRAME_SIZE + 253) // 254
#: Bytes of an IMU payload before the samples: n_samples u8, n_channels u8.
IMU_PREFIX_SIZE = 2
#: Fixed part of a device-info payload, before the channel descriptors.
INFO_FIXED_SIZE = 24
#: One channel descriptor: kind u8, axis u8, unit u8, reserved u8, scale f32, range f32.
CHANNEL_DESC_SIZE = 12
#: Most channels a DEVICE_INFO may declare.
MAX_CHANNELS = 16
MAX_NAME_SIZE = 32
#: Largest command frame a device must accept (decoded).
MAX_COMMAND_FRAME_SIZE = 64

INFO_FLAG_BOOT = 0x01

_HEADER = struct.Struct("<BBII")
_INFO_FIXED = struct.Struct("<BBBBBBBBfI8s")
_CHANNEL = struct.Struct("<BBBxff")
_EVENT = struct.Struct("<BH")


def _frame(frame_type: int, seq: int, t_us: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    raw = _HEADER.pack(version, frame_type, seq & 0xFFFFFFFF, t_us & 0xFFFFFFFF) + payload
    return raw + crc16(raw).to_bytes(2, "little")


def wire(raw_frame: bytes) -> bytes:
    """COBS-encode a raw frame (header + payload + CRC) and append the ``0x00`` delimiter."""
    return cobs_encode(raw_frame) + b"\x00"


def encode_imu_frame(seq: int, t_us: int, raw_samples: np.ndarray | Sequence[Sequence[int]]) -> bytes:
    """Raw IMU_SAMPLES frame (not COBS-encoded). ``raw_samples``: int16 counts, shape (n, C)."""
    arr = np.asarray(raw_samples, dtype="<i2")
    if arr.ndim != 2 or not 1 <= arr.shape[0] <= 255 or not 1 <= arr.shape[1] <= 255:
        raise ValueError(f"raw_samples must have shape (n, C) with 1 <= n, C <= 255, got {arr.shape}")
    payload = bytes((arr.shape[0], arr.shape[1])) + arr.tobytes()
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"IMU payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_SIZE}")
    return _frame(FrameType.IMU_SAMPLES, seq, t_us, payload)


def encode_info_payload(info: DeviceInfo) -> bytes:
    name = info.name.encode("utf-8")[:MAX_NAME_SIZE]
    head = _INFO_FIXED.pack(
        info.protocol_min,
        info.protocol_max,
        *info.firmware_version,
        len(info.channels),
        info.max_samples_per_frame,
        INFO_FLAG_BOOT if info.boot else 0,
        info.sample_rate_hz,
        info.boot_id,
        info.device_id.to_bytes(8, "little"),
    )
    chans = b"".join(_CHANNEL.pack(c.kind, c.axis, c.unit, c.scale, c.range) for c in info.channels)
    return head + chans + bytes((len(name),)) + name


def encode_info_frame(seq: int, t_us: int, info: DeviceInfo) -> bytes:
    """Raw DEVICE_INFO frame (not COBS-encoded)."""
    return _frame(FrameType.DEVICE_INFO, seq, t_us, encode_info_payload(info))


def encode_event_frame(seq: int, t_us: int, code: int, detail: int = 0, message: str = "") -> bytes:
    """Raw EVENT frame (not COBS-encoded)."""
    return _frame(FrameType.EVENT, seq, t_us, _EVENT.pack(code, detail) + message.encode("utf-8"))


def encode_command_frame(seq: int, code: int, args: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """Raw COMMAND frame (host -> device, not COBS-encoded); the host sends ``t_us = 0``."""
    return _frame(FrameType.COMMAND, seq, 0, bytes((code,)) + args, version=version)


def command_bytes(code: int, seq: int = 0, args: bytes = b"") -> bytes:
    """A command ready for the wire (``COBS(frame) 0x00``).

    Example: ``port.write(command_bytes(CommandCode.START))``."""
    return wire(encode_command_frame(seq, code, args))


def parse_header(raw: bytes) -> tuple[int, int, int, int]:
    """``(version, type, seq, t_us)`` of a raw frame (at least :data:`HEADER_SIZE` bytes)."""
    return _HEADER.unpack_from(raw, 0)


def check_crc(raw: bytes) -> bool:
    """True when the last two bytes of ``raw`` are the CRC of the rest."""
    return len(raw) >= MIN_FRAME_SIZE and crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")


def parse_info_payload(payload: bytes) -> DeviceInfo | None:
    """A :class:`DeviceInfo` from a DEVICE_INFO payload, or None when it is malformed."""
    if len(payload) < INFO_FIXED_SIZE:
        return None
    (pmin, pmax, fw_major, fw_minor, fw_patch, n_ch, max_spf, flags, rate, boot_id, dev_id) = (
        _INFO_FIXED.unpack_from(payload, 0)
    )
    end = INFO_FIXED_SIZE + n_ch * CHANNEL_DESC_SIZE
    if n_ch == 0 or len(payload) < end + 1 or not (rate > 0 and np.isfinite(rate)):
        return None
    channels = []
    for i in range(n_ch):
        kind, axis, unit, scale, full_range = _CHANNEL.unpack_from(
            payload, INFO_FIXED_SIZE + i * CHANNEL_DESC_SIZE
        )
        if not (np.isfinite(scale) and scale != 0 and np.isfinite(full_range)):
            return None
        channels.append(ChannelSpec(kind=kind, axis=axis, unit=unit, scale=scale, range=full_range))
    name_len = payload[end]
    if name_len > MAX_NAME_SIZE or len(payload) < end + 1 + name_len:
        return None
    name = payload[end + 1 : end + 1 + name_len].decode("utf-8", errors="replace")
    return DeviceInfo(
        protocol_min=pmin,
        protocol_max=pmax,
        firmware_version=(fw_major, fw_minor, fw_patch),
        sample_rate_hz=float(rate),
        channels=tuple(channels),
        max_samples_per_frame=max_spf,
        boot_id=boot_id,
        device_id=int.from_bytes(dev_id, "little"),
        name=name,
        boot=bool(flags & INFO_FLAG_BOOT),
    )


#: The unit every channel of a kind must be declared in (PROTOCOL.md 3.1): a host never converts.
_REQUIRED_UNIT = {ChannelKind.ACC: ChannelUnit.G, ChannelKind.GYRO: ChannelUnit.DEG_PER_S}
_KIND_WORD = {ChannelKind.ACC: "accelerometer", ChannelKind.GYRO: "gyroscope"}


def info_refusal(info: DeviceInfo) -> str | None:
    """Why a well-formed device description breaks PROTOCOL.md 3.1 and must be refused (one
    sentence), or None when it is acceptable: more than :data:`MAX_CHANNELS` channels, or an
    accelerometer not declared in g or a gyroscope not in deg/s."""
    n = len(info.channels)
    if n > MAX_CHANNELS:
        return f"it declares {n} channels, more than the {MAX_CHANNELS} a device may declare"
    names = info.channel_names
    for i, channel in enumerate(info.channels):
        unit = _REQUIRED_UNIT.get(channel.kind)
        if unit is not None and channel.unit != unit:
            word = _KIND_WORD[ChannelKind(channel.kind)]
            want = ChannelSpec(channel.kind, 0, unit, 1.0, 0.0).unit_name
            return (
                f"channel {i} ({names[i]}, {word}) is declared in {channel.unit_name}, but {word}s must be "
                f"declared in {want} (its scale converts counts to {want})"
            )
    return None


def parse_event_payload(payload: bytes, seq: int, t: float) -> DeviceEvent | None:
    """A :class:`DeviceEvent` from an EVENT payload, or None when it is malformed."""
    if len(payload) < _EVENT.size:
        return None
    code, detail = _EVENT.unpack_from(payload, 0)
    message = payload[_EVENT.size :].decode("utf-8", errors="replace")
    return DeviceEvent(code=code, detail=detail, message=message, t=t, seq=seq)


def default_imu_info(
    sample_rate_hz: float = 50.0,
    acc_range_g: float = 16.0,
    gyro_range_dps: float = 2000.0,
    *,
    samples_per_frame: int = 10,
    name: str = "c3t-imu",
    boot_id: int = 1,
    device_id: int = 0,
) -> DeviceInfo:
    """The 6-channel IMU description the simulator declares: ax, ay, az in g, gx, gy, gz in deg/s,
    scale = range / 32768 per count."""
    acc = [
        ChannelSpec(ChannelKind.ACC, a, ChannelUnit.G, acc_range_g / 32768.0, acc_range_g) for a in range(3)
    ]
    gyro = [
        ChannelSpec(ChannelKind.GYRO, a, ChannelUnit.DEG_PER_S, gyro_range_dps / 32768.0, gyro_range_dps)
        for a in range(3)
    ]
    return DeviceInfo(
        protocol_min=PROTOCOL_VERSION,
        protocol_max=PROTOCOL_VERSION,
        firmware_version=(1, 0, 0),
        sample_rate_hz=float(sample_rate_hz),
        channels=tuple(acc + gyro),
        max_samples_per_frame=samples_per_frame,
        boot_id=boot_id,
        device_id=device_id,
        name=name,
        boot=True,
    )
