"""Settings: defaults, camelCase on the wire, env and CLI overrides, bad values fall back."""

from __future__ import annotations

import pytest

from lsp.config import Settings, resolve


def test_defaults() -> None:
    settings, problems = resolve(None, environ={})
    assert problems == []
    assert settings == Settings()
    assert settings.backend == "auto" and settings.endpoint is None


def test_section_or_flat_camel_case() -> None:
    for raw in ({"codellama": {"maxNewTokens": 42}}, {"maxNewTokens": 42}):
        settings, _ = resolve(raw, environ={})
        assert settings.max_new_tokens == 42


def test_bad_values_fall_back_to_defaults_with_a_problem_each() -> None:
    settings, problems = resolve(
        {"endpoint": "localhost:8080", "temperature": "hot", "completion": {"maxLines": 0, "enable": False}},
        environ={},
    )
    assert settings.endpoint is None and settings.temperature == Settings().temperature
    assert settings.completion.max_lines == Settings().completion.max_lines
    assert settings.completion.enable is False
    assert len(problems) == 3 and all("using the default" in p for p in problems)
    assert any("codellama.endpoint" in p and "http://" in p for p in problems)


def test_environment_overrides_client_and_cli_overrides_environment() -> None:
    env = {
        "CODELLAMA_LSP_ENDPOINT": "http://env:80",
        "CODELLAMA_LSP_BACKEND": "tgi",
        "CODELLAMA_LSP_API_TOKEN": "s3cret-token",
    }
    settings, _ = resolve({"endpoint": "http://client:80"}, {}, env)
    assert settings.endpoint == "http://env:80" and settings.backend == "tgi"
    assert settings.token() == "s3cret-token"
    settings, _ = resolve({"endpoint": "http://client:80"}, {"endpoint": "http://cli:80"}, env)
    assert settings.endpoint == "http://cli:80"


def test_hf_token_is_only_a_fallback() -> None:
    settings, _ = resolve({}, environ={"HF_TOKEN": "hf_fallback"})
    assert settings.token() == "hf_fallback"
    settings, _ = resolve({"apiToken": "client-token"}, environ={"HF_TOKEN": "hf_fallback"})
    assert settings.token() == "client-token"


def test_secrets_never_appear_in_the_wire_view_or_repr() -> None:
    settings, _ = resolve({"apiToken": "very-secret-value"}, environ={})
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings.to_wire())


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("hf_SecretValue123\n", "a line break"),
        ("hf_SecretValue123\r\n", "a line break"),
        (" hf_SecretValue123", "blanks at an end"),
        ("hf_Secret\x00Value123", "a character"),
        ("hf_Secrét_Value123", "a character"),
    ],
)
def test_a_token_that_cannot_be_a_header_is_refused_without_being_quoted(token: str, words: str) -> None:
    settings, problems = resolve({"apiToken": token}, {}, {})
    assert settings.token() is None
    [problem] = problems
    assert "codellama.apiToken" in problem and words in problem
    assert "SecretValue" not in problem and "Secrét" not in problem


@pytest.mark.parametrize("variable", ["CODELLAMA_LSP_API_TOKEN", "HF_TOKEN"])
def test_a_bad_token_from_the_environment_is_refused_too(variable: str) -> None:
    settings, [problem] = resolve({}, {}, {variable: "hf_SecretValue123\n"})
    assert settings.token() is None and "a line break" in problem and "SecretValue" not in problem


def test_an_empty_token_is_no_token() -> None:
    assert resolve({"apiToken": ""}, {}, {}) == (Settings(), [])
    assert resolve({"apiToken": "hf_ok-token.1"}, {}, {})[0].token() == "hf_ok-token.1"
