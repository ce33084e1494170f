"""Parses that stop when a time budget runs out and resume where they stopped on the next call.

tree-sitter checks a progress callback while it parses, and a parse it stops keeps its state in the
parser, so the next call with the same input goes on from there. py-tree-sitter runs that callback only
when it reads the text through a Python read callback; the versions that leak a reference to every chunk
such a callback returns get it back from :func:`lsp.compat.release_chunks` once the call is over.
"""

from __future__ import annotations

import time
from typing import Final

from tree_sitter import Parser, Point, Tree

from lsp.compat import release_chunks

__all__ = ["parse_within"]

READ_CHUNK: Final = 64 * 1024  # bytes handed to tree-sitter per read


def parse_within(parser: Parser, data: bytes, old: Tree | None, budget: float) -> Tree | None:
    """Parse ``data`` (incrementally from ``old``, edited to match) for at most about ``budget`` seconds.

    Returns the tree, or None when the budget ran out: the parser then holds the parse, and the next call
    with the same ``data`` and ``old`` resumes it (``parser.reset()`` forgets it).
    """
    returned: list[bytes] = []
    parsing = True

    def read(byte: int, _point: Point) -> bytes | None:
        if byte >= len(data):
            return None  # None is not kept, unlike an empty chunk
        chunk = data[byte : byte + READ_CHUNK]
        if parsing:  # the tree keeps this function as its source: ``Node.text`` calls it later, and keeps nothing
            returned.append(chunk)
        return chunk

    def stop(_byte: int, _has_error: bool) -> bool:
        return time.perf_counter() > deadline

    deadline = time.perf_counter() + budget
    try:
        if old is None:
            return parser.parse(read, progress_callback=stop)
        return parser.parse(read, old, progress_callback=stop)
    except ValueError:  # "Parsing failed": the progress callback stopped it; the parser keeps its state
        return None
    finally:
        parsing = False
        release_chunks(returned)
        returned.clear()
