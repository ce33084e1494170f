"""The workspace index's end-to-end suites share these: the workspace they index, the server's stats and a
prompt as TGI receives it."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp.features.lifecycle import STATS_METHOD
from tests.conftest import TGI, clean_env

CLIENTS = ["neovim", "visual-studio-code", "emacs"]

MODELS = '''"""Invoices. Fäktüra 🧾 請求書."""


class Invoice:
    """A bill sent to a customer."""

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.lines: list[tuple[str, float]] = []

    def add_line(self, label: str, amount: float) -> None:
        self.lines.append((label, amount))

    def total_with_tax(self, rate: float = 0.2) -> float:
        """The amount due, tax included."""
        subtotal = sum(amount for _, amount in self.lines)
        return round(subtotal * (1 + rate), 2)


def make_invoice(customer: str, *labels: str) -> Invoice:
    """An invoice with one line per label, at zero."""
    invoice = Invoice(customer)
    for label in labels:
        invoice.add_line(label, 0.0)
    return invoice
'''

APP = '''"""Billing entry points — café ☕, naïve, 東京."""

from .models import Invoice, make_invoice


def bill(customer: str) -> float:
    invoice = make_invoice(customer, "ün", "deux")
    return''' + " \n"


def server_env() -> dict[str, str]:
    """The persisted index goes to a cache folder of this test run, not the user's."""
    env = clean_env()
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="codellama-lsp-cache-")
    return env


def make_workspace(root: Path) -> None:
    (root / "billing").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'billing'\n")
    (root / "billing" / "__init__.py").write_text("")
    (root / "billing" / "models.py").write_text(MODELS, encoding="utf-8")
    (root / "billing" / "app.py").write_text(APP, encoding="utf-8")
    (root / "node_modules" / "junk").mkdir(parents=True)
    (root / "node_modules" / "junk" / "index.js").write_text("export function make_invoice() {}\n")


def plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


async def stats(client: LanguageClient) -> dict[str, Any]:
    result: dict[str, Any] = plain(await client.protocol.send_request_async(STATS_METHOD, {}))
    return result


async def until(client: LanguageClient, predicate: Any, what: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        workspace = (await stats(client))["workspace"]
        if predicate(workspace):
            return workspace
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {workspace}")
        await asyncio.sleep(0.05)


async def prompt_at_end_of(client: LanguageClient, tgi: TGI, uri: str, text: str) -> str:
    """Complete at the end of the last line; the user turn TGI received."""
    tgi.reset()
    lines = text.split("\n")
    position = types.Position(len(lines) - 2, len(lines[-2]))
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    bodies = [r for r in tgi.requests() if "inputs" in r]
    assert bodies, "no generation reached TGI"
    return str(bodies[-1]["inputs"])
