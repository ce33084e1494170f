"""TGI's Messages API (GET /v1/models, POST /v1/chat/completions, streamed or not) for the TGI test server,
with the scripted replies and faults of its /generate_stream, and a last chunk with `usage` when
`stream_options.include_usage` is set."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.tgi_protocol import MODEL_ID, last_user, tokenize

Begin = Callable[[web.Request], Awaitable[tuple[dict[str, Any], dict[str, Any], web.Response | None]]]
Plan = Callable[..., tuple[list[dict[str, Any]], str]]
Stall = Callable[[web.StreamResponse, float, Any], Awaitable[None]]


def messages_routes(state: Any, begin: Begin, plan: Plan, stall: Stall) -> list[web.RouteDef]:
    """The routes, over the test server's state and its request handling."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "tgi"}]})

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        """TGI's Messages API, with the scripted replies and faults of /generate_stream."""
        body, reply, early = await begin(request)
        if early is not None:
            return early
        tokens, reason = plan(body, reply, body.get("max_tokens"))
        reason = {"eos_token": "stop", "stop_sequence": "stop"}.get(reason, reason)
        prompt_tokens = len(tokenize(last_user(body)))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        text = "".join(t["text"] for t in tokens if not t["special"])
        if not body.get("stream"):
            return web.json_response({
                "id": "", "object": "chat.completion", "created": 0, "model": MODEL_ID,
                "system_fingerprint": "3.3.6",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": reason}],
                "usage": usage,
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        state.streams["opened"] += 1
        state.streams["open"] += 1
        finished = False

        def chunk(content: str | None, finish: str | None = None) -> bytes:
            event = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": MODEL_ID,
                     "system_fingerprint": "3.3.6",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                  "logprobs": None, "finish_reason": finish}]}
            return f"data: {json.dumps(event)}\n\n".encode()

        try:
            for raw in reply.get("raw_events", []):
                await response.write(f"data: {raw}\n\n".encode())
            for i, tok in enumerate(tokens if "raw_events" not in reply else []):
                if reply.get("stall_after") is not None and i == int(reply["stall_after"]):
                    await stall(response, float(reply.get("stall", 3600)), reply.get("keepalive_every"))
                if reply.get("chunk_delay"):
                    await asyncio.sleep(float(reply["chunk_delay"]))
                text = tok["text"] + ("x" * int(reply["huge_event"]) if reply.get("huge_event") and i == 0 else "")
                await response.write(chunk(text, reason if i == len(tokens) - 1 else None))
            if (body.get("stream_options") or {}).get("include_usage"):
                event = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": MODEL_ID,
                         "system_fingerprint": "3.3.6", "choices": [], "usage": usage}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            finished = True
            await response.write_eof()
        except ConnectionResetError:
            return response
        finally:
            state.streams["open"] -= 1
            state.streams["finished" if finished else "closed_early"] += 1
        return response

    return [web.get("/v1/models", models), web.post("/v1/chat/completions", chat_completions)]
