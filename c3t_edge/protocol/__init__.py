"""The wire protocol between an IMU device and the host (``firmware_bridge/PROTOCOL.md``).

No torch, only numpy: this runs on a Raspberry Pi.

Decoding::

    from c3t_edge.protocol import FrameDecoder, SampleBatch
    dec = FrameDecoder()
    for item in dec.feed(port.read(4096)):
        if isinstance(item, SampleBatch):
            item.t        # (n,) float64 device seconds
            item.samples  # (n, 6) float32, ax ay az in g, gx gy gz in deg/s
    dec.stats.lost, dec.stats.corrupt

:class:`TextDecoder` does the same for the plain-text (Edge Impulse data forwarder) mode, and
:func:`make_decoder` picks one by mode name. :class:`ChannelMap` puts a device's channels into the
order and units a consumer (a model, a calibration) needs.

Modules, each importing only those above it: ``codes`` (every code number a frame carries),
``cobs`` and ``crc``, ``messages`` (what decoders produce), ``channels``, ``frames`` (layout,
encoders, single-frame parsers), ``sequencing`` (frames in order -> items), ``text`` and
``decoder``.
"""

from __future__ import annotations

from c3t_edge.protocol.channels import ChannelMap
from c3t_edge.protocol.cobs import CobsDecodeError, cobs_decode, cobs_encode
from c3t_edge.protocol.codes import ChannelKind, ChannelUnit, CommandCode, EventCode, FrameType
from c3t_edge.protocol.crc import crc16
from c3t_edge.protocol.decoder import FrameDecoder, StreamDecoder, make_decoder
from c3t_edge.protocol.frames import MAX_FRAME_SIZE, PROTOCOL_VERSION, command_bytes, default_imu_info
from c3t_edge.protocol.messages import (
    ChannelSpec,
    DecodedItem,
    DecoderStats,
    DeviceEvent,
    DeviceInfo,
    SampleBatch,
)
from c3t_edge.protocol.text import TextDecoder

__all__ = [
    "MAX_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "ChannelKind",
    "ChannelMap",
    "ChannelSpec",
    "ChannelUnit",
    "CobsDecodeError",
    "CommandCode",
    "DecodedItem",
    "DecoderStats",
    "DeviceEvent",
    "DeviceInfo",
    "EventCode",
    "FrameDecoder",
    "FrameType",
    "SampleBatch",
    "StreamDecoder",
    "TextDecoder",
    "cobs_decode",
    "cobs_encode",
    "command_bytes",
    "crc16",
    "default_imu_info",
    "make_decoder",
]
