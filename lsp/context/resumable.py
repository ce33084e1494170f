"""Parses that stop when a time budget runs out and resume where they stopped on the next call.

tree-sitter checks a progress callback while it parses, and a parse it stops keeps its state in the
parser, so the next call with the same input goes on from there. py-tree-sitter runs that callback only
when it reads the text through a Python read callback, and py-tree-sitter 0.26 leaks one reference to
every object such a callback returns (``parser_read_wrapper`` takes a buffer view on the result, which
holds its own reference, and never drops the one the call returned): without a fix every re-parse would
keep its chunks of the text for good (measured: ~10 MB per line typed in a 5,000-line file).

The fix gives each returned chunk back its reference once the parse call is over. How many references
a returned chunk loses is measured once per process on a throwaway parse (:func:`leaked_per_chunk`), so a
py-tree-sitter that no longer leaks gets no fix, and one that behaves in any other way gets no time
budget at all: its parses run to the end, as a parse of bytes does.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import time
from typing import Final

from tree_sitter import Language, Parser, Point, Tree

__all__ = ["leaked_per_chunk", "parse_within"]

READ_CHUNK: Final = 64 * 1024  # bytes handed to tree-sitter per read

_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None


@functools.cache
def leaked_per_chunk(language: Language) -> int | None:
    """References py-tree-sitter keeps to each chunk a read callback returns (0 when fixed upstream), or
    None when it keeps a number this module does not know how to give back."""
    chunk = bytes(bytearray(b"\n"))  # a fresh object: nothing else refers to it
    returns = 0

    def read(byte: int, _point: Point) -> bytes | None:
        nonlocal returns
        if byte:
            return None
        returns += 1
        return chunk

    before = sys.getrefcount(chunk)
    Parser(language).parse(read)
    leaked = sys.getrefcount(chunk) - before
    if returns and leaked % returns == 0 and leaked // returns in (0, 1):
        return leaked // returns
    return None


def parse_within(parser: Parser, data: bytes, old: Tree | None, budget: float) -> Tree | None:
    """Parse ``data`` (incrementally from ``old``, edited to match) for at most about ``budget`` seconds.

    Returns the tree, or None when the budget ran out: the parser then holds the parse, and the next call
    with the same ``data`` and ``old`` resumes it (``parser.reset()`` forgets it).
    """
    assert parser.language is not None
    leaked = leaked_per_chunk(parser.language)
    if leaked is None:
        return parser.parse(data, old) if old is not None else parser.parse(data)
    returned: list[bytes] = []

    def read(byte: int, _point: Point) -> bytes | None:
        if byte >= len(data):
            return None  # None is not kept, unlike an empty chunk
        chunk = data[byte : byte + READ_CHUNK]
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
        if leaked:
            for chunk in returned:
                _decref(chunk)
        returned.clear()  # the tree keeps ``read`` (and so this list) as its source
