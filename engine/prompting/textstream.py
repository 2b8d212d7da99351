"""Turn a growing list of token ids into safe text pieces: whole characters only, stop strings cut."""
from __future__ import annotations

from typing import Callable

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Emits only new, complete text: a Korean syllable split over byte tokens is held back until whole.

    Each push decodes a short window of recent ids, not the whole reply, so a token costs the same at
    8,000 generated tokens as at 64. The window starts a few tokens back (CONTEXT) so that a
    tokenizer which drops a leading space at the start of a decode drops it only in the part already
    handed out.
    """

    CONTEXT = 4    # ids kept before the unsent text when the window moves on
    SPAN = 16      # the window moves on once it holds this many ids and nothing is held back

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self.ids: list[int] = []
        self._start = 0     # the window: ids[_start:] are decoded on each push
        self._emitted = 0   # characters of the window's text already handed out

    def push(self, token_ids: list[int]) -> str:
        self.ids.extend(token_ids)
        text = self._decode(self.ids[self._start:])
        end = len(text)
        while end > self._emitted and text[end - 1] == REPLACEMENT:  # maybe an unfinished UTF-8 sequence
            end -= 1
        piece, self._emitted = text[self._emitted:end], max(self._emitted, end)
        if end == len(text) and len(self.ids) - self._start > self.SPAN:
            self._start = len(self.ids) - self.CONTEXT
            self._emitted = len(self._decode(self.ids[self._start:]))
        return piece

    def flush(self) -> str:
        """At the end, whatever is left (a real U+FFFD the model wrote included)."""
        text = self._decode(self.ids[self._start:])
        piece, self._emitted = text[self._emitted:], len(text)
        return piece


class StopMatcher:
    """Holds back text that could be the start of a stop string; reports when one is complete."""

    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Text safe to show now. After a stop string is found, returns what came before it and sets .stopped."""
        if self.stopped:
            return ""
        self._pending += piece
        hits = [(self._pending.find(s), s) for s in self.stops if s in self._pending]
        if hits:
            cut = min(i for i, _ in hits)
            self.stopped = True
            out, self._pending = self._pending[:cut], ""
            return out
        hold = 0
        for s in self.stops:  # longest suffix of pending that is a proper prefix of a stop string
            for k in range(min(len(s) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out = self._pending[:len(self._pending) - hold]
        self._pending = self._pending[len(out):]
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out
