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

    ``text_rate_hz`` is the sample rate assumed for a text-mode device (text carries no time);
    ``text_channels`` the values expected per line (None: from the first line). After the decision,
    :attr:`mode` is ``"binary"`` or ``"text"``.
    """

    def __init__(self, text_rate_hz: float, *, text_channels: int | None = None, decide_after: int = 20) -> None:
        self._binary = FrameDecoder()
        self._text = TextDecoder(text_rate_hz, n_channels=text_channels)
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

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[DecodedItem]:
        if self._chosen is not None:
            return self._chosen.feed(chunk)
        data = bytes(chunk)
        self._pending["binary"] += self._binary.feed(data)
        self._pending["text"] += self._text.feed(data)
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
