"""What model cards say outside their file tables: headings (HTML ones too), templates introduced by prose or
given as an example command's --in-prefix/--in-suffix, files named only in example commands, sampling hints
(example command flags, prose, settings blocks), end-of-turn markers, labelled values and the model's name.

The helpers of ``modelctl.cards.card`` for the shapes real cards take (see tests/data/cards): each reads text and
returns data, and never invents a file name the card does not write.
"""

from __future__ import annotations

import re

from modelctl.cards.card_table import LINK_RE, MAX_PARSED_LINE, fence_body, fenced_lines, strip_markup
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
# A fenced block of settings only ("Temperature: 0.7" per line), e.g. under "Recommended Sampling Parameters".
SETTING_LINE_RE = re.compile(r"^\s*[A-Za-z][\w\s-]{0,40}[:=]\s*[0-9]+(?:\.[0-9]+)?\s*$")
# llama.cpp-style runners whose example command's flags are the card's sampling hints (llamafile-0.7.3 too).
RUNNER_RE = re.compile(r"(^|\s|/)(main|llama-cli|llama-server|server|llamafile(?:-[0-9.]+)?)\s")
# llama.cpp example command flags -> sampling fields.
FLAG_RE = re.compile(r"--(temp|temperature|top[-_]k|top[-_]p|min[-_]p|repeat[-_]penalty)[=\s]+([0-9]+(?:\.[0-9]+)?)")
FLAG_KEYS = {"temp": "temperature", "temperature": "temperature", "top-k": "top_k", "top-p": "top_p", "min-p": "min_p",
             "repeat-penalty": "repeat_penalty"}
# An example command giving the chat turn around the user's input: --in-prefix "..." --in-suffix "...".
IN_AFFIX_RE = re.compile(r"--in-(prefix|suffix)\s+(\"|')(.*?)\2")
# End-of-turn markers: a template that uses one is stopped by it.  Data.
STOP_MARKERS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|END_OF_TURN_TOKEN|>",
                "<step>", "<\uff5cend\u2581of\u2581sentence\uff5c>")


def stop_strings(template: str | None) -> list[str]:
    return [m for m in STOP_MARKERS if m in (template or "")]


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
    for fence in fences:
        s = fence[0]
        intro = [ln for ln in lines[max(0, s - 3):s] if ln.strip()][-2:]
        block = fence_body(lines, fence)
        if any(TEMPLATE_INTRO_RE.search(ln) for ln in intro if len(ln) <= MAX_PARSED_LINE) \
                and TEMPLATE_MARK_RE.search(block):
            return block
    return None


def command_template(lines: list[str], fences) -> str | None:
    """The chat turn an example command gives as ``--in-prefix "<|im_start|>user\\n" --in-suffix "..."``: the
    user's input goes between them, so the template is prefix + {prompt} + suffix."""
    for fence in fences:
        affixes = dict((kind, text) for kind, _q, text in IN_AFFIX_RE.findall(fence_body(lines, fence)))
        if "prefix" in affixes and "suffix" in affixes:
            return affixes["prefix"] + "{prompt}" + affixes["suffix"]
    return None


def _code_texts(lines: list[str], fences) -> list[str]:
    """The card's code: fenced blocks, then inline code spans of the prose."""
    inside = fenced_lines(fences)
    blocks = [fence_body(lines, fence) for fence in fences]
    spans = [m.group(1) for i, ln in enumerate(lines) if i not in inside and len(ln) <= MAX_PARSED_LINE
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


def command_sampling(lines: list[str], fences) -> dict[str, float | int]:
    """Sampling flags of the card's first llama.cpp example command that has some (--temp 0.7 --repeat_penalty 1.1)."""
    for fence in fences:
        block = fence_body(lines, fence)
        if not RUNNER_RE.search(block):
            continue
        found = {}
        for flag, value in FLAG_RE.findall(block):
            key = FLAG_KEYS[flag.replace("_", "-")]
            found[key] = int(float(value)) if key == "top_k" else float(value)
        if found:
            return found
    return {}


def _settings_blocks(lines: list[str], fences) -> list[str]:
    """The lines of fenced blocks that hold nothing but ``Key: number`` settings."""
    out = []
    for fence in fences:
        body = [ln for ln in fence_body(lines, fence).split("\n") if ln.strip()]
        if body and all(len(ln) <= MAX_PARSED_LINE and SETTING_LINE_RE.match(ln) for ln in body):
            out += body
    return out


def prose_sampling(lines: list[str], fences) -> dict[str, float | int]:
    """Sampling advice written in prose or bullets (``- Temperature: 0.7``, ``Top-p: 0.8``) or in a fenced block of
    settings, first value per key."""
    inside = fenced_lines(fences)
    prose = [ln for i, ln in enumerate(lines) if i not in inside and len(ln) <= MAX_PARSED_LINE]
    found: dict[str, float | int] = {}
    for line in prose + _settings_blocks(lines, fences):
        for key, value in PROSE_SAMPLING_RE.findall(line):
            field = PROSE_KEYS[re.sub(r"[\s_-]", "", key.lower())]
            if field not in found:
                found[field] = int(float(value)) if field == "top_k" else float(value)
    return found


def labelled_value(lines: list[str], label: str) -> tuple[str | None, str | None]:
    """('text', 'link target') of ``- Label: [text](target)``, ``**Label:** [text](target)<br>`` or
    ``**Label**: text``."""
    pat = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*|__)?" + re.escape(label) + r"\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)?\s*:)\s*(.+)$",
                     re.I)
    for line in lines:
        m = pat.match(line) if len(line) <= MAX_PARSED_LINE else None
        if m:
            value = re.sub(r"<br\s*/?>\s*$", "", m.group(1).strip(), flags=re.I)
            link = LINK_RE.search(value)
            return strip_markup(value) or None, (link.group(2) if link else None)
    return None, None


def _norm(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", re.sub(r"[-_.\s]*gguf$", "", (name or "").lower()))


def headings(lines: list[str], fences, max_level: int = 1) -> list[str]:
    """The text of each heading of level 1 to ``max_level``, markup stripped; a '# comment' line of a code block
    is no heading."""
    inside = fenced_lines(fences)
    pat = re.compile(r"^#{1,%d}\s+(.+?)\s*#*\s*$" % max_level)
    return [strip_markup(m.group(1)) for i, ln in enumerate(lines)
            if i not in inside and ln.startswith("#") and len(ln) <= MAX_PARSED_LINE and (m := pat.match(ln))]


def quantizations_of(heads: list[str]) -> str | None:
    """'Llamacpp imatrix Quantizations of X' or '... of X by Y' -> 'X'."""
    for h in heads:
        m = re.match(r"^.*\bquanti[sz]ations? of\s+(\S.*?)(?:\s+by\s+\S+)?$", h, re.I)
        if m:
            return m.group(1) or None
    return None


def without_gguf(name: str) -> str:
    """'Mistral 7B - GGUF' -> 'Mistral 7B', 'astramix_l2_7b_gguf' -> 'astramix_l2_7b'."""
    return re.sub(r"[\s_-]*[-–—]?\s*GGUF\s*$", "", name, flags=re.I).strip()


def model_name(heads: list[str], known: list[str | None]) -> str | None:
    """The first heading that names the model (the repo's or base model's name); an ``owner/name`` heading is
    read as ``name``, a ``Name: tagline`` heading as ``Name``; ``- GGUF`` suffixes dropped."""
    wanted = {_norm(k.rsplit("/", 1)[-1]) for k in known if k}
    for h in heads:
        for name in (without_gguf(h), without_gguf(h.split(": ", 1)[0])):
            if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
                name = name.split("/", 1)[1]
            if name and _norm(name) in wanted:
                return name
    return None
