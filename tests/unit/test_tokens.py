"""Token counting: the byte bound really is a bound; calibration tightens it; bad tokenizers fall back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lsp.prompt.tokens import ByteBoundCounter, CalibratedCounter, TokenizersCounter, load_counter
from tests.support.llama_vocab import tokenizer_json_path


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(tokenizer_json_path()))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_the_byte_bound_never_undercounts_the_70b_tokenizer(tokenizer: Tokenizer, text: str) -> None:
    assert ByteBoundCounter().count(text) >= len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_a_tokenizer_json_gives_exact_counts(tokenizer: Tokenizer) -> None:
    counter = load_counter(str(tokenizer_json_path()))
    assert isinstance(counter, TokenizersCounter) and counter.exact
    text = "def add(a, b):\n    return a + b\n"
    assert counter.count(text) == len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_calibration_tightens_the_estimate_but_keeps_a_margin() -> None:
    counter = CalibratedCounter()
    text = "x = compute(value) + 1\n" * 40
    assert counter.count(text) == ByteBoundCounter().count(text)
    counter.observe(text, len(text) // 4)
    assert len(text) // 4 < counter.count(text) < len(text) // 2
    counter.reset()
    assert counter.count(text) == ByteBoundCounter().count(text)


def test_a_broken_tokenizer_falls_back_to_the_bound(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("not json")
    assert isinstance(load_counter(str(tmp_path)), ByteBoundCounter)
    assert isinstance(load_counter(str(tmp_path / "missing")), ByteBoundCounter)
