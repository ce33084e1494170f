"""Logging to stderr (stdout carries the protocol), optionally a file, never a secret."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

_secrets: set[str] = set()
_REDACTED = "[redacted]"


def register_secret(value: str | None) -> None:
    """Every later log record has this value replaced; short values are ignored to avoid mangling logs."""
    if value and len(value) >= 6:
        _secrets.add(value)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    for secret in (*_secrets, *extra):
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
            if record.exc_info and record.exc_info[1] is not None:
                # The traceback is formatted later; keep the text but drop the exception object.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info", file: str | None = None) -> None:
    root = logging.getLogger("lsp")
    root.setLevel(_level(level))
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.propagate = False


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO
