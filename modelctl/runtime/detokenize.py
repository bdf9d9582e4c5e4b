"""From token ids back to text, as llama.cpp's ``llama_detokenize`` and ``llama_token_to_piece``: GPT-2's
byte characters decoded, spaces cleaned up, and a stream decoder that holds back incomplete UTF-8; plus
how ``modelctl tokenize`` shows pieces."""

from __future__ import annotations

import re

from modelctl.runtime import pretokenize

def gpt2_decode(text: str) -> bytes:
    """GPT-2 byte characters back to bytes (llama.cpp's llama_decode_text)."""
    table = pretokenize.UNICODE_TO_BYTE
    out = bytearray()
    for ch in text:
        b = table.get(ch)
        if b is not None:
            out.append(b)
        else:
            utf8 = ch.encode("utf-8", "surrogateescape")
            out += b"[UNK_BYTE_0x" + utf8.hex().encode() + text.encode("utf-8", "surrogateescape") + b"]"
    return bytes(out)


def clean_spaces(text: bytes) -> bytes:
    """llama.cpp's clean_up_tokenization_spaces, three in-place passes over the bytes:
    ' ?' ' !' ' .' ' ,' lose the space; a lone ' ' ' between spaces loses both spaces;
    " 's", " 'm", " 're", " 've" lose the space."""
    t = bytearray(text)
    total = len(t)
    # pass 1
    n, total = total, 1
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == 0x20 and x in b"?!.,":
            total -= 1
        t[total] = x
        total += 1
    # pass 2
    n, total = total, 1
    i = 1
    while i < n:
        x = t[i]
        if x == 0x27 and i + 1 < n and t[i - 1] == 0x20 and t[i + 1] == 0x20:
            total -= 1
            i += 1
            t[i] = 0
        t[total] = x
        total += 1
        i += 1
    # pass 3
    n, total = total, 1
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == 0x20 and x == 0x27 and i + 1 < n:
            x1 = t[i + 1]
            if x1 in b"sm":
                total -= 1
            elif i + 2 < n and t[i + 2] == 0x65 and x1 in b"rv":
                total -= 1
        t[total] = x
        total += 1
    return bytes(t[:total])


class StreamDecoder:
    """Turns token ids into text as they arrive, holding back the bytes of a character split
    across tokens until it is whole (never a U+FFFD for an incomplete character)."""

    def __init__(self, tokenizer, special: bool = False):
        self.tokenizer = tokenizer
        self.special = special
        self._pending = b""

    def feed(self, tid: int) -> str:
        data = self._pending + self.tokenizer.token_piece(tid, self.special)
        cut = _complete_prefix(data)
        self._pending = data[cut:]
        return data[:cut].decode("utf-8", "replace")

    def flush(self) -> str:
        """Whatever is held back (an incomplete character at the very end shows as U+FFFD)."""
        data, self._pending = self._pending, b""
        return data.decode("utf-8", "replace")


def _complete_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, still incomplete UTF-8 sequence."""
    n = len(data)
    # look back at most 3 bytes for the lead byte of the last sequence
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:
            return n                      # ASCII: everything is complete
        if b >= 0xC0:                     # a lead byte
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4 if b < 0xF8 else 1
            return n - back if back < need else n
    return n                              # only continuation bytes: invalid, let it through


def piece_text(piece: bytes) -> str:
    """A piece for display: UTF-8, with bytes that are not whole characters as ``\\xNN``."""
    return piece.decode("utf-8", "backslashreplace")


def piece_repr(piece: bytes) -> str:
    """A piece for a terminal: Python-style quoted, escapes for control characters and ``\\xNN`` for
    bytes that are not whole UTF-8 characters."""
    quoted = repr(piece.decode("utf-8", "surrogateescape"))
    return re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", quoted)


def tokenize_report(tok, text: str, add_special: bool = False, parse_special: bool = False) -> dict:
    """``{"ids": [...], "pieces": [...]}`` for ``text`` (pieces as ``llama_token_to_piece(special=True)``)."""
    ids = tok.encode(text, add_special=add_special, parse_special=parse_special)
    return {"ids": ids, "pieces": [piece_text(tok.token_piece(i)) for i in ids]}
