"""The names of things, each pattern written once: repo ids, commits, checksums, split files and quant names.

Split files come in three forms: llama.cpp's gguf-split shards (``NAME-00001-of-00003.gguf``, loaded as one
model from part 1) and two legacy forms that must be concatenated (TheBloke's ``NAME.gguf-split-a`` and
``NAME.gguf.partXofY``).
"""

from __future__ import annotations

import re

# a git commit or blob id (40 hex digits), and a sha256 (64)
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# a Hub repo id: owner/name
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# Split files.  Current llama.cpp (gguf-split): NAME-00001-of-00003.gguf, loaded as one model from part 1.
SHARD_RE = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
# Legacy splits that must be concatenated: TheBloke's NAME.gguf-split-a/-split-b, and NAME.gguf.partXofY.
LEGACY_SPLIT_RE = re.compile(r"^(?P<joined>.+\.gguf)-split-(?P<letter>[a-z])$")
PART_OF_RE = re.compile(r"^(?P<joined>.+\.gguf)\.part(?P<index>\d+)of(?P<count>\d+)$")

# Quant names as they appear in file names: Q4_K_M, q5_0, IQ3_XXS, Q8_0, F16, BF16, TQ1_0, MXFP4...
# Other spellings of a quant name -> the name llama.cpp gives it.
QUANT_ALIASES = {"FP16": "F16", "FP32": "F32"}
QUANT_RE = re.compile(
    r"(?:^|[.\-_])(?P<quant>(?:i?q\d(?:_[a-z0-9]{1,3}){0,3})|tq\d_\d|mxfp4(?:_moe)?|bf16|f16|fp16|f32|fp32)(?=[.\-]|$)",
    re.IGNORECASE,
)


def shard_set(name: str) -> list[str] | None:
    """Every shard's name, in order, given any one shard's (``X-00002-of-00003.gguf`` -> parts 1..3), or None
    for a name that is not a shard.  A folder in front of the name is kept."""
    folder, _, base = name.rpartition("/")
    m = SHARD_RE.match(base)
    if m is None:
        return None
    width, count = len(m["index"]), m["count"]
    prefix = f"{folder}/" if folder else ""
    return [f"{prefix}{m['stem']}-{i:0{width}d}-of-{count}.gguf" for i in range(1, int(count) + 1)]


def quant_of(filename: str) -> str | None:
    """The quant named in a file name (upper case), e.g. 'zephyr-7b-beta.Q4_K_M.gguf' -> 'Q4_K_M'."""
    base = filename.rsplit("/", 1)[-1]
    m = SHARD_RE.match(base)
    if m:
        base = m.group("stem") + ".gguf"
    for pattern in (LEGACY_SPLIT_RE, PART_OF_RE):
        m = pattern.match(base)
        if m:
            base = m.group("joined")
    if not base.lower().endswith(".gguf"):
        return None
    found = None
    for m in QUANT_RE.finditer(base[: -len(".gguf")]):
        found = m.group("quant")
    if found is None:
        return None
    found = found.upper()
    return QUANT_ALIASES.get(found, found)


def is_model_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(".gguf") or bool(LEGACY_SPLIT_RE.match(base) or PART_OF_RE.match(base))


def file_group(name: str) -> str:
    """The model a file belongs to: shards and legacy parts map to one name (part 1 / the joined file)."""
    g = legacy_group(name)
    if g:
        return g[0]
    base = name.rsplit("/", 1)[-1]
    m = SHARD_RE.match(base)
    if m:
        return name[: len(name) - len(base)] + f"{m.group('stem')}-00001-of-{m.group('count')}.gguf"
    return name


def legacy_group(name: str) -> tuple[str, int] | None:
    """For a legacy split part, (joined name, part order); else None."""
    base = name.rsplit("/", 1)[-1]
    prefix = name[: len(name) - len(base)]
    m = LEGACY_SPLIT_RE.match(base)
    if m:
        return prefix + m.group("joined"), ord(m.group("letter")) - ord("a")
    m = PART_OF_RE.match(base)
    if m:
        return prefix + m.group("joined"), int(m.group("index"))
    return None
