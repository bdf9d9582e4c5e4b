"""Hugging Face model cards (README.md) read into data.

``parse_card(text)`` returns the JSON contract of ``modelctl card --json``:
front matter fields, the file table(s) of the common GGUF publishing styles
(TheBloke, bartowski, mradermacher), the prompt template (kept exact), the
card's quant-method notes and sampling hints, and a list of ``warnings`` for
everything that could not be read cleanly.  Only an unreadable card (empty,
binary, not UTF-8, too big) is an error (``CardError``).

Tables are recognised by their header names (``COLUMN_ROLES``), never by
position.  A file's name is the one the repo holds: the link TARGET's path,
which can differ from the link text.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from modelctl.cards import card_text
from modelctl.core.errors import CardError
from modelctl.cards.card_table import (LINK_RE, MAX_PARSED_LINE, bits_from_quant, fence_body, fenced_lines,
                                       find_split_parts, find_tables, iter_code_fences, link_target_path,
                                       parse_file_table, quant_from_name, safe_name, shard_names, strip_markup)

MAX_CARD_BYTES = 16 << 20
MAX_FRONT_MATTER_BYTES = 1 << 20

BPW_NOTE_RE = re.compile(r"GGML_TYPE_([A-Z0-9_]+)\b.*?([0-9]+(?:\.[0-9]+)?)\s*(?:bpw|bits per weight)", re.I)
TEMPLATE_HEADING_RE = re.compile(r"^(#{1,6})\s*prompt[\s_-]*(?:template|format)\b\s*:?\s*(.*?)\s*#*\s*$", re.I)
# A Hub tag naming the license ("license:apache-2.0"), for cards whose front matter has no license field.
LICENSE_TAG_RE = re.compile(r"^license:(\S+)$")


# ---------------------------------------------------------------------------
# reading the file
# ---------------------------------------------------------------------------


def read_card_file(path: str | os.PathLike) -> str:
    """The card's text; CardError when it cannot be a model card at all."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        from modelctl.core.errors import NotFoundError

        raise NotFoundError("no such file", where=where, hint="give a path to a README.md, a repo id owner/name, "
                            "or a manifest name") from None
    except IsADirectoryError:
        readme = Path(path) / "README.md"
        if readme.is_file():
            return read_card_file(readme)
        raise CardError("is a folder without a README.md", where=where, hint="give the card file itself") from None
    except OSError as exc:
        raise CardError(f"cannot be read: {exc.strerror or exc}", where=where,
                        hint="check the path and its permissions") from None
    return decode_card(raw, where)


def decode_card(raw: bytes, where: str) -> str:
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(f"is larger than {MAX_CARD_BYTES >> 20} MiB; not a model card", where=where)
    if not raw.strip():
        raise CardError("is empty", where=where, hint="a model card is the repo's README.md, a markdown text file")
    if b"\x00" in raw[:65536]:
        raise CardError("is a binary file, not a model card", where=where,
                        hint="give the repo's README.md, a markdown text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardError(f"is not UTF-8 text (bad byte at offset {exc.start})", where=where,
                        hint="a model card is UTF-8 markdown") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------
# front matter
# ---------------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[str | None, str, int, list[str]]:
    """(front matter text or None, body, line number where the body starts (1-based), warnings)."""
    lines = text.split("\n")
    top = next((i for i, ln in enumerate(lines) if ln.strip()), 0)   # cards may start with blank lines
    if not lines or lines[top].rstrip() != "---":
        return None, text, 1, []
    for i in range(top + 1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            return "\n".join(lines[top + 1:i]) + "\n", "\n".join(lines[i + 1:]), i + 2, []
    return None, text, 1, ["front matter starts with '---' but is never closed; ignored"]


def load_front_matter(fm_text: str | None) -> tuple[dict, list[str]]:
    if fm_text is None:
        return {}, ["no YAML front matter: model name, license and other metadata come from the card text"]
    if len(fm_text.encode("utf-8")) > MAX_FRONT_MATTER_BYTES:
        return {}, [f"front matter is larger than {MAX_FRONT_MATTER_BYTES >> 20} MiB; ignored"]
    import yaml

    try:
        data = yaml.safe_load(fm_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return {}, [f"front matter is not valid YAML{line} ({problem}); ignored"]
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [f"front matter is not a YAML mapping (got {type(data).__name__}); ignored"]
    return data, []


def fm_text(fm: dict, key: str, warnings: list[str]) -> str | None:
    """A front-matter field as text; lists take their first item, other shapes are warned about."""
    value = fm.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        items = [v for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
        if not items:
            warnings.append(f"front matter '{key}' is not text; ignored")
            return None
        if len(items) > 1:
            warnings.append(f"front matter '{key}' lists {len(items)} values; using the first, {items[0]!s}")
        value = items[0]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        warnings.append(f"front matter '{key}' is not text; ignored")
        return None
    return str(value).strip() or None


# ---------------------------------------------------------------------------
# the rest of the card
# ---------------------------------------------------------------------------


def template_block(lines: list[str], fences) -> tuple[str | None, str | None]:
    """(text, name) of the first code block under a 'Prompt template' heading."""
    inside = fenced_lines(fences)
    for i, line in enumerate(lines):
        if i in inside or len(line) > MAX_PARSED_LINE or not line.startswith("#"):
            continue
        m = TEMPLATE_HEADING_RE.match(line)
        if not m:
            continue
        level = len(m.group(1))
        for fence in fences:
            s = fence[0]
            if s <= i:
                continue
            between = [ln for ln in lines[i + 1:s] if re.match(r"^#{1,%d}\s" % level, ln)]
            if between:
                break
            return fence_body(lines, fence), (m.group(2) or None)
    return None, None


def quant_notes(body: str) -> dict[str, float]:
    notes = {}
    for line in body.split("\n"):
        if len(line) > MAX_PARSED_LINE or "GGML_TYPE_" not in line:
            continue
        m = BPW_NOTE_RE.search(line)
        if m:
            notes[m.group(1).upper()] = float(m.group(2))
    return notes


def file_bpw(quant: str | None, notes: dict[str, float]) -> float | None:
    if not quant:
        return None
    q = quant.upper().replace("I1-", "")
    if q in notes:
        return notes[q]
    base = re.sub(r"_(XXS|XS|S|M|L|XL)$", "", q)
    return notes.get(base)


def example_file(lines: list[str], fences, files: list[dict], warnings: list[str]) -> str | None:
    """The file the card's download/run examples use most, if the table lists it."""
    known = {f["name"] for f in files} | {f["name"].rsplit("/", 1)[-1] for f in files}
    counts: Counter = Counter()
    missing: set[str] = set()
    for fence in fences:
        for name in re.findall(r"[\w.-]+\.gguf(?![\w.-])", fence_body(lines, fence)):
            if name in known:
                counts[name] += 1
            elif "*" not in name:
                missing.add(name)
    for name in sorted(missing):
        warnings.append(f"the card's examples name {name}, which is not in the file table")
    if not counts:
        return None
    best = counts.most_common(1)[0][0]
    return next(f["name"] for f in files if best in (f["name"], f["name"].rsplit("/", 1)[-1]))


def repo_from_filename(path: str | None) -> str | None:
    """'owner--name.README.md' (how the seed cards are saved) -> 'owner/name'."""
    if not path:
        return None
    m = re.match(r"^([A-Za-z0-9][\w.-]*?)--([A-Za-z0-9][\w.-]*?)(?:\.README)?\.md$", Path(path).name)
    return f"{m.group(1)}/{m.group(2)}" if m else None


# ---------------------------------------------------------------------------
# the whole card
# ---------------------------------------------------------------------------


def files_named_in_code(lines: list[str], fences, warnings: list[str]) -> list[dict]:
    """Without a file table: the files the card's commands and code name (a shard stands for its set)."""
    names = [n for n in card_text.named_files(lines, fences) if safe_name(n)]
    if not names:
        warnings.append("no file table found (looked for Name/Filename/Link with Quant/Size columns) and no "
                        "file named in the card's commands")
        return []
    warnings.append("no file table: the files are the ones the card's commands name; sizes unknown")
    return [{"name": n, "quant": quant_from_name(n), "bits": bits_from_quant(quant_from_name(n)), "size_bytes": None,
             "max_ram_bytes": None, "use_case": None, "parts": shard_names(n), "folder": None} for n in names]


def card_template(fm: dict, lines: list[str], fences, warnings: list[str]) -> tuple[str | None, str | None]:
    """(template text, its name): the front matter's, else the block under a 'Prompt template' heading, else a
    block that prose introduces as the template, else an example command's --in-prefix/--in-suffix; literal \\n
    escapes become newlines."""
    fm_template = fm.get("prompt_template")
    block_text, block_name = template_block(lines, fences)
    if block_text is None or not block_text.strip():
        block_text = card_text.introduced_template(lines, fences)
    if (block_text is None or not block_text.strip()) and fm_template is None:
        block_text = card_text.command_template(lines, fences)
        if block_text is not None:
            warnings.append("the prompt template is the example command's --in-prefix + {prompt} + --in-suffix")
    template_text = None
    if isinstance(fm_template, str) and fm_template.strip():
        template_text = fm_template
        if block_text is not None and block_text.strip() != fm_template.strip():
            warnings.append("the front matter prompt_template and the card's prompt template block differ; "
                            "using the front matter")
    elif fm_template is not None and not isinstance(fm_template, str):
        warnings.append("front matter 'prompt_template' is not text; ignored")
    if template_text is None and block_text is not None and block_text.strip():
        template_text = block_text
    if template_text is None:
        warnings.append("no prompt template found (front matter prompt_template or a 'Prompt template' block)")
        return None, block_name
    template_text, unescaped = card_text.unescape_newlines(template_text)
    if unescaped:
        warnings.append("the prompt template is written with literal \\n escapes; read as newlines")
    return template_text, block_name


def license_from_tags(fm: dict) -> str | None:
    """The license a Hub tag names (``tags: [license:apache-2.0]``)."""
    tags = fm.get("tags")
    found = [m.group(1) for tag in (tags if isinstance(tags, list) else []) if isinstance(tag, str)
             and (m := LICENSE_TAG_RE.match(tag.strip()))]
    return found[0] if found else None


def card_model_name(lines: list[str], fences, repo: str | None, base_model: str | None) -> str | None:
    """A heading naming the repo's or base model's model, else 'Quantizations of X', else the base model's
    name, else the repo's name without its GGUF suffix, else the first heading."""
    heads = card_text.headings(lines, fences)
    repo_name = card_text.without_gguf(_name_part(repo) or "")
    return (card_text.model_name(heads, [repo, base_model])
            or card_text.quantizations_of(card_text.headings(lines, fences, 3)) or _name_part(base_model)
            or repo_name or (card_text.without_gguf(heads[0]) if heads else None) or None)


def _card_files(lines: list[str], fences, body_start: int, warnings: list[str]):
    """(files, repos the table links to, revisions it links to): every file table's rows, the first row of a
    name winning; without any table, the files the card's commands and code name."""
    in_code = fenced_lines(fences)
    files: list[dict] = []
    link_repos: list[str] = []
    link_revs: list[str] = []
    saw_table = False
    for idx, header, rows in find_tables(lines, in_code):
        parsed = parse_file_table(body_start + idx, header, rows, warnings)
        if parsed is None:
            continue
        saw_table = True
        t_files, t_repos, t_revs = parsed
        known = {f["name"] for f in files}
        for f in t_files:
            if f["name"] in known:
                warnings.append(f"{f['name']} is listed twice; keeping the first row")
                continue
            known.add(f["name"])
            files.append(f)
        link_repos += t_repos
        link_revs += t_revs
    if not saw_table:
        files = files_named_in_code(lines, fences, warnings)
    return files, link_repos, link_revs


def _provenance(fm: dict, lines: list[str], warnings: list[str]) -> tuple[str | None, str | None, str | None]:
    """(model creator, base model, license) from the front matter, else from the card's labelled lines."""
    creator_text, _ = card_text.labelled_value(lines, "Model creator")
    _, original_link = card_text.labelled_value(lines, "Original model")
    base_from_link = None
    if original_link:
        r, _, _, _ = link_target_path(original_link.rstrip("/") + "/blob/main/x")
        base_from_link = r
    base_model = fm_text(fm, "base_model", warnings) or base_from_link
    license_ = fm_text(fm, "license", warnings) or license_from_tags(fm)
    if license_ == "other":
        license_ = fm_text(fm, "license_name", warnings) or license_
    return creator_text, base_model, license_


def parse_card(text: str, *, repo: str | None = None, source: str | None = None) -> dict:
    """The card as the ``modelctl card --json`` contract (plus extra keys)."""
    warnings: list[str] = []
    fm_raw, body, body_start, w = split_front_matter(text)
    warnings += w
    fm, w = load_front_matter(fm_raw)
    warnings += w
    lines = card_text.html_headings(body.split("\n"))

    fences = list(iter_code_fences(lines))
    files, link_repos, link_revs = _card_files(lines, fences, body_start, warnings)
    find_split_parts(files, body)

    linked_repo = Counter(link_repos).most_common(1)[0][0] if link_repos else None
    if repo and linked_repo and linked_repo.lower() != repo.lower():
        warnings.append(f"the file table links to {linked_repo}, not {repo}; file names are taken as {repo}'s")
    final_repo = repo or linked_repo or repo_from_filename(source)

    template_text, block_name = card_template(fm, lines, fences, warnings)

    from modelctl.cards.manifest_schema import template_style

    recommended = example_file(lines, fences, files, warnings) if files else None
    notes = quant_notes(body)
    for f in files:
        f["bpw"] = file_bpw(f["quant"], notes)

    creator_text, base_model, license_ = _provenance(fm, lines, warnings)
    card = {
        "repo": final_repo,
        "model_name": fm_text(fm, "model_name", warnings) or card_model_name(lines, fences, final_repo, base_model),
        "model_creator": fm_text(fm, "model_creator", warnings) or creator_text,
        "base_model": base_model,
        "license": license_,
        "model_type": fm_text(fm, "model_type", warnings),
        "quantizer": fm_text(fm, "quantized_by", warnings),
        "revision": Counter(link_revs).most_common(1)[0][0] if link_revs else None,
        "prompt_template": {"text": template_text, "style": template_style(template_text)} if template_text else None,
        "prompt_template_name": block_name,
        "stop": card_text.stop_strings(template_text),
        "sampling": card_text.command_sampling(lines, fences) or card_text.prose_sampling(lines, fences) or None,
        "quant_notes": notes,
        "example_file": recommended,
        "files": files,
        "warnings": warnings,
    }
    if source:
        card["source"] = source
    return card


def _name_part(repo: str | None) -> str | None:
    return repo.rsplit("/", 1)[-1] if repo else None


def card_from_manifest(m) -> dict:
    """A manifest shown through the card contract (``modelctl card NAME``)."""
    d = m.to_dict()
    return {
        "repo": d["repo"], "model_name": d["model_name"], "model_creator": d["model_creator"],
        "base_model": d["base_model"], "license": d["license"], "model_type": d["model_type"],
        "quantizer": d["quantizer"], "revision": d["revision"], "prompt_template": d["prompt_template"],
        "prompt_template_name": None, "stop": d["stop"], "sampling": d["sampling"], "quant_notes": {},
        "files": [{k: f[k] for k in ("name", "quant", "bits", "size_bytes", "max_ram_bytes", "use_case",
                                     "parts", "folder", "sha256") if k in f} for f in d["files"]],
        "warnings": [],
        "source": str(m.path) if m.path else m.name,
        "manifest": m.name,
    }
