"""Position conversions: the one place that maps between the four coordinate systems.

* LSP positions: ``(line, character)`` where ``character`` counts code units of the position encoding
  the client and server agreed on (UTF-16 by default, UTF-8 or UTF-32 when negotiated) and a line ends at
  ``\\r\\n``, ``\\n`` or a lone ``\\r``.
* Python ``str`` offsets ("offsets" everywhere else in :mod:`lsp.context`).
* UTF-8 byte offsets, which is what tree-sitter uses for nodes and edits.
* tree-sitter points ``(row, byte column)``, where only ``\\n`` starts a new row.

Everything is computed from a table of line starts built once per text; ASCII-only texts (the common case)
take shortcuts in which all offsets coincide.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import Literal

Encoding = Literal["utf-8", "utf-16", "utf-32"]
ENCODINGS: tuple[Encoding, ...] = ("utf-8", "utf-16", "utf-32")

__all__ = ["ENCODINGS", "Encoding", "InvalidPosition", "LineIndex", "units", "utf16_len"]

_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
_ENCODING_ERRORS = "surrogatepass"  # lone surrogates can come from JSON; never fail on them


class InvalidPosition(ValueError):
    """A position or offset outside the document (only raised when asked to be strict)."""


def utf16_len(text: str) -> int:
    """Number of UTF-16 code units of ``text`` (astral characters count twice)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", _ENCODING_ERRORS)) // 2


def units(text: str, encoding: Encoding = "utf-16") -> int:
    """Length of ``text`` in code units of ``encoding`` (UTF-32: characters)."""
    if encoding == "utf-32" or text.isascii():
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8", _ENCODING_ERRORS))
    return utf16_len(text)


def _prefix_chars(content: str, character: int, encoding: Encoding) -> int:
    """How many characters of ``content`` (one line, non-ASCII) lie before code unit ``character``; a unit
    inside a character means the start of that character. ``character`` is below the line's length."""
    if encoding == "utf-32":
        return character
    if encoding == "utf-8":
        head = _whole(content.encode("utf-8", _ENCODING_ERRORS)[:character])
        return len(head.decode("utf-8", _ENCODING_ERRORS))
    count = 0
    for index, char in enumerate(content):
        width = 2 if char > "\uffff" else 1
        if count + width > character:
            return index
        count += width
    return len(content)  # pragma: no cover - unreachable, character < units


def _whole(head: bytes) -> bytes:
    """``head`` without a multi-byte UTF-8 sequence cut at its end."""
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte < 0x80:
            return head
        if byte >= 0xC0:  # a lead byte: the sequence is whole when it has all its bytes
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if back >= need else head[:-back]
    return head


def _table(first: Iterable[int]) -> array[int]:
    # Line tables are arrays of machine integers: a list of a document's line starts is as many int objects
    # as lines, new after each edit, and each pass of the garbage collector over young objects reads them
    # all (milliseconds for a 25,000-line file, holding the event loop).
    table = array("q", (0,))
    table.extend(first)
    return table


def _starts(text: str) -> array[int]:
    """Start offsets of the lines of ``text`` (LSP line breaks)."""
    if "\r" not in text:
        return _nl_starts(text)
    return _table(m.end() for m in _EOL.finditer(text))


def _byte_starts(data: bytes) -> array[int]:
    if b"\r" not in data:
        return _table(accumulate(len(part) + 1 for part in data.split(b"\n")[:-1]))
    return _table(m.end() for m in _EOL_BYTES.finditer(data))


def _nl_starts(text: str) -> array[int]:
    """Start offsets of tree-sitter rows: only ``\\n`` starts a row."""
    return _table(accumulate(len(part) + 1 for part in text.split("\n")[:-1]))


class LineIndex:
    """Conversions between LSP positions, str offsets, UTF-8 byte offsets and tree-sitter points.

    Immutable: build a new one for a new text (cheap: one pass over the text).
    """

    __slots__ = ("_ascii", "_byte_starts", "_data", "_nl", "_starts", "text")

    def __init__(self, text: str, *, data: bytes | None = None) -> None:
        self.text = text
        self._ascii = text.isascii()
        self._starts = _starts(text)
        # tree-sitter rows differ from LSP lines only when the text has a lone "\r"
        lone_cr = "\r" in text and text.count("\r") != text.count("\r\n")
        self._nl = _nl_starts(text) if lone_cr else self._starts
        self._data = data  # the UTF-8 encoding of text, computed on demand for non-ASCII texts
        self._byte_starts: array[int] | None = self._starts if self._ascii else None

    def edited(self, start: int, end: int, inserted: str, text: str, data: bytes | None = None) -> LineIndex:
        """The index of ``text``, which is this index's text with ``[start, end)`` replaced by ``inserted``.

        Only the lines of the edit are scanned (the others are moved), unless carriage returns are involved.
        ``data`` is the UTF-8 encoding of ``text`` if the caller has it.
        """
        old = self.text
        if "\r" in inserted or "\r" in old[max(0, start - 1) : end + 1] or self._nl is not self._starts:
            return LineIndex(text, data=data)
        starts = self._starts
        first = bisect_right(starts, start)  # lines starting up to the edit are kept
        tail = bisect_right(starts, end)  # lines starting after it are moved
        delta = len(inserted) - (end - start)
        lines = starts[:first]
        position = inserted.find("\n")
        while position >= 0:
            lines.append(start + position + 1)
            position = inserted.find("\n", position + 1)
        lines.extend([line + delta for line in starts[tail:]] if delta else starts[tail:])
        index = LineIndex.__new__(LineIndex)
        index.text = text
        index._ascii = inserted.isascii() if self._ascii else text.isascii()
        index._starts = lines
        index._nl = lines
        index._data = data
        if index._ascii:
            index._byte_starts = lines
        elif self._byte_starts is not None and (self._ascii or self._data is not None):
            byte_start, byte_end = self.byte_at(start), self.byte_at(end)
            raw = inserted.encode("utf-8", _ENCODING_ERRORS)
            byte_delta = len(raw) - (byte_end - byte_start)
            old_bytes = self._byte_starts
            table = old_bytes[:first]
            position = raw.find(b"\n")
            while position >= 0:
                table.append(byte_start + position + 1)
                position = raw.find(b"\n", position + 1)
            table.extend([b + byte_delta for b in old_bytes[tail:]] if byte_delta else old_bytes[tail:])
            index._byte_starts = table
        else:
            index._byte_starts = None
        return index

    # ------------------------------------------------------------------ basic facts
    @property
    def line_count(self) -> int:
        return len(self._starts)

    @property
    def is_ascii(self) -> bool:
        return self._ascii

    @property
    def data(self) -> bytes:
        """The UTF-8 encoding of the text."""
        if self._data is None:
            self._data = self.text.encode("utf-8", _ENCODING_ERRORS)
        return self._data

    def line_start(self, line: int) -> int:
        """Offset of the first character of ``line`` (clamped to the document)."""
        if line < 0:
            return 0
        if line >= len(self._starts):
            return len(self.text)
        return self._starts[line]

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line``'s content, before its line break (clamped to the document)."""
        starts = self._starts
        if line < 0:
            line = 0
        if line >= len(starts) - 1:
            return len(self.text)
        end = starts[line + 1] - 1
        text = self.text
        if text[end] == "\n" and end > starts[line] and text[end - 1] == "\r":
            end -= 1
        return end

    def line_of(self, offset: int) -> int:
        """LSP line containing ``offset`` (clamped)."""
        if offset <= 0:
            return 0
        return bisect_right(self._starts, offset) - 1

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its line break."""
        return self.text[self.line_start(line) : self.line_end(line)]

    # ------------------------------------------------------------------ LSP positions
    def offset_at(
        self, line: int, character: int, *, strict: bool = False, encoding: Encoding = "utf-16"
    ) -> int:
        """The str offset of the LSP position ``(line, character)``, ``character`` in units of ``encoding``.

        With ``strict`` a position outside the document raises :class:`InvalidPosition`; otherwise it is
        clamped as LSP says: a character beyond the end of its line means the line end, a line beyond the
        last line means the end of the document, negative numbers mean 0. A character in the middle of a
        multi-unit character means the start of that character.
        """
        starts = self._starts
        if line < 0 or character < 0:
            if strict:
                raise InvalidPosition(f"negative position ({line}, {character})")
            if line < 0:
                return 0
            character = 0
        if line >= len(starts):
            if strict:
                raise InvalidPosition(f"line {line} beyond the last line {len(starts) - 1}")
            return len(self.text)
        start = starts[line]
        end = self.line_end(line)
        if self._ascii:
            if start + character > end:
                if strict:
                    raise InvalidPosition(f"character {character} beyond the end of line {line}")
                return end
            return start + character
        content = self.text[start:end]
        length = units(content, encoding)
        if character >= length:
            if character > length and strict:
                raise InvalidPosition(f"character {character} beyond the end of line {line}")
            return end
        if length == len(content):  # one unit per character on this line
            return start + character
        return start + _prefix_chars(content, character, encoding)

    def position_at(self, offset: int, encoding: Encoding = "utf-16") -> tuple[int, int]:
        """The LSP position ``(line, column in units of encoding)`` of a str offset (clamped to the
        document).

        An offset inside a ``\\r\\n`` line break maps to the end of its line.
        """
        if offset <= 0:
            return (0, 0)
        text = self.text
        offset = min(offset, len(text))
        line = bisect_right(self._starts, offset) - 1
        start = self._starts[line]
        end = self.line_end(line)
        offset = min(offset, end)
        if self._ascii:
            return (line, offset - start)
        return (line, units(text[start:offset], encoding))

    # ------------------------------------------------------------------ bytes and tree-sitter points
    def _bytes_table(self) -> array[int]:
        if self._byte_starts is None:
            self._byte_starts = _byte_starts(self.data)
        return self._byte_starts

    def byte_at(self, offset: int) -> int:
        """The UTF-8 byte offset of a str offset (clamped to the document)."""
        if offset <= 0:
            return 0
        text = self.text
        if offset >= len(text):
            return len(text) if self._ascii else len(self.data)
        if self._ascii:
            return offset
        line = bisect_right(self._starts, offset) - 1
        start = self._starts[line]
        segment = text[start:offset]
        width = len(segment) if segment.isascii() else len(segment.encode("utf-8", _ENCODING_ERRORS))
        return self._bytes_table()[line] + width

    def offset_of_byte(self, byte: int) -> int:
        """The str offset of a UTF-8 byte offset (clamped; a byte inside a character rounds down)."""
        if byte <= 0:
            return 0
        if self._ascii:
            return min(byte, len(self.text))
        data = self.data
        if byte >= len(data):
            return len(self.text)
        table = self._bytes_table()
        line = bisect_right(table, byte) - 1
        chunk = data[table[line] : byte]
        try:
            width = len(chunk.decode("utf-8", _ENCODING_ERRORS))
        except UnicodeDecodeError as exc:  # byte in the middle of a character: round down
            width = len(chunk[: exc.start].decode("utf-8", _ENCODING_ERRORS))
        return self._starts[line] + width

    def point_at(self, offset: int) -> tuple[int, int]:
        """The tree-sitter point ``(row, byte column)`` of a str offset (clamped to the document)."""
        text = self.text
        offset = max(0, min(offset, len(text)))
        rows = self._nl
        row = bisect_right(rows, offset) - 1 if offset else 0
        start = rows[row]
        if self._ascii:
            return (row, offset - start)
        segment = text[start:offset]
        width = len(segment) if segment.isascii() else len(segment.encode("utf-8", _ENCODING_ERRORS))
        return (row, width)

    # ------------------------------------------------------------------ convenience
    def offset_of_point(self, row: int, column: int) -> int:
        """The str offset of a tree-sitter point (clamped)."""
        rows = self._nl
        if row < 0:
            return 0
        if row >= len(rows):
            return len(self.text)
        return self.offset_of_byte(self.byte_at(rows[row]) + max(0, column))

    def range_of_bytes(self, start_byte: int, end_byte: int) -> tuple[int, int]:
        """The str offsets of a byte range."""
        return self.offset_of_byte(start_byte), self.offset_of_byte(end_byte)


def point_after(start: tuple[int, int], inserted: bytes) -> tuple[int, int]:
    """The tree-sitter point reached after inserting ``inserted`` at point ``start``."""
    newlines = inserted.count(b"\n")
    if not newlines:
        return (start[0], start[1] + len(inserted))
    return (start[0] + newlines, len(inserted) - inserted.rfind(b"\n") - 1)


def encode(text: str) -> bytes:
    """UTF-8 encoding used for tree-sitter (lone surrogates pass through instead of failing)."""
    return text.encode("utf-8", _ENCODING_ERRORS)
