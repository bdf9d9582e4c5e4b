"""What model cards say outside their file tables: HTML headings, templates introduced by prose, files named
only in example commands, sampling advice in prose, labelled values and the model's name.

The helpers of ``modelctl.cards.card`` for the shapes real cards take (see tests/data/cards): each reads text and
returns data, and never invents a file name the card does not write.
"""

from __future__ import annotations

import re

from modelctl.gguf.names import SHARD_RE

HTML_HEADING_RE = re.compile(r"^\s*<h([1-6])\b[^>]*>(.*?)</h\1>\s*$", re.I)
# A heading or a prose line that introduces a template block: "Prompt string:", "the template is as follows",
# "Chat format", "Prompt template: ChatML".
TEMPLATE_INTRO_RE = re.compile(
    r"(prompt[\s_-]*(?:template|format|string)|chat[\s_-]*(?:format|template)|template is as follows)", re.I)
# What a template looks like: a placeholder or a chat-format control token.
TEMPLATE_MARK_RE = re.compile(r"\{\{|\{%|\{(?:system_message|system_prompt|prompt|user|input|query)\}|<\||<s>|"
                              r"\[INST\]|<start_of_turn>|<\uff5c|### (?:Instruction|Response)|USER:|ASSISTANT:")
GGUF_NAME_RE = re.compile(r"[\w.+-]+\.gguf(?![\w.-])")
INLINE_CODE_RE = re.compile(r"`([^`\n]{1,400})`")
PROSE_SAMPLING_RE = re.compile(
    r"\b(temperature|top[\s_-]?p|top[\s_-]?k|min[\s_-]?p|repeat[\s_-]?penalty)\b[^:=\n]{0,25}?[:=]\s*\**\s*"
    r"([0-9]+(?:\.[0-9]+)?)", re.I)
PROSE_KEYS = {"temperature": "temperature", "topp": "top_p", "topk": "top_k", "minp": "min_p",
              "repeatpenalty": "repeat_penalty"}


def html_headings(lines: list[str]) -> list[str]:
    """``<h2 align="center">Prompt template</h2>`` read as ``## Prompt template``."""
    out = []
    for line in lines:
        m = HTML_HEADING_RE.match(line) if len(line) <= 4096 else None
        out.append("#" * int(m.group(1)) + " " + re.sub(r"<[^>]+>", "", m.group(2)).strip() if m else line)
    return out


def unescape_newlines(text: str) -> tuple[str, bool]:
    """A template written on one line with literal ``\\n`` escapes standing for newlines, as newlines."""
    if "\n" not in text.strip("\n") and "\\n" in text:
        return text.replace("\\n", "\n"), True
    return text, False


def introduced_template(lines: list[str], fences: list[tuple[int, int, str]]) -> str | None:
    """The first fenced block introduced (within two lines) by template words, when it looks like a template."""
    for s, e, _info in fences:
        intro = [ln for ln in lines[max(0, s - 3):s] if ln.strip()][-2:]
        block = "\n".join(lines[s + 1:e])
        if any(TEMPLATE_INTRO_RE.search(ln) for ln in intro if len(ln) <= 4096) and TEMPLATE_MARK_RE.search(block):
            return block
    return None


def _code_texts(lines: list[str], fences) -> list[str]:
    """The card's code: fenced blocks, then inline code spans of the prose."""
    inside = {k for s, e, _ in fences for k in range(s, e + 1)}
    blocks = ["\n".join(lines[s + 1:e]) for s, e, _ in fences]
    spans = [m.group(1) for i, ln in enumerate(lines) if i not in inside and len(ln) <= 4096
             for m in INLINE_CODE_RE.finditer(ln)]
    return blocks + spans


def named_files(lines: list[str], fences) -> list[str]:
    """The .gguf file names the card's commands and code name, in order; a shard stands for its set and the
    merged name of a shard set (what llama-gguf-split --merge writes) is not a repo file."""
    names: list[str] = []
    for text in _code_texts(lines, fences):
        for m in GGUF_NAME_RE.finditer(text):
            name = m.group(0)
            if name not in names and "*" not in name:
                names.append(name)
    sets = {m["stem"]: m for n in names if (m := SHARD_RE.match(n))}
    out = []
    for n in names:
        m = SHARD_RE.match(n)
        if m:
            first = f"{m['stem']}-00001-of-{m['count']}.gguf"
            if first not in out:
                out.append(first)
        elif n.removesuffix(".gguf") not in sets:
            out.append(n)
    return out


def prose_sampling(lines: list[str], fences) -> dict[str, float | int]:
    """Sampling advice written in prose or bullets (``- Temperature: 0.7``, ``Top-p: 0.8``), first value per key."""
    inside = {k for s, e, _ in fences for k in range(s, e + 1)}
    found: dict[str, float | int] = {}
    for i, line in enumerate(lines):
        if i in inside or len(line) > 4096:
            continue
        for key, value in PROSE_SAMPLING_RE.findall(line):
            field = PROSE_KEYS[re.sub(r"[\s_-]", "", key.lower())]
            if field not in found:
                found[field] = int(float(value)) if field == "top_k" else float(value)
    return found


def labelled_value(lines: list[str], label: str, link_re, strip_markup) -> tuple[str | None, str | None]:
    """('text', 'link target') of ``- Label: [text](target)``, ``**Label:** [text](target)<br>`` or
    ``**Label**: text``."""
    pat = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*|__)?" + re.escape(label) + r"\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)?\s*:)\s*(.+)$",
                     re.I)
    for line in lines:
        m = pat.match(line) if len(line) <= 4096 else None
        if m:
            value = re.sub(r"<br\s*/?>\s*$", "", m.group(1).strip(), flags=re.I)
            link = link_re.search(value)
            return strip_markup(value) or None, (link.group(2) if link else None)
    return None, None


def _norm(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", re.sub(r"[-_.\s]*gguf$", "", (name or "").lower()))


def model_name(headings: list[str], known: list[str | None]) -> str | None:
    """The first level-1 heading that names the model (the repo's or base model's name); an ``owner/name``
    heading is read as ``name``; ``- GGUF`` suffixes dropped."""
    wanted = {_norm(k.rsplit("/", 1)[-1]) for k in known if k}
    for h in headings:
        name = re.sub(r"[\s_-]*[-–—]?\s*GGUF\s*$", "", h, flags=re.I).strip()
        if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            name = name.split("/", 1)[1]
        if name and _norm(name) in wanted:
            return name
    return None
