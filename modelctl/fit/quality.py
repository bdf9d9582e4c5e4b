"""How much a quant type costs in quality, as data.

The figures are llama.cpp's own, published in ``tools/quantize/quantize.cpp``
(``llama-quantize --help``): file size and perplexity increase over the f16
model, measured on Llama-3-8B (F16/BF16 on Mistral-7B).  Types published with
bits per weight only (the i-quants, ternary types) get a perplexity increase
interpolated from their bits per weight on the measured curve, as does a file
whose quant name is unknown (its bits per weight come from its size).
"""

from __future__ import annotations

import math
import re

from modelctl.gguf.names import QUANT_ALIASES

LLAMA3_8B_PARAMS = 8.03e9
GiB = 1 << 30

# name -> (size in GiB of Llama-3-8B, perplexity increase)   (llama.cpp quantize.cpp)
PUBLISHED_PPL: dict[str, tuple[float, float]] = {
    "Q2_K": (2.96, 3.5199), "Q2_K_S": (2.96, 3.1836),
    "Q3_K_S": (3.41, 1.6321), "Q3_K_M": (3.74, 0.6569), "Q3_K_L": (4.03, 0.5562),
    "Q4_0": (4.34, 0.4685), "Q4_1": (4.78, 0.4511),
    "Q4_K_S": (4.37, 0.2689), "Q4_K_M": (4.58, 0.1754),
    "Q5_0": (5.21, 0.1316), "Q5_1": (5.65, 0.1062),
    "Q5_K_S": (5.21, 0.1049), "Q5_K_M": (5.33, 0.0569),
    "Q6_K": (6.14, 0.0217), "Q8_0": (7.96, 0.0026),
    "F16": (14.00, 0.0020), "BF16": (14.00, -0.0050),
}

# name -> bits per weight, for types published without a perplexity figure
PUBLISHED_BPW: dict[str, float] = {
    "IQ1_S": 1.56, "IQ1_M": 1.75, "TQ1_0": 1.69, "TQ2_0": 2.06,
    "IQ2_XXS": 2.06, "IQ2_XS": 2.31, "IQ2_S": 2.5, "IQ2_M": 2.7,
    "IQ3_XXS": 3.06, "IQ3_XS": 3.3, "IQ3_S": 3.44, "IQ3_M": 3.66,
    "IQ4_XS": 4.25, "IQ4_NL": 4.50, "F32": 32.0,
}

ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", **QUANT_ALIASES}

# Longest names first so that Q4_K_M wins over Q4_K and IQ2_XXS over IQ2_XS.
_KNOWN = sorted(set(PUBLISHED_PPL) | set(PUBLISHED_BPW) | set(ALIASES), key=len, reverse=True)
_NAME_RE = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, _KNOWN)) + r")(?![A-Za-z0-9])", re.IGNORECASE)


def bpw_of(size_gib: float) -> float:
    return size_gib * GiB * 8 / LLAMA3_8B_PARAMS


def _curve() -> list[tuple[float, float]]:
    """(bits per weight, log perplexity increase) of the measured quantized types, by bpw."""
    pts = sorted((bpw_of(s), math.log(d)) for n, (s, d) in PUBLISHED_PPL.items()
                 if d > 0 and n not in ("F16", "BF16"))
    return pts


def ppl_from_bpw(bpw: float) -> float:
    """Perplexity increase interpolated (log-linear) on llama.cpp's measured curve."""
    pts = _curve()
    if bpw >= 16:
        return 0.0
    if bpw <= pts[0][0]:
        (x0, y0), (x1, y1) = pts[0], pts[1]
    elif bpw >= pts[-1][0]:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
    else:
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= bpw <= x1 and x1 > x0:
                break
    if x1 == x0:
        return math.exp(y0)
    return math.exp(y0 + (y1 - y0) * (bpw - x0) / (x1 - x0))


def canonical(name: str | None) -> str | None:
    if not name:
        return None
    n = name.strip().upper()
    return ALIASES.get(n, n)


def quant_from_filename(filename: str) -> str | None:
    """``zephyr-7b-beta.Q4_K_M.gguf`` -> ``Q4_K_M``."""
    hits = _NAME_RE.findall(filename)
    return canonical(hits[-1]) if hits else None


def ppl_delta(quant: str | None, bpw: float | None = None) -> tuple[float, str]:
    """(perplexity increase, how it is known): ``published``, ``bpw`` or ``file-bpw``."""
    q = canonical(quant)
    if q in PUBLISHED_PPL:
        return PUBLISHED_PPL[q][1], "published"
    if q == "F32":
        return -0.01, "reference"  # unquantized: the reference itself
    if q in PUBLISHED_BPW:
        return ppl_from_bpw(PUBLISHED_BPW[q]), "bpw"
    if bpw:
        return ppl_from_bpw(bpw), "file-bpw"
    return math.inf, "unknown"
