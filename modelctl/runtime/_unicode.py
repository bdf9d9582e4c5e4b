"""Unicode character classes as llama.cpp's pre-tokenizers see them.

llama.cpp classifies every code point by its general category (Unicode 15.1
tables in ``unicode-data.cpp``) into one flag: number (N*), letter (L*),
separator (Z*), accent mark (M*), punctuation (P*), symbol (S*), control
(Cc/Cf/Cs/Co) or undefined (Cn); whitespace is the Unicode ``White_Space`` set.
We take the categories from Python's ``unicodedata`` and patch the code points
it does not know yet (Python 3.11 ships Unicode 14.0) with the ranges below.

The regex pre-tokenizers run on a *collapsed* copy of the text, llama.cpp's own
trick: every code point >= 128 becomes one stand-in character for its class
(whitespace becomes ``\\x0b``), so ``\\p{L}`` turns into an ASCII-range class.
"""

from __future__ import annotations

import unicodedata

UNDEFINED, NUMBER, LETTER, SEPARATOR, ACCENT_MARK, PUNCTUATION, SYMBOL, CONTROL = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)

CATEGORY_FLAG = {
    "Cn": UNDEFINED,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Lu": LETTER, "Ll": LETTER, "Lt": LETTER, "Lm": LETTER, "Lo": LETTER,
    "Zs": SEPARATOR, "Zl": SEPARATOR, "Zp": SEPARATOR,
    "Mn": ACCENT_MARK, "Mc": ACCENT_MARK, "Me": ACCENT_MARK,
    "Pc": PUNCTUATION, "Pd": PUNCTUATION, "Ps": PUNCTUATION, "Pe": PUNCTUATION,
    "Pi": PUNCTUATION, "Pf": PUNCTUATION, "Po": PUNCTUATION,
    "Sm": SYMBOL, "Sc": SYMBOL, "Sk": SYMBOL, "So": SYMBOL,
    "Cc": CONTROL, "Cf": CONTROL, "Cs": CONTROL, "Co": CONTROL,
}

# Unicode White_Space (what llama.cpp's \s means for code points >= 128 too).
WHITESPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)
# C's isspace() in the "C" locale: what llama.cpp strips around lstrip/rstrip special tokens.
# Code points assigned in Unicode 15.0 and 15.1 (first, last, flag), for Pythons whose
# unicodedata predates them.  Used only where unicodedata says "unassigned".
UNICODE_15_ADDITIONS = (
    (0x0CF3, 0x0CF3, ACCENT_MARK), (0x0ECE, 0x0ECE, ACCENT_MARK), (0x2FFC, 0x2FFF, SYMBOL),
    (0x31EF, 0x31EF, SYMBOL), (0x10EFD, 0x10EFF, ACCENT_MARK), (0x1123F, 0x11240, LETTER),
    (0x11241, 0x11241, ACCENT_MARK), (0x11B00, 0x11B09, PUNCTUATION), (0x11F00, 0x11F01, ACCENT_MARK),
    (0x11F02, 0x11F02, LETTER), (0x11F03, 0x11F03, ACCENT_MARK), (0x11F04, 0x11F10, LETTER),
    (0x11F12, 0x11F33, LETTER), (0x11F34, 0x11F3A, ACCENT_MARK), (0x11F3E, 0x11F42, ACCENT_MARK),
    (0x11F43, 0x11F4F, PUNCTUATION), (0x11F50, 0x11F59, NUMBER), (0x1342F, 0x1342F, LETTER),
    (0x13439, 0x1343F, CONTROL), (0x13440, 0x13440, ACCENT_MARK), (0x13441, 0x13446, LETTER),
    (0x13447, 0x13455, ACCENT_MARK), (0x1B132, 0x1B132, LETTER), (0x1B155, 0x1B155, LETTER),
    (0x1D2C0, 0x1D2D3, NUMBER), (0x1DF25, 0x1DF2A, LETTER), (0x1E030, 0x1E06D, LETTER),
    (0x1E08F, 0x1E08F, ACCENT_MARK), (0x1E4D0, 0x1E4EB, LETTER), (0x1E4EC, 0x1E4EF, ACCENT_MARK),
    (0x1E4F0, 0x1E4F9, NUMBER), (0x1F6DC, 0x1F6DC, SYMBOL), (0x1F774, 0x1F776, SYMBOL),
    (0x1F77B, 0x1F77F, SYMBOL), (0x1F7D9, 0x1F7D9, SYMBOL), (0x1FA75, 0x1FA77, SYMBOL),
    (0x1FA87, 0x1FA88, SYMBOL), (0x1FAAD, 0x1FAAF, SYMBOL), (0x1FABB, 0x1FABD, SYMBOL),
    (0x1FABF, 0x1FABF, SYMBOL), (0x1FACE, 0x1FACF, SYMBOL), (0x1FADA, 0x1FADB, SYMBOL),
    (0x1FAE8, 0x1FAE8, SYMBOL), (0x1FAF7, 0x1FAF8, SYMBOL), (0x2B739, 0x2B739, LETTER),
    (0x2EBF0, 0x2EE5D, LETTER), (0x31350, 0x323AF, LETTER),
)


def category_flag(cp: int) -> int:
    """The one category flag llama.cpp gives code point ``cp``."""
    flag = CATEGORY_FLAG[unicodedata.category(chr(cp))]
    if flag == UNDEFINED:
        for first, last, extra in UNICODE_15_ADDITIONS:
            if first <= cp <= last:
                return extra
    return flag


# Stand-ins in the collapsed text (llama.cpp's choice of bytes).
COLLAPSED = {NUMBER: "\xd1", LETTER: "\xd2", PUNCTUATION: "\xd3", ACCENT_MARK: "\xd4", SYMBOL: "\xd5"}
COLLAPSED_OTHER = "\xd0"
COLLAPSED_SPACE = "\x0b"

# What \p{X} becomes inside a character class of a collapsed regex: the stand-in plus
# the ASCII members of the class (ASCII stays itself in the collapsed text).
CLASS_IN_COLLAPSED = {
    "N": "\xd1" + "0-9",
    "L": "\xd2" + "A-Za-z",
    "P": "\xd3" + r"!-#%-*,-/:;?@\[-\]_\{\}",
    "M": "\xd4",
    "S": "\xd5" + r"\$\+<->\^`\|~",
}
# \p{Lu}, \p{Ll}, ... all mean "letter" to llama.cpp.
for _sub in ("Lu", "Ll", "Lt", "Lm", "Lo"):
    CLASS_IN_COLLAPSED[_sub] = CLASS_IN_COLLAPSED["L"]


class _CollapseTable(dict):
    """``str.translate`` table that fills itself: code point -> stand-in character."""

    def __missing__(self, cp: int) -> str:
        if cp < 128:
            out = chr(cp)
        elif cp in WHITESPACE:
            out = COLLAPSED_SPACE
        else:
            out = COLLAPSED.get(category_flag(cp), COLLAPSED_OTHER)
        self[cp] = out
        return out


_COLLAPSE = _CollapseTable()
# For regexes without \p{..}: only non-ASCII whitespace is replaced (std::wregex's \s is ASCII).
_WIDE = {cp: COLLAPSED_SPACE for cp in WHITESPACE if cp >= 128}


def collapse(text: str) -> str:
    """One character per code point: ASCII as is, the rest by class."""
    if text.isascii():
        return text
    return text.translate(_COLLAPSE)


def widen(text: str) -> str:
    """The text a non-category regex sees: non-ASCII whitespace becomes \\x0b."""
    if text.isascii():
        return text
    return text.translate(_WIDE)
