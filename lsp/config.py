"""Settings: one typed tree with defaults, camelCase on the wire, env and CLI overrides.

`parse_settings` never fails: a bad value is replaced by its default and reported as a problem, so the
server keeps running and the user is told once what was wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from lsp.prompt.chat_format import MAX_EXTRA_STOPS

BackendName = Literal["auto", "tgi", "openai", "local"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class CompletionSettings(_Model):
    enable: bool = True
    disabled_languages: list[str] = Field(default_factory=list)
    debounce_ms: int = Field(default=60, ge=0, le=5000)
    max_lines: int = Field(default=16, ge=1, le=500)
    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)


class WorkspaceSettings(_Model):
    """The workspace index (definitions from files that are not open)."""

    enable: bool = True
    max_files: int = Field(default=5000, ge=0, le=1_000_000)
    max_file_size: int = Field(default=512 * 1024, ge=1024, le=64 * 1024 * 1024)  # bytes
    max_total_size: int = Field(default=64 * 1024 * 1024, ge=0, le=16 * 1024 * 1024 * 1024)  # bytes
    exclude: list[str] = Field(default_factory=list)  # extra gitignore-style patterns


class Settings(_Model):
    backend: BackendName = "auto"
    endpoint: str | None = None
    api_token: SecretStr | None = None
    model: str | None = Field(default=None, description="model name for OpenAI-compatible servers")
    local_model_path: str | None = None
    max_new_tokens: int = Field(default=512, ge=1, le=16384)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=MAX_EXTRA_STOPS)
    request_timeout: float = Field(default=60.0, gt=0.0, le=3600.0)
    connect_timeout: float = Field(default=5.0, gt=0.0, le=300.0)
    max_retries: int = Field(default=2, ge=0, le=10)
    prompts_path: str | None = None
    tokenizer: str | None = Field(default=None, description="tokenizer.json file or folder, for exact counts")
    max_input_tokens: int | None = Field(default=None, ge=64)
    max_total_tokens: int | None = Field(default=None, ge=128)
    verify_tls: bool = True
    ca_bundle: str | None = None
    proxy: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str | None = None
    completion: CompletionSettings = Field(default_factory=CompletionSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("api_token")
    @classmethod
    def _token_fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # editors send "" for "not set"
        token_problem(value.get_secret_value())
        return value

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: list[str]) -> list[str]:
        return [s for s in value if s]

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token else None

    def to_wire(self) -> dict[str, Any]:
        """camelCase, secrets hidden: what `check` prints and what may be logged."""
        data = self.model_dump(by_alias=True, mode="json")
        if self.api_token is not None:
            data["apiToken"] = "***"
        for key in ("endpoint", "proxy"):  # http://user:password@host: a password too
            if isinstance(data.get(key), str):
                data[key] = re.sub(r"(?<=://)[^/@]*@", "***@", data[key])
        return data


# What an HTTP header value may hold (RFC 9110 field-vchar and blanks inside): a token with a line break or
# another control character would reach httpx, whose error quotes the header, token and all.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*")


def token_problem(token: str) -> None:
    """Raise ValueError, saying what is wrong without quoting the token, when it cannot be sent as a bearer
    token (a trailing newline from `cat token.txt` or a copied line is the usual case)."""
    if _HEADER_SAFE.fullmatch(token) is None:
        bad = next((i for i, c in enumerate(token) if not ("\x21" <= c <= "\x7e")), 0)
        what = "a line break" if token[bad] in "\r\n" else "blanks at an end" if token[bad] in " \t" else "a character"
        raise ValueError(
            f"holds {what}, which an HTTP header cannot carry (character {bad + 1} of {len(token)}); "
            "set it again without it"
        )


ENV_VARS = {
    "CODELLAMA_LSP_BACKEND": "backend",
    "CODELLAMA_LSP_ENDPOINT": "endpoint",
    "CODELLAMA_LSP_API_TOKEN": "apiToken",
    "CODELLAMA_LSP_MODEL": "model",
}


def parse_settings(raw: Mapping[str, Any] | None) -> tuple[Settings, list[str]]:
    """Validate client settings; each invalid entry falls back to its default and becomes a problem."""
    data = _unwrap(raw)
    problems: list[str] = []
    for _ in range(50):  # each pass removes at least one bad key; the bound is defensive
        try:
            return Settings.model_validate(data), problems
        except ValidationError as error:
            for issue in error.errors():
                loc = [str(p) for p in issue["loc"]]
                problems.append(f"setting codellama.{'.'.join(loc)}: {issue['msg']}; using the default")
                data = _without(data, loc)
    return Settings(), problems


def with_overrides(settings: Settings, overrides: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """Apply camelCase overrides (from env or CLI) on top of settings, validating them the same way."""
    if not overrides:
        return settings, []
    merged = _deep_merge(settings.model_dump(by_alias=True), dict(overrides))
    if settings.api_token is not None and "apiToken" not in overrides:
        merged["apiToken"] = settings.token()
    return parse_settings(merged)


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, key in ENV_VARS.items():
        if environ.get(var):
            out[key] = environ[var]
    return out


def fallback_token(environ: Mapping[str, str] | None = None) -> str | None:
    """HF_TOKEN is accepted too, but only when nothing more specific names a token."""
    environ = os.environ if environ is None else environ
    return environ.get("HF_TOKEN") or None


def resolve(
    client: Mapping[str, Any] | None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[str]]:
    """Client settings, then environment variables, then command-line flags: the later wins."""
    settings, problems = parse_settings(client)
    settings, more = with_overrides(settings, env_overrides(environ))
    problems += more
    settings, more = with_overrides(settings, dict(cli or {}))
    problems += more
    if settings.api_token is None and (token := fallback_token(environ)):
        try:
            token_problem(token)
        except ValueError as error:
            problems.append(f"HF_TOKEN {error}")
        else:
            settings = settings.model_copy(update={"api_token": SecretStr(token)})
    return settings, problems


def _unwrap(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept `{"codellama": {...}}` (the section) as well as the flat settings object."""
    if not isinstance(raw, Mapping):
        return {}
    inner = raw.get("codellama")
    return dict(inner) if isinstance(inner, Mapping) else dict(raw)


def _without(data: Any, loc: list[str]) -> Any:
    if not loc or not isinstance(data, dict):
        return data
    head, rest = loc[0], loc[1:]
    out = dict(data)
    # pydantic reports aliases in `loc`; accept either spelling.
    for key in (head, to_camel(head)):
        if key in out:
            if rest and isinstance(out[key], dict):
                out[key] = _without(out[key], rest)
            else:
                del out[key]
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
