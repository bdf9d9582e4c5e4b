"""The OpenAI API's shapes: requests checked into typed values, responses and errors built as dicts.

Pure functions over parsed JSON, no I/O: the app (``modelctl.serve.app``) reads bodies and sends what
these build.  Bad requests raise ``APIError`` with OpenAI's error body
``{"error": {"message", "type", "code", "param"}}`` and the HTTP status to answer with.
Fields that OpenAI clients send but this server does not use are ignored; fields it cannot honour
(``n`` > 1, ``logprobs``, ``echo``, images) are refused rather than silently dropped.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_STOP_STRINGS = 16
ROLES = ("system", "developer", "user", "assistant", "tool")

# finish reasons of the runtime -> OpenAI's
FINISH_REASONS = {"eog": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


class APIError(Exception):
    """An answer of status ``status`` with OpenAI's error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, code=code, param=param)


# ---------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------


@dataclass
class GenerationRequest:
    """What both endpoints share: the model asked for, sampling, limits, streaming."""

    model: str | None = None
    max_tokens: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)    # SamplingParams field -> value
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


@dataclass
class ChatRequest(GenerationRequest):
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class CompletionRequest(GenerationRequest):
    prompt: str = ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _value(body: dict, name: str, lo: float, hi: float, integer: bool = False):
    """A number field (an integer one when ``integer``) within [lo, hi], or None when absent."""
    v = body.get(name)
    if v is None:
        return None
    if not (_is_int(v) if integer else _is_number(v)):
        raise bad(f"'{name}' must be {'an integer' if integer else 'a number'}", name, "invalid_type")
    if not lo <= v <= hi:
        raise bad(f"'{name}' must be between {lo:g} and {hi:g}, not {v}", name)
    return v if integer else float(v)


def _stop(body: dict) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise bad("'stop' must be a string or a list of strings", "stop", "invalid_type")
    if len(items) > MAX_STOP_STRINGS:
        raise bad(f"'stop' holds at most {MAX_STOP_STRINGS} strings", "stop")
    return [s for s in items if s]


def _refuse_unsupported(body: dict) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise bad("only 'n': 1 is supported", "n")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise bad("'logprobs' is not supported by this server", "logprobs")
    if body.get("echo") not in (None, False):
        raise bad("'echo' is not supported by this server", "echo")
    if body.get("best_of") not in (None, 1):
        raise bad("'best_of' is not supported by this server", "best_of")
    for name in ("tools", "functions"):
        if body.get(name):
            raise bad(f"'{name}' (function calling) is not supported by this server", name)


def _common(body: Any, n_ctx: int) -> dict[str, Any]:
    """The fields of GenerationRequest, checked."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None, "invalid_type")
    _refuse_unsupported(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model", "invalid_type")
    max_tokens = None
    for name in ("max_tokens", "max_completion_tokens"):   # at most the context size
        max_tokens = _value(body, name, 1, n_ctx, integer=True) or max_tokens
    sampling = {"temperature": _value(body, "temperature", 0.0, 100.0),
                "top_p": _value(body, "top_p", 0.0, 1.0),
                "min_p": _value(body, "min_p", 0.0, 1.0),
                "top_k": _value(body, "top_k", 0, 1 << 31, integer=True),
                "repeat_penalty": _value(body, "repeat_penalty", 0.0, 100.0)}
    seed = _value(body, "seed", -1, (1 << 64) - 1, integer=True)
    if seed is not None and seed >= 0:
        sampling["seed"] = seed
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false", "stream", "invalid_type")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise bad("'stream_options' must be an object", "stream_options", "invalid_type")
    include_usage = bool((opts or {}).get("include_usage"))
    return {"model": model, "max_tokens": max_tokens, "stop": _stop(body), "stream": stream,
            "include_usage": include_usage, "sampling": {k: v for k, v in sampling.items() if v is not None}}


def _content(content: Any, i: int) -> str:
    """A message's content: a string, or a list of text parts (joined)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"messages[{i}].content: only text parts are supported", f"messages[{i}].content")
            texts.append(part["text"])
        return "".join(texts)
    raise bad(f"messages[{i}].content must be a string or a list of text parts", f"messages[{i}].content",
              "invalid_type")


def parse_chat(body: Any, n_ctx: int) -> ChatRequest:
    common = _common(body, n_ctx)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list", "messages",
                  "invalid_type" if not isinstance(messages, list) else "invalid_value")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}] must be an object", f"messages[{i}]", "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"messages[{i}].role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        out.append({"role": "system" if role == "developer" else role, "content": _content(m.get("content"), i)})
    return ChatRequest(messages=out, **common)


def parse_completion(body: Any, n_ctx: int) -> CompletionRequest:
    common = _common(body, n_ctx)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad("'prompt' must be a string (or a list of one string)", "prompt", "invalid_type")
    if not prompt:
        raise bad("'prompt' is empty", "prompt")
    return CompletionRequest(prompt=prompt, **common)


# ---------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------


@dataclass
class Answer:
    """The identity of one answer, shared by its chunks."""

    kind: str          # "chat" | "text"
    model: str
    id: str = ""
    created: int = 0

    def __post_init__(self):
        self.id = self.id or f"{'chatcmpl' if self.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = self.created or int(time.time())

    def _head(self, object_: str) -> dict:
        return {"id": self.id, "object": object_, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def chunk(self, text: str | None, finish_reason: str | None = None, first: bool = False) -> dict:
        """One streamed piece (``text`` None: the closing chunk with only the finish reason)."""
        fr = FINISH_REASONS.get(finish_reason, finish_reason) if finish_reason else None
        if self.kind == "chat":
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fr}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": fr}
        return {**self._head("text_completion"), "choices": [choice]}

    def usage_chunk(self, usage: dict) -> dict:
        """The last chunk when ``stream_options.include_usage``: no choices, the token counts."""
        object_ = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._head(object_), "choices": [], "usage": usage}

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict:
        fr = FINISH_REASONS.get(finish_reason, finish_reason)
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": fr}
            return {**self._head("chat.completion"), "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": fr}
        return {**self._head("text_completion"), "choices": [choice], "usage": usage}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def models_list(model_id: str, created: int) -> dict:
    return {"object": "list",
            "data": [{"id": model_id, "object": "model", "created": created, "owned_by": "modelctl"}]}
