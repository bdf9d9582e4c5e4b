"""The sandbox that renders chat templates from model files: they are untrusted code.

jinja2's ``ImmutableSandboxedEnvironment`` with what Hugging Face's ``apply_chat_template`` gives a template
(``trim_blocks``, ``lstrip_blocks``, loop controls, ``{% generation %}``, ``raise_exception``, ``strftime_now``,
a JSON ``tojson``, ``dict``, an underscore-refusing ``namespace``), within bounds: unsafe attribute access is
refused; the output, every string and list built, the render time and the memory are limited.  A template
that fails to parse or render raises ``TemplateError``.

Imported only when a Jinja template is compiled or rendered (it imports jinja2).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

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


# ---------------------------------------------------------------------------
# The environment's pieces
# ---------------------------------------------------------------------------


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


# How much a filter's result can grow, computed from its arguments before it runs.

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


GROWS = {"center": grows_center, "indent": grows_indent, "replace": grows_replace, "join": grows_join,
         "format": grows_format}


@lru_cache(maxsize=1)
def environment() -> ModelTemplateEnvironment:
    """The one sandboxed environment, built on first use."""
    env = ModelTemplateEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
        undefined=RefusingUndefined,
        autoescape=False,
    )
    filters = env.filters
    for name in list(filters):
        filters[name] = bounded_filter(filters[name], grows=GROWS.get(name))
    filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
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
    try:
        return environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"chat template does not parse: {exc.message} (line {exc.lineno})",
                            hint="fix the template or choose another with --chat-template") from None
    except (RecursionError, MemoryError):
        raise TemplateError("chat template is too deeply nested to parse", hint="choose another with --chat-template") from None


def render_jinja(source: str, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                 special_tokens: Mapping[str, str] | None = None, now: Callable[[], datetime] | None = None,
                 **extra: Any) -> str:
    """Render like transformers' ``apply_chat_template(..., tokenize=False)``, within the sandbox's bounds."""
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
