"""The command line's locations: `FILE`, `FILE:LINE`, `FILE:START-END` and `FILE:LINE:COL` (1-based) as a
document and str offsets into it, with an error the user can act on for each way one can be wrong."""

from __future__ import annotations

from pathlib import Path

from lsp.context.documents import Document
from lsp.context.languages import language_for
from lsp.errors import CodellamaError

__all__ = ["line_offset", "line_span", "open_document", "position_offset", "split_location"]


def open_document(path_text: str) -> Document:
    """The file as a document; an error for one that is not text or holds nothing to send to the model."""
    path = Path(path_text)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CodellamaError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise CodellamaError(f"{path} is empty: there is nothing to send to the model")
    language = language_for(None, str(path))
    return Document(path.resolve().as_uri(), language.name if language else "plaintext", 0, text)


def split_location(location: str) -> tuple[str, list[str]]:
    """FILE, then the numbers after it; a Windows drive letter or a colon in the path is kept."""
    parts = location.split(":")
    numbers: list[str] = []
    while len(parts) > 1 and all(p.isdigit() for p in parts[-1].split("-") if p) and parts[-1]:
        numbers.insert(0, parts.pop())
    return ":".join(parts), numbers


def line_offset(doc: Document, line: int) -> int:
    lines = doc.lines
    try:
        return int(lines.offset_at(line - 1, 0, strict=True))
    except ValueError as error:
        raise CodellamaError(f"line {line} is outside {doc.uri}") from error


def position_offset(doc: Document, line: int, col: int) -> int:
    start = line_offset(doc, line)
    end = doc.text.find("\n", start)
    end = len(doc.text) if end < 0 else end
    if col < 1 or start + col - 1 > end:
        raise CodellamaError(f"column {col} is outside line {line}")
    return int(start + col - 1)


def line_span(doc: Document, numbers: list[str], required: bool) -> tuple[int, int]:
    if not numbers:
        if required:
            raise CodellamaError("give the lines as FILE:START-END")
        return 0, len(doc.text)
    first, _, last = numbers[0].partition("-")
    start_line = int(first)
    end_line = int(last) if last else start_line
    if end_line < start_line:
        raise CodellamaError(f"the range {start_line}-{end_line} is backwards")
    start = line_offset(doc, start_line)
    end_start = line_offset(doc, end_line)
    nl = doc.text.find("\n", end_start)
    return start, len(doc.text) if nl < 0 else nl + 1
