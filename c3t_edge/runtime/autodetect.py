"""Telling a binary-protocol device from a plain-text one by what it sends.

:class:`AutoDecoder` feeds the first bytes to both decoders (binary frames and text lines) and keeps
the first one to decode ``decide_after`` samples while the other has decoded none; from then on it is
that decoder. Binary frames never parse as lines of numbers and text never passes a frame CRC, so
the choice is unambiguous in practice. Until it is made, nothing is returned (a few hundred
milliseconds of samples at most; they are returned at the decision).
"""

from __future__ import annotations

from c3t_edge.protocol import DecodedItem, DecoderStats, DeviceInfo, FrameDecoder, SampleBatch, StreamDecoder
from c3t_edge.protocol.text import TextDecoder

#: Items kept per mode while undecided.
MAX_PENDING_ITEMS = 1000


class AutoDecoder:
    """A :class:`~c3t_edge.protocol.StreamDecoder` that picks binary or text mode from the data.

    ``text_rate_hz`` is the sample rate of a text-mode device (text carries no time; None: inferred
    from line timing, see :mod:`c3t_edge.protocol.text`); ``text_options`` go to the
    :class:`~c3t_edge.protocol.text.TextDecoder` (``n_channels``, ``acc_unit``, ``gyro_unit``,
    ``rate_hint_hz``); ``text_channels`` is short for ``n_channels``. After the decision,
    :attr:`mode` is ``"binary"`` or ``"text"``.
    """

    takes_arrival_time = True

    def __init__(self, text_rate_hz: float | None, *, text_channels: int | None = None, decide_after: int = 20,
                 **text_options) -> None:
        self._binary = FrameDecoder()
        self._text = TextDecoder(text_rate_hz, **{"n_channels": text_channels, **text_options})
        self._pending: dict[str, list[DecodedItem]] = {"binary": [], "text": []}
        self._chosen: StreamDecoder | None = None
        self.mode: str | None = None
        self.decide_after = int(decide_after)

    @property
    def stats(self) -> DecoderStats:
        return (self._chosen or self._binary).stats

    @property
    def info(self) -> DeviceInfo | None:
        return (self._chosen or self._binary).info

    @property
    def text(self) -> TextDecoder:
        """The text-mode decoder (its format description, value-count mismatch)."""
        return self._text

    @property
    def needs_arrival_times(self) -> bool:
        """True while undecided or while the text decoder infers the rate from line timing."""
        return self._chosen is None or self._chosen is self._text and self._text.needs_arrival_times

    @property
    def value_count_mismatch(self) -> tuple[int, int] | None:
        """The text decoder's, while no binary frame has been seen."""
        return self._text.value_count_mismatch if self._binary.stats.frames == 0 else None

    def describe(self) -> str | None:
        """What the text decoder inferred or assumed (None in binary mode)."""
        return self._text.describe() if self._chosen is self._text else None

    def feed(self, chunk: bytes | bytearray | memoryview, arrival_s: float | None = None) -> list[DecodedItem]:
        if self._chosen is self._text:
            return self._text.feed(chunk, arrival_s)
        if self._chosen is not None:
            return self._chosen.feed(chunk)
        data = bytes(chunk)
        self._pending["binary"] += self._binary.feed(data)
        self._pending["text"] += self._text.feed(data, arrival_s)
        for items in self._pending.values():  # neither decodes anything (garbage): keep it bounded
            del items[:-MAX_PENDING_ITEMS]
        return self._decide()

    def finish(self) -> list[DecodedItem]:
        if self._chosen is not None:
            return self._chosen.finish()
        self._pending["binary"] += self._binary.finish()
        self._pending["text"] += self._text.finish()
        return self._decide(final=True)

    def _decide(self, final: bool = False) -> list[DecodedItem]:
        n = {mode: sum(len(i) for i in items if isinstance(i, SampleBatch)) for mode, items in self._pending.items()}
        for mode, other in (("binary", "text"), ("text", "binary")):
            if n[other] == 0 and (n[mode] >= self.decide_after or (final and n[mode] > 0)):
                self.mode = mode
                self._chosen = self._binary if mode == "binary" else self._text
                items = self._pending[mode]
                self._pending = {"binary": [], "text": []}
                return items
        return []
