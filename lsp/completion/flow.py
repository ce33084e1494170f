"""Flow control for completions: debounce, supersession, a cache that survives typing, and reuse of an
in-flight generation when the user keeps typing what it is about to suggest.

Pure asyncio; the model call is passed in. Every request gets an answer: a completion, or "" when a newer
request for the same document superseded it, or CancelledError when the client cancelled it. A generation
runs as long as some request still waits for it; when the last one is cancelled, it is cancelled too, which
closes the model server's stream.

A position is the whole text before and after the cursor, hashed, in one document of one language: an
answer is reused only where everything the model saw is the same, or the same plus what was typed since.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Position:
    language: str
    length: int  # how many characters are before the cursor
    prefix: int  # hash of the text before the cursor
    suffix: int  # hash of the text after it

    @classmethod
    def of(cls, language: str, prefix: str, suffix: str) -> _Position:
        return cls(language, len(prefix), hash(prefix), hash(suffix))

    def typed_since(self, old: _Position, prefix: str) -> str | None:
        """What was typed at ``old`` to get here (``prefix`` is the text before this position's cursor);
        None when this is not ``old`` plus typing."""
        if self.language != old.language or self.suffix != old.suffix or self.length < old.length:
            return None
        if hash(prefix[: old.length]) != old.prefix:
            return None
        return prefix[old.length :]


# The preparation of a generation starts this share of the debounce before its end, at most this long before.
PREPARE_SHARE = 0.25
MAX_PREPARE_LEAD = 0.025

_SUPERSEDED = object()  # a listener's result when the generation was cancelled


@dataclass
class _Generation:
    position: _Position
    task: asyncio.Task[str] = field(init=False)
    # One future per waiting request, settled by the generation itself as it ends: a request wakes one turn
    # of the event loop sooner than it would waiting for the task (asyncio.wait takes two), and cancelling
    # a request cancels only its own future.
    listeners: set[asyncio.Future[object]] = field(default_factory=set)
    cancelled: bool = False  # a cancellation was requested

    def start(self, compute: Callable[[], Awaitable[str]]) -> None:
        self.task = asyncio.ensure_future(self._run(compute))
        self.task.add_done_callback(lambda _: self._settle())  # a task cancelled before it ran, say

    async def _run(self, compute: Callable[[], Awaitable[str]]) -> str:
        try:
            text = await compute()
        except BaseException as error:
            self._settle(error)
            raise
        self._settle(text)
        return text

    def _settle(self, outcome: object = None) -> None:
        if outcome is None:  # from the finished task
            task = self.task
            outcome = _SUPERSEDED if task.cancelled() else task.exception() or task.result()
        elif isinstance(outcome, asyncio.CancelledError):
            outcome = _SUPERSEDED
        for listener in self.listeners:
            if listener.done():
                continue
            if isinstance(outcome, BaseException):
                listener.set_exception(outcome)
            else:
                listener.set_result(outcome)
        self.listeners.clear()

    def listen(self) -> asyncio.Future[object]:
        listener: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.listeners.add(listener)
        if self.task.done():
            self._settle()
        return listener


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
    def __init__(self, cache_size: int = 32) -> None:
        """``cache_size``: answers kept per document."""
        self._inflight: dict[str, _Generation] = {}
        self._latest: dict[str, int] = {}
        self._seq = 0
        self._cache: dict[str, OrderedDict[_Position, str]] = {}
        self._cache_size = cache_size
        self._owner: object = None
        self.stats = FlowStats()

    async def complete(
        self,
        key: str,
        prefix: str,
        suffix: str,
        compute: Callable[[], Awaitable[str]],
        *,
        language: str = "",
        debounce: float = 0.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """The completion for text `prefix`|cursor|`suffix` in document `key` of `language`: from the cache,
        from a running generation, or from `compute` once no newer request came for `debounce` seconds.

        `prepare` (the work `compute` can start from: context, prompt) runs in the last part of the
        debounce, when no newer request came until then, so that the model is asked as the debounce ends."""
        here = _Position.of(language, prefix, suffix)
        self._seq += 1
        me = self._latest[key] = self._seq
        self.stats.requests += 1
        cached = self._from_cache(key, here, prefix)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        running = self._inflight.get(key)
        if running is not None and not running.task.done():
            typed = here.typed_since(running.position, prefix)
            if typed is not None:
                self.stats.reused += 1
                text = await self._wait(key, running)
                if text.startswith(typed) and text[len(typed) :].strip():
                    return text[len(typed) :]
                # The user typed something else than the suggestion, or all of it: ask anew below.
            else:
                self._cancel(running)
        if debounce > 0:
            await self._debounce(key, me, debounce, prepare)
        if self._latest.get(key) != me:
            self.stats.superseded += 1
            return ""
        generation = _Generation(here)
        generation.start(compute)
        self._inflight[key] = generation
        self.stats.generations += 1
        self.stats.by_document[key] = self.stats.by_document.get(key, 0) + 1
        return await self._wait(key, generation)

    async def _debounce(
        self, key: str, me: int, debounce: float, prepare: Callable[[], Awaitable[None]] | None
    ) -> None:
        if prepare is None:
            await asyncio.sleep(debounce)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + debounce
        # Late enough that a keystroke at a typing pace has superseded the request already (most do not
        # get this far), early enough that the work is done before the deadline.
        await asyncio.sleep(debounce - min(debounce * PREPARE_SHARE, MAX_PREPARE_LEAD))
        if self._latest.get(key) != me:
            return
        await prepare()
        if (left := deadline - loop.time()) > 0:
            await asyncio.sleep(left)

    def forget(self, key: str) -> None:
        """The document closed: stop its generation."""
        running = self._inflight.pop(key, None)
        if running is not None:
            self._cancel(running)
        self._latest.pop(key, None)
        self._cache.pop(key, None)

    def bind(self, owner: object) -> None:
        """Completions are reused only under the settings they were made with: `owner` stands for those
        (the server's assistant, made anew when the settings change)."""
        if owner is not self._owner:
            self.reset()
            self._owner = owner

    def reset(self) -> None:
        """The settings changed: what was generated under the old ones is not reused."""
        for key in list(self._inflight):
            self.forget(key)
        self._cache.clear()

    async def _wait(self, key: str, generation: _Generation) -> str:
        listener = generation.listen()
        try:
            outcome = await listener
        except asyncio.CancelledError:  # this request was cancelled (the generation's cancellation is an outcome)
            if listener.cancelled():
                generation.listeners.discard(listener)
                if not generation.listeners:
                    self._cancel(generation)
            else:
                listener.exception()  # settled just before: no "exception never retrieved" for it
            raise
        if self._inflight.get(key) is generation:
            del self._inflight[key]
        if outcome is _SUPERSEDED:  # a newer request superseded it
            self.stats.superseded += 1
            return ""
        assert isinstance(outcome, str)
        if outcome:
            self._remember(key, generation.position, outcome)
        return outcome

    def _cancel(self, generation: _Generation) -> None:
        # Once: each call would throw one more CancelledError into the generation's clean-up.
        if not generation.task.done() and not generation.cancelled:
            generation.cancelled = True
            generation.task.cancel()
            self.stats.cancelled_generations += 1

    def _remember(self, key: str, position: _Position, text: str) -> None:
        cache = self._cache.setdefault(key, OrderedDict())
        cache[position] = text
        cache.move_to_end(position)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)

    def _from_cache(self, key: str, here: _Position, prefix: str) -> str | None:
        """An exact hit, or an entry the user has typed part of: the rest of it."""
        cache = self._cache.get(key)
        if not cache:
            return None
        exact = cache.get(here)
        if exact is not None:
            cache.move_to_end(here)
            return exact
        for old, text in reversed(cache.items()):
            if old.length >= here.length or here.length > old.length + len(text):
                continue
            typed = here.typed_since(old, prefix)
            if typed is not None and text.startswith(typed) and text[len(typed) :].strip():
                return text[len(typed) :]
        return None
