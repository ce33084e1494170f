"""The backend protocol every engine implements, and the request it receives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lsp.prompt.chat_format import FormatName, Message


@dataclass
class Usage:
    """What the model server says a generation cost, filled in by the backend as its stream ends (None
    where the server did not say, or the stream was closed before its end)."""

    input_tokens: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Message]
    max_new_tokens: int
    temperature: float = 0.2
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    request_id: str = ""
    usage: Usage = field(default_factory=Usage, compare=False)
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
        """Yield generated text as it arrives, without stop text, and fill ``request.usage`` at its end.
        Nothing is sent before the first iteration. Closing the iterator ends the upstream request (this
        is how cancellation reaches the model server)."""
        ...

    async def generate(self, request: GenerationRequest) -> str:
        """The whole generated text, without stop text."""
        ...

    async def count_tokens(self, text: str) -> int | None:
        """Exact prompt token count from the server, or None when it cannot tell. A request of its own:
        only for a user who asked (`codellama-lsp check`), never on a completion's path."""
        ...

    async def aclose(self) -> None: ...
