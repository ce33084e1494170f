"""The backend protocol every engine implements, and the request it receives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lsp.chat_format import FormatName, Message


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Message]
    max_new_tokens: int
    temperature: float = 0.2
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    request_id: str = ""


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
        request at once (this is how cancellation reaches the model server)."""
        ...

    async def generate(self, request: GenerationRequest) -> str:
        """The whole generated text, without stop text."""
        ...

    async def count_tokens(self, text: str) -> int | None:
        """Exact prompt token count from the server, or None when it cannot tell."""
        ...

    async def aclose(self) -> None: ...
