"""Cut generated text at the first stop sequence, also when it arrives split across tokens."""

from __future__ import annotations

from collections.abc import Iterable


class StopCutter:
    """Feed chunks; get back the text that is certainly not part of a stop sequence."""

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, chunk: str) -> str:
        if self.stopped:
            return ""
        text = self._held + chunk
        cut = min((i for s in self._stops if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest end of `text` that begins some stop sequence."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    cutter = StopCutter(stops)
    return cutter.feed(text) + cutter.flush()
