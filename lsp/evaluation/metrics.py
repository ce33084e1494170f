"""What an evaluation reports, per language and overall: exact match, edit similarity, the share of
insertions that parse, the share of empty answers, latency percentiles and tokens generated.

Exact match and edit similarity compare the insertion with the hidden text after trimming each line's
trailing whitespace and the blank lines around (CrossCodeEval's normalisation); edit similarity is
1 - Levenshtein distance / the longer length. The parse share counts non-empty insertions only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Outcome:
    """One task's result."""

    language: str
    kind: str
    path: str
    line: int
    expected: str
    inserted: str
    parses: bool  # the insertion adds no syntax error to the file (True when empty)
    seconds: float
    tokens: int  # tokens the model generated
    error: str = ""  # the request failed: why

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    language: str
    samples: int
    exact_match: float
    edit_similarity: float
    parse_share: float | None  # None when every insertion was empty
    empty_share: float
    p50_seconds: float
    p95_seconds: float
    mean_tokens: float
    errors: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def normalise(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.split("\n")).strip("\n")


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / the longer length (1.0 for two empty strings)."""
    a, b = normalise(a), normalise(b)
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summarise(language: str, outcomes: Sequence[Outcome], *, skip_first: bool = False) -> Summary:
    """The metrics over ``outcomes``; with ``skip_first``, latency leaves out the first request (the
    model's load and the first whole prompt)."""
    n = len(outcomes)
    answered = [o for o in outcomes if not o.error]
    inserted = [o for o in answered if o.inserted.strip()]
    latencies = [o.seconds for o in answered]
    if skip_first and len(latencies) > 1:
        latencies = latencies[1:]
    exact = sum(normalise(o.inserted) == normalise(o.expected) for o in answered)
    similarity = sum(edit_similarity(o.inserted, o.expected) for o in answered)
    return Summary(
        language=language,
        samples=n,
        exact_match=exact / n if n else 0.0,
        edit_similarity=similarity / n if n else 0.0,
        parse_share=sum(o.parses for o in inserted) / len(inserted) if inserted else None,
        empty_share=(n - len(inserted)) / n if n else 0.0,
        p50_seconds=percentile(latencies, 0.5),
        p95_seconds=percentile(latencies, 0.95),
        mean_tokens=sum(o.tokens for o in answered) / len(answered) if answered else 0.0,
        errors=n - len(answered),
    )


def summaries(outcomes: Sequence[Outcome]) -> list[Summary]:
    """One summary per language (alphabetical), then "all". Latency leaves out the run's first request."""
    first = outcomes[0] if outcomes else None
    languages = sorted({o.language for o in outcomes})
    rows = [
        summarise(
            lang, [o for o in outcomes if o.language == lang], skip_first=first is not None and first.language == lang
        )
        for lang in languages
    ]
    rows.append(summarise("all", outcomes, skip_first=True))
    return rows


def markdown_table(rows: Iterable[Summary]) -> str:
    header = (
        "| language | samples | exact match | edit similarity | parses | empty | p50 s | p95 s | tokens | errors |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    body = "".join(
        f"| {r.language} | {r.samples} | {r.exact_match:.0%} | {r.edit_similarity:.2f} | "
        f"{'-' if r.parse_share is None else format(r.parse_share, '.0%')} | {r.empty_share:.0%} | "
        f"{r.p50_seconds:.2f} | {r.p95_seconds:.2f} | {r.mean_tokens:.1f} | {r.errors} |\n"
        for r in rows
    )
    return header + body
