"""A chat with a local model, as a library: which model (a path, a manifest name, a pulled repo, or the
default model for this machine), its chat template (``modelctl.cards.templates``), settings planned by the
same estimator as ``recommend``, and a session on the bundled runtime's ``Engine`` that keeps the
conversation within the context (the oldest turns go first, never the system prompt).

The terminal side (the REPL, one-shot answers, ``--print-prompt``) is ``modelctl.cli.chat``; ``modelctl
serve`` uses the same pieces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelctl.core import output
from modelctl.core.errors import ModelctlError, NotFoundError, UsageError

DEFAULT_CTX = 4096            # like llama.cpp's default; lowered to what fits, capped by the model's own
MIN_CTX = 512
REPLY_RESERVE = 256           # tokens kept free for a reply when trimming the conversation
CONVERSATION_FORMAT = "modelctl-chat"

# /set OPTION VALUE and the matching command-line flags: name -> (SamplingParams field, type)
SAMPLING_OPTIONS: dict[str, tuple[str, type]] = {
    "temp": ("temperature", float),
    "temperature": ("temperature", float),
    "top_k": ("top_k", int),
    "top_p": ("top_p", float),
    "min_p": ("min_p", float),
    "repeat_penalty": ("repeat_penalty", float),
    "repeat_last_n": ("repeat_last_n", int),
    "seed": ("seed", int),
}
OTHER_OPTIONS = {"num_predict": int, "n": int}   # max reply tokens (-1: until the context is full)


# ---------------------------------------------------------------------------
# the model and its plan
# ---------------------------------------------------------------------------


@dataclass
class ModelChoice:
    path: Path
    manifest: Any = None
    ref: str = ""


def find_model(ref: str | None, quant: str | None = None) -> ModelChoice:
    """A local GGUF for ``ref`` (without one, the default model chosen for this machine), with its manifest
    when it has one."""
    from modelctl.hub.resolve import parse_ref, resolve_model

    if ref is None:
        from modelctl import default_model
        from modelctl.cards.manifest import load_manifest

        name, path = default_model.open_default(notice=output.notice, warn=output.warn)
        return ModelChoice(path, load_manifest(name), name)
    manifest = None
    if parse_ref(ref).kind == "manifest":
        from modelctl.cards.manifest import load_manifest

        try:
            manifest = load_manifest(ref)
        except NotFoundError:
            manifest = None
    return ModelChoice(resolve_model(ref, quant=quant), manifest, ref)


@dataclass
class Plan:
    n_ctx: int
    n_threads: int | None
    planned_gpu_layers: int          # what the estimator would offload on this machine
    ram_bytes: int                   # the estimator's RAM figure at n_ctx on the CPU
    notes: list[str] = field(default_factory=list)


def plan_settings(header, *, ctx: int | None = None, gpu_layers: int | None = None,
                  threads: int | None = None, machine=None) -> Plan:
    """Context and GPU layers from recommend's estimator for this machine; flags override.

    The context is the model's own (capped at DEFAULT_CTX) halved until the CPU placement fits the
    available RAM.  The bundled runtime has no GPU backend: the planned layers are reported, and a
    request for GPU layers is answered with a notice that the CPU runs the model.
    """
    from modelctl.fit import estimate as est
    from modelctl.fit import hardware

    notes: list[str] = []
    arch = est.arch_from_header(header)
    weights = est.weights_from_tensors(header.tensors, arch.layers)
    machine = machine or hardware.detect()
    model_ctx = arch.context_length if isinstance(arch.context_length, int) and arch.context_length > 0 else None
    if ctx is not None:
        if ctx < 16:
            raise UsageError(f"--ctx {ctx} is too small", hint="use at least 16 tokens (512 or more is useful)")
        n_ctx = ctx
        if model_ctx and ctx > model_ctx:
            notes.append(f"--ctx {ctx} is beyond the model's trained context of {model_ctx}; answers may degrade")
    else:
        n_ctx = min(DEFAULT_CTX, model_ctx or DEFAULT_CTX)
        while n_ctx > MIN_CTX and est.estimate(arch, weights, n_ctx).placement(0, ()).ram_bytes > machine.ram_available_bytes:
            n_ctx //= 2
    cpu = est.estimate(arch, weights, n_ctx).placement(0, ())
    if cpu.ram_bytes > machine.ram_available_bytes:
        notes.append(f"the model needs about {cpu.ram_bytes / 2**30:.1f} GiB at ctx {n_ctx} but "
                     f"{machine.ram_available_bytes / 2**30:.1f} GiB is available; it may swap or fail")
    planned = 0
    if machine.gpus:
        from modelctl.fit.recommend import best_placement

        placement, _fits = best_placement(est.estimate(arch, weights, n_ctx), machine)
        planned = placement.ngl
    if gpu_layers is not None and gpu_layers != 0:
        where = "this machine has a GPU" if machine.gpus else "this machine has no GPU either"
        notes.append(f"--gpu-layers {gpu_layers}: modelctl's bundled runtime has no GPU backend ({where}); "
                     "running all layers on the CPU")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads} must be at least 1")
    return Plan(n_ctx, threads, planned, cpu.ram_bytes, notes)


# ---------------------------------------------------------------------------
# the conversation
# ---------------------------------------------------------------------------


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)   # user/assistant messages, in order

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [dict(m) for m in self.turns]

    def drop_oldest_turn(self) -> int:
        """Remove the oldest user message and the replies after it; the number of messages removed."""
        if not self.turns:
            return 0
        n = 1
        while n < len(self.turns) and self.turns[n]["role"] != "user":
            n += 1
        del self.turns[:n]
        return n

    def to_dict(self, sampling: dict | None = None) -> dict:
        return {"format": CONVERSATION_FORMAT, "version": 1, "system": self.system,
                "messages": [dict(m) for m in self.turns], **({"sampling": sampling} if sampling else {})}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Conversation":
        if not isinstance(data, dict) or data.get("format") != CONVERSATION_FORMAT:
            raise UsageError("not a modelctl conversation file", where=where,
                             hint="load a file written by /save")
        system = data.get("system")
        msgs = data.get("messages")
        if system is not None and not isinstance(system, str):
            raise UsageError("'system' must be a string or null", where=where)
        if not isinstance(msgs, list):
            raise UsageError("'messages' must be a list", where=where)
        turns = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise UsageError(f"message {i} must be {{\"role\": \"user\"|\"assistant\", \"content\": str}}",
                                 where=where)
            turns.append({"role": m["role"], "content": m["content"]})
        return cls(system or None, turns)


def save_conversation(conv: Conversation, path: str, sampling: dict | None = None) -> Path:
    from modelctl.core.atomicfile import write_text_atomic

    return write_text_atomic(path, json.dumps(conv.to_dict(sampling), indent=2, ensure_ascii=False) + "\n")


def load_conversation(path: str) -> tuple[Conversation, dict]:
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise NotFoundError("no such file", where=str(p)) from None
    except OSError as exc:
        raise ModelctlError(f"cannot read the file: {exc.strerror}", where=str(p)) from None
    if len(raw) > 64 << 20:
        raise UsageError("conversation file is larger than 64 MiB", where=str(p))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"not valid JSON: {exc}", where=str(p), hint="load a file written by /save") from None
    sampling = data.get("sampling") if isinstance(data, dict) and isinstance(data.get("sampling"), dict) else {}
    return Conversation.from_dict(data, str(p)), sampling


# ---------------------------------------------------------------------------
# a session: engine + template + settings + conversation
# ---------------------------------------------------------------------------


class ChatSession:
    def __init__(self, engine, template, sampling, n_predict: int | None = None,
                 notify: Callable[[str], None] = output.notice):
        self.engine = engine
        self.template = template
        self.sampling = sampling
        self.n_predict = n_predict
        self.conversation = Conversation()
        self.notify = notify
        self.last = None                   # the last Generation
        self.context_tokens = 0            # tokens of the last prompt + reply
        self.stops = template.stop_strings()

    # -- settings -----------------------------------------------------------

    def set_option(self, name: str, value: str) -> str:
        name = name.lower().replace("-", "_")
        if name in OTHER_OPTIONS:
            self.n_predict = _parse(value, int, name)
            return f"num_predict = {self.n_predict}"
        if name not in SAMPLING_OPTIONS:
            raise UsageError(f"unknown option {name!r}",
                             hint=f"options: {', '.join(sorted(set(SAMPLING_OPTIONS) | {'num_predict'}))}")
        fld, kind = SAMPLING_OPTIONS[name]
        v = None if (fld == "seed" and value.lower() in ("none", "random", "-1")) else _parse(value, kind, name)
        from dataclasses import replace

        self.sampling = replace(self.sampling, **{fld: v})
        return f"{fld} = {v}"

    def apply_saved_sampling(self, saved: dict) -> None:
        """Sampling settings stored by /save (unknown keys and bad values are ignored with a notice)."""
        from dataclasses import fields, replace

        known = {f.name: f.type for f in fields(self.sampling)}
        values = {}
        for key, value in saved.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = key in known and (number or (key == "seed" and value is None))
            if ok:
                values[key] = int(value) if key in ("top_k", "repeat_last_n", "seed") and value is not None else value
            else:
                self.notify(f"ignored saved setting {key}={value!r}")
        self.sampling = replace(self.sampling, **values)

    def settings_text(self) -> str:
        s = self.sampling
        return (f"temperature {s.temperature}, top_k {s.top_k}, top_p {s.top_p}, min_p {s.min_p}, "
                f"repeat_penalty {s.repeat_penalty}, repeat_last_n {s.repeat_last_n}, seed {s.seed}, "
                f"num_predict {self.n_predict if self.n_predict is not None else -1}, ctx {self.engine.n_ctx}")

    # -- prompt -------------------------------------------------------------

    def prompt_text(self, messages=None) -> str:
        return self.template.render(self.conversation.messages() if messages is None else messages,
                                    add_generation_prompt=True)

    def tokenize_prompt(self, text: str) -> list[int]:
        return tokenize_chat_prompt(self.engine.tokenizer, text, self.template.special_tokens.get("bos_token"))

    def fit_prompt(self) -> list[int]:
        """The prompt's tokens, after dropping the oldest turns while it does not fit with a reply."""
        n_ctx = self.engine.n_ctx
        reserve = min(REPLY_RESERVE if self.n_predict is None or self.n_predict < 0 else self.n_predict,
                      n_ctx // 4)
        dropped = 0
        while True:
            ids = self.tokenize_prompt(self.prompt_text())
            if len(ids) + reserve <= n_ctx:
                break
            user_turns = sum(1 for m in self.conversation.turns if m["role"] == "user")
            if user_turns <= 1:
                if len(ids) < n_ctx:
                    break   # the last message alone: answer in what is left
                raise UsageError(f"the message needs {len(ids)} tokens but the context holds {n_ctx}",
                                 hint="shorten it, or start with a larger --ctx")
            dropped += self.conversation.drop_oldest_turn()
        if dropped:
            self.notify(f"[context full: dropped the {dropped} oldest message(s) to fit {n_ctx} tokens"
                        f"{'; the system prompt stays' if self.conversation.system else ''}]")
        return ids

    # -- one reply ----------------------------------------------------------

    def reply(self, user_text: str, on_text: Callable[[str], None] | None = None):
        """Add the user's message, generate the reply (streamed through ``on_text``), keep it."""
        self.conversation.turns.append({"role": "user", "content": user_text})
        try:
            ids = self.fit_prompt()
            limit = self.n_predict if self.n_predict is not None and self.n_predict >= 0 else None
            if limit is None or len(ids) + limit > self.engine.n_ctx:
                limit = self.engine.n_ctx - len(ids)
            gen = self.engine.generate(ids, limit, self.sampling, stop_strings=self.stops, on_text=on_text)
        except BaseException:
            self.conversation.turns.pop()   # an error or Ctrl-C before the reply: as if never asked
            raise
        text = gen.text.strip()
        if gen.finish_reason == "cancelled" and not text:
            self.conversation.turns.pop()   # stopped before a word: as if never asked
            return gen
        self.conversation.turns.append({"role": "assistant", "content": text})
        self.last = gen
        self.context_tokens = len(ids) + len(gen.tokens)
        if gen.context_full:
            self.notify("[the reply filled the context; older turns will be dropped next time]")
        return gen

    def clear(self) -> None:
        self.conversation.turns.clear()
        self.engine.reset()
        self.context_tokens = 0

    def stats_text(self) -> str:
        c = self.conversation
        lines = [f"context: {self.context_tokens} of {self.engine.n_ctx} tokens; "
                 f"{sum(1 for m in c.turns if m['role'] == 'user')} turn(s); "
                 f"system prompt: {'yes' if c.system else 'no'}",
                 f"template: {self.template.origin}; stop: {', '.join(self.stops) or '(EOS only)'}"]
        if self.last is not None:
            lines.append(timings_text(self.last))
        return "\n".join(lines)


def tokenize_chat_prompt(tokenizer, text: str, bos_text: str | None) -> list[int]:
    """Special tokens in the rendered template are parsed; BOS added only if the model wants one and
    the template did not already write it."""
    ids = tokenizer.encode(text, add_special=False, parse_special=True)
    bos = getattr(tokenizer, "bos_id", None)
    if getattr(tokenizer, "add_bos", False) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def timings_text(gen) -> str:
    t = gen.timings
    return (f"prompt: {t.prompt_tokens} tokens ({gen.reused_tokens} reused) at {t.prompt_tokens_per_s:.1f} tokens/s"
            f" | reply: {t.gen_tokens} tokens at {t.gen_tokens_per_s:.1f} tokens/s | {gen.finish_reason}")


def _parse(value: str, kind: type, name: str):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} needs a{'n integer' if kind is int else ' number'}, not {value!r}") from None


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------


def build_template(choice: ModelChoice, chat_template: str | None, header):
    from modelctl.cards.templates import resolve_template

    names = [choice.ref, choice.path.name]
    return resolve_template(chat_template, choice.manifest, header.metadata, names)


def build_sampling(engine, manifest, overrides: dict[str, Any]):
    """llama.cpp's defaults < the GGUF's general.sampling.* < the manifest's sampling < flags."""
    from modelctl.runtime.sampler import SamplingParams

    base = SamplingParams.from_metadata(engine.metadata)
    msamp = getattr(manifest, "sampling", None) or {}
    fields = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed"}
    base = base.with_overrides(**{k: v for k, v in msamp.items() if k in fields})
    return base.with_overrides(**overrides)


def count_prompt_tokens(header, template, prompt: str) -> tuple[int | None, str]:
    """The prompt's token count with the model's tokenizer, or None and why not."""
    from modelctl.runtime.tokenizer import Tokenizer

    try:
        tokenizer = Tokenizer.from_header(header)
    except ModelctlError as exc:
        return None, f"no token count: {exc.one_line()}"
    return len(tokenize_chat_prompt(tokenizer, prompt, template.special_tokens.get("bos_token"))), ""


