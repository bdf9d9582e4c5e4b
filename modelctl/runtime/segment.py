"""How a word becomes pieces, as llama.cpp's tokenizers do it: adjacent symbols merged by priority (SentencePiece
by score, byte-level BPE by rank) and BERT's WordPiece pre-split into words."""

from __future__ import annotations

import heapq
import unicodedata
from typing import Any, Callable

from modelctl.runtime import _unicode

def merge_pairs(syms: list[str], priority: Callable[[str, str], Any]) -> list[str]:
    """Merge adjacent symbols until no pair has a priority, the best (lowest) first, leftmost on ties: the
    loop of llama.cpp's SPM tokenizer (priority: minus the merged token's score) and of its BPE tokenizer
    (priority: the merge's rank).  Returns the final symbols in order."""
    n = len(syms)
    if n < 2:
        return syms
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prev = list(range(-1, n - 1))
    heap: list = []

    def push(left: int, right: int) -> None:
        if left >= 0 and right >= 0:
            key = priority(syms[left], syms[right])
            if key is not None:
                heapq.heappush(heap, (key, left, right, syms[left] + syms[right]))

    for i in range(n - 1):
        push(i, i + 1)
    while heap:
        _, left, right, joined = heapq.heappop(heap)
        if not syms[left] or not syms[right] or syms[left] + syms[right] != joined:
            continue  # a stale pair: one side has merged since
        syms[left], syms[right] = joined, ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        push(prev[left], left)
        push(left, nxt[left])
    out = []
    i = 0
    while i != -1:
        out.append(syms[i])
        i = nxt[i]
    return out


def is_chinese_char(cp: int) -> bool:
    # the ranges llama.cpp (after Hugging Face's BERT) treats as CJK ideographs
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def wpm_words(text: str, lowercase: bool, strip_accents: bool) -> list[str]:
    """BERT's basic tokenizer as llama.cpp does it: accents off (first code point of the NFD form),
    lowercase, split on whitespace, punctuation, ASCII symbols and CJK ideographs (each its own word)."""
    words = [""]
    for ch in text:
        cp = ord(ch)
        if strip_accents and cp >= 0x80:
            d = unicodedata.normalize("NFD", ch)
            if d != ch:
                ch = d[0]
                cp = ord(ch)
        if cp in _unicode.WHITESPACE:
            if words[-1]:
                words.append("")
            continue
        flag = _unicode.category_flag(cp)
        if cp == 0 or cp == 0xFFFD or flag == _unicode.CONTROL:
            continue
        if strip_accents and flag == _unicode.ACCENT_MARK:
            continue
        if lowercase:
            low = ch.lower()
            ch = low[0] if low else ch
        if flag == _unicode.PUNCTUATION or (cp < 0x7F and flag == _unicode.SYMBOL) or is_chinese_char(cp):
            if words[-1]:
                words.append("")
            words[-1] = ch
            words.append("")
        else:
            words[-1] += ch
    if not words[-1]:
        words.pop()
    return words
