"""Plain-text mode: one sample per line, as sketches print for the Edge Impulse data forwarder.

The rules follow the forwarder's documented format and its parser (``edge-impulse-cli``,
``cli/data-forwarder.ts``):

* A line is one reading. Values are separated by commas, tabs or whitespace (the forwarder splits
  on ``[,\\t\\s]``) and empty fields are dropped, so ``1.0,\\t2.0,`` (a separator after each value,
  a trailing one) holds two values. Lines end in LF, CRLF or a lone CR.
* The first line after opening the port may be cut off: it is dropped, as the forwarder skips it.
  A line of names (``accX,accY,accZ``, a CSV header) is no sample: it is kept as the column names
  and reported once. Other non-numeric lines (banners such as ``Started``) are log events.
* A line starting with ``ERR`` or ``<ERR`` (any case) is a device error. The forwarder aborts the
  sampling on it; a stream reports it as an error event and goes on.
* The sample rate is inferred from line timing as the forwarder does: the sample lines that arrive
  within the first second (host clock) are counted, and that count per second is the rate
  (``sample_rate_hz=None``). A count within :data:`RATE_SNAP` of ``rate_hint_hz`` times 1/4, 1/2,
  1, 2 or 4 is taken as that rate (a one-second count is off by a line or two). ``sample_rate_hz``
  set (the forwarder's ``--frequency``) skips the inference. Until the rate is known, lines are
  held (about one second) and then delivered in order.
* Units: three values per line are an accelerometer (ax, ay, az), six an IMU (ax, ay, az, gx, gy,
  gz). Acceleration printed in m/s² (the forwarder's examples multiply by 9.80665) is detected from
  gravity (``acc_unit="auto"``: the median magnitude of the first lines near 9.8 rather than 1) or
  set, and delivered in g; a gyroscope printed in rad/s is set with ``gyro_unit="rad/s"`` and
  delivered in deg/s. Rotation is not converted on a guess, but when it was only assumed to be deg/s
  and stays below :data:`RAD_S_PEAK` through clear motion (the accelerometer's magnitude varies by
  more than :data:`MOTION_STD_G`), :attr:`TextDecoder.advice` says that it looks like rad/s.
  :meth:`TextDecoder.describe` says what was inferred, detected or assumed.

There is no timestamp, sequence number or CRC: time is the sample index divided by the rate, and a
damaged line is only caught when it no longer parses.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import numpy as np

from c3t_edge.protocol.codes import ChannelKind, ChannelUnit, EventCode
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
#: rad/s to deg/s.
DEG_PER_RAD = 180.0 / math.pi
#: A "line" longer than this without a line end is garbage (or binary frames): it is dropped.
MAX_LINE_LENGTH = 1024
#: Seconds of line timing the rate is inferred from (the forwarder listens for 1 s).
INFER_WINDOW_S = 1.0
#: An inferred rate within this fraction of a hinted rate (times 1/4 .. 4) is taken as that rate.
RATE_SNAP = 0.05
#: Sample lines used to tell g from m/s² when the rate is given (else: the inference window's).
UNIT_LINES = 25
#: Lines held at most while the rate is inferred (lines that all arrive at once never close the window).
MAX_HELD_LINES = 5000
#: Consecutive numeric lines of one wrong value count after which :attr:`TextDecoder.value_count_mismatch` is set.
MISMATCH_LINES = 10
#: Rotation that never reaches this (printed units) while the wrist clearly moves looks like rad/s
#: (a moving wrist turns at hundreds of deg/s, a few rad/s).
RAD_S_PEAK = 12.0
#: Std of |acceleration| (g) over a block of samples that counts as clear motion.
MOTION_STD_G = 0.2
#: Median |acceleration| ranges read as gravity in g and in m/s².
GRAVITY_G = (0.5, 2.0)
GRAVITY_MS2 = (0.5 * STANDARD_GRAVITY, 2.0 * STANDARD_GRAVITY)

_LINE_END = re.compile(r"\r\n|\r|\n")
_SEPARATORS = re.compile(r"[,\s]+")
_NAME = re.compile(r"^[A-Za-z_][\w.\[\]()/-]*$")
ACC_UNITS = ("auto", "g", "m/s2")
GYRO_UNITS = ("deg/s", "rad/s")


def split_fields(line: str) -> list[str]:
    """The fields of a line: split on commas, tabs and whitespace, empty fields dropped."""
    return [f for f in _SEPARATORS.split(line) if f]


def parse_values(line: str) -> list[float] | None:
    """The finite numbers of a sample line, or None when a field is not a finite number."""
    fields = split_fields(line)
    try:
        row = [float(v) for v in fields]
    except ValueError:
        return None
    return row if row and all(math.isfinite(v) for v in row) else None


def is_error_line(line: str) -> bool:
    """``ERR...`` or ``<ERR...`` in any case, as the forwarder checks."""
    head = line[:4].upper()
    return head.startswith("ERR") or head.startswith("<ERR")


def snap_rate(counted_hz: float, hint_hz: float | None) -> float:
    """``counted_hz``, or ``hint_hz`` times 1/4, 1/2, 1, 2 or 4 when within :data:`RATE_SNAP` of it."""
    if hint_hz:
        for factor in (1.0, 2.0, 0.5, 4.0, 0.25):
            nominal = hint_hz * factor
            if abs(counted_hz - nominal) <= RATE_SNAP * nominal:
                return nominal
    return float(counted_hz)


class TextDecoder:
    """Incremental decoder of the plain-text mode.

    ``feed(chunk, arrival_s)`` returns :class:`SampleBatch` items (``t`` (n,) float64 seconds =
    sample index / rate; ``samples`` (n, C) float32, acceleration in g, rotation in deg/s; ``raw``
    the values as printed), one :class:`DeviceInfo` before the first batch, and
    :class:`DeviceEvent` items (``ERR`` lines with code ``EventCode.ERROR``, other text with
    ``EventCode.LOG``), in stream order.

    ``sample_rate_hz``: the rate the sketch samples at; ``None`` infers it from line timing
    (module docstring), with ``arrival_s`` (seconds, any clock; default ``clock()``) the time the
    chunk was received and ``rate_hint_hz`` the rate a one-second count is snapped to.
    ``n_channels``: the expected values per line; ``None`` takes it from the first sample line.
    ``acc_unit``: ``"g"``, ``"m/s2"`` or ``"auto"`` (detected from gravity). ``gyro_unit``:
    ``"deg/s"`` or ``"rad/s"``; ``None``: deg/s, assumed (then :attr:`advice` may say it looks like
    rad/s). ``skip_first_line``: drop everything up to the first line end, because a port opened
    mid-line yields a partial line.
    """

    #: ``feed`` takes the chunk's arrival time (the pipeline passes it while the rate is inferred).
    takes_arrival_time = True

    def __init__(
        self,
        sample_rate_hz: float | None = 50.0,
        *,
        n_channels: int | None = None,
        acc_unit: str = "g",
        gyro_unit: str | None = "deg/s",
        skip_first_line: bool = True,
        rate_hint_hz: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if acc_unit not in ACC_UNITS:
            raise ValueError(f"acc_unit must be one of {', '.join(ACC_UNITS)}, not {acc_unit!r}")
        self.gyro_source = "set" if gyro_unit is not None else "assumed"
        gyro_unit = gyro_unit or "deg/s"
        if gyro_unit not in GYRO_UNITS:
            raise ValueError(f"gyro_unit must be one of {', '.join(GYRO_UNITS)}, not {gyro_unit!r}")
        if sample_rate_hz is not None and not sample_rate_hz > 0:
            raise ValueError("sample_rate_hz must be positive")
        self.stats = DecoderStats()
        self.sample_rate_hz: float | None = float(sample_rate_hz) if sample_rate_hz is not None else None
        self.rate_source = "set" if sample_rate_hz is not None else "inferred"
        self.rate_hint_hz = rate_hint_hz
        self.acc_unit = acc_unit
        self.acc_source = "detected" if acc_unit == "auto" else "set"
        self.gravity_read: float | None = None
        self.gyro_unit = gyro_unit
        #: A one-line suggestion about the units, once the samples make one (None until then).
        self.advice: str | None = None
        self._motion_block: list[tuple[np.ndarray, np.ndarray]] = []  # (acc in g, rotation as printed)
        self.header: tuple[str, ...] | None = None
        #: (values per line the device prints, values expected) once :data:`MISMATCH_LINES`
        #: numeric lines in a row had that other count; None otherwise.
        self.value_count_mismatch: tuple[int, int] | None = None
        self._clock = clock
        self._n_channels = n_channels
        self.info: DeviceInfo | None = None
        self._skipping = skip_first_line
        self._buf = ""
        self._index = 0  # samples delivered so far: the next sample's time is index / rate
        self._held: list[list[float] | str] = []  # sample rows and text lines before the format is settled
        self._held_rows = 0
        self._window_start: float | None = None
        self._wrong: tuple[int, int] = (0, 0)  # (value count, consecutive lines with it)
        if self.sample_rate_hz is not None and acc_unit != "auto" and n_channels:
            self._settle()

    @property
    def settled(self) -> bool:
        """True once the rate and units are known (samples are then delivered as they arrive)."""
        return self.info is not None

    @property
    def held_samples(self) -> int:
        """Sample lines held while the rate or units are being found (delivered when they are)."""
        return self._held_rows

    @property
    def needs_arrival_times(self) -> bool:
        """True while the rate is inferred from line timing (chunks must not be joined)."""
        return self.info is None and self.sample_rate_hz is None

    # ------------------------------------------------------------------ input
    def feed(self, chunk: bytes | bytearray | memoryview | str, arrival_s: float | None = None) -> list[DecodedItem]:
        """Decode ``chunk`` (received at ``arrival_s``) and return the items its complete lines produced."""
        if not chunk:
            return []
        if isinstance(chunk, str):
            text = chunk
            self.stats.bytes += len(chunk.encode("utf-8", errors="replace"))
        else:
            self.stats.bytes += len(chunk)
            text = bytes(chunk).decode("utf-8", errors="replace")
        lines = _LINE_END.split(self._buf + text)
        self._buf = lines.pop()
        if len(self._buf) > MAX_LINE_LENGTH:
            self._buf = ""
            self.stats.bad_lines += 1
            self._skipping = True  # resume at the next line end
        if self._skipping and lines:
            lines = lines[1:]
            self._skipping = False
        arrival = self._clock() if arrival_s is None else float(arrival_s)
        return self._decode_lines(lines, arrival)

    def finish(self) -> list[DecodedItem]:
        """End of stream: decode a last line that lacks its line end, settle with what was seen."""
        rest, self._buf = self._buf, ""
        items: list[DecodedItem] = []
        if not self._skipping and rest.strip():
            items = self._decode_lines([rest], None)
        if not self.settled and self._held_rows:
            items += self._settle()
        return items

    def describe(self) -> str:
        """One line: values per line, rate and units, and whether each was inferred, detected or set."""
        if self.info is None:
            return "text lines: format not known yet"
        names = " ".join(self.info.channel_names)
        how = {"set": "set", "inferred": f"inferred from {INFER_WINDOW_S:g} s of line timing",
               "assumed": "assumed: the lines arrived too fast to time"}[self.rate_source]
        parts = [f"text lines: {len(self.info.channels)} values ({names}) at {self.sample_rate_hz:g} Hz ({how})"]
        if self._n_channels in (3, 6):
            gravity = f", gravity read {self.gravity_read:.2f}" if self.gravity_read is not None else ""
            unit = {"g": "g", "m/s2": "m/s²"}[self.acc_unit]
            parts.append(f"acceleration in {unit} ({self.acc_source}{gravity})"
                         + (", converted to g" if self.acc_unit == "m/s2" else ""))
        if self._n_channels == 6:
            parts.append(f"rotation in {self.gyro_unit} ({self.gyro_source})"
                         + (", converted to deg/s" if self.gyro_unit == "rad/s" else ""))
        return "; ".join(parts)

    # ------------------------------------------------------------------ lines
    def _decode_lines(self, lines: list[str], arrival: float | None) -> list[DecodedItem]:
        items: list[DecodedItem] = []
        if not self.settled and arrival is not None:
            items += self._maybe_settle(arrival)
        records: list[list[float] | str] = []
        for line in lines:
            record = self._classify(line.strip())
            if record is None:
                continue
            if self.settled:
                records.append(record)
                continue
            self._held.append(record)
            if isinstance(record, list):
                self._held_rows += 1
                if self._window_start is None:
                    self._window_start = arrival
            if self._held_rows and self._ready_without_timing():
                items += self._settle()
        self._emit_all(records, items)
        return items

    def _classify(self, line: str) -> list[float] | str | None:
        """A sample row, a text line (event or header), or None (blank, or counted as bad)."""
        if not line:
            return None
        if len(line) > MAX_LINE_LENGTH:
            self.stats.bad_lines += 1
            return None
        row = parse_values(line)
        if row is None:
            if not is_error_line(line) and not any(ch.isalpha() for ch in line):
                self.stats.bad_lines += 1  # numbers that do not parse: a damaged sample line
                return None
            return line
        if self._n_channels is None:
            self._n_channels = len(row)
        if len(row) != self._n_channels:
            self._count_wrong(len(row))
            return None
        self._wrong = (0, 0)
        return row

    def _count_wrong(self, count: int) -> None:
        self.stats.bad_lines += 1
        seen, run = self._wrong
        run = run + 1 if count == seen else 1
        self._wrong = (count, run)
        if run >= MISMATCH_LINES and self._n_channels is not None:
            self.value_count_mismatch = (count, self._n_channels)

    def _ready_without_timing(self) -> bool:
        """Settle before the timing window closes: the rate is given (units need enough lines), or
        too many lines are held."""
        if self._held_rows >= MAX_HELD_LINES:
            return True
        return self.sample_rate_hz is not None and (self.acc_unit != "auto" or self._held_rows >= UNIT_LINES)

    def _maybe_settle(self, arrival: float) -> list[DecodedItem]:
        """Close the timing window when a chunk arrives a full window after the first sample line."""
        if self._window_start is None or arrival - self._window_start < INFER_WINDOW_S:
            return []
        if self.sample_rate_hz is None:
            counted = self._held_rows / INFER_WINDOW_S
            self.sample_rate_hz = snap_rate(counted, self.rate_hint_hz)
        return self._settle()

    def _settle(self) -> list[DecodedItem]:
        """Fix rate and units, emit the device description and what was held."""
        if self.sample_rate_hz is None:  # every line arrived at once: nothing to time
            self.sample_rate_hz = float(self.rate_hint_hz or 50.0)
            self.rate_source = "assumed"
        rows = [r for r in self._held if isinstance(r, list)]
        if self.acc_unit == "auto":
            self._detect_acc_unit(rows)
        n = self._n_channels or (len(rows[0]) if rows else 0)
        self._n_channels = n
        self.info = self._make_info(n)
        items: list[DecodedItem] = [self.info]
        held, self._held, self._held_rows = self._held, [], 0
        self._emit_all(held, items)
        return items

    def _detect_acc_unit(self, rows: list[list[float]]) -> None:
        """g or m/s² from the median magnitude of the first three values; g when neither fits."""
        self.acc_unit = "g"
        if not rows or len(rows[0]) < 3:
            self.acc_source = "assumed"
            return
        gravity = float(np.median(np.linalg.norm(np.asarray(rows, dtype=np.float64)[:, :3], axis=1)))
        self.gravity_read = gravity
        if GRAVITY_MS2[0] <= gravity <= GRAVITY_MS2[1]:
            self.acc_unit = "m/s2"
        elif not GRAVITY_G[0] <= gravity <= GRAVITY_G[1]:
            self.acc_source = "assumed"

    def _check_rotation_unit(self, samples: np.ndarray, raw: np.ndarray) -> None:
        """Set :attr:`advice` when rotation assumed in deg/s stays small through clear motion
        (checked per block of at least a second of samples)."""
        self._motion_block.append((samples[:, :3], raw[:, 3:6]))
        if sum(len(a) for a, _ in self._motion_block) < max(25, int(self.sample_rate_hz or 50)):
            return
        acc = np.concatenate([a for a, _ in self._motion_block])
        peak = float(np.abs(np.concatenate([g for _, g in self._motion_block])).max())
        self._motion_block = []
        if float(np.linalg.norm(acc, axis=1).std()) > MOTION_STD_G and peak < RAD_S_PEAK:
            self.advice = (f"rotation peaks at {peak:.2g} while the accelerometer shows clear motion: the device "
                           "probably prints rad/s, not deg/s; if so, pass --gyro-units rad/s")

    def _make_info(self, n: int) -> DeviceInfo:
        if n in (3, 6):
            kinds = [(ChannelKind.ACC, ChannelUnit.G)] * 3 + [(ChannelKind.GYRO, ChannelUnit.DEG_PER_S)] * (n - 3)
            channels = tuple(ChannelSpec(kind, i % 3, unit, 1.0, float("inf")) for i, (kind, unit) in enumerate(kinds))
        else:
            channels = tuple(
                ChannelSpec(ChannelKind.OTHER, i, ChannelUnit.COUNTS, 1.0, float("inf")) for i in range(n)
            )
        return DeviceInfo(
            protocol_min=0,
            protocol_max=0,
            firmware_version=(0, 0, 0),
            sample_rate_hz=float(self.sample_rate_hz or 0.0),
            channels=channels,
            max_samples_per_frame=1,
            boot_id=0,
            device_id=0,
            name="text",
        )

    # ------------------------------------------------------------------ output
    def _emit_all(self, records: list[list[float] | str], items: list[DecodedItem]) -> None:
        """Append the items of settled records: one batch per run of sample rows, an event per text line."""
        rows: list[list[float]] = []
        for record in records:
            if isinstance(record, list):
                rows.append(record)
                continue
            if rows:
                items.append(self._batch(rows))
                rows = []
            items.append(self._event(record))
        if rows:
            items.append(self._batch(rows))

    def _event(self, line: str) -> DeviceEvent:
        """A header note (the first line of names), an ``ERR`` error or a log line."""
        is_error = False
        if self.header is None and self._is_header(line):
            self.header = tuple(split_fields(line))
            line = "column names: " + ", ".join(self.header)
        else:
            is_error = is_error_line(line)
        self.stats.events += 1
        self.stats.errors += is_error
        code = EventCode.ERROR if is_error else EventCode.LOG
        return DeviceEvent(code=int(code), detail=0, message=line,
                           t=self._index / float(self.sample_rate_hz or 1.0), seq=-1)

    def _is_header(self, line: str) -> bool:
        """A line of names, one per value (``accX,accY,accZ``): what a CSV header looks like."""
        names = split_fields(line)
        count_fits = self._n_channels is None or len(names) == self._n_channels
        return count_fits and len(names) > 1 and all(_NAME.match(x) for x in names)

    def _batch(self, values: list[list[float]]) -> _SampleBatch:
        raw = np.asarray(values, dtype=np.float32)
        samples = raw.copy()
        if self.acc_unit == "m/s2" and samples.shape[1] >= 3:
            samples[:, :3] /= np.float32(STANDARD_GRAVITY)
        if self.gyro_unit == "rad/s" and samples.shape[1] == 6:
            samples[:, 3:6] *= np.float32(DEG_PER_RAD)
        if self.gyro_source == "assumed" and self.advice is None and samples.shape[1] == 6:
            self._check_rotation_unit(samples, raw)
        n = samples.shape[0]
        assert self.info is not None and self.sample_rate_hz is not None
        t = (self._index + np.arange(n)) / self.sample_rate_hz
        self._index += n
        self.stats.frames += n
        self.stats.samples += n
        return _SampleBatch(
            t=t,
            samples=samples,
            raw=raw,
            info=self.info,
            seq=-1,
            n_frames=n,
        )
