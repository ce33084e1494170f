"""The backend protocol every engine implements, and the request it receives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lsp.chat_format import FormatName, Message

# Background work that follows an answer (closing a stream whose answer is decided, calibrating the token
# count, the "idle" status) waits this long, in seconds, so that the answer goes out first: the event loop
# would otherwise run it before the few steps that send the answer.
AFTER_ANSWER = 0.01

Ready = Callable[[], Awaitable[None]]  # awaited just before a request leaves (the caller's debounce)


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Message]
    max_new_tokens: int
    temperature: float = 0.2
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    request_id: str = ""
    # Raw text to continue, without any chat template (backends whose `completion_style` is "continuation";
    # `messages` is then empty).
    prompt: str = ""


@dataclass(frozen=True)
class ModelInfo:
    backend: str
    model_id: str
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None
    version: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class Backend(Protocol):
    name: str
    prompt_format: FormatName

    async def info(self) -> ModelInfo:
        """What the server serves and its limits; cached after the first successful call."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Yield generated text as it arrives, without stop text. Closing the iterator ends the upstream
        request (this is how cancellation reaches the model server). Nothing is sent before the first
        iteration."""
        ...

    async def generate(self, request: GenerationRequest) -> str:
        """The whole generated text, without stop text."""
        ...

    async def count_tokens(self, text: str) -> int | None:
        """Exact prompt token count from the server, or None when it cannot tell."""
        ...

    def warm(self) -> None:
        """A request is likely soon: get ready for it in the background (a hint; may do nothing)."""
        ...

    async def aclose(self) -> None: ...
