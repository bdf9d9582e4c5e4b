"""Byte sizes as people write them: ``16GB`` (10^9), ``8GiB`` (2^30), ``4.37 GB``.

Shared by every command that reads or prints sizes (recommend's ``--ram``/``--vram``,
card tables, pull progress).  Decimal units (kB, MB, GB, TB) are powers of 1000,
binary units (KiB, MiB, GiB, TiB) powers of 1024, as the SI/IEC prefixes say;
a bare ``K``/``M``/``G``/``T`` (``16G``, as in ``free -h`` or ``docker --memory``)
is binary.  A plain number is bytes.
"""

from __future__ import annotations

import re

# unit (lower case) -> bytes
UNITS: dict[str, int] = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """``"16GB"`` -> 16_000_000_000, ``"8GiB"`` -> 8_589_934_592, ``"512"`` -> 512.

    Raises ``ValueError`` with a readable message for anything else.
    """
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (write e.g. 16GB, 8GiB or 512MiB)")
    number, unit = m.groups()
    factor = UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {text!r} (use kB/MB/GB/TB or KiB/MiB/GiB/TiB)")
    return int(round(float(number) * factor))


def format_size(n: int | float | None, binary: bool = True, digits: int = 2) -> str:
    """``format_size(4_368_439_584)`` -> ``"4.07 GiB"`` (``binary=False`` -> ``"4.37 GB"``; ``digits=1`` -> ``"4.1 GiB"``)."""
    if n is None:
        return "?"
    base, names = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000, ("B", "kB", "MB", "GB", "TB"))
    value = float(n)
    for name in names:
        if abs(value) < base or name == names[-1]:
            return f"{int(value)} B" if name == "B" else f"{value:.{digits}f} {name}"
        value /= base
    raise AssertionError("unreachable")
