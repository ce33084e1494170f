"""The evaluation's parts on known cases: the holes cut in files, and the metrics computed from results."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp.evaluation import Outcome, edit_similarity, make_tasks, markdown_table, percentile, summaries

PYTHON = """import os


def mean(values: list[float]) -> float:
    if not values:
        return 0.0
    return sum(values) / len(values)


class Store:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.items: dict[str, int] = {}
"""
GO = """package stats

func Sum(xs []int) int {
\ttotal := 0
\tfor _, x := range xs {
\t\ttotal += x
\t}
\treturn total
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "stats.py").write_text(PYTHON)
    (tmp_path / "sum.go").write_text(GO)
    (tmp_path / "README.md").write_text("# not code the server parses\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("module.exports = function () { return 1; };\n")
    return tmp_path


def test_every_task_is_its_file_with_a_hole_at_the_cursor(repo: Path) -> None:
    tasks = make_tasks(repo, 50)
    assert {t.path.name for t in tasks} == {"stats.py", "sum.go"}  # no README, nothing vendored
    for task in tasks:
        assert task.document[: task.offset] + task.expected + task.document[task.offset :] == task.text
        assert len(task.expected.strip()) >= 4
    assert {t.kind for t in tasks} == {"line", "body"}


def test_a_body_task_hides_the_whole_block(repo: Path) -> None:
    bodies = {t.expected for t in make_tasks(repo, 50, kinds=["body"]) if t.path.name == "stats.py"}
    assert "return 0.0" in bodies
    assert "if not values:\n        return 0.0\n    return sum(values) / len(values)" in bodies


def test_the_same_seed_draws_the_same_tasks_and_another_seed_others(repo: Path) -> None:
    first = make_tasks(repo, 6, seed=3)
    assert make_tasks(repo, 6, seed=3) == first
    assert len(first) == 6
    assert {t.path.name for t in first} == {"stats.py", "sum.go"}  # evenly over the files
    assert any(make_tasks(repo, 6, seed=seed) != first for seed in range(4, 8))


def test_edit_similarity_is_one_minus_the_normalised_levenshtein_distance() -> None:
    assert edit_similarity("return a + b", "return a + b") == 1.0
    assert edit_similarity("abc", "abd") == pytest.approx(2 / 3)
    assert edit_similarity("", "abcd") == 0.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("x = 1   \n\n", "x = 1") == 1.0  # trailing blanks are not a difference


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) == 0.0


def outcome(language: str, expected: str, inserted: str, seconds: float, *, parses: bool = True) -> Outcome:
    return Outcome(language, "line", "f", 1, expected, inserted, parses, seconds, tokens=len(inserted))


def test_summaries_per_language_and_overall() -> None:
    outcomes = [
        outcome("python", "return x", "return x", 9.0),  # the first request: its latency is left out
        outcome("python", "x + 1", "x + 2", 1.0),
        outcome("python", "y", "", 2.0),
        outcome("go", "total", "total", 1.0),
        outcome("go", "return total", "return ((", 3.0, parses=False),
    ]
    python, go, overall = summaries(outcomes)[1], summaries(outcomes)[0], summaries(outcomes)[2]
    assert (python.language, go.language, overall.language) == ("python", "go", "all")
    assert python.samples == 3 and python.exact_match == pytest.approx(1 / 3)
    assert python.empty_share == pytest.approx(1 / 3)
    assert python.parse_share == 1.0  # the empty answer is not counted
    assert python.edit_similarity == pytest.approx((1 + 0.8 + 0) / 3)
    assert python.p50_seconds == 1.0 and python.p95_seconds == 2.0
    assert go.parse_share == 0.5 and go.p50_seconds == 1.0 and go.p95_seconds == 3.0
    assert overall.samples == 5 and overall.exact_match == pytest.approx(2 / 5)
    assert overall.p95_seconds == 3.0  # 9.0 was the first request
    table = markdown_table(summaries(outcomes))
    assert table.splitlines()[0].startswith("| language | samples | exact match")
    assert "| python | 3 | 33% | 0.60 | 100% | 33% | 1.00 | 2.00 |" in table


def test_failed_requests_are_counted_apart() -> None:
    failed = Outcome("python", "line", "f", 1, "x", "", True, 0.1, 0, error="the server is down")
    [python, _] = summaries([outcome("python", "x", "x", 1.0), failed])
    assert python.errors == 1 and python.samples == 2 and python.exact_match == 0.5
