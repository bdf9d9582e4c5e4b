"""The HTTP side: a Starlette app with OpenAI's routes over the slots.

    GET  /health                 {"status": "ok", slots idle/processing, queued}  (no key needed)
    GET  /v1/models              the one model served
    POST /v1/chat/completions    messages -> the model's chat template -> an answer
    POST /v1/completions         a raw prompt -> its continuation

Both POST routes stream server-sent events (``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``) when
``"stream": true``.  Bodies are read up to ``MAX_BODY_BYTES`` and refused (413) past it without
being read whole; every failure is answered with OpenAI's error body, never a traceback.  A client
that goes away cancels its job: a running one stops at its next token, a queued one is skipped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelctl.core.errors import ModelctlError
from modelctl.serve import schema
from modelctl.serve.schema import APIError
from modelctl.serve.slots import Job, Scheduler

MAX_BODY_BYTES = 1 << 20
PUBLIC_PATHS = ("/health",)


@dataclass
class ServeState:
    """What the routes need: the model's name, tokenizer and template, the slots, the key."""

    model_id: str
    names: set[str]                    # what a request's "model" may say
    engine: Any                        # for its tokenizer and context size
    template: Any                      # ChatTemplate
    sampling: Any                      # SamplingParams: the model's defaults
    scheduler: Scheduler
    api_key: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    # template rendering and tokenizing off the event loop, one at a time (the template sandbox's
    # limits are process-wide)
    prep: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "modelctl-prep"))

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def send_json(send, status: int, obj: Any, extra_headers: list | None = None) -> None:
    body = json_bytes(obj)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class JSONAnswer:
    """A plain JSON response as an ASGI app (what every route returns)."""

    def __init__(self, status: int, obj: Any, headers: list | None = None):
        self.status, self.obj, self.headers = status, obj, headers

    async def __call__(self, scope, receive, send) -> None:
        await send_json(send, self.status, self.obj, self.headers)


def error_answer(err: APIError) -> JSONAnswer:
    headers = [(b"www-authenticate", b"Bearer")] if err.status == 401 else None
    return JSONAnswer(err.status, err.body(), headers)


# ---------------------------------------------------------------------------
# the API key
# ---------------------------------------------------------------------------


class KeyCheck:
    """ASGI middleware: ``Authorization: Bearer KEY`` on every path but /health (compared in constant
    time; neither the key nor what a client sent is ever logged or echoed)."""

    def __init__(self, app, key: str | None):
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope, receive, send) -> None:
        if self.key is None or scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            err = APIError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                           type="authentication_error", code="invalid_api_key")
            return await error_answer(err)(scope, receive, send)
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------------------
# reading a request
# ---------------------------------------------------------------------------


async def read_json(request) -> Any:
    """The body as JSON, refused (413) past MAX_BODY_BYTES before it is read whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise APIError(400, "Content-Length is not a number", code="invalid_request")
        if int(declared) > MAX_BODY_BYTES:
            raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise APIError(400, "the request body is not valid JSON", code="invalid_json") from None


def too_large() -> APIError:
    return APIError(413, f"the request body is larger than {MAX_BODY_BYTES >> 20} MiB",
                    code="request_too_large")


def check_model(state: ServeState, asked: str | None) -> None:
    if asked is not None and asked not in state.names:
        raise APIError(404, f"the model '{asked}' does not exist: this server serves '{state.model_id}'",
                       code="model_not_found", param="model")


def prepare_chat(state: ServeState, req: schema.ChatRequest) -> list[int]:
    """Render the chat template and tokenize (in the prep thread)."""
    from modelctl.chat import tokenize_chat_prompt

    try:
        text = state.template.render(req.messages, add_generation_prompt=True)
    except ModelctlError as exc:
        raise APIError(400, f"the chat template cannot render these messages: {exc.one_line()}",
                       code="template_error", param="messages") from None
    return tokenize_chat_prompt(state.engine.tokenizer, text, state.template.special_tokens.get("bos_token"))


def prepare_completion(state: ServeState, req: schema.CompletionRequest) -> list[int]:
    """A raw prompt as llama-server reads one: the model's BOS as it asks, special tokens parsed."""
    return state.engine.tokenize(req.prompt, add_special=True, parse_special=True)


def check_fits(state: ServeState, ids: list[int]) -> None:
    if len(ids) >= state.n_ctx:
        raise APIError(400, f"the prompt has {len(ids)} tokens but the context holds {state.n_ctx}: "
                            "shorten it, or start the server with a larger --ctx",
                       code="context_length_exceeded", param="messages")


# ---------------------------------------------------------------------------
# answering
# ---------------------------------------------------------------------------


def sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json_bytes(obj)) + b"\n\n"


SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


def generation_error(exc: BaseException) -> APIError:
    from modelctl.runtime.engine import ContextOverflowError

    if isinstance(exc, ContextOverflowError):
        return APIError(400, exc.one_line(), code="context_length_exceeded")
    if isinstance(exc, ModelctlError):
        return APIError(400, exc.one_line(), code="invalid_request")
    return APIError(500, f"generation failed: {type(exc).__name__}: {exc}", type="server_error",
                    code="internal_error")


class JobAnswer:
    """Runs a job through the slots and answers it, streamed or whole (an ASGI app).

    A watcher task cancels the job when the client disconnects; the job is cancelled too whenever
    this ends early (a failed send; the server stopping cancels this task)."""

    def __init__(self, job: Job, answer: schema.Answer, req: schema.GenerationRequest):
        self.job, self.answer, self.req = job, answer, req
        self.started = False          # the stream's head is sent

    async def __call__(self, scope, receive, send) -> None:
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            if self.req.stream:
                await self._stream(send)
            else:
                await self._whole(send)
        except OSError:               # the connection broke while sending: nobody to answer
            pass
        except asyncio.CancelledError:  # the server is stopping and cancels what still runs
            self.job.cancel()
            await self._stopped(send)
        finally:
            watcher.cancel()
            self.job.cancel()

    async def _stopped(self, send) -> None:
        """Say that the answer was cut: an error event ending the stream (OpenAI clients raise it), or 503."""
        err = APIError(503, "the server is stopping: this answer was cancelled", type="server_error",
                       code="server_shutdown")
        try:
            if self.started:
                await send({"type": "http.response.body", "body": sse(err.body()), "more_body": False})
            else:
                await error_answer(err)(None, None, send)
        except (OSError, asyncio.CancelledError):
            pass

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.job.cancel()
                return

    async def _whole(self, send) -> None:
        parts = []
        while True:
            kind, value = await self.job.events.get()
            if kind == "text":
                parts.append(value)
            elif kind == "done":
                if value.finish_reason == "cancelled":
                    return
                obj = self.answer.whole("".join(parts), value.finish_reason,
                                        schema.usage(value.prompt_tokens, len(value.tokens)))
                return await send_json(send, 200, obj)
            else:
                return await self._failed(send, value)

    async def _stream(self, send) -> None:
        a = self.answer
        while True:
            kind, value = await self.job.events.get()
            if kind == "error":
                if not self.started:
                    await self._failed(send, value)
                return
            if not self.started:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                self.started = True
                if a.kind == "chat":
                    await self._send(send, sse(a.chunk("", first=True)))
            if kind == "text":
                await self._send(send, sse(a.chunk(value)))
                continue
            if value.finish_reason == "cancelled":
                return
            body = sse(a.chunk(None, value.finish_reason))
            if self.req.include_usage:
                body += sse(a.usage_chunk(schema.usage(value.prompt_tokens, len(value.tokens))))
            await send({"type": "http.response.body", "body": body + sse(b"[DONE]"), "more_body": False})
            return

    async def _send(self, send, body: bytes) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})

    async def _failed(self, send, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        await error_answer(generation_error(exc))(None, None, send)


# ---------------------------------------------------------------------------
# the routes
# ---------------------------------------------------------------------------


def create_app(state: ServeState):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    async def health(request):
        return JSONAnswer(200, {"status": "ok", **state.scheduler.stats()})

    async def models(request):
        return JSONAnswer(200, schema.models_list(state.model_id, state.created))

    def generation_route(kind: str, parse, prepare):
        async def route(request):
            try:
                req = parse(await read_json(request), state.n_ctx)
                check_model(state, req.model)
                loop = asyncio.get_running_loop()
                ids = await loop.run_in_executor(state.prep, prepare, state, req)
                check_fits(state, ids)
            except APIError as err:
                return error_answer(err)
            sampling = state.sampling.with_overrides(**req.sampling)
            # a chat answer ends at the template's end of turn; a raw completion only where asked
            stops = (state.template.stop_strings() if kind == "chat" else []) + req.stop
            job = Job(ids, req.max_tokens, sampling, stops, loop)
            try:
                state.scheduler.submit(job)
            except RuntimeError:
                return error_answer(APIError(503, "the server is shutting down", type="server_error",
                                             code="unavailable"))
            return JobAnswer(job, schema.Answer(kind, state.model_id), req)
        return route

    async def http_error(request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_answer(APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                     code=code))

    async def server_error(request, exc: Exception):
        return error_answer(APIError(500, f"internal error: {type(exc).__name__}", type="server_error",
                                     code="internal_error"))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", generation_route("chat", schema.parse_chat, prepare_chat), methods=["POST"]),
        Route("/v1/completions", generation_route("text", schema.parse_completion, prepare_completion),
              methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})
    return KeyCheck(app, state.api_key)
