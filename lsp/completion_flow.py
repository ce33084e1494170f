"""Flow control for completions: debounce, supersession, a cache that survives typing, and reuse of an
in-flight generation when the user keeps typing what it is about to suggest.

Pure asyncio; the model call is passed in. Every request gets an answer: a completion, or "" when a newer
request for the same document superseded it, or CancelledError when the client cancelled it. A generation
runs as long as some request still waits for it; when the last one is cancelled, it is cancelled too, which
closes the model server's stream.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

PREFIX_KEY_CHARS = 3000
SUFFIX_KEY_CHARS = 600


@dataclass
class _Generation:
    prefix: str
    suffix: str
    task: asyncio.Task[str]
    waiters: int = 0


@dataclass
class FlowStats:
    requests: int = 0
    generations: int = 0
    cache_hits: int = 0
    reused: int = 0
    superseded: int = 0
    cancelled_generations: int = 0
    by_document: dict[str, int] = field(default_factory=dict)


class CompletionFlow:
    def __init__(self, cache_size: int = 256) -> None:
        self._inflight: dict[str, _Generation] = {}
        self._latest: dict[str, int] = {}
        self._seq = 0
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cache_size = cache_size
        self.stats = FlowStats()

    async def complete(
        self,
        key: str,
        prefix: str,
        suffix: str,
        compute: Callable[[], Awaitable[str]],
        *,
        debounce: float = 0.0,
    ) -> str:
        """The completion for text `prefix`|cursor|`suffix` in document `key`."""
        prefix, suffix = prefix[-PREFIX_KEY_CHARS:], suffix[:SUFFIX_KEY_CHARS]
        self._seq += 1
        me = self._latest[key] = self._seq
        self.stats.requests += 1
        cached = self._from_cache(prefix, suffix)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        running = self._inflight.get(key)
        if running is not None and not running.task.done():
            if _continues(running, prefix, suffix):
                self.stats.reused += 1
                text = await self._wait(key, running)
                rest = _rest(running.prefix + text, prefix)
                if rest is not None:
                    return rest
                # The user typed something else than the suggestion: ask anew below.
            else:
                self._cancel(running)
        if debounce > 0:
            await asyncio.sleep(debounce)
        if self._latest.get(key) != me:
            self.stats.superseded += 1
            return ""
        generation = _Generation(prefix, suffix, asyncio.ensure_future(compute()))
        self._inflight[key] = generation
        self.stats.generations += 1
        self.stats.by_document[key] = self.stats.by_document.get(key, 0) + 1
        text = await self._wait(key, generation)
        return text

    def forget(self, key: str) -> None:
        """The document closed: stop its generation."""
        running = self._inflight.pop(key, None)
        if running is not None:
            self._cancel(running)
        self._latest.pop(key, None)

    async def _wait(self, key: str, generation: _Generation) -> str:
        generation.waiters += 1
        try:
            # asyncio.wait raises only when this request is cancelled, not when the generation is.
            await asyncio.wait({generation.task})
        except asyncio.CancelledError:
            generation.waiters -= 1
            if generation.waiters == 0:
                self._cancel(generation)
            raise
        generation.waiters -= 1
        if self._inflight.get(key) is generation:
            del self._inflight[key]
        if generation.task.cancelled():  # a newer request superseded it
            self.stats.superseded += 1
            return ""
        text = generation.task.result()
        if text:
            self._remember(generation.prefix, generation.suffix, text)
        return text

    def _cancel(self, generation: _Generation) -> None:
        if not generation.task.done():
            generation.task.cancel()
            self.stats.cancelled_generations += 1

    def _remember(self, prefix: str, suffix: str, text: str) -> None:
        self._cache[(prefix, suffix)] = text
        self._cache.move_to_end((prefix, suffix))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _from_cache(self, prefix: str, suffix: str) -> str | None:
        """An exact hit, or an entry the user has typed part of: the rest of it."""
        exact = self._cache.get((prefix, suffix))
        if exact is not None:
            self._cache.move_to_end((prefix, suffix))
            return exact
        for (old_prefix, old_suffix), text in reversed(self._cache.items()):
            if old_suffix != suffix or len(prefix) <= len(old_prefix) or not prefix.startswith(old_prefix):
                continue
            rest = _rest(old_prefix + text, prefix)
            if rest:
                return rest
        return None


def _continues(generation: _Generation, prefix: str, suffix: str) -> bool:
    return suffix == generation.suffix and prefix.startswith(generation.prefix)


def _rest(full: str, prefix: str) -> str | None:
    """What remains of a suggestion once `prefix` was typed; None when the typing went elsewhere."""
    if not full.startswith(prefix):
        return None
    return full[len(prefix) :]
