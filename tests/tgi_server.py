"""A TGI-protocol test server: the real HTTP API of text-generation-inference, with scripted replies and
faults, and a record of what it received. Run: python tests/tgi_server.py [--port N] [--api-key K]

Routes as TGI serves them: GET /info, GET /health, POST /generate, POST /generate_stream, POST /tokenize.
Control routes for tests (never in TGI): POST /_control/script (queue replies), POST /_control/reset,
GET /_control/requests (bodies received), GET /_control/streams (streams opened/finished/closed early).

A scripted reply is a JSON object:
  text: the generated text (default: a fenced echo of the last user line)
  status: HTTP status to answer instead (with `body` and `content_type`, optional `headers`)
  delay: seconds before the first byte;  chunk_delay: seconds between tokens
  framing: "data:" (axum 0.6) or "data: " (axum 0.7+, default)
  keepalive: send ":" comment lines between tokens
  error_after: send an error event after this many tokens (with `error`, `error_type`)
  drop_after: close the connection after this many tokens
  garbage_after: send an invalid JSON event after this many tokens
  huge_event: bytes of padding in one event's token text
  stall_after: after this many tokens, send nothing for `stall` seconds (default: an hour), except ":"
    comment lines every `keepalive_every` seconds when that is set (a keep-alive-only stream)
  drop_before: close the connection before answering anything (no status line)
  tokens: the generated tokens as [{"text", "special"}] instead of `text` (special tokens: `</s>`, `<step>`)
  ignore_max_new_tokens: generate all of `text`/`tokens` whatever max_new_tokens says (a broken server)
  ignore_stop: generate past the stop sequences (a broken server)
  raw_events: send these strings as the stream's events' data, as they are (malformed events)
  trickle_head: send an endless response head, one byte every this many seconds

Every body /generate and /generate_stream receive is validated against the `text-generation` package's
`Request` type, and every reply and stream event against its `Response` and `StreamResponse` (a body that
does not validate is answered 422 and recorded in GET /_control/invalid), so the protocol stays TGI's.

TGI's Messages API is served too (GET /v1/models, POST /v1/chat/completions, streamed or not), with the
same scripted replies and faults, and a last chunk with `usage` when `stream_options.include_usage` is set.

GET /_control/hits lists every request received ("METHOD /path"), control routes excepted.
GET /_control/connections lists them as ["METHOD /path", n]: n numbers the TCP connection it came on.
With --certfile/--keyfile it serves HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from aiohttp import web
from text_generation import types as tg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's root

from tests.tgi_messages_api import messages_routes
from tests.tgi_protocol import MODEL_ID, default_text, last_user, pieces, protocol_problem, tokenize


class State:
    def __init__(self, api_key: str | None, max_input: int, max_total: int) -> None:
        self.api_key = api_key
        self.max_input = max_input
        self.max_total = max_total
        self.reset()

    def reset(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.default: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        # waiting: requests held by a scripted delay, before any byte of the answer; gone_while_waiting: those
        # whose client went away meanwhile
        self.streams = {"opened": 0, "finished": 0, "closed_early": 0, "open": 0, "waiting": 0,
                        "gone_while_waiting": 0}
        self.closed_at: list[float] = []
        self.hits: list[str] = []
        self.connections: list[tuple[str, int]] = []
        self.invalid: list[str] = []  # what failed validation against the text-generation types

    def next_reply(self) -> dict[str, Any]:
        return self.script.pop(0) if self.script else dict(self.default)


def create_app(state: State) -> web.Application:
    connections: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    @web.middleware
    async def record_hits(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_control/"):
            state.hits.append(f"{request.method} {request.path}")
            number = connections.setdefault(request.transport, len(connections) + 1)
            state.connections.append((state.hits[-1], number))
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(client_max_size=10 * 1024 * 1024, middlewares=[record_hits])

    def authorized(request: web.Request) -> bool:
        return state.api_key is None or request.headers.get("Authorization") == f"Bearer {state.api_key}"

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "model_id": MODEL_ID,
                "model_sha": "0" * 40,
                "model_pipeline_tag": "text-generation",
                "max_concurrent_requests": 128,
                "max_best_of": 2,
                "max_stop_sequences": 4,
                "max_input_tokens": state.max_input,
                "max_total_tokens": state.max_total,
                "validation_workers": 2,
                "max_client_batch_size": 4,
                "router": "text-generation-router",
                "version": "3.3.6",
            }
        )

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def tokenize_route(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(tokenize(str(body.get("inputs", ""))))

    async def parse(request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        if not authorized(request):
            return None, web.Response(status=401)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return None, web.Response(
                status=400, text="Failed to parse the request body as JSON", content_type="text/plain"
            )
        if request.path.startswith("/v1/"):
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return None, web.json_response({"error": "missing field `messages`", "error_type": "validation"},
                                               status=422)
        elif not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return None, web.Response(
                status=422,
                text="Failed to deserialize the JSON body into the target type: missing field `inputs`",
                content_type="text/plain",
            )
        state.requests.append(body)
        if request.path in ("/generate", "/generate_stream") and (problem := protocol_problem(tg.Request, body)):
            state.invalid.append(f"{request.path} request: {problem}")
            return None, web.json_response({"error": problem, "error_type": "validation"}, status=422)
        return body, None

    def checked(kind: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """A reply as TGI sends it: recorded as invalid when the text-generation types refuse it."""
        if problem := protocol_problem(kind, payload):
            state.invalid.append(f"{kind.__name__}: {problem}")
        return payload

    def validate(body: dict[str, Any]) -> str | None:
        params = body.get("parameters") or {}
        n_input = len(tokenize(body["inputs"]))
        max_new = int(params.get("max_new_tokens") or 100)
        if len(params.get("stop") or []) > 4:
            return "Input validation error: `stop` supports up to 4 stop sequences. Given: 5"
        if n_input > state.max_input:
            return f"Input validation error: `inputs` must have less than {state.max_input} tokens. Given: {n_input}"
        if n_input + max_new > state.max_total:
            return (
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {state.max_total}. "
                f"Given: {n_input} `inputs` tokens and {max_new} `max_new_tokens`"
            )
        return None

    def plan(body: dict[str, Any], reply: dict[str, Any], max_new: Any = None) -> tuple[list[dict[str, Any]], str]:
        """The tokens to send ({"text", "special"}) and the finish reason."""
        params = body.get("parameters") or {}
        limit = int(max_new if max_new is not None else params.get("max_new_tokens") or 100)
        if "tokens" in reply:
            tokens = [{"text": str(t["text"]), "special": bool(t.get("special", False))} for t in reply["tokens"]]
        else:
            text = reply.get("text") if "text" in reply else default_text(body.get("inputs") or last_user(body))
            tokens = [{"text": piece, "special": False} for piece in pieces(str(text))]
        reason = "eos_token"
        stops = params.get("stop") or body.get("stop") or []
        out: list[dict[str, Any]] = []
        for tok in tokens:
            out.append(tok)
            joined = "".join(t["text"] for t in out)
            if not reply.get("ignore_stop") and any(s and s in joined for s in stops):
                reason = "stop_sequence"
                break
            if len(out) >= limit and not reply.get("ignore_max_new_tokens"):
                reason = "length"
                break
        return out, reason

    async def begin(request: web.Request) -> tuple[dict[str, Any], dict[str, Any], web.Response | None]:
        """The request's body and the scripted reply, or the answer to give at once (a bad request, a
        scripted failure)."""
        body, error = await parse(request)
        if error is not None or body is None:
            return {}, {}, error
        reply = state.next_reply()
        return body, reply, await scripted_failure(request, reply)

    async def scripted_failure(request: web.Request, reply: dict[str, Any]) -> web.Response | None:
        if reply.get("trickle_head"):
            await trickle_head(request, float(reply["trickle_head"]))
        if reply.get("drop_before"):
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # nothing more to send: the connection is gone
        if reply.get("delay"):
            state.streams["waiting"] += 1
            try:
                await asyncio.sleep(float(reply["delay"]))
            except asyncio.CancelledError:
                state.streams["gone_while_waiting"] += 1
                raise
            finally:
                state.streams["waiting"] -= 1
        if "status" in reply:
            return web.Response(
                status=int(reply["status"]),
                text=reply.get("body", ""),
                content_type=reply.get("content_type", "application/json"),
                headers=reply.get("headers"),
            )
        return None

    async def generate(request: web.Request) -> web.Response:
        body, reply, early = await begin(request)
        if early is not None:
            return early
        if (message := validate(body)) is not None:
            return web.json_response({"error": message, "error_type": "validation"}, status=422)
        tokens, reason = plan(body, reply)
        text = "".join(t["text"] for t in tokens)
        if (body.get("parameters") or {}).get("return_full_text") is True:
            text = body["inputs"] + text
        return web.json_response(
            checked(
                tg.Response,
                {
                    "generated_text": text,
                    "details": {
                        "finish_reason": reason,
                        "generated_tokens": len(tokens),
                        "input_length": len(tokenize(body["inputs"])),
                        "seed": None,
                        "prefill": [],
                        "tokens": [],
                    },
                },
            )
        )

    async def generate_stream(request: web.Request) -> web.StreamResponse:
        body, reply, early = await begin(request)
        if early is not None:
            return early
        if (message := validate(body)) is not None:
            return web.json_response({"error": message, "error_type": "validation"}, status=422)
        tokens, reason = plan(body, reply)
        input_length = len(tokenize(body["inputs"]))
        framing = reply.get("framing", "data: ")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
        except ConnectionResetError:
            return response  # the client gave up before the first byte
        state.streams["opened"] += 1
        state.streams["open"] += 1
        finished = False
        try:
            for raw in reply.get("raw_events", []):
                await response.write(f"{framing}{raw}\n\n".encode())
            for i, tok in enumerate(tokens if "raw_events" not in reply else []):
                if reply.get("error_after") is not None and i == int(reply["error_after"]):
                    event = {
                        "error": reply.get("error", "Request failed during generation: CUDA OOM"),
                        "error_type": reply.get("error_type", "generation"),
                    }
                    await response.write(f"{framing}{json.dumps(event)}\n\n".encode())
                    finished = True
                    return response
                if reply.get("drop_after") is not None and i == int(reply["drop_after"]):
                    assert request.transport is not None
                    request.transport.close()
                    finished = True
                    return response
                if reply.get("garbage_after") is not None and i == int(reply["garbage_after"]):
                    await response.write(f'{framing}{{"index":{i},"token":{{"id":\n\n'.encode())
                    finished = True
                    return response
                if reply.get("stall_after") is not None and i == int(reply["stall_after"]):
                    await stall(response, float(reply.get("stall", 3600)), reply.get("keepalive_every"))
                if reply.get("chunk_delay"):
                    await asyncio.sleep(float(reply["chunk_delay"]))
                if reply.get("keepalive"):
                    await response.write(b":\n\n")
                text = tok["text"] + ("x" * int(reply["huge_event"]) if reply.get("huge_event") and i == 0 else "")
                last = i == len(tokens) - 1
                event = {
                    "index": i + 1,
                    "token": {"id": 1000 + i, "text": text, "logprob": -0.1, "special": tok["special"]},
                    "generated_text": "".join(t["text"] for t in tokens if not t["special"]) if last else None,
                    "details": {
                        "finish_reason": reason,
                        "generated_tokens": len(tokens),
                        "seed": None,
                        "input_length": input_length,
                    }
                    if last
                    else None,
                }
                await response.write(f"{framing}{json.dumps(checked(tg.StreamResponse, event))}\n\n".encode())
            finished = True
            await response.write_eof()
        except ConnectionResetError:
            return response  # the client went away mid-stream (recorded below): nothing to say about it
        finally:
            state.streams["open"] -= 1
            if finished:
                state.streams["finished"] += 1
            else:
                state.streams["closed_early"] += 1
                state.closed_at.append(time.monotonic())
        return response

    async def stall(response: web.StreamResponse, seconds: float, keepalive_every: Any) -> None:
        if not keepalive_every:
            await asyncio.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(float(keepalive_every), left))
            await response.write(b":\n\n")

    async def trickle_head(request: web.Request, every: float) -> None:
        """An endless response head, one byte at a time: each read gets a byte long before a read timeout."""
        transport = request.transport
        assert transport is not None
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        try:
            for byte in head:
                transport.write(bytes([byte]))
                await asyncio.sleep(every)
            while not transport.is_closing():
                transport.write(b"X-Pad: ")
                for _ in range(64):
                    transport.write(b"a")
                    await asyncio.sleep(every)
                transport.write(b"\r\n")
        finally:
            transport.close()
        raise asyncio.CancelledError  # the connection is gone: nothing more to answer

    async def control_invalid(request: web.Request) -> web.Response:
        return web.json_response(state.invalid)

    async def control_hits(request: web.Request) -> web.Response:
        return web.json_response(state.hits)

    async def control_connections(request: web.Request) -> web.Response:
        return web.json_response(state.connections)

    async def control_script(request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, dict) and "default" in body:
            state.default = dict(body["default"])
        for item in body.get("replies", []) if isinstance(body, dict) else body:
            state.script.append(dict(item))
        return web.json_response({"queued": len(state.script)})

    async def control_reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"ok": True})

    async def control_requests(request: web.Request) -> web.Response:
        return web.json_response(state.requests)

    async def control_streams(request: web.Request) -> web.Response:
        return web.json_response({**state.streams, "closed_at": state.closed_at, "now": time.monotonic()})

    app.add_routes(
        [
            web.get("/info", info),
            web.get("/health", health),
            web.post("/tokenize", tokenize_route),
            web.post("/generate", generate),
            web.post("/generate_stream", generate_stream),
            *messages_routes(state, begin, plan, stall),
            web.get("/_control/invalid", control_invalid),
            web.post("/_control/script", control_script),
            web.post("/_control/reset", control_reset),
            web.get("/_control/requests", control_requests),
            web.get("/_control/streams", control_streams),
            web.get("/_control/hits", control_hits),
            web.get("/_control/connections", control_connections),
        ]
    )
    return app


async def serve(host: str, port: int, state: State, ssl_context: ssl.SSLContext | None = None) -> None:
    runner = web.AppRunner(create_app(state), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--max-input-tokens", type=int, default=3696)
    parser.add_argument("--max-total-tokens", type=int, default=4096)
    parser.add_argument("--certfile", help="serve HTTPS with this certificate chain (PEM)")
    parser.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    args = parser.parse_args()
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    asyncio.run(
        serve(args.host, args.port, State(args.api_key, args.max_input_tokens, args.max_total_tokens), context)
    )


if __name__ == "__main__":
    main()
