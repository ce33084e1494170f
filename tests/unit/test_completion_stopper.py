"""The completion stopper: while a reply streams it decides when the completion is complete, and it asks
the clean-up's syntax questions between tokens, so that none is left for after the last one."""

from __future__ import annotations

import gc
import weakref

import pytest

import lsp.completion.stopper
from lsp.cleanup import clean_completion
from lsp.completion.stopper import CompletionStopper
from lsp.context import Document, context_at

SOURCE = (
    "import math\n\n\n"
    "def area(shapes: list[dict[str, float]]) -> float:\n"
    "    total = 0.0\n"
    "    for shape in shapes:\n"
    "        \n"
    "    return total\n\n\n"
    "def perimeter(radius: float) -> float:\n"
    "    return 2 * math.pi * radius\n"
)
CURSOR = SOURCE.index("        \n") + 8
REPLY = (
    "```python\n"
    "        if shape['kind'] == 'circle':\n"
    "            total += math.pi * shape['r'] ** 2\n"
    "        else:\n"
    "            total += shape['w'] * shape['h']\n"
    "```"
)


def test_after_the_code_block_closes_the_clean_up_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = Document("file:///w/shapes.py", "python", 1, SOURCE)
    context = context_at(doc, CURSOR)
    assert not context.single_line
    parses: list[str] = []
    for name in ("parses_cleanly", "block_end"):
        real = getattr(lsp.completion.stopper, name)
        spy = lambda *a, _real=real, _name=name: parses.append(_name) or _real(*a)  # noqa: E731
        monkeypatch.setattr(lsp.completion.stopper, name, spy)
    stopper = CompletionStopper(context, max_lines=12, doc=doc, offset=CURSOR)
    stopper.prepare()
    reply = ""
    for token in [REPLY[i : i + 7] for i in range(0, len(REPLY), 7)]:
        reply += token
        if stopper.done(reply):
            break
    assert reply == REPLY  # decided when the fence closed
    asked_while_streaming = len(parses)
    cleaned = clean_completion(
        reply, context.prefix, context.suffix, single_line=False, max_lines=12, syntax=stopper.syntax
    )
    assert len(parses) == asked_while_streaming > 0
    fresh = CompletionStopper(context, max_lines=12, doc=doc, offset=CURSOR)
    assert cleaned == clean_completion(
        reply, context.prefix, context.suffix, single_line=False, max_lines=12, syntax=fresh.syntax
    )
    assert cleaned.startswith("if shape['kind'] == 'circle':\n            total += math.pi")


def test_a_stopper_and_the_document_it_holds_are_freed_without_the_garbage_collector() -> None:
    """A completion's stopper holds its document snapshot, whose syntax tree takes milliseconds to free for
    a large file: freed when the completion ends, not in a pass of the garbage collector on the event loop."""
    doc = Document("file:///w/shapes.py", "python", 1, SOURCE)
    context = context_at(doc, CURSOR)
    gc.collect()
    gc.disable()
    try:
        stopper = CompletionStopper(context, max_lines=12, doc=doc.snapshot(), offset=CURSOR)
        assert stopper.syntax is stopper
        stopper.done(REPLY)
        freed = weakref.ref(stopper)
        del stopper
        assert freed() is None, "the stopper is in a reference cycle"
    finally:
        gc.enable()
