"""Chat templates: which one a model uses, and rendering it safely.

Resolution order (first that exists wins; see ``resolve_template``):

1. ``--chat-template``: the name of a well-known format or a path to a Jinja file;
2. the manifest's ``chat_template`` (Jinja);
3. the GGUF's ``tokenizer.chat_template`` (Jinja);
4. the card's ``prompt_template`` from the manifest (``{system_message}`` / ``{prompt}``
   placeholders substituted literally, later turns built by repeating the turn pattern);
5. a well-known format detected from the vocabulary's special tokens or the model's name;
6. ChatML.

Jinja templates come from model files, so they are untrusted code.  They render in jinja2's
``ImmutableSandboxedEnvironment`` with what Hugging Face's ``apply_chat_template`` gives them
(``trim_blocks``, ``lstrip_blocks``, loop controls, ``{% generation %}``, ``raise_exception``,
``strftime_now``, a JSON ``tojson``, ``dict``, an underscore-refusing ``namespace``; ``messages``,
``add_generation_prompt``, ``tools``/``documents`` as None, the special tokens) and within bounds:
unsafe attribute access is refused, the output, every string and list built, the render time and the
memory are limited.  A template that fails to parse or render raises ``TemplateError``; it is never
silently replaced by another.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from modelctl.core.errors import TemplateError

# ---------------------------------------------------------------------------
# Limits (data)
# ---------------------------------------------------------------------------

MAX_TEMPLATE_CHARS = 1 << 20        # the template source itself
MAX_OUTPUT_CHARS = 4 << 20          # the rendered prompt
MAX_VALUE_LEN = 4 << 20             # any string or list built while rendering
MAX_RENDER_SECONDS = 3.0            # wall-clock budget of one render
MAX_RENDER_MEMORY = 1 << 30         # extra address space a render may take (Linux)
MAX_JSON_INDENT = 64
MAX_FORMAT_WIDTH = 4096             # widths in %-formatting and str.format specs

# ---------------------------------------------------------------------------
# Well-known formats (data): Jinja sources rendered by the same sandbox, how to detect them
# ---------------------------------------------------------------------------

_SYSTEM_INTO_FIRST_USER = (
    "{% if messages and messages[0].role == 'system' %}"
    "{% set sys = messages[0].content %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
)

KNOWN_FORMATS: dict[str, dict[str, Any]] = {
    "chatml": {
        "template": (
            "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        ),
        "tokens": ["<|im_start|>"],
        "names": ["chatml", "qwen", "hermes", "smollm", "causallm", "openhermes", "dolphin"],
        "stop": ["<|im_end|>"],
    },
    "llama3": {
        "template": (
            "{{ bos_token }}{% for m in messages %}"
            "{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
        ),
        "tokens": ["<|start_header_id|>"],
        "names": ["llama-3", "llama3", "llama 3"],
        "stop": ["<|eot_id|>"],
    },
    "gemma": {
        "template": (
            "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER +
            "{% for m in msgs %}{% set role = 'model' if m.role == 'assistant' else m.role %}"
            "{{ '<start_of_turn>' + role + '\\n' }}{% if loop.first and sys %}{{ sys + '\\n\\n' }}{% endif %}"
            "{{ m.content | trim + '<end_of_turn>\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
        ),
        "tokens": ["<start_of_turn>"],
        "names": ["gemma"],
        "stop": ["<end_of_turn>"],
    },
    "phi3": {
        "template": (
            "{% for m in messages %}{{ '<|' + m.role + '|>\\n' + m.content + '<|end|>\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
        ),
        "tokens": ["<|end|>", "<|assistant|>"],
        "names": ["phi-3", "phi3", "phi-4", "phi4"],
        "stop": ["<|end|>"],
    },
    "zephyr": {
        "template": (
            "{% for m in messages %}{{ '<|' + m.role + '|>\\n' + m.content + eos_token + '\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
        ),
        "tokens": [],
        "names": ["zephyr"],
        "stop": ["</s>", "<|user|>"],
    },
    "mistral": {
        "template": (
            "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER +
            "{% for m in msgs %}{% if m.role == 'user' %}"
            "{{ '[INST] ' + ((sys + '\\n\\n') if loop.first and sys else '') + m.content + ' [/INST]' }}"
            "{% else %}{{ m.content + eos_token }}{% endif %}{% endfor %}"
        ),
        "tokens": ["[INST]"],
        "names": ["mistral", "mixtral", "ministral"],
        "stop": ["</s>", "[INST]"],
    },
    "llama2": {
        "template": (
            _SYSTEM_INTO_FIRST_USER +
            "{% for m in msgs %}{% if m.role == 'user' %}"
            "{{ bos_token + '[INST] ' + (('<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n') if loop.first and sys else '')"
            " + m.content | trim + ' [/INST]' }}"
            "{% else %}{{ ' ' + m.content | trim + ' ' + eos_token }}{% endif %}{% endfor %}"
        ),
        "tokens": [],
        "names": ["llama-2", "llama2", "llama 2", "codellama"],
        "stop": ["</s>", "[INST]"],
    },
    "vicuna": {
        "template": (
            _SYSTEM_INTO_FIRST_USER +
            "{% if sys %}{{ sys + '\\n\\n' }}{% endif %}"
            "{% for m in msgs %}{% if m.role == 'user' %}{{ 'USER: ' + m.content + '\\n' }}"
            "{% else %}{{ 'ASSISTANT: ' + m.content + eos_token + '\\n' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
        ),
        "tokens": [],
        "names": ["vicuna", "wizardlm", "wizard-vicuna"],
        "stop": ["</s>", "USER:"],
    },
    "alpaca": {
        "template": (
            _SYSTEM_INTO_FIRST_USER +
            "{% if sys %}{{ sys + '\\n\\n' }}{% endif %}"
            "{% for m in msgs %}{% if m.role == 'user' %}{{ '### Instruction:\\n' + m.content + '\\n\\n' }}"
            "{% else %}{{ '### Response:\\n' + m.content + '\\n\\n' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
        ),
        "tokens": [],
        "names": ["alpaca"],
        "stop": ["### Instruction:"],
    },
}

DEFAULT_FORMAT = "chatml"
# Detection order: special tokens are strong evidence, tried before names.
_DETECT_ORDER = ["llama3", "gemma", "chatml", "phi3", "mistral", "zephyr", "llama2", "vicuna", "alpaca"]


# ---------------------------------------------------------------------------
# The result type
# ---------------------------------------------------------------------------


@dataclass
class ChatTemplate:
    """A resolved template: where it came from, its source, and how to render it."""

    origin: str                      # e.g. "--chat-template file x.jinja", "GGUF tokenizer.chat_template"
    kind: str                        # "jinja" | "placeholders"
    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)   # bos_token, eos_token, ...
    extra_stop: list[str] = field(default_factory=list)
    now: Callable[[], datetime] | None = None

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
        if self.kind == "placeholders":
            return render_placeholders(self.source, messages, eos_token=self.special_tokens.get("eos_token", ""))
        return render_jinja(self.source, messages, add_generation_prompt=add_generation_prompt,
                            special_tokens=self.special_tokens, now=self.now)

    def stop_strings(self) -> list[str]:
        """End-of-turn strings: what the template writes after an assistant reply."""
        found = list(self.extra_stop)
        for s in end_of_turn_strings(self):
            if s not in found:
                found.append(s)
        return found


# ---------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------

_ENV = None


class _RenderLimit(Exception):
    """Raised inside a render that exceeds a bound."""


def _check_len(value: Any) -> Any:
    try:
        n = len(value)
    except TypeError:
        return value
    if n > MAX_VALUE_LEN:
        raise _RenderLimit(f"a value of {n:,} items exceeds the limit of {MAX_VALUE_LEN:,}")
    return value


def _sized(x: Any) -> int:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else 0


_WIDTH = re.compile(r"%[-#0 +]*(\d+)|\{[^{}]*:[^{}\d]*(\d+)[^{}]*\}")


def _check_format_spec(fmt: str) -> None:
    if "%*" in fmt or re.search(r"%[-#0 +]*\*", fmt):
        raise _RenderLimit("'*' widths in format strings are refused")
    for m in _WIDTH.finditer(fmt):
        width = m.group(1) or m.group(2)
        if len(width) > 6 or int(width) > MAX_FORMAT_WIDTH:
            raise _RenderLimit(f"a format width of {width} exceeds the limit of {MAX_FORMAT_WIDTH}")


def _environment():
    """The one sandboxed environment, built on first use (jinja2 is imported lazily)."""
    global _ENV
    if _ENV is not None:
        return _ENV
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.compiler import CodeGenerator
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: transformers' assistant-mask marker; renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    class BoundedCodeGenerator(CodeGenerator):
        """Routes ``a ~ b`` through a size check (the sandbox does not intercept concatenation)."""

        def visit_Concat(self, node, frame):
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class RefusingUndefined(jinja2.Undefined):
        """Undefined as usual, except that a value the sandbox refused fails loudly when used at all."""

        __slots__ = ()

        def _refused(self) -> bool:
            return self._undefined_exception is SecurityError

        def __str__(self):
            if self._refused():
                self._fail_with_undefined_error()
            return super().__str__()

        def __bool__(self):
            if self._refused():
                self._fail_with_undefined_error()
            return super().__bool__()

        def __iter__(self):
            if self._refused():
                self._fail_with_undefined_error()
            return super().__iter__()

    class TemplateDict:
        """``dict(...)`` for templates, without attribute access to the type."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        """``namespace(...)`` that refuses underscore-prefixed attribute names."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, _check_len(value))

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise SecurityError(f"namespace attribute {name!r} is refused (underscore prefix)")

    class ModelTemplateEnvironment(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset(["*", "+", "**", "%"])

        def call_binop(self, context, op, left, right):
            if op == "*":
                for seq, times in ((left, right), (right, left)):
                    if _sized(seq) and isinstance(times, int) and _sized(seq) * max(times, 0) > MAX_VALUE_LEN:
                        raise _RenderLimit(f"repeating a value {times:,} times exceeds the size limit")
            elif op == "+":
                if _sized(left) + _sized(right) > MAX_VALUE_LEN:
                    raise _RenderLimit("concatenation exceeds the size limit")
            elif op == "**":
                if isinstance(right, int) and isinstance(left, int) and abs(left) > 1 and right > 4096:
                    raise _RenderLimit(f"power with exponent {right} is refused")
            elif op == "%" and isinstance(left, str):
                _check_format_spec(left)
            return _check_len(self.binop_table[op](left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
            _tick()
            return _check_len(ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs))

        def wrap_str_format(self, value):
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                _check_format_spec(str(getattr(value, "__self__", "")))
            return wrapped

        def bounded_concat(self, parts):
            total = 0
            strs = []
            for p in parts:
                s = str(p)
                total += len(s)
                if total > MAX_VALUE_LEN:
                    raise _RenderLimit("string concatenation exceeds the size limit")
                strs.append(s)
            return "".join(strs)

    env = ModelTemplateEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
        undefined=RefusingUndefined,
        autoescape=False,
    )

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        if isinstance(indent, int) and indent > MAX_JSON_INDENT:
            raise _RenderLimit(f"tojson indent {indent} exceeds {MAX_JSON_INDENT}")
        if isinstance(indent, str) and len(indent) > MAX_JSON_INDENT:
            raise _RenderLimit("tojson indent string too long")
        return _check_len(json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                                     sort_keys=sort_keys))

    def bounded_filter(fn, grows: Callable[..., int] | None = None):
        """A filter that checks the deadline, refuses a result ``grows`` says is too big, and bounds sizes."""
        def wrapped(*args, **kwargs):
            _tick()
            if grows is not None and grows(*args, **kwargs) > MAX_VALUE_LEN:
                raise _RenderLimit(f"filter {fn.__name__} would exceed the size limit")
            return _check_len(fn(*args, **kwargs))

        if hasattr(fn, "jinja_pass_arg"):        # pass_context / pass_eval_context / pass_environment
            wrapped.jinja_pass_arg = fn.jinja_pass_arg
        wrapped.__name__ = fn.__name__
        return wrapped

    def grows_center(value, width=80):
        return max(len(str(value)), int(width) if isinstance(width, int) else 0)

    def grows_indent(s, width=4, *args, **kwargs):
        w = width if isinstance(width, int) else len(str(width))
        return len(str(s)) + (str(s).count("\n") + 1) * max(w, 0)

    def grows_replace(eval_ctx, s, old, new, count=None):
        s, old, new = str(s), str(old), str(new)
        n = (len(s) + 1) if old == "" else s.count(old)
        if isinstance(count, int) and count >= 0:
            n = min(n, count)
        return len(s) + n * max(len(new) - len(old), 0)

    def grows_join(eval_ctx, value, d="", attribute=None):
        items = list(value) if isinstance(value, (list, tuple)) else []
        return sum(len(str(i)) for i in items) + len(str(d)) * len(items)

    def grows_format(value, *args, **kwargs):
        _check_format_spec(str(value))
        return 0

    filters = env.filters
    filters["tojson"] = tojson
    filters["center"] = bounded_filter(filters["center"], grows=grows_center)
    filters["indent"] = bounded_filter(filters["indent"], grows=grows_indent)
    filters["replace"] = bounded_filter(filters["replace"], grows=grows_replace)
    filters["join"] = bounded_filter(filters["join"], grows=grows_join)
    filters["format"] = bounded_filter(filters["format"], grows=grows_format)
    for name in list(filters):
        if name not in ("tojson", "center", "indent", "replace", "join", "format"):
            filters[name] = bounded_filter(filters[name])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    _ENV = env
    return env


# ---------------------------------------------------------------------------
# Time and memory bounds around one render
# ---------------------------------------------------------------------------

_deadline = [float("inf")]


def _tick() -> None:
    if time.monotonic() > _deadline[0]:
        raise _RenderLimit(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


class _Bounds:
    """Context manager: a deadline checked on every template line, and an address-space cap."""

    def __init__(self, seconds: float | None = None, memory: int | None = None):
        self.seconds = MAX_RENDER_SECONDS if seconds is None else seconds
        self.memory = MAX_RENDER_MEMORY if memory is None else memory

    def __enter__(self):
        _deadline[0] = time.monotonic() + self.seconds
        self._old_trace = sys.gettrace()
        counter = [0]

        def local(frame, event, arg):
            counter[0] += 1
            if counter[0] & 0xFF == 0:
                _tick()
            return local

        def global_trace(frame, event, arg):
            if frame.f_code.co_filename == "<template>":
                _tick()
                return local
            return None

        sys.settrace(global_trace)
        self._rlimit = None
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            used = _address_space_bytes()
            if used is not None:
                cap = used + self.memory
                if (soft == resource.RLIM_INFINITY or soft > cap) and (hard == resource.RLIM_INFINITY or hard >= cap):
                    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
                    self._rlimit = (resource, soft, hard)
        except (ImportError, ValueError, OSError):
            self._rlimit = None
        return self

    def __exit__(self, *exc):
        sys.settrace(self._old_trace)
        _deadline[0] = float("inf")
        if self._rlimit is not None:
            resource, soft, hard = self._rlimit
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return False


def _address_space_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Only JSON-like data reaches a template (no objects with methods)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return f"<{type(value).__name__}>"


def compile_jinja(source: str):
    """Parse a Jinja template in the sandbox; TemplateError when it does not parse.  Cached by source."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"chat template is {len(source):,} characters, over the limit of {MAX_TEMPLATE_CHARS:,}",
                            hint="check the template's source")
    return _compile_cached(source)


@lru_cache(maxsize=32)
def _compile_cached(source: str):
    import jinja2

    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"chat template does not parse: {exc.message} (line {exc.lineno})",
                            hint="fix the template or choose another with --chat-template") from None
    except (RecursionError, MemoryError):
        raise TemplateError("chat template is too deeply nested to parse", hint="choose another with --chat-template") from None


def render_jinja(source: str, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                 special_tokens: Mapping[str, str] | None = None, now: Callable[[], datetime] | None = None,
                 **extra: Any) -> str:
    """Render like transformers' ``apply_chat_template(..., tokenize=False)``, within the sandbox's bounds."""
    import jinja2

    template = compile_jinja(source)
    context: dict[str, Any] = {k: v for k, v in (special_tokens or {}).items() if v is not None}
    context.update(_plain(extra))
    context.update(messages=_plain(list(messages)), tools=None, documents=None,
                   add_generation_prompt=bool(add_generation_prompt))
    if now is not None:
        context["strftime_now"] = lambda fmt: now().strftime(fmt)
    pieces: list[str] = []
    total = 0
    try:
        with _Bounds():
            for piece in template.generate(**context):
                total += len(piece)
                if total > MAX_OUTPUT_CHARS:
                    raise _RenderLimit(f"the rendered prompt exceeds {MAX_OUTPUT_CHARS:,} characters")
                pieces.append(piece)
    except _RenderLimit as exc:
        raise TemplateError(f"chat template refused: {exc}", hint="the template is hostile or broken; choose another with --chat-template") from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"chat template refused: unsafe operation: {exc}",
                            hint="the template is hostile; choose another with --chat-template") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"chat template failed to render: {exc.message or type(exc).__name__}",
                            hint="fix the template or choose another with --chat-template") from None
    except RecursionError:
        raise TemplateError("chat template refused: recursion too deep",
                            hint="the template is hostile or broken; choose another with --chat-template") from None
    except MemoryError:
        raise TemplateError("chat template refused: it needs more memory than allowed",
                            hint="the template is hostile or broken; choose another with --chat-template") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError) as exc:
        raise TemplateError(f"chat template failed to render: {type(exc).__name__}: {exc}",
                            hint="fix the template or choose another with --chat-template") from None
    return "".join(pieces)


def render_placeholders(template: str, messages: Sequence[Mapping[str, Any]], *, eos_token: str = "") -> str:
    """A card's prompt template with ``{system_message}`` / ``{prompt}``, multi-turn by repeating the turn.

    The template gives one turn.  Its parts (see ``split_placeholders``): the preamble (with the system
    message), the user prefix, ``{prompt}``, and the tail that opens the assistant's reply.  Earlier turns
    repeat ``prefix + user + tail + reply + closer``, where the closer is what ends the user's text in the
    tail (``</s>\\n``, ``<|im_end|>\\n``...) or else the EOS token.  Substitution is literal: braces in
    messages are kept as they are.
    """
    parts = split_placeholders(template)
    system = ""
    msgs = list(messages)
    if msgs and msgs[0].get("role") == "system":
        system = str(msgs[0].get("content") or "")
        msgs = msgs[1:]
    closer = parts["closer"] or eos_token or "\n"
    preamble = parts["preamble"]
    if "{system_message}" in preamble:
        preamble = preamble.replace("{system_message}", system)
        system = ""
    out = [preamble]
    pending_user: str | None = None
    for m in msgs:
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "user":
            if system:  # no {system_message} in the template: the system text leads the first user message
                content = f"{system}\n\n{content}"
                system = ""
            if pending_user is not None:
                out.append(parts["prefix"] + pending_user + parts["tail"] + closer)
            pending_user = content
        elif role == "assistant":
            out.append(parts["prefix"] + (pending_user or "") + parts["tail"] + content + closer)
            pending_user = None
    if pending_user is not None:
        out.append(parts["prefix"] + pending_user + parts["tail"])
    return "".join(out)


def split_placeholders(template: str) -> dict[str, str]:
    """preamble / prefix / tail / closer of a placeholder template (see ``render_placeholders``)."""
    if "{prompt}" not in template:
        raise TemplateError("prompt template has no {prompt} placeholder",
                            hint="give a template with {prompt}, or a Jinja one with --chat-template")
    head, tail = template.split("{prompt}", 1)
    if "{prompt}" in tail:
        raise TemplateError("prompt template has {prompt} more than once", hint="give a template with one {prompt}")
    line_start = head.rfind("\n") + 1
    if head[line_start:]:                      # {prompt} mid-line: "USER: {prompt}"
        prefix_start = line_start
    else:                                      # {prompt} at a line start: the line before is the prefix
        prev = head.rstrip("\n").rfind("\n") + 1
        prefix_start = prev
    if "{system_message}" in head[prefix_start:]:
        prefix_start = head.index("{system_message}") + len("{system_message}")
        nl = head.find("\n", prefix_start)
        prefix_start = nl + 1 if nl >= 0 else prefix_start
    nl = tail.find("\n")
    closer = tail[: nl + 1] if nl >= 0 else ""
    if not closer.strip():
        closer = ""
    return {"preamble": head[:prefix_start], "prefix": head[prefix_start:], "tail": tail, "closer": closer}


# ---------------------------------------------------------------------------
# End-of-turn strings
# ---------------------------------------------------------------------------

_SPECIAL = re.compile(r"<[|/]?[A-Za-z_][^<>\s]{0,40}>|\[/?[A-Z_]{2,16}\]")
_PROBE = "MODELCTLPROBE7F3A"


def end_of_turn_strings(template: ChatTemplate) -> list[str]:
    """What the template writes right after an assistant reply, up to the next user turn.

    Renders ``[user, assistant=PROBE, user=PROBE2]`` and takes the special-token-like markers
    (``<|im_end|>``, ``<end_of_turn>``, ``</s>``, ``[INST]``...) between the two probes, or else the
    first non-empty line there (``USER:``, ``### Instruction:``).
    """
    if template.kind == "placeholders":
        parts = split_placeholders(template.source)
        found = [s for s in (parts["closer"].strip(), parts["prefix"].strip()) if s and len(s) <= 40]
        return list(dict.fromkeys(found))
    probe_user = _PROBE + "U"
    try:
        text = template.render(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE},
             {"role": "user", "content": probe_user}], add_generation_prompt=False)
    except TemplateError:
        return []
    start = text.find(_PROBE)
    end = text.find(probe_user, start + len(_PROBE)) if start >= 0 else -1
    if start < 0 or end < 0:
        return []
    between = text[start + len(_PROBE): end]
    markers = []
    bos = template.special_tokens.get("bos_token")
    for m in _SPECIAL.finditer(between):
        tok = m.group(0)
        if tok != bos and tok not in markers:
            markers.append(tok)
    if markers:
        return markers[:1] + [t for t in markers[1:] if t in ("</s>",)]
    for line in between.splitlines():
        if line.strip():
            return [line.strip()[:40]]
    return []


# ---------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------


def special_tokens_from_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """bos_token / eos_token / unk_token / pad_token texts from the GGUF vocabulary."""
    if not metadata:
        return {}
    tokens = metadata.get("tokenizer.ggml.tokens")
    out: dict[str, str] = {}
    if not isinstance(tokens, (list, tuple)):
        return out
    for name in ("bos", "eos", "unknown", "padding"):
        idx = metadata.get(f"tokenizer.ggml.{name}_token_id")
        if isinstance(idx, int) and 0 <= idx < len(tokens):
            key = {"unknown": "unk", "padding": "pad"}.get(name, name)
            out[f"{key}_token"] = str(tokens[idx])
    return out


def detect_format(metadata: Mapping[str, Any] | None, names: Iterable[str] = ()) -> str | None:
    """A well-known format from the vocabulary's special tokens, else from the model's names."""
    vocab: set[str] = set()
    if metadata:
        toks = metadata.get("tokenizer.ggml.tokens")
        if isinstance(toks, (list, tuple)):
            wanted = {t for f in KNOWN_FORMATS.values() for t in f["tokens"]}
            vocab = wanted.intersection(toks)
    for fmt in _DETECT_ORDER:
        need = KNOWN_FORMATS[fmt]["tokens"]
        if need and all(t in vocab for t in need):
            return fmt
    hay = " ".join(n.lower() for n in names if n)
    if metadata:
        hay += " " + " ".join(str(metadata.get(k, "")).lower() for k in ("general.name", "general.basename",
                                                                           "general.finetune"))
    for fmt in _DETECT_ORDER:
        if any(n in hay for n in KNOWN_FORMATS[fmt]["names"]):
            return fmt
    return None


def _from_choice(choice: str, special: dict[str, str]) -> ChatTemplate:
    if choice in KNOWN_FORMATS:
        fmt = KNOWN_FORMATS[choice]
        return ChatTemplate(f"--chat-template {choice} (built-in format)", "jinja", fmt["template"], special,
                            list(fmt["stop"]))
    path = Path(choice).expanduser()
    if not path.is_file():
        raise TemplateError(f"--chat-template {choice!r} is neither a known format nor a file",
                            hint=f"known formats: {', '.join(KNOWN_FORMATS)}; or give a path to a Jinja file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"cannot read the chat template: {exc.strerror}", where=str(path)) from None
    if len(data) > MAX_TEMPLATE_CHARS:
        raise TemplateError("chat template file is too large", where=str(path), hint="templates are at most 1 MiB")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TemplateError("chat template file is not UTF-8 text", where=str(path)) from None
    kind = "placeholders" if ("{prompt}" in source and "{{" not in source and "{%" not in source) else "jinja"
    return ChatTemplate(f"--chat-template file {path}", kind, source, special)


def resolve_template(choice: str | None = None, manifest: Any = None,
                     metadata: Mapping[str, Any] | None = None, names: Iterable[str] = ()) -> ChatTemplate:
    """The template to use, in the documented order.  Never falls back past a template that exists."""
    special = special_tokens_from_metadata(metadata)
    if choice:
        tpl = _from_choice(choice, special)
    elif manifest is not None and getattr(manifest, "chat_template", None):
        tpl = ChatTemplate(f"manifest {getattr(manifest, 'name', '?')} chat_template", "jinja",
                           str(manifest.chat_template), special)
    elif metadata and isinstance(metadata.get("tokenizer.chat_template"), str) and metadata["tokenizer.chat_template"].strip():
        tpl = ChatTemplate("GGUF tokenizer.chat_template", "jinja", metadata["tokenizer.chat_template"], special)
    elif manifest is not None and _manifest_prompt_template(manifest):
        text, style = _manifest_prompt_template(manifest)
        tpl = ChatTemplate(f"manifest {getattr(manifest, 'name', '?')} prompt_template (card)",
                           "jinja" if style == "jinja" else "placeholders", text, special)
    else:
        all_names = list(names) + ([getattr(manifest, "name", "")] if manifest is not None else [])
        fmt = detect_format(metadata, all_names)
        if fmt:
            tpl = ChatTemplate(f"detected format {fmt}", "jinja", KNOWN_FORMATS[fmt]["template"], special,
                               list(KNOWN_FORMATS[fmt]["stop"]))
        else:
            tpl = ChatTemplate(f"default format {DEFAULT_FORMAT} (nothing else found)", "jinja",
                               KNOWN_FORMATS[DEFAULT_FORMAT]["template"], special,
                               list(KNOWN_FORMATS[DEFAULT_FORMAT]["stop"]))
    if tpl.kind == "jinja":
        compile_jinja(tpl.source)  # fail loudly now, not at the first message
    else:
        split_placeholders(tpl.source)
    if manifest is not None:
        for s in getattr(manifest, "stop", None) or []:
            if isinstance(s, str) and s and s not in tpl.extra_stop:
                tpl.extra_stop.append(s)
    return tpl


def _manifest_prompt_template(manifest: Any) -> tuple[str, str] | None:
    pt = getattr(manifest, "prompt_template", None)
    if not pt:
        return None
    if isinstance(pt, str):
        return pt, "placeholders"
    if isinstance(pt, Mapping):
        text = pt.get("text")
        return (text, str(pt.get("style") or "placeholders")) if isinstance(text, str) and text else None
    text = getattr(pt, "text", None)
    return (text, str(getattr(pt, "style", "placeholders"))) if isinstance(text, str) and text else None
