"""Indentation errors in Python code, which tree-sitter's Python grammar accepts without an ERROR node
(an over-indented line just opens a block for it), but Python refuses.

Counted over a window of lines by Python's own tokenizer, which is indifferent to every other kind of
syntax error: an indent after a line that opens no block, a block opener followed by no indent, and a
dedent to a column no enclosing block has.
"""

from __future__ import annotations

import functools
import io
import tokenize

from lsp.cleanup.text import Syntax, tail_lines

_IGNORED = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING})


def indentation_errors(code: str) -> int:
    """How many indentation errors Python would find in ``code`` (a whole window of lines)."""
    errors = 0
    depth = 0  # open brackets: lines inside them are free to indent as they like
    expect_indent = False  # the last logical line ended with a block's ":"
    opens_block = False  # the last token so far of this logical line is a block's ":"
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            kind = token.type
            if kind in _IGNORED or kind == tokenize.DEDENT:
                continue
            if kind == tokenize.ENDMARKER:
                break  # the window ends here, not the file: a block may begin after it
            if kind == tokenize.INDENT:
                errors += not expect_indent
                expect_indent = False
                continue
            if kind == tokenize.NEWLINE:
                expect_indent, opens_block = opens_block, False
                continue
            if expect_indent:
                errors += 1  # a block opener without its indented block
                expect_indent = False
            if kind == tokenize.OP:
                depth += token.string in "([{"
                depth -= token.string in ")]}" and depth > 0
            opens_block = kind == tokenize.OP and token.string == ":" and depth == 0
    except IndentationError:
        errors += 1  # a dedent that matches no outer level: Python stops there, so does the count
    except (tokenize.TokenError, SyntaxError):
        pass  # an unclosed bracket or string at the end of the window: the count so far stands
    return errors


SUFFIX_LINES = 30  # lines after the cursor whose indentation an insertion can break, at most


def _top_level(line: str) -> bool:
    return bool(line[:1].strip()) and not line.startswith("#")


def window_around(prefix: str, suffix: str) -> tuple[str, str]:
    """The lines around the cursor an insertion's indentation errors show in: from the top-level statement
    the cursor is in, to the next top-level line (included: a block opener with no indented line after it
    shows there; after it Python's indentation starts afresh), at most :data:`SUFFIX_LINES` lines."""
    lines = tail_lines(prefix)
    tops = [i for i, line in enumerate(lines[:-1]) if _top_level(line) and not line.startswith("@")]
    after = suffix.split("\n", SUFFIX_LINES)[:SUFFIX_LINES]
    end = next((i + 1 for i in range(1, len(after)) if _top_level(after[i])), len(after))
    return "\n".join(lines[tops[-1] if tops else 0 :]), "\n".join(after[:end])


# The errors the document has of its own around a cursor: counted once per cursor (see prepare_cleanup), not
# after the model's last token.
@functools.lru_cache(maxsize=16)
def baseline_errors(before: str, after: str) -> int:
    return indentation_errors(before + after)


class PythonIndentation:
    """The document's syntax questions, where "parses" also means "adds no Python indentation error":
    counted over the lines around the cursor (:func:`window_around`), with and without the insertion (the
    document may have errors of its own)."""

    def __init__(self, syntax: Syntax, prefix: str, suffix: str) -> None:
        self.syntax = syntax
        self.before, self.after = window_around(prefix, suffix)
        self.errors = baseline_errors(self.before, self.after)

    def parses(self, inserted: str) -> bool:
        if not self.syntax.parses(inserted):
            return False
        return indentation_errors(self.before + inserted + self.after) <= self.errors

    def block_end(self, inserted: str) -> int | None:
        return self.syntax.block_end(inserted)
