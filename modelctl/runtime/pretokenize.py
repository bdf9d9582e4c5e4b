"""BPE pre-tokenizers: split text into words before byte-pair merging, as llama.cpp does.

Each ``tokenizer.ggml.pre`` name selects a list of regexes (the strings llama.cpp
uses, ECMAScript flavour).  They are applied in turn: each one splits every piece
the previous one produced, and both its matches and the text between matches become
pieces.  A regex that uses Unicode classes (``\\p{L}``...) runs on the collapsed
text (see ``_unicode``), with ``\\p{X}`` rewritten to the stand-in classes; any other
regex runs on the text itself with non-ASCII whitespace replaced by ``\\x0b``.
``\\s`` is ASCII whitespace in both (``re.ASCII``), as in C++ ``std::regex``.

llama.cpp hand-codes four of these regexes (gpt2, llama3, qwen2, qwen3.5) for speed;
its hand-written loops split exactly like the regexes they implement, so we run the
regexes themselves (CPython's ``re`` is C code and fast enough).
"""

from __future__ import annotations

import re
from functools import lru_cache

from modelctl.runtime import _unicode

# --- the regexes (data) -------------------------------------------------------------

_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN35 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
NEWLINES = r"[^\n]+|[\n]+"
_DEEPSEEK_LATIN = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-"
    "\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1"
    "\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd"
    "\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d"
    "\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-"
    "\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
    "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d"
    "\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4"
    "\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e"
    "\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
    "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2"
    "\U000118a0-\U000118df\U0001e900-\U0001e943]+"
)
_GPT4O = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + _CONTRACTIONS + "?"
    r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + _CONTRACTIONS + "?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
    r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GRANITE_MULTI = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+" + _CONTRACTIONS + "?"
    r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*" + _CONTRACTIONS + "?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_JAIS2 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)"
    r"|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"
)
_EXAONE_MOE = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?"
    r"|\s*[\r\n]|\s+(?!\S)|\s+"
)

# Not a regex: llama.cpp's hand-written digit splitter (AFMoE, Tiny Aya): a run of \p{N} is cut into
# groups of three counted from its end; the text before a run stays glued to the run's first group.
DIGITS_MOD3 = "<digits mod 3>"
_TINY_AYA = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + _CONTRACTIONS + "?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS + "?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_AFMOE_SCRIPTS = ("[\u4e00-\u9fff\u3400-\u4dbf\u8c48-\ufaff\u3040-\u309f\u30a0-\u30ff\uff65-\uff9f"
                  "\u2f00-\u2fdf\u0e40-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\uaa60-\uaa7f"
                  "\ua9e0-\ua9ff\uac00-\ud7af\u1100-\u11ff]+")
_AFMOE_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
               r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

_SPARK2_5 = (
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    "\\p{N}",
)
_YOUTU = (
    "[\uac00-\ud7a3\u3131-\u318e]+|[\uff01\u2026\u201c\u201d\u2018\u2019\u2014\uff1a\uff1b\uff0c\u3001-\u303f\ufe30-\ufe4f]+|[\u3105-\u312f]+|[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
)

# regex set name -> (regexes, GPT-2 byte encoding of the words)
REGEX_SETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "default": ((r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"), True),
    "gpt2": ((GPT2,), True),
    "llama3": ((LLAMA3,), True),
    "qwen2": ((QWEN2,), True),
    "qwen35": ((QWEN35,), True),
    "starcoder": ((r"\p{N}", GPT2), True),
    "falcon": ((r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"), True),
    "deepseek-llm": ((r"[\r\n]", _DEEPSEEK_LATIN, "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", r"\s+$",
                      "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}+"), True),
    "deepseek-coder": ((r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}"), True),
    "deepseek3": ((r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
                   r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                   r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), True),
    "poro": ((" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+",), True),
    "viking": ((" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+", r"\p{N}"), True),
    "chatglm4": ((LLAMA3,), True),
    "gpt4o": ((_GPT4O,), True),
    "bailingmoe": ((r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",), True),
    "seed-coder": ((_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+",), True),
    "chameleon": ((r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )",
                   r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", GPT2), True),
    "minicpm5": ((r"\p{N}{1,3}", _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+"), True),
    "ufakzeka": ((r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",), True),
    "laguna": ((NEWLINES, QWEN2), True),
    "tekken": ((_TEKKEN,), True),
    "granite-multi": ((_GRANITE_MULTI,), True),
    "jais2": ((_JAIS2,), True),
    "exaone-moe": ((_EXAONE_MOE,), True),
    "afmoe": ((DIGITS_MOD3, _AFMOE_SCRIPTS, _AFMOE_MAIN), True),
    "tiny-aya": ((DIGITS_MOD3, _TINY_AYA), True),
    "spark2_5": (_SPARK2_5, True),
    "youtu": (_YOUTU, True),
    # SentencePiece-style BPE (Gemma 4): spaces already became U+2581, raw UTF-8, split lines only.
    "gemma4": ((NEWLINES,), False),
}

# tokenizer.ggml.pre -> (regex set, flags that differ from the BPE defaults)
# BPE defaults: clean_spaces=True, ignore_merges=False, add_bos=False, escape_whitespaces=False.
_NC = {"clean_spaces": False}
PRE_TOKENIZERS: dict[str, tuple[str, dict]] = {
    "default": ("default", {}),
    **{name: ("llama3", {"ignore_merges": True, "add_bos": True})
       for name in ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                    "lfm2", "jina-v5-nano")},
    "dbrx": ("llama3", {}),
    "smaug-bpe": ("llama3", {}),
    "deepseek-llm": ("deepseek-llm", _NC),
    "deepseek-coder": ("deepseek-coder", _NC),
    "deepseek-v3": ("deepseek3", _NC),
    "hunyuan-dense": ("deepseek3", _NC),
    "joyai-llm": ("deepseek3", _NC),
    "hy_v4": ("deepseek3", _NC),
    "falcon": ("falcon", {}),
    "mpt": ("gpt2", {}),
    "starcoder": ("starcoder", {}),
    **{name: ("gpt2", {}) for name in ("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                                       "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "olmo", "jais",
                                       "exaone4")},
    "trillion": ("gpt2", _NC),
    "granite-docling": ("gpt2", _NC),
    **{name: ("gpt2", {"add_sep": True}) for name in ("jina-v1-en", "jina-v2-code", "roberta-bpe")},
    "gemma4": ("gemma4", {"escape_whitespaces": True}),
    "granite-embed-multi-311m": ("gemma4", {"escape_whitespaces": True}),
    "sarvam-moe": ("gemma4", {"escape_whitespaces": True, "clean_spaces": False}),
    "refact": ("starcoder", {}),
    "command-r": ("starcoder", _NC),
    "smollm": ("starcoder", _NC),
    "codeshell": ("starcoder", {}),
    "exaone": ("starcoder", {}),
    "minerva-7b": ("starcoder", {}),
    "mellum2": ("starcoder", {}),
    **{name: ("qwen2", _NC) for name in ("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open")},
    "stablelm2": ("qwen2", {}),
    "megrez": ("qwen2", {}),
    "qwen35": ("qwen35", _NC),
    "poro-chat": ("poro", _NC),
    "bloom": ("poro", {}),
    "gpt3-finnish": ("poro", {}),
    "chatglm-bpe": ("chatglm4", {"bos_null": True}),
    "glm4": ("chatglm4", {"bos_null": True, "ignore_merges": True}),
    "glm5": ("chatglm4", {"bos_null": True, "ignore_merges": True}),
    "viking": ("viking", _NC),
    "smollm2": ("starcoder", _NC),
    "chameleon": ("chameleon", {"add_bos": True, "clean_spaces": False}),
    **{name: ("gpt4o", _NC) for name in ("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2")},
    **{name: ("bailingmoe", _NC) for name in ("bailingmoe", "bailingmoe2", "llada-moe")},
    "seed-coder": ("seed-coder", _NC),
    "minicpm5": ("minicpm5", {"ignore_merges": True}),
    "ufakzeka": ("ufakzeka", _NC),
    "grok-2": ("qwen2", _NC),
    "laguna": ("laguna", _NC),
    "tekken": ("tekken", {"clean_spaces": False, "ignore_merges": True, "add_bos": True}),
    "granite-embed-multi-97m": ("granite-multi", {"clean_spaces": False, "ignore_merges": True}),
    "jais-2": ("jais2", {}),
    "exaone-moe": ("exaone-moe", {}),
    "afmoe": ("afmoe", _NC),
    "tiny_aya": ("tiny-aya", _NC),
    "cohere2moe": ("tiny-aya", _NC),
    "spark2_5": ("spark2_5", _NC),
    "youtu": ("youtu", {"clean_spaces": False, "ignore_merges": True}),
}
# "smollm2" is not a llama.cpp name; drop it so unknown names fail like llama.cpp.
del PRE_TOKENIZERS["smollm2"]


# --- compiling llama.cpp regexes to Python ----------------------------------------

_PROP = re.compile(r"\\p\{(\w{1,2})\}")


def uses_categories(expr: str) -> bool:
    return any(m.group(1) in _unicode.CLASS_IN_COLLAPSED for m in _PROP.finditer(expr))


def _collapse_regex(expr: str) -> str:
    """Rewrite ``\\p{X}`` into stand-in classes, bracketed unless already inside ``[...]``."""
    out = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
        elif inside and c == "]" and expr[i - 1] != "\\":
            inside = False
        m = _PROP.match(expr, i) if c == "\\" else None
        if m and m.group(1) in _unicode.CLASS_IN_COLLAPSED:
            cls = _unicode.CLASS_IN_COLLAPSED[m.group(1)]
            out.append(cls if inside else "[" + cls + "]")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=None)
def compile_regex(expr: str) -> tuple[re.Pattern, bool]:
    """(compiled pattern, runs on collapsed text?)."""
    collapsed = uses_categories(expr)
    py = _collapse_regex(expr) if collapsed else expr
    if py.endswith("$") and not py.endswith("\\$"):
        py = py[:-1] + r"\Z"   # ECMAScript $ is end of input only
    return re.compile(py, re.ASCII), collapsed


# --- splitting ----------------------------------------------------------------------


def split(text: str, regexes: tuple[str, ...]) -> list[str]:
    """Split ``text`` into words with the regexes in turn (llama.cpp ``unicode_regex_split``)."""
    if not text:
        return []
    compiled = [(None, True) if r == DIGITS_MOD3 else compile_regex(r) for r in regexes]
    collapsed = _unicode.collapse(text) if any(c for _, c in compiled) else None
    wide = _unicode.widen(text) if not all(c for _, c in compiled) else None
    bounds = [(0, len(text))]
    for pattern, on_collapsed in compiled:
        subject = collapsed if on_collapsed else wide
        new: list[tuple[int, int]] = []
        if pattern is None:
            for start, end in bounds:
                _split_digits_mod3(collapsed, start, end, new)
            bounds = new
            continue
        for start, end in bounds:
            pos = start
            for m in pattern.finditer(subject, start, end):
                a, b = m.span()
                if a > pos:
                    new.append((pos, a))
                if b > a:
                    new.append((a, b))
                pos = b
            if pos < end:
                new.append((pos, end))
        bounds = new
    return [text[a:b] for a, b in bounds]


_DIGIT_RUN = re.compile("[0-9\xd1]+")


def _split_digits_mod3(collapsed: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    prev = start
    for m in _DIGIT_RUN.finditer(collapsed, start, end):
        a, b = m.span()
        cut = a + (b - a) % 3
        if cut == a:
            cut = a + 3
        out.append((prev, cut))
        while cut < b:
            out.append((cut, cut + 3))
            cut += 3
        prev = b
    if prev < end:
        out.append((prev, end))


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character map."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = [""] * 256
    n = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_UNICODE = _bytes_to_unicode()
UNICODE_TO_BYTE = {ch: b for b, ch in enumerate(BYTE_TO_UNICODE)}
_BYTE_ENCODE = {b: ch for b, ch in enumerate(BYTE_TO_UNICODE)}


def byte_encode(word: str) -> str:
    """UTF-8 bytes of ``word`` as GPT-2 byte characters."""
    return word.encode("utf-8", "surrogatepass").decode("latin-1").translate(_BYTE_ENCODE)
