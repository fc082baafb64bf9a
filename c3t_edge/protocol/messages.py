"""What the decoders produce: device descriptions, sample batches, device events, counters.

Every decoder's ``feed(chunk)`` returns a list of :data:`DecodedItem` in stream order:
:class:`DeviceInfo` (the device described itself), :class:`SampleBatch` (samples in the units the
device declared: acceleration in g, angular rate in deg/s) and :class:`DeviceEvent` (boot, start,
stop, acknowledgements, errors, log text).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from c3t_edge.protocol.codes import ChannelKind, ChannelUnit, EventCode

#: Name prefix of each channel kind (:func:`channel_names`); unknown kinds are named as "other".
_KIND_PREFIX = {
    ChannelKind.OTHER: "c",
    ChannelKind.ACC: "a",
    ChannelKind.GYRO: "g",
    ChannelKind.MAG: "m",
    ChannelKind.TEMPERATURE: "temp",
}
#: Kinds whose channels are named by axis (``ax``, ``gy``, ``mz``) when they declare one.
_AXIS_KINDS = (ChannelKind.ACC, ChannelKind.GYRO, ChannelKind.MAG)
#: The key of the time column next to channel names (``decode --json``): no channel is named so.
TIME_KEY = "t"
_UNIT_NAME = {
    ChannelUnit.COUNTS: "counts",
    ChannelUnit.G: "g",
    ChannelUnit.DEG_PER_S: "deg/s",
    ChannelUnit.MICROTESLA: "uT",
    ChannelUnit.DEG_C: "degC",
}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel as the device declares it: ``value = count * scale`` in ``unit``, clipping at ±range."""

    kind: int
    axis: int  #: 0 = x, 1 = y, 2 = z, 255 = none (:data:`~c3t_edge.protocol.codes.AXIS_NONE`)
    unit: int
    scale: float  #: units per int16 count
    range: float  #: full scale, ± in units

    @property
    def unit_name(self) -> str:
        return _UNIT_NAME.get(self.unit, f"unit{self.unit}")


def channel_names(channels: tuple[ChannelSpec, ...]) -> tuple[str, ...]:
    """Distinct names for ``channels`` (in sample order), ``<kind><axis>`` or ``<kind><index>``.

    An accelerometer, gyroscope or magnetometer channel with an axis is ``ax`` … ``mz`` (kind
    prefix ``a``, ``g``, ``m`` and the axis letter) unless an earlier channel already has that
    name; every other channel is its kind prefix (``c`` other, ``a``, ``g``, ``m``, ``temp``
    temperature) followed by its index in the sample (``temp6``, ``c0`` … ``c15``, a second
    accelerometer's ``a6``). Names are therefore distinct, and none is :data:`TIME_KEY`.
    """
    names: list[str] = []
    for index, channel in enumerate(channels):
        prefix = _KIND_PREFIX.get(channel.kind, _KIND_PREFIX[ChannelKind.OTHER])
        name = prefix + "xyz"[channel.axis] if channel.kind in _AXIS_KINDS and channel.axis < 3 else ""
        if not name or name in names:
            name = f"{prefix}{index}"
        names.append(name)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's description of itself (DEVICE_INFO frame), sent at boot and on request."""

    protocol_min: int
    protocol_max: int
    firmware_version: tuple[int, int, int]
    sample_rate_hz: float  #: nominal rate; sample i of a batch is at t0 + i / sample_rate_hz
    channels: tuple[ChannelSpec, ...]
    max_samples_per_frame: int
    boot_id: int  #: differs between consecutive boots of one device (0 = unknown)
    device_id: int  #: 64-bit hardware id (0 = unknown)
    name: str = ""
    boot: bool = False  #: True on the first DEVICE_INFO after power-up or reset

    @property
    def channel_names(self) -> tuple[str, ...]:
        """One distinct name per channel, in sample order (:func:`channel_names`)."""
        return channel_names(self.channels)

    @property
    def scales(self) -> np.ndarray:
        """Per-channel scale, float32 shape (C,): multiply int16 counts by it to get units."""
        return np.array([c.scale for c in self.channels], dtype=np.float32)

    @property
    def firmware(self) -> str:
        return ".".join(str(v) for v in self.firmware_version)

    def same_stream_format(self, other: DeviceInfo | None) -> bool:
        """True when ``other`` decodes samples identically (channels and rate)."""
        return (
            other is not None
            and self.channels == other.channels
            and self.sample_rate_hz == other.sample_rate_hz
        )


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Consecutive samples from one or more frames that arrived without a gap between them.

    ``t``: float64, shape (n,), device time in seconds since the device booted (timestamp wraps are
    already unwrapped). ``samples``: float32, shape (n, C), in the declared units (g, deg/s).
    ``raw``: the int16 counts, shape (n, C), read-only (text mode: the values as printed, float32).
    A new batch starts after a lost frame, a device
    reset, an event or a new device description, so ``lost_before`` and ``boot`` describe the
    whole batch.
    """

    t: np.ndarray
    samples: np.ndarray
    raw: np.ndarray
    info: DeviceInfo
    seq: int  #: sequence number of the first frame (-1 in text mode)
    n_frames: int  #: frames (text mode: lines) merged into this batch
    lost_before: int = 0  #: frames the sequence numbers say were lost right before this batch
    boot: int = 0  #: device resets seen before this batch (0 = first boot seen)

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.info.channel_names


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """An EVENT frame (binary mode) or an ``ERR``/non-sample line (text mode).

    ``code`` is an :class:`~c3t_edge.protocol.codes.EventCode` value; ``t`` is device seconds
    (binary mode; text mode: the time of the next sample), ``seq`` the frame's sequence number
    (-1 in text mode)."""

    code: int
    detail: int
    message: str
    t: float
    seq: int

    @property
    def is_error(self) -> bool:
        return self.code in (EventCode.ERROR, EventCode.NACK, EventCode.OVERRUN, EventCode.UNSUPPORTED)


DecodedItem = DeviceInfo | SampleBatch | DeviceEvent


@dataclass(slots=True)
class DecoderStats:
    """Counters of one decoder since it was created (all monotonic)."""

    bytes: int = 0  #: bytes fed
    frames: int = 0  #: valid frames accepted (binary) / sample lines accepted (text)
    samples: int = 0  #: samples delivered
    corrupt: int = 0  #: delimited chunks rejected: bad COBS, bad CRC, too short or too long
    malformed: int = 0  #: frames with a good CRC but a payload that contradicts its header or the device info
    unsupported: int = 0  #: good CRC, but a version this host does not speak or a COMMAND (an echo): dropped
    unknown_frames: int = 0  #: frames of this version with a frame type this host does not know (skipped, not lost)
    refused_info: int = 0  #: DEVICE_INFO frames refused for breaking PROTOCOL.md 3.1 (too many channels, units)
    lost: int = 0  #: frames missing according to sequence-number gaps
    duplicates: int = 0  #: frames received twice (dropped)
    resets: int = 0  #: device reboots (sequence restarted / new boot id)
    seq_wraps: int = 0  #: sequence number wrapped 0xFFFFFFFF -> 0
    time_wraps: int = 0  #: device timestamp wrapped (every 2**32 us)
    time_backsteps: int = 0  #: device time went back within one boot (by at most 60 s; kept as the device says)
    no_info: int = 0  #: sample frames dropped because no DEVICE_INFO had declared their scales yet
    events: int = 0  #: DeviceEvent items delivered
    errors: int = 0  #: error events (EVENT ERROR/NACK/OVERRUN/UNSUPPORTED frames, ``ERR`` lines)
    bad_lines: int = (
        0  #: text mode: lines that were neither samples nor messages (wrong value count, garbage)
    )

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
