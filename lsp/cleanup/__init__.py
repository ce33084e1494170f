"""Turn what a model replied into the text to insert or the code to substitute.

Pure functions over strings: take the code out of fences and prose (``extraction``), drop what repeats the
text before the cursor or duplicates the text after it (``overlaps``), give it the cursor's indentation
(``indentation``), and cut it back to what keeps the file parsing (``pipeline``; Python's indentation is
checked by ``python_indentation``, which tree-sitter's grammar does not flag). The syntax questions are
asked through a :class:`Syntax` object the caller builds over its document, so nothing here parses.

Everything works on ``\\n`` text: a CRLF document's prefix and suffix are normalised on the way in and the
insertion gets the document's line ending on the way out.
"""

from lsp.cleanup.extraction import extract_code
from lsp.cleanup.indentation import prepare_cleanup, reindent, reindent_block
from lsp.cleanup.overlaps import strip_prefix_overlap, strip_suffix_overlap
from lsp.cleanup.pipeline import clean_completion, completion_decided
from lsp.cleanup.text import Syntax

__all__ = [
    "Syntax",
    "clean_completion",
    "completion_decided",
    "extract_code",
    "prepare_cleanup",
    "reindent",
    "reindent_block",
    "strip_prefix_overlap",
    "strip_suffix_overlap",
]
