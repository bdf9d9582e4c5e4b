"""The Engine: a loaded model with its tokenizer, generating text token by token.

    engine = Engine.load(path, n_ctx=2048)
    ids = engine.tokenize("The capital of France is")        # BOS only when the model asks for it
    result = engine.generate(ids, 32, SamplingParams(temperature=0), on_text=print)

``generate`` streams whole characters through ``on_text`` and returns a ``Generation``
(tokens, text, finish reason, timings).  The KV cache keeps the longest common prefix
of the previous call's tokens, so a multi-turn chat only processes the new suffix.
It stops on every end-of-generation token of the vocabulary and on stop strings;
``cancel()`` (from another thread) or Ctrl-C stops it with finish reason "cancelled".
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from modelctl.core.errors import RuntimeModelError, UsageError
from modelctl.runtime.sampler import Sampler, SamplingParams

FINISH_REASONS = ("stop", "eog", "length", "cancelled")


class ContextOverflowError(RuntimeModelError):
    """The prompt does not fit in the context; the caller decides (error out, or drop old turns)."""

    def __init__(self, n_tokens: int, n_ctx: int):
        super().__init__(f"the prompt has {n_tokens} tokens but the context holds {n_ctx}",
                         hint="use a larger --ctx or a shorter prompt")
        self.n_tokens = n_tokens
        self.n_ctx = n_ctx


@dataclass
class Timings:
    load_s: float = 0.0
    prompt_tokens: int = 0       # prompt tokens actually processed (after the reused prefix)
    prompt_s: float = 0.0
    gen_tokens: int = 0
    gen_s: float = 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prompt_s if self.prompt_s > 0 else 0.0

    @property
    def gen_tokens_per_s(self) -> float:
        return self.gen_tokens / self.gen_s if self.gen_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2),
                "gen_tokens_per_s": round(self.gen_tokens_per_s, 2)}


@dataclass
class Generation:
    tokens: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int
    reused_tokens: int = 0       # prompt tokens found in the KV cache from the previous call
    context_full: bool = False   # generation stopped because the context is full
    timings: Timings = field(default_factory=Timings)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class StopStrings:
    """Holds back text that may be the start of a stop string; finds the first stop string."""

    def __init__(self, stops: Iterable[str]):
        self.stops = [s for s in stops if s]
        self.held = ""

    def push(self, piece: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was reached)."""
        buf = self.held + piece
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[:min(hits)], True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), hold, -1):
                if buf.endswith(s[:k]):
                    hold = k
                    break
        self.held = buf[len(buf) - hold:] if hold else ""
        return buf[:len(buf) - hold], False

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text


class Engine:
    """A model ready to generate: weights mapped, tokenizer read, KV cache allocated."""

    def __init__(self, gguf, model, tokenizer, path: Path, load_s: float):
        self.gguf = gguf
        self.model = model
        self.tokenizer = tokenizer
        self.path = path
        self.load_s = load_s
        self._tokens: list[int] = []      # what the KV cache holds, position by position
        self._cancel = threading.Event()
        self._owns_file = True

    @classmethod
    def load(cls, path: str | os.PathLike, n_ctx: int | None = None, n_threads: int | None = None,
             kv_type: str = "f16") -> "Engine":
        from modelctl.runtime.loader import GGUFFile
        from modelctl.runtime.model import Model
        from modelctl.runtime.tokenizer import Tokenizer

        t0 = time.perf_counter()
        gguf = GGUFFile.open(path)
        try:
            model = Model(gguf, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type)
            tokenizer = Tokenizer.from_header(gguf.header)
        except Exception:
            gguf.close()
            raise
        return cls(gguf, model, tokenizer, Path(path), time.perf_counter() - t0)

    # -- facts --------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.model.n_ctx

    @property
    def metadata(self) -> dict:
        return self.gguf.metadata

    @property
    def eog_ids(self) -> frozenset[int]:
        tok = self.tokenizer
        eog = set(getattr(tok, "eog_ids", ()) or ())
        if getattr(tok, "eos_id", None) is not None:
            eog.add(tok.eos_id)
        return frozenset(eog)

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """As llama.cpp tokenizes a raw prompt: BOS only when the model's metadata asks for it."""
        return self.tokenizer.encode(text, add_special=add_special, parse_special=parse_special)

    def default_sampling(self, **overrides) -> SamplingParams:
        """llama.cpp's defaults, the GGUF's general.sampling.*, then ``overrides`` (None values ignored)."""
        return SamplingParams.from_metadata(self.metadata, **overrides)

    # -- state --------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running ``generate`` after the current token (safe from another thread)."""
        self._cancel.set()

    def reset(self) -> None:
        """Forget the KV cache contents."""
        self._tokens = []

    def fork(self) -> "Engine":
        """An engine over the same mapped weights and tokenizer with its own KV cache (a server slot).

        Closing a fork leaves the file open; close the engine it came from last."""
        twin = Engine(self.gguf, self.model.fork(), self.tokenizer, self.path, self.load_s)
        twin._owns_file = False
        return twin

    def close(self) -> None:
        if self._owns_file:
            self.gguf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- evaluation ---------------------------------------------------------

    def _prefill(self, prompt: list[int]) -> tuple["object", int]:
        """Process the prompt after the prefix already cached; return the last logits and the reused count."""
        keep = min(common_prefix(self._tokens, prompt), len(prompt) - 1)
        self._tokens = self._tokens[:keep]
        logits = self.model.forward(prompt[keep:], keep)[-1]
        self._tokens = list(prompt)
        return logits, keep

    def logits(self, ids: Sequence[int]):
        """Logits at every position of ``ids`` (a fresh sequence; used by tests and evaluation)."""
        ids = list(ids)
        if len(ids) > self.n_ctx:
            raise ContextOverflowError(len(ids), self.n_ctx)
        self._tokens = []
        out = self.model.forward(ids, 0, all_logits=True)
        self._tokens = ids
        return out

    def _checked_prompt(self, prompt_ids: Sequence[int]) -> list[int]:
        """The prompt as ints, refused when empty, too long for the context, or outside the vocabulary."""
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise UsageError("the prompt is empty", hint="give some text (this model adds no BOS token)")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflowError(len(prompt), self.n_ctx)
        bad = [t for t in prompt if not 0 <= t < self.model.hp.n_vocab]
        if bad:
            raise UsageError(f"token id {bad[0]} is outside the vocabulary (0..{self.model.hp.n_vocab - 1})")
        return prompt

    def generate(self, prompt_ids: Sequence[int], max_tokens: int | None = None,
                 sampling: SamplingParams | None = None, stop_strings: Iterable[str] = (),
                 on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Generation:
        """Generate after ``prompt_ids``.  ``cancel``: an event of the caller's that stops it after the
        current token (never cleared here; without one, ``cancel()`` does)."""
        from modelctl.runtime.tokenizer import StreamDecoder

        prompt = self._checked_prompt(prompt_ids)
        sampling = sampling or self.default_sampling()
        limit = self.n_ctx - len(prompt) if max_tokens is None or max_tokens < 0 else max_tokens
        sampler = Sampler(sampling)
        decoder = StreamDecoder(self.tokenizer)
        stops = StopStrings(stop_strings)
        eog = self.eog_ids
        timings = Timings(load_s=self.load_s)
        if cancel is None:
            cancel = self._cancel
            cancel.clear()
        out_tokens: list[int] = []
        parts: list[str] = []
        finish, reused, context_full = "length", 0, False

        def emit(text: str) -> None:
            if text:
                parts.append(text)
                if on_text is not None:
                    on_text(text)

        try:
            t0 = time.perf_counter()
            logits, reused = self._prefill(prompt)
            timings.prompt_tokens, timings.prompt_s = len(prompt) - reused, time.perf_counter() - t0
            history = list(prompt)
            t0 = time.perf_counter()
            while len(out_tokens) < limit:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                tok = sampler.sample(logits, history)
                if tok in eog:
                    finish = "eog"
                    break
                out_tokens.append(tok)
                history.append(tok)
                text, stopped = stops.push(decoder.feed(tok))
                emit(text)
                if stopped:
                    finish = "stop"
                    break
                if len(out_tokens) >= limit:
                    break
                if len(self._tokens) >= self.n_ctx:
                    context_full = True
                    break
                logits = self.model.forward([tok], len(self._tokens))[-1]
                self._tokens.append(tok)
        except KeyboardInterrupt:
            finish = "cancelled"
        finally:
            timings.gen_tokens = len(out_tokens)
            timings.gen_s = time.perf_counter() - t0
        if finish != "stop":
            emit(stops.push(decoder.flush())[0] + stops.flush())
        return Generation(tokens=out_tokens, text="".join(parts), finish_reason=finish,
                          prompt_tokens=len(prompt), reused_tokens=reused, context_full=context_full,
                          timings=timings)
