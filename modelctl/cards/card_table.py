"""The file tables of model cards: Markdown tables found by their headers (TheBloke's, bartowski's,
mradermacher's and other column sets), each row's repo file (the link target, not the link text), quant,
bits, size (in the header's unit, GB vs GiB) and parts.  Anything wrong in a row is a warning, never an
invented file.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from modelctl.gguf.names import PART_OF_RE, QUANT_ALIASES, legacy_group, shard_set

MAX_PARSED_LINE = 4096            # headings, notes and names longer than this are not read (regex cost)
# A fence may be indented: cards nest fenced blocks in list items ("- Prompt string" then "    ```text").
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
MAX_FILE_BYTES = 4 * 10**12       # a size above this (4 TB) is absurd for one model file
MIN_FILE_BYTES = 1                # zero is absurd too
# Header text (lower-case, markdown stripped) -> column role.  Data, not logic.
COLUMN_ROLES = {
    "name": "name", "filename": "name", "file name": "name", "file": "name", "link": "name",
    "download": "name", "model file": "name",
    "quant method": "quant", "quant type": "quant", "quant": "quant", "type": "quant",
    "quantization": "quant", "quantization type": "quant", "method": "quant",
    "bits": "bits",
    "size": "size", "file size": "size", "filesize": "size", "disk size": "size",
    "max ram required": "max_ram", "max ram": "max_ram", "ram required": "max_ram",
    "use case": "use_case", "description": "use_case", "notes": "use_case", "note": "use_case",
    "split": "split",
}
# "Size/GB", "Size (GiB)", "File Size [MB]": a size column whose unit is in the header.
SIZE_HEADER_RE = re.compile(r"^(?:file\s*)?size\s*(?:/|\(|\[|in)?\s*([kmgt]i?b)\s*[)\]]?$")
SIZE_RE = re.compile(r"^\s*~?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(b|[kmgt]i?b|[kmgt])?\s*$", re.I)
HF_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
HF_PATH_RE = re.compile(r"^/([^/]+)/([^/]+)/(blob|resolve|tree|raw)/([^/]+)/(.+)$")
LINK_RE = re.compile(r"\[([^\[\]]{0,1000})\]\(\s*<?([^()\s<>]{1,2048})>?(?:\s+\"[^\"]{0,1000}\")?\s*\)")
QUANT_IN_NAME_RE = re.compile(
    r"[.\-_]((?:i1-)?(?:IQ|Q|TQ)[0-9][A-Z0-9_]*?|BF16|F16|FP16|F32)(?=(?:\.gguf|-\d{5}-of-\d{5}|\.part|-split|$))",
    re.I,
)
BITS_IN_QUANT_RE = re.compile(r"^(?:i1-)?(?:IQ|Q|TQ)([0-9]+)", re.I)
FLOAT_BITS = {"f32": 32, "fp32": 32, "f16": 16, "fp16": 16, "bf16": 16}
# What a cell writes for "nothing here" (a quant of "None" for an unquantized file, a size of "-").
ABSENT_CELLS = {"", "-", "?", "n/a", "na", "none"}


def strip_markup(cell: str) -> str:
    """Cell text without links, emphasis, code ticks or HTML tags."""
    s = LINK_RE.sub(lambda m: m.group(1), cell)
    s = re.sub(r"<[^>]+>", "", s)
    s = s.replace("**", "").replace("__", "").replace("`", "")
    s = re.sub(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])", r"\1", s)
    return " ".join(s.split())


def split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells, cur, i = [], [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] == "|":
            cur.append("|")
            i += 2
            continue
        if s[i] == "|":
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(s[i])
        i += 1
    cells.append("".join(cur).strip())
    return cells


def is_separator(line: str) -> bool:
    cells = split_row(line)
    return bool(cells) and all(re.fullmatch(r":?-{1,}:?", c.replace(" ", "")) for c in cells)


def iter_code_fences(lines: list[str]):
    """(start index, end index, info string) of each fenced block; end is the closing fence line.  Read a
    block's text with ``fence_body``."""
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if m:
            fence = m.group(2)
            for j in range(i + 1, len(lines)):
                close = FENCE_RE.match(lines[j])
                if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) \
                        and not close.group(3).strip():
                    yield i, j, m.group(3).strip()
                    i = j
                    break
            else:
                return
        i += 1


def find_tables(lines: list[str], skip: set[int]) -> list[tuple[int, list[str], list[list[str]]]]:
    """(line index of the header, header cells, rows) of each pipe table outside code blocks."""
    tables, i = [], 0
    while i < len(lines) - 1:
        if i in skip or "|" not in lines[i] or not is_separator(lines[i + 1]):
            i += 1
            continue
        header = split_row(lines[i])
        rows, j = [], i + 2
        while j < len(lines) and j not in skip and "|" in lines[j] and lines[j].strip():
            rows.append(split_row(lines[j]))
            j += 1
        tables.append((i, header, rows))
        i = j
    return tables


def fence_body(lines: list[str], fence: tuple[int, int, str]) -> str:
    """A fenced block's text, without the indentation its opening fence has (a block nested in a list item)."""
    s, e, _info = fence
    indent = len(FENCE_RE.match(lines[s]).group(1))
    return "\n".join(ln[min(indent, len(ln) - len(ln.lstrip(" "))):] for ln in lines[s + 1:e])


def fenced_lines(fences) -> set[int]:
    """The line numbers fenced blocks take, fences included."""
    return {k for s, e, _ in fences for k in range(s, e + 1)}


def column_roles(header: list[str]) -> tuple[dict[str, int], str | None]:
    """role -> column index, and the unit named by a size header (e.g. 'gb' for 'Size/GB')."""
    roles: dict[str, int] = {}
    size_unit = None
    for idx, cell in enumerate(header):
        key = strip_markup(cell).lower().strip(" :")
        role = COLUMN_ROLES.get(key)
        m = SIZE_HEADER_RE.match(key)
        if role is None and m:
            role, size_unit = "size", m.group(1)
        if role and role not in roles:
            roles[role] = idx
    return roles, size_unit


def parse_size(text: str, header_unit: str | None) -> tuple[int | None, str | None]:
    """Bytes for '4.77 GB', '4.92GB', '75.1' (unit from the header); (None, why) when not a size."""
    s = strip_markup(text)
    if s.lower() in ABSENT_CELLS:
        return None, None
    m = SIZE_RE.match(s)
    if not m:
        return None, f"size {s!r} is not a number with a unit"
    number = m.group(1)
    if "," in number and "." not in number and re.fullmatch(r"\d+,\d{1,2}", number):
        number = number.replace(",", ".")  # decimal comma: '4,77 GB'
    value = float(number.replace(",", ""))
    unit = (m.group(2) or header_unit or "").lower()
    if not unit:
        return None, f"size {s!r} has no unit"
    from modelctl.core.units import UNITS

    n = int(round(value * UNITS[unit]))
    if not MIN_FILE_BYTES <= n <= MAX_FILE_BYTES:
        return None, f"size {s!r} is absurd for a model file"
    return n, None


def link_target_path(target: str) -> tuple[str | None, str | None, str | None, str]:
    """(repo 'owner/name' or None, revision or None, path inside the repo or None, link kind)."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        hosts = set(HF_HOSTS)
        endpoint = os.environ.get("HF_ENDPOINT")
        if endpoint:
            hosts.add(urlsplit(endpoint).netloc)
        if parts.netloc.lower() not in hosts:
            return None, None, None, "external"
        m = HF_PATH_RE.match(parts.path)
        if not m:
            return None, None, None, "external"
        owner, name, kind, rev, path = m.groups()
        return f"{owner}/{name}", unquote(rev), unquote(path), kind
    if parts.scheme or parts.netloc:
        return None, None, None, "external"
    if parts.path.startswith("/"):  # site-relative: /owner/name/blob/main/file
        m = HF_PATH_RE.match(parts.path)
        if not m:
            return None, None, None, "external"
        owner, name, kind, rev, path = m.groups()
        return f"{owner}/{name}", unquote(rev), unquote(path), kind
    path = unquote(parts.path)
    m = re.match(r"^(?:\./)?(blob|resolve|tree|raw)/([^/]+)/(.+)$", path)
    if m:
        return None, m.group(2), m.group(3), m.group(1)
    return None, None, path[2:] if path.startswith("./") else path, "relative"


def safe_name(name: str) -> bool:
    from modelctl.cards.manifest_schema import safe_repo_path

    return safe_repo_path(name)


def quant_from_name(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if len(base) > MAX_PARSED_LINE:
        return None
    m = None
    for m in QUANT_IN_NAME_RE.finditer(base):
        pass
    if m is None:
        return None
    quant = m.group(1).upper().replace("I1-", "i1-")
    return QUANT_ALIASES.get(quant, quant)


def normal_quant(text: str) -> str | None:
    """'q4_k_m' -> 'Q4_K_M', 'i1-iq3_xs' -> 'i1-IQ3_XS'; other text as written; None for an empty cell."""
    if text.lower() in ABSENT_CELLS:
        return None
    if re.fullmatch(r"(?i)(i1-)?[a-z0-9_]{1,32}", text):
        return text.upper().replace("I1-", "i1-")
    return text


def bits_from_quant(quant: str | None) -> int | None:
    if not quant:
        return None
    m = BITS_IN_QUANT_RE.match(quant)
    if m:
        return int(m.group(1))
    return FLOAT_BITS.get(quant.lower())


def parts_base(names: list[str]) -> str | None:
    """'x.gguf' for ['x.gguf.part1of2', 'x.gguf.part2of2'] or ['x.gguf-split-a', ...]."""
    bases = set()
    for n in names:
        g = legacy_group(n)
        if g is None:
            return None
        bases.add(g[0])
    return bases.pop() if len(bases) == 1 else None


def shard_names(name: str) -> list[str]:
    """All shards of a gguf-split file named by its first shard: x-00001-of-00003.gguf."""
    shards = shard_set(name) or []
    return shards if 1 < len(shards) <= 512 else []


def name_cell(cell: str, where: str, warnings: list[str]) -> dict | None:
    """The repo file(s) named by a table cell: its link targets first, then its text."""
    links = LINK_RE.findall(cell)
    paths, repos, revisions, kinds = [], [], [], []
    for text, target in links:
        repo, rev, path, kind = link_target_path(target)
        if path is None:
            continue
        paths.append((text.strip().strip("`*"), path))
        kinds.append(kind)
        if repo:
            repos.append(repo)
        if rev:
            revisions.append(rev)
    text_name = strip_markup(cell)
    entry: dict[str, Any] = {"repos": repos, "revisions": revisions, "folder": None, "parts": []}
    if not paths:
        if not text_name or " " in text_name.strip():
            return None
        entry["name"] = text_name
    elif len(paths) == 1:
        text, path = paths[0]
        if kinds[0] == "tree":  # a folder holding the split parts (bartowski)
            entry["folder"] = path.rstrip("/")
            entry["name"] = text if text.lower().endswith(".gguf") else path.rstrip("/").rsplit("/", 1)[-1] + ".gguf"
        else:
            entry["name"] = path
            shown = text.rsplit("/", 1)[-1]
            if shown.lower().endswith(".gguf") and shown != path.rsplit("/", 1)[-1]:
                warnings.append(f"{where}: link text {shown!r} is not the file its link points to; "
                                f"using the link target {path!r}")
    else:  # several links: the parts of one file (mradermacher 'PART 1 PART 2')
        names = [p for _, p in paths]
        base = parts_base(names)
        if base:
            entry["name"], entry["parts"] = base, names
        else:
            entry["name"] = names[0]
            warnings.append(f"{where}: several links that are not parts of one file; using the first, {names[0]!r}")
    return entry


def parse_file_table(line_no: int, header: list[str], rows: list[list[str]],
                     warnings: list[str]) -> tuple[list[dict], list[str], list[str]] | None:
    """Files of one table, or None when the table is not a file table."""
    roles, size_unit = column_roles(header)
    table_roles = {r for r in roles if r in ("quant", "bits", "size", "max_ram", "split")}
    where = f"file table at line {line_no}"
    if "name" not in roles:
        if len(table_roles) >= 2:
            warnings.append(f"{where} has quant/size columns but no file name column "
                            f"(Name, Filename or Link); table skipped")
        return None
    if not table_roles:
        return None
    for role, label in (("size", "size"), ("quant", "quant method")):
        if role not in roles:
            warnings.append(f"{where} has no {label} column; {role if role != 'size' else 'size_bytes'} "
                            f"{'derived from file names' if role == 'quant' else 'is null'}")
    files, repos, revisions = [], [], []
    for r, row in enumerate(rows):
        row_where = f"{where}, row {r + 1}"
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))

        def cell(role: str) -> str:
            return row[roles[role]] if role in roles else ""

        entry = name_cell(cell("name"), row_where, warnings)
        if entry is None:
            if strip_markup(cell("name")):
                warnings.append(f"{row_where}: {strip_markup(cell('name'))!r} is not a file name; row skipped")
            continue
        name = entry["name"]
        bad = [n for n in [name, *entry["parts"]] if not safe_name(n)]
        if bad:
            warnings.append(f"{row_where}: refused unsafe file name {bad[0]!r}; row skipped")
            continue
        repos += entry["repos"]
        revisions += entry["revisions"]
        quant = normal_quant(strip_markup(cell("quant"))) or quant_from_name(name)
        bits_text = strip_markup(cell("bits"))
        bits = int(bits_text) if re.fullmatch(r"[0-9]{1,2}", bits_text) and 0 < int(bits_text) <= 64 else None
        if bits_text and bits is None:
            warnings.append(f"{row_where}: bits {bits_text!r} is not a number of bits; derived from the quant")
        if bits is None:
            bits = bits_from_quant(quant)
        size, why = parse_size(cell("size"), size_unit) if "size" in roles else (None, None)
        if why:
            warnings.append(f"{name}: {why}; size_bytes is null")
        ram, why = parse_size(cell("max_ram"), None) if "max_ram" in roles else (None, None)
        if why:
            warnings.append(f"{name}: max RAM {why[5:] if why.startswith('size ') else why}; max_ram_bytes is null")
        if size is not None and ram is not None and ram < size:
            warnings.append(f"{name}: max RAM ({strip_markup(cell('max_ram'))}) is less than the file size "
                            f"({strip_markup(cell('size'))}); kept as written")
        # a shard named by a folder link: its set, as the repo paths inside that folder
        parts = entry["parts"] or shard_names(f"{entry['folder']}/{name}" if entry["folder"] else name)
        split = strip_markup(cell("split")).lower() in ("true", "yes", "y") if "split" in roles else False
        if split and not parts and not entry["folder"]:
            warnings.append(f"{name}: marked split but the card does not say which files hold the parts")
        if entry["folder"] and not parts:
            warnings.append(f"{name}: split into files under the repo folder {entry['folder']}/ that the card "
                            f"does not list")
        files.append({
            "name": name,
            "quant": quant or None,
            "bits": bits,
            "size_bytes": size,
            "max_ram_bytes": ram,
            "use_case": strip_markup(cell("use_case")) or None,
            "parts": parts,
            "folder": entry["folder"],
        })
    return files, repos, revisions


def find_split_parts(files: list[dict], body: str) -> None:
    """Parts named in the card's text (TheBloke: 'x.gguf-split-a', mradermacher: 'x.gguf.part1of2')."""
    for f in files:
        if f["parts"]:
            continue
        pat = re.compile(re.escape(f["name"]) + r"(-split-[a-z]|\.part[0-9]+of[0-9]+)(?![\w.-])")
        found = sorted(set(m.group(0) for m in pat.finditer(body)), key=_part_order)
        if len(found) >= 2:
            f["parts"] = found


def _part_order(name: str):
    m = PART_OF_RE.match(name.rsplit("/", 1)[-1])
    if m:
        return (0, int(m["index"]), name)
    return (1, 0, name)
