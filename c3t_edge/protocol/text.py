"""Plain-text mode: one sample per line, as Arduino sketches print for the Edge Impulse data forwarder.

A line holds the channel values separated by commas, tabs or spaces (any mix, ``\\r\\n`` or ``\\n``
line ends). There is no timestamp, sequence number or CRC: time is the sample index divided by the
declared rate, and a damaged line is only caught when it no longer parses. Lines that start with
``ERR`` become error events; other non-numeric lines (banners, ``Started``) become log events.
"""

from __future__ import annotations

import re

import numpy as np

from c3t_edge.protocol.codes import ChannelKind, ChannelUnit, EventCode
from c3t_edge.protocol.frames import default_imu_info
from c3t_edge.protocol.messages import (
    ChannelSpec,
    DecodedItem,
    DecoderStats,
    DeviceEvent,
    DeviceInfo,
)
from c3t_edge.protocol.messages import SampleBatch as _SampleBatch

#: Standard gravity, to turn m/s² (what many Edge Impulse sketches print) into g.
STANDARD_GRAVITY = 9.80665
#: A "line" longer than this without a line end is garbage (or binary frames): it is dropped.
MAX_LINE_LENGTH = 1024
_SPLIT = re.compile(r"[,\t ]+")


class TextDecoder:
    """Incremental decoder of the plain-text mode.

    ``feed(chunk)`` returns :class:`SampleBatch` items (``t`` (n,) float64 seconds = sample index /
    ``sample_rate_hz``; ``samples`` (n, C) float32) and :class:`DeviceEvent` items (``ERR`` lines with
    code ``EventCode.ERROR``, other text with ``EventCode.LOG``), in stream order.

    ``sample_rate_hz``: the rate the sketch samples at (text carries no time). ``n_channels``: the
    expected values per line; ``None`` takes it from the first sample line. With 6 channels the
    values are taken as ax, ay, az, gx, gy, gz. ``acc_unit``: ``"g"`` or ``"m/s2"`` (then the first
    three values are divided by 9.80665 so that samples are always in g). ``skip_first_line``: drop
    everything up to the first line end, because a port opened mid-line yields a partial line.
    """

    def __init__(
        self,
        sample_rate_hz: float = 50.0,
        *,
        n_channels: int | None = None,
        acc_unit: str = "g",
        skip_first_line: bool = True,
    ):
        if acc_unit not in ("g", "m/s2"):
            raise ValueError(f"acc_unit must be 'g' or 'm/s2', not {acc_unit!r}")
        if not sample_rate_hz > 0:
            raise ValueError("sample_rate_hz must be positive")
        self.stats = DecoderStats()
        self.sample_rate_hz = float(sample_rate_hz)
        self.acc_unit = acc_unit
        self._n_channels = n_channels
        self.info: DeviceInfo | None = self._make_info(n_channels) if n_channels else None
        self._skipping = skip_first_line
        self._buf = ""
        self._index = 0  # samples delivered so far: the next sample's time is index / rate

    def _make_info(self, n: int) -> DeviceInfo:
        if n == 6:
            base = default_imu_info(self.sample_rate_hz, samples_per_frame=1, name="text")
            channels = tuple(ChannelSpec(c.kind, c.axis, c.unit, 1.0, float("inf")) for c in base.channels)
        else:
            channels = tuple(
                ChannelSpec(ChannelKind.OTHER, i, ChannelUnit.COUNTS, 1.0, float("inf")) for i in range(n)
            )
        return DeviceInfo(
            protocol_min=0,
            protocol_max=0,
            firmware_version=(0, 0, 0),
            sample_rate_hz=self.sample_rate_hz,
            channels=channels,
            max_samples_per_frame=1,
            boot_id=0,
            device_id=0,
            name="text",
        )

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[DecodedItem]:
        """Decode ``chunk`` and return the items its complete lines produced."""
        if not chunk:
            return []
        if isinstance(chunk, str):
            text = chunk
            self.stats.bytes += len(chunk.encode("utf-8", errors="replace"))
        else:
            self.stats.bytes += len(chunk)
            text = bytes(chunk).decode("utf-8", errors="replace")
        text = self._buf + text
        lines = text.split("\n")
        self._buf = lines.pop()
        if len(self._buf) > MAX_LINE_LENGTH:
            self._buf = ""
            self.stats.bad_lines += 1
            self._skipping = True  # resume at the next line end
        if self._skipping and lines:
            lines = lines[1:]
            self._skipping = False
        return self._decode_lines(lines)

    def finish(self) -> list[DecodedItem]:
        """End of stream: decode a last line that lacks its line end."""
        rest, self._buf = self._buf, ""
        if self._skipping or not rest.strip():
            return []
        return self._decode_lines([rest])

    def _decode_lines(self, lines: list[str]) -> list[DecodedItem]:
        items: list[DecodedItem] = []
        values: list[list[float]] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            if len(line) > MAX_LINE_LENGTH:
                self.stats.bad_lines += 1
                continue
            try:
                row = [float(v) for v in _SPLIT.split(line)]
            except ValueError:
                row = None
            if row is not None and all(np.isfinite(row)):
                if self._n_channels is None:
                    self._n_channels = len(row)
                    self.info = self._make_info(len(row))
                    items.append(self.info)
                if len(row) == self._n_channels:
                    values.append(row)
                    continue
                self.stats.bad_lines += 1
                continue
            if values:
                items.append(self._batch(values))
                values = []
            is_error = line[:3].upper() == "ERR"
            if not is_error and not any(ch.isalpha() for ch in line):
                self.stats.bad_lines += 1  # numbers that do not parse: a damaged sample line
                continue
            code = EventCode.ERROR if is_error else EventCode.LOG
            self.stats.events += 1
            self.stats.errors += is_error
            items.append(
                DeviceEvent(
                    code=int(code), detail=0, message=line, t=self._index / self.sample_rate_hz, seq=-1
                )
            )
        if values:
            items.append(self._batch(values))
        return items

    def _batch(self, values: list[list[float]]) -> _SampleBatch:
        raw = np.asarray(values, dtype=np.float32)
        samples = raw.copy()
        if self.acc_unit == "m/s2" and samples.shape[1] >= 3:
            samples[:, :3] /= np.float32(STANDARD_GRAVITY)
        n = samples.shape[0]
        t = (self._index + np.arange(n)) / self.sample_rate_hz
        self._index += n
        self.stats.frames += n
        self.stats.samples += n
        assert self.info is not None
        return _SampleBatch(
            t=t,
            samples=samples,
            raw=raw,
            info=self.info,
            seq=-1,
            n_frames=n,
        )
