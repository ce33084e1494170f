"""PartialAnswers (lsp/features/streaming.py) with a recording stand-in for the server's protocol; the real
server and clients are in tests/e2e/test_streaming.py and the editor tests."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from lsp.features.streaming import PARTIAL_METHOD, PartialAnswers


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def notify(self, method: str, params: dict[str, Any]) -> None:
        assert method == PARTIAL_METHOD
        self.sent.append(params)


def partials() -> tuple[PartialAnswers, Recorder]:
    recorder = Recorder()
    ls = SimpleNamespace(protocol=recorder)
    sender = PartialAnswers(ls, "tok-1", "CodeLlama: Explain", {"action": "explain", "uri": "file:///a.py"})  # type: ignore[arg-type]
    return sender, recorder


async def test_every_report_is_delivered_in_order_and_the_last_one_says_done() -> None:
    sender, recorder = partials()
    sender.start()
    texts = ["Grüße", "Grüße ☕", "Grüße ☕ 名前", "Grüße ☕ 名前 😀"]
    for text in texts:
        sender(text)
    # what the interval held back goes out by itself, without another report
    for _ in range(200):
        if recorder.sent[-1]["text"] == texts[-1]:
            break
        await asyncio.sleep(0.01)
    sent = [p["text"] for p in recorder.sent]
    assert sent[0] == "" and sent[1] == texts[0] and sent[-1] == texts[-1]
    assert all(p["done"] is False for p in recorder.sent)
    assert len(sent) == len(set(sent)), "no text is sent twice"
    sender.finish("done")
    assert recorder.sent[-1] == {
        "token": "tok-1", "title": "CodeLlama: Explain", "action": "explain", "uri": "file:///a.py",
        "text": texts[-1], "done": True, "outcome": "done",
    }


async def test_nothing_follows_the_last_one() -> None:
    sender, recorder = partials()
    sender("one")
    sender("one two")  # may be held back by the interval
    sender.finish("cancelled")
    sender("one two three")
    await asyncio.sleep(0.15)  # longer than the interval: a held-back text would have gone out by now
    assert recorder.sent[-1]["done"] is True and recorder.sent[-1]["outcome"] == "cancelled"
    assert recorder.sent[-1]["text"] == "one two"
    assert [p for p in recorder.sent if p["done"]] == [recorder.sent[-1]]


async def test_a_client_gone_away_does_not_fail_the_action() -> None:
    sender, recorder = partials()

    def broken(method: str, params: dict[str, Any]) -> None:
        raise BrokenPipeError("the client went away")

    recorder.notify = broken  # type: ignore[method-assign]
    sender("text")
    sender.finish("done")
