"""Chat templates: which one a model uses, and rendering it safely.

Resolution order (first that exists wins; see ``resolve_template``):

1. ``--chat-template``: the name of a well-known format or a path to a Jinja file;
2. the manifest's ``chat_template`` (Jinja);
3. the GGUF's ``tokenizer.chat_template`` (Jinja);
4. the card's ``prompt_template`` from the manifest (``{system_message}`` / ``{prompt}``
   placeholders substituted literally, later turns built by repeating the turn pattern);
5. a well-known format detected from the vocabulary's special tokens or the model's name;
6. ChatML.

Jinja templates come from model files, so they are untrusted code: they render in the sandbox of
``modelctl.cards.sandbox``.  A template that fails to parse or render raises ``TemplateError``; it is
never silently replaced by another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from modelctl.core.errors import TemplateError

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
        from modelctl.cards.sandbox import render_jinja

        return render_jinja(self.source, messages, add_generation_prompt=add_generation_prompt,
                            special_tokens=self.special_tokens, now=self.now)

    def stop_strings(self) -> list[str]:
        """End-of-turn strings: what the template writes after an assistant reply."""
        found = list(self.extra_stop)
        for s in end_of_turn_strings(self):
            if s not in found:
                found.append(s)
        return found


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
    from modelctl.cards.sandbox import MAX_TEMPLATE_CHARS

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
        from modelctl.cards.sandbox import compile_jinja

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
