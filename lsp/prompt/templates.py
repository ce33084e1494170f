"""Prompt templates: load them from `prompts/` (or the user's folder), validate them, render turns.

Every value a template prints is escaped (`chat_format.escape`) unless a filter already made it safe, so
no template can forget to defuse document text.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2

from lsp.errors import PromptError
from lsp.prompt.chat_format import MAX_EXTRA_STOPS, MAX_STOP_SEQUENCES, Message, escape

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Action = Literal["complete", "explain", "refactor", "docstring", "tests", "fix", "ask"]
ACTIONS: tuple[Action, ...] = ("complete", "explain", "refactor", "docstring", "tests", "fix", "ask")
CURSOR = "<CURSOR>"


class Safe(str):
    """Text a filter has already escaped and framed."""


def fence(text: Any, language: str = "") -> Safe:
    """A Markdown code block for a prompt: the text escaped (see :func:`code_block`)."""
    return Safe(code_block(escape(str(text)), language))


def code_block(text: str, language: str = "") -> str:
    """A Markdown code block whose fence is longer than any backtick run inside, so code can't close it."""
    body = text.rstrip("\n")
    longest = max((len(run) for run in _backtick_runs(body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{_fence_tag(language)}\n{body}\n{ticks}"


def cursor_fence(prefix: Any, suffix: Any, language: str = "") -> Safe:
    """The code around the cursor, with our marker as the only unescaped `<CURSOR>`."""
    fenced = fence(f"{prefix}\x00{suffix}", language)
    return Safe(fenced.replace("\x00", CURSOR, 1))


def _finalize(value: Any) -> str:
    if isinstance(value, Safe):
        return str(value)
    return escape("" if value is None else str(value))


def _backtick_runs(text: str) -> list[str]:
    return _BACKTICKS.findall(text) if "`" in text else []


_BACKTICKS = re.compile("`+")


def _fence_tag(language: str) -> str:
    tag = "".join(ch for ch in language.lower() if ch.isalnum() or ch in "+#-")
    return "" if tag in ("text", "plaintext") else tag


@dataclass(frozen=True)
class ActionSpec:
    name: Action
    template: str
    title: str
    stop: tuple[str, ...]
    max_new_tokens: int
    reply: Literal["code", "markdown"]


def builtin_prompts_dir() -> Path:
    """`prompts/` of a checkout, else the copy packed into the wheel as `lsp/prompts`."""
    checkout = Path(__file__).resolve().parents[2] / "prompts"
    if (checkout / "prompts.toml").is_file():
        return checkout
    return Path(str(resources.files("lsp") / "prompts"))


class PromptStore:
    """The validated templates; raises PromptError at construction if any is broken."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        builtin = builtin_prompts_dir()
        dirs = [Path(override_dir).expanduser(), builtin] if override_dir else [builtin]
        for d in dirs:
            if not d.is_dir():
                raise PromptError(f"prompts folder {d} does not exist (setting codellama.promptsPath)")
        self.dirs = dirs
        meta_path = next((d / "prompts.toml" for d in dirs if (d / "prompts.toml").is_file()), None)
        if meta_path is None:
            raise PromptError(f"no prompts.toml in {', '.join(map(str, dirs))}")
        try:
            meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise PromptError(f"{meta_path}: {error}") from error
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            autoescape=False,
            keep_trailing_newline=False,
        )
        self.env.filters["fence"] = fence
        self.env.filters["cursor_fence"] = cursor_fence
        self.system_template = str(meta.get("system", {}).get("template", "system.j2"))
        self.actions = {name: _spec(name, meta, meta_path) for name in ACTIONS}
        self._validate()

    def spec(self, action: Action) -> ActionSpec:
        return self.actions[action]

    def render(self, action: Action, variables: Mapping[str, Any]) -> list[Message]:
        """System and user turns for an action. Variables must be complete: a missing one is an error."""
        try:
            system = self.env.get_template(self.system_template).render(**variables)
            user = self.env.get_template(self.actions[action].template).render(**variables)
        except jinja2.TemplateError as error:
            raise PromptError(f"template for {action!r} failed: {error}") from error
        return [Message("system", system.strip()), Message("user", user.strip())]

    def _validate(self) -> None:
        sample = sample_variables()
        for action in ACTIONS:
            try:
                self.env.get_template(self.actions[action].template)
            except jinja2.TemplateError as error:
                raise PromptError(f"template for {action!r} is invalid: {error}") from error
            self.render(action, sample)


def _spec(name: Action, meta: Mapping[str, Any], path: Path) -> ActionSpec:
    entry = meta.get("actions", {}).get(name)
    if not isinstance(entry, Mapping):
        raise PromptError(f"{path}: no [actions.{name}] entry")
    try:
        stop = tuple(str(s) for s in entry.get("stop", []))
        if len(stop) > MAX_EXTRA_STOPS:
            raise PromptError(
                f"{path}: [actions.{name}] has more than {MAX_EXTRA_STOPS} stop sequences "
                f"(servers allow {MAX_STOP_SEQUENCES} with <step>)"
            )
        reply = entry.get("reply", "code")
        if reply not in ("code", "markdown"):
            raise PromptError(f"{path}: [actions.{name}] reply must be 'code' or 'markdown'")
        return ActionSpec(
            name=name,
            template=str(entry["template"]),
            title=str(entry.get("title", name.title())),
            stop=stop,
            max_new_tokens=int(entry.get("max_new_tokens", 512)),
            reply=reply,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PromptError(f"{path}: [actions.{name}] is invalid: {error}") from error


def sample_variables() -> dict[str, Any]:
    """A complete set of template variables; also documents what templates may use."""
    return {
        "language": "python",
        "path": "example.py",
        "prefix": "def add(a, b):\n    return ",
        "suffix": "\n",
        "selection": "def add(a, b):\n    return a + b\n",
        "single_line": True,
        "scopes": [{"kind": "function", "name": "add", "signature": "def add(a, b):"}],
        "imports": ["import os"],
        "definitions": [{"title": "def helper()", "path": "example.py", "text": "def helper():\n    pass"}],
        "outline": ["def add(a, b):"],
        "instruction": "",
        "diagnostics": ["example.py:1: undefined name"],
        "test_path": "test_example.py",
    }
