"""LineIndex: LSP UTF-16 positions, str offsets, UTF-8 bytes and tree-sitter points."""

from __future__ import annotations

import pytest
import tree_sitter_python
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_sitter import Language, Parser

from lsp.context.positions import InvalidPosition, LineIndex, point_after, utf16_len

EMOJI = "😀"  # U+1F600: 1 str char, 2 UTF-16 units, 4 UTF-8 bytes
CJK = "漢字"  # 2 str chars, 2 UTF-16 units, 6 UTF-8 bytes


def test_ascii_round_trip() -> None:
    text = "abc\ndef\n\nxyz"
    index = LineIndex(text)
    assert index.line_count == 4
    assert index.offset_at(0, 0) == 0
    assert index.offset_at(1, 2) == 6
    assert index.offset_at(2, 0) == 8
    assert index.offset_at(3, 3) == len(text)
    for offset in range(len(text) + 1):
        assert index.offset_at(*index.position_at(offset)) == offset
        assert index.byte_at(offset) == offset
        assert index.offset_of_byte(offset) == offset


def test_emoji_columns_are_utf16() -> None:
    text = f"a{EMOJI}b\n{EMOJI}{EMOJI}x"
    index = LineIndex(text)
    assert index.position_at(text.index("b")) == (0, 3)  # 'a' + 2 units
    assert index.offset_at(0, 3) == text.index("b")
    assert index.offset_at(1, 4) == text.index("x")
    assert index.position_at(len(text)) == (1, 5)
    assert index.byte_at(text.index("b")) == 1 + 4
    assert index.offset_of_byte(5) == text.index("b")
    # a column in the middle of a surrogate pair means the start of the character
    assert index.offset_at(0, 2) == 1
    assert index.offset_at(1, 1) == text.index("\n") + 1


def test_cjk() -> None:
    text = f"x = '{CJK}'  # {CJK}\ny"
    index = LineIndex(text)
    quote = text.index("'", 5)
    assert index.position_at(quote) == (0, quote)  # BMP: one unit per char
    assert index.byte_at(quote) == quote + 4  # two 3-byte characters
    assert index.offset_of_byte(quote + 4) == quote
    assert index.point_at(len(text)) == (1, 1)
    assert index.point_at(text.index("\n")) == (0, len(text.split("\n")[0].encode()))


def test_crlf_and_lone_cr_are_line_breaks() -> None:
    text = "one\r\ntwo\rthree\nfour"
    index = LineIndex(text)
    assert index.line_count == 4
    assert [index.line_text(i) for i in range(4)] == ["one", "two", "three", "four"]
    assert index.offset_at(1, 0) == 5
    assert index.offset_at(2, 0) == 9
    assert index.offset_at(0, 99) == 3  # line end is before "\r\n"
    assert index.position_at(4) == (0, 3)  # between "\r" and "\n": end of the line
    assert index.position_at(9) == (2, 0)
    # tree-sitter only counts "\n": "two\rthree" is one row
    assert index.point_at(9) == (1, 4)
    assert index.point_at(text.index("four")) == (2, 0)


def test_clamping_and_strict() -> None:
    text = "ab\ncd"
    index = LineIndex(text)
    assert index.offset_at(0, 10) == 2
    assert index.offset_at(5, 0) == len(text)
    assert index.offset_at(-1, 0) == 0
    assert index.offset_at(1, -3) == 3
    assert index.offset_at(1, 2, strict=True) == 5
    for line, character in [(0, 3), (2, 0), (-1, 0), (0, -1)]:
        with pytest.raises(InvalidPosition):
            index.offset_at(line, character, strict=True)
    assert issubclass(InvalidPosition, ValueError)
    assert index.position_at(-5) == (0, 0)
    assert index.position_at(99) == (1, 2)
    assert index.byte_at(99) == 5
    assert index.offset_of_byte(99) == 5


def test_strict_with_utf16_line_length() -> None:
    index = LineIndex(f"{EMOJI}\n")
    assert index.offset_at(0, 2, strict=True) == 1
    with pytest.raises(InvalidPosition):
        index.offset_at(0, 3, strict=True)
    assert index.offset_at(1, 0, strict=True) == 2


def test_empty_text_and_trailing_newline() -> None:
    empty = LineIndex("")
    assert empty.line_count == 1
    assert empty.offset_at(0, 0, strict=True) == 0
    assert empty.position_at(0) == (0, 0)
    assert empty.point_at(0) == (0, 0)
    index = LineIndex("a\n")
    assert index.line_count == 2
    assert index.offset_at(1, 0, strict=True) == 2
    assert index.position_at(2) == (1, 0)


def test_byte_in_the_middle_of_a_character_rounds_down() -> None:
    text = f"a{CJK}b"
    index = LineIndex(text)
    assert index.offset_of_byte(2) == 1
    assert index.offset_of_byte(4) == 2
    assert index.offset_of_byte(7) == 3


def test_lone_surrogate_does_not_crash() -> None:
    text = "a\ud800b\nc"
    index = LineIndex(text)
    assert index.byte_at(2) == 4  # surrogatepass: 3 bytes
    assert index.offset_of_byte(4) == 2
    assert index.position_at(2) == (0, 2)
    assert index.offset_at(1, 1) == len(text)


def test_utf16_len() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len(EMOJI + CJK) == 4


def test_point_after() -> None:
    assert point_after((3, 4), b"xy") == (3, 6)
    assert point_after((3, 4), b"x\nyz") == (4, 2)
    assert point_after((3, 4), b"\n") == (4, 0)


def test_points_agree_with_tree_sitter() -> None:
    text = f"x = '{CJK}'\r\ny = '{EMOJI}'\rz = 1\nw = 2\n"
    tree = Parser(Language(tree_sitter_python.language())).parse(text.encode())
    index = LineIndex(text)
    for node in _leaves(tree.root_node):
        offset = index.offset_of_byte(node.start_byte)
        assert index.byte_at(offset) == node.start_byte
        assert index.point_at(offset) == tuple(node.start_point)
        offset = index.offset_of_byte(node.end_byte)
        assert index.point_at(offset) == tuple(node.end_point)


def _leaves(node):  # type: ignore[no-untyped-def]
    if node.child_count == 0:
        yield node
    for child in node.children:
        yield from _leaves(child)


ALPHABET = st.sampled_from(["a", "b", " ", "\n", "\r", "\r\n", EMOJI, "漢", "é", "\t"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_conversions_agree_with_naive_definitions(text: str) -> None:
    index = LineIndex(text)
    data = text.encode()
    # naive LSP lines
    i = 0
    starts = [0]
    while i < len(text):
        if text.startswith("\r\n", i):
            i += 2
            starts.append(i)
        elif text[i] in "\r\n":
            i += 1
            starts.append(i)
        else:
            i += 1
    assert index.line_count == len(starts)
    for offset in range(len(text) + 1):
        assert index.byte_at(offset) == len(text[:offset].encode())
        assert index.offset_of_byte(len(text[:offset].encode())) == offset
        row = text[:offset].count("\n")
        last_nl = text.rfind("\n", 0, offset)
        assert index.point_at(offset) == (row, len(text[last_nl + 1 : offset].encode()))
        line, column = index.position_at(offset)
        assert 0 <= line < len(starts)
        if not (offset > 0 and text[offset - 1 : offset + 1] == "\r\n"):  # not inside a CRLF
            assert starts[line] <= offset
            assert column == utf16_len(text[starts[line] : offset])
            assert index.offset_at(line, column, strict=True) == offset
    assert len(data) == index.byte_at(len(text))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ALPHABET, max_size=30).map("".join),
    st.lists(ALPHABET, max_size=6).map("".join),
    st.data(),
)
def test_edited_index_equals_a_fresh_one(text: str, inserted: str, data: st.DataObject) -> None:
    index = LineIndex(text)
    if data.draw(st.booleans()):
        index.byte_at(len(text))  # the byte table exists before the edit (or not)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    new_text = text[:start] + inserted + text[end:]
    edited = index.edited(start, end, inserted, new_text, new_text.encode("utf-8", "surrogatepass"))
    reference = LineIndex(new_text)
    assert edited.line_count == reference.line_count
    assert edited.is_ascii == reference.is_ascii
    for offset in range(len(new_text) + 1):
        assert edited.position_at(offset) == reference.position_at(offset)
        assert edited.byte_at(offset) == reference.byte_at(offset)
        assert edited.point_at(offset) == reference.point_at(offset)
    for byte in range(len(new_text.encode()) + 1):
        assert edited.offset_of_byte(byte) == reference.offset_of_byte(byte)
    for line in range(reference.line_count + 1):
        assert edited.line_start(line) == reference.line_start(line)
        assert edited.line_end(line) == reference.line_end(line)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_positions_round_trip_in_every_encoding(encoding: str) -> None:
    text = "s = 'héllo' + '漢字' + '😀'\r\nx\n\u2028é"
    index = LineIndex(text)
    for offset in range(len(text) + 1):
        line, character = index.position_at(offset, encoding)  # type: ignore[arg-type]
        if text[max(0, offset - 1) : offset + 1] == "\r\n":
            continue  # inside a line break: the line's end
        assert index.offset_at(line, character, encoding=encoding) == offset  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("encoding", "after_e", "line_length"), [("utf-8", 8, 32), ("utf-16", 7, 25), ("utf-32", 7, 24)]
)
def test_columns_count_the_units_of_the_encoding(encoding: str, after_e: int, line_length: int) -> None:
    text = "s = 'héllo' + '漢字' + '😀'\n"
    index = LineIndex(text)
    assert text[: index.offset_at(0, after_e, encoding=encoding)] == "s = 'hé"  # type: ignore[arg-type]
    assert index.position_at(text.index("\n"), encoding) == (0, line_length)  # type: ignore[arg-type]
    assert index.offset_at(0, line_length + 5, encoding=encoding) == text.index("\n")  # type: ignore[arg-type]


def test_a_utf8_column_inside_a_character_means_its_start() -> None:
    index = LineIndex("é漢x")
    assert index.offset_at(0, 1, encoding="utf-8") == 0
    assert index.offset_at(0, 3, encoding="utf-8") == 1
    assert index.offset_at(0, 4, encoding="utf-8") == 1
    assert index.offset_at(0, 5, encoding="utf-8") == 2
