"""Token counting: the real tokenizer when one is configured, else a bound proven never to undercount."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class TokenCounter(Protocol):
    exact: bool

    @property
    def description(self) -> str:
        """How tokens are counted, for the user (the CLI's `prompt` prints it)."""
        ...

    def count(self, text: str) -> int:
        """Tokens of `text` encoded on its own, without BOS."""
        ...


class ByteBoundCounter:
    """An upper bound for SentencePiece/BPE vocabularies with byte fallback (LLaMA's, and the small
    models'): every token covers at least one UTF-8 byte of the normalized text, and normalization adds
    one leading marker. So tokens <= bytes + 1; never an overflow, at the price of a fuller budget."""

    exact = False
    description = "estimate (UTF-8 bytes + 1, an upper bound)"

    def count(self, text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass")) + 1


class TokenizersCounter:
    """A `tokenizers` tokenizer (tokenizer.json)."""

    exact = True

    def __init__(self, encode: Any, description: str, cache_size: int = 20000) -> None:
        self._encode = encode
        self.description = description
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size

    def count(self, text: str) -> int:
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        # A lone surrogate (a JSON string may spell one) cannot cross into Rust: count it as one character.
        n = int(self._encode(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")))
        if len(text) < 4096:  # lines and snippets repeat; whole prompts don't
            self._cache[text] = n
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return n


class TokenizerNotFound(ValueError):
    """The `tokenizer` setting names no tokenizer.json."""


def load_counter(spec: str | None) -> TokenCounter:
    """`spec`: a tokenizer.json file, or a folder holding one. Falls back to the bound (logged) when it cannot
    be loaded: a broken tokenizer must not take the server down."""
    if not spec:
        return CalibratedCounter()
    try:
        return load_tokenizer(spec)
    except Exception as error:
        log.warning("cannot load tokenizer %r (%s); counting with a safe estimate", spec, error)
        return ByteBoundCounter()


def load_tokenizer(spec: str) -> TokenizersCounter:
    """The exact counter of a tokenizer.json (or a folder holding one); TokenizerNotFound when there is none.
    Nothing is downloaded: a hub id is not a path."""
    path = Path(spec).expanduser()
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        raise TokenizerNotFound(f"no tokenizer.json at {spec} (give the file, or the folder that holds it)")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(file))
    return TokenizersCounter(
        lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids), f"tokenizers: {file}"
    )


class CalibratedCounter:
    """The byte bound, scaled by what the model server's own tokenizer (TGI `/tokenize`) reported for
    earlier prompts, plus a margin. Until a measurement arrives it is the bound itself. Not a proof: an
    overflow is caught by the server's 422 and the prompt rebuilt with the plain bound."""

    exact = False
    MARGIN = 1.12
    SAMPLES = 16

    def __init__(self) -> None:
        self._ratios: list[float] = []

    @property
    def description(self) -> str:
        if not self._ratios:
            return "estimate (UTF-8 bytes + 1, an upper bound; not calibrated yet)"
        return f"estimate (UTF-8 bytes + 1, calibrated by {len(self._ratios)} counts of the model server's tokenizer)"

    @property
    def ratio(self) -> float:
        if not self._ratios:
            return 1.0
        return min(1.0, max(self._ratios) * self.MARGIN)

    def observe(self, text: str, tokens: int) -> None:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size >= 200 and tokens > 0:
            self._ratios = [*self._ratios, tokens / size][-self.SAMPLES :]

    def count(self, text: str) -> int:
        return int(len(text.encode("utf-8", "surrogatepass")) * self.ratio) + 1

    def reset(self) -> None:
        self._ratios = []
