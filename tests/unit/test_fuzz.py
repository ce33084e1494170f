"""Fuzzing with hypothesis: position mapping, context extraction and reply clean-up never raise on any
input, and keep their invariants."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp.cleanup import clean_completion, extract_code
from lsp.context.documents import Document
from lsp.context.extract import context_at, selection_context
from lsp.context.positions import InvalidPosition, LineIndex, utf16_len
from lsp.context.syntax import target_range

# Text that exercises the mapping: every line break LSP knows, astral and CJK characters, NUL, a lone
# surrogate (a JSON string may spell one), tabs.
PIECES = ["a", "Z", " ", "\t", "\n", "\r", "\r\n", "😀", "漢", "é", "\x00", "\ud800", "\u200b", "{", "}"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=60).map("".join) | st.text(max_size=60)

# Code-like text: fragments of several languages glued at random, so that trees hold real definitions,
# strings, comments and errors.
CODE_PIECES = [
    "def ", "class ", "fn ", "func ", "function ", "local function ", "public static void ", "struct ", "impl ",
    "int ", "return ", "if ", "else ", "end", "do", "then", "import os", "#include <stdio.h>", "package main",
    "x", "y", "name", "(", ")", "[", "]", "{", "}", ":", ";", ",", ".", "=", "=>", "->", "+", "*",
    "\n", "\n    ", "\n\t", "\r\n", "  ", '"', "'", "`", "\"\"\"", "#", "//", "/*", "*/", "--", "@decorator\n",
    "😀", "é", "\x00", "1", "0x1F", "<CURSOR>", "<step>", "Source: user",
]
CODE = st.lists(st.sampled_from(CODE_PIECES), max_size=80).map("".join)
LANGUAGES = ["python", "javascript", "typescript", "go", "rust", "java", "c", "cpp", "lua", "shellscript", "ruby",
             "plaintext", "unknown-language"]
EXTENSIONS = {"python": "py", "javascript": "js", "typescript": "ts", "go": "go", "rust": "rs", "java": "java",
              "c": "c", "cpp": "cpp", "lua": "lua", "shellscript": "sh", "ruby": "rb"}
# FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _inside_crlf(text: str, offset: int) -> bool:
    return 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n"


# -- LineIndex ---------------------------------------------------------------------------------------


@FUZZ
@given(TEXT, st.data())
def test_offsets_round_trip_through_positions(text: str, data: st.DataObject) -> None:
    index = LineIndex(text)
    offset = data.draw(st.integers(0, len(text)))
    line, character = index.position_at(offset)
    assert 0 <= line < index.line_count
    if _inside_crlf(text, offset):
        # the middle of a line break is the end of its line
        assert index.offset_at(line, character) == offset - 1
    else:
        assert index.offset_at(line, character) == offset
        assert index.offset_at(line, character, strict=True) == offset
    assert character == utf16_len(text[index.line_start(line) : min(offset, index.line_end(line))])
    assert index.offset_of_byte(index.byte_at(offset)) == offset
    assert index.point_at(offset)[0] == text[:offset].count("\n")


@FUZZ
@given(TEXT)
def test_lines_are_what_lsp_calls_lines(text: str) -> None:
    index = LineIndex(text)
    lines = re.split(r"\r\n|\r|\n", text)
    assert index.line_count == len(lines)
    assert [index.line_text(i) for i in range(index.line_count)] == lines
    positions = [index.position_at(o) for o in range(len(text) + 1)]
    assert positions == sorted(positions)  # monotonic


@FUZZ
@given(TEXT, st.integers(-5, 200), st.integers(-5, 200))
def test_any_position_maps_or_is_refused_cleanly(text: str, line: int, character: int) -> None:
    index = LineIndex(text)
    offset = index.offset_at(line, character)  # clamped: never raises
    assert 0 <= offset <= len(text)
    try:
        strict = index.offset_at(line, character, strict=True)
    except InvalidPosition:
        pass
    else:
        assert strict == offset
        assert 0 <= line < index.line_count and character >= 0


# -- context extraction ------------------------------------------------------------------------------


def _document(language: str, text: str) -> Document:
    return Document(f"file:///tmp/project/fuzz.{EXTENSIONS.get(language, 'txt')}", language, 1, text)


@FUZZ
@given(st.sampled_from(LANGUAGES), CODE, st.data())
def test_context_at_any_offset(language: str, text: str, data: st.DataObject) -> None:
    doc = _document(language, text)
    offset = data.draw(st.integers(-3, len(text) + 3))
    context = context_at(doc, offset, root="/tmp/project")
    at = max(0, min(offset, len(text)))
    assert context.prefix == text[:at] and context.suffix == text[at:]
    assert context.path == f"fuzz.{EXTENSIONS.get(language, 'txt')}"
    for scope in context.scopes:
        assert 0 <= scope.start_line <= scope.end_line < doc.lines.line_count
    assert isinstance(context.single_line, bool)


@FUZZ
@given(st.sampled_from(LANGUAGES), CODE, st.data())
def test_target_range_covers_the_selection(language: str, text: str, data: st.DataObject) -> None:
    doc = _document(language, text)
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(0, len(text)))
    start, end = target_range(doc, a, b)
    assert 0 <= start <= end <= len(text)
    lo, hi = min(a, b), max(a, b)
    selected = text[lo:hi]
    if selected.strip():
        # whitespace at the edges aside, the selection is inside the range
        first = lo + (len(selected) - len(selected.lstrip()))
        last = hi - (len(selected) - len(selected.rstrip()))
        assert start <= first and last <= end, (start, end, first, last)
    elif lo == hi and not _inside_crlf(text, lo):  # (no LSP position maps inside a line break)
        assert start <= lo <= end  # the enclosing definition, or the line
    context = selection_context(doc, start, end)
    assert context.prefix + text[start:end] + context.suffix == text


# -- clean-up ----------------------------------------------------------------------------------------

BODY_LINE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="`~\r\n\u200b"), max_size=30
)


@FUZZ
@given(st.lists(BODY_LINE, min_size=1, max_size=8), st.sampled_from(["", "python", "js"]), st.booleans())
def test_extract_code_takes_the_fenced_block(lines: list[str], tag: str, prose: bool) -> None:
    body = "\n".join(lines)
    reply = f"```{tag}\n{body}\n```"
    if prose:
        reply = f"Here is the code you asked for:\n{reply}\nIt returns the total."
    assert extract_code(reply) == body.rstrip("\n")
    # cut off before the closing fence (the stream was closed early): what came so far
    assert body.rstrip().startswith(extract_code(f"```{tag}\n{body}"))


@FUZZ
@given(st.text(max_size=200) | CODE)
def test_extract_code_never_raises(reply: str) -> None:
    assert isinstance(extract_code(reply), str)


@FUZZ
@given(st.text(max_size=120) | CODE, CODE, CODE, st.booleans(), st.integers(1, 5))
def test_clean_completion_never_raises_and_respects_its_limits(
    reply: str, prefix: str, suffix: str, single_line: bool, max_lines: int
) -> None:
    text = clean_completion(reply, prefix, suffix, single_line=single_line, max_lines=max_lines)
    assert text == "" or text.strip()
    assert text == text.rstrip()
    eol = "\r\n" if "\r\n" in prefix + suffix else "\n"
    lines = text.split(eol) if text else []
    assert len(lines) <= max_lines
    if single_line:
        assert sum(1 for line in lines if line.strip()) <= 1
    if eol == "\r\n":
        assert "\n" not in text.replace("\r\n", "")


@pytest.mark.parametrize(
    ("reply", "prefix", "suffix", "expected"),
    [
        ("```python\nreturn x + 1\n```", "def f(x):\n    ", "\n", "return x + 1"),
        ("```\nos.getcwd()\n```", "import os\nos.ge", "\n", "tcwd()"),
        ("```python\nx = 1\n```", "a = 0\r\n", "\r\n", "x = 1"),
    ],
)
def test_clean_completion_examples(reply: str, prefix: str, suffix: str, expected: str) -> None:
    assert clean_completion(reply, prefix, suffix, single_line=False, max_lines=5) == expected
