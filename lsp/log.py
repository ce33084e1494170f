"""Logging to stderr (stdout carries the protocol; clients show stderr as the server's log), optionally a
file, warnings and errors also to the client's log (window/logMessage), never a secret.

Records about one model call carry `key=value` fields (see `fields`), starting with `request=<id>`, so
that one request can be followed through the log with grep.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable

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

ClientSink = Callable[[int, str], None]  # (logging level, message): how records reach the client's log
_client_sink: ClientSink | None = None
_CLIENT_LEVEL = logging.WARNING


def fields(**values: object) -> str:
    """`key=value` pairs in the order given; values with blanks are quoted, None is left out."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        out.append(f"{key}={text!r}" if not text or any(c.isspace() for c in text) else f"{key}={text}")
    return " ".join(out)


def set_client_sink(sink: ClientSink | None) -> None:
    """Where warnings and errors go besides stderr: the language server passes window/logMessage."""
    global _client_sink
    _client_sink = sink


class ClientHandler(logging.Handler):
    """Forwards records to the client sink. A failing sink (no client yet, or gone) is ignored, and a
    record logged while forwarding one is not forwarded, so logging can never loop through the client."""

    def __init__(self) -> None:
        super().__init__(_CLIENT_LEVEL)
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        sink = _client_sink
        if sink is None or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            sink(record.levelno, self.format(record))
        except Exception:  # the other handlers still have the record
            pass
        finally:
            self._busy.on = False


def setup_logging(level: str = "info", file: str | None = None) -> None:
    root = logging.getLogger("lsp")
    root.setLevel(_level(level))
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        try:
            handlers.append(logging.FileHandler(file, encoding="utf-8"))
        except OSError as error:
            # A log file that cannot be opened must not stop the server: say so on the other handlers.
            problem = f"cannot write the log file {file}: {error.strerror or error}"
        else:
            problem = ""
    else:
        problem = ""
    handlers.append(ClientHandler())
    for handler in handlers:
        if not isinstance(handler, ClientHandler):
            handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.propagate = False
    if problem:
        root.warning("%s", problem)


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO
