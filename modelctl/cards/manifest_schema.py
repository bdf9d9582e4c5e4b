"""The manifest schema as data and code: the fields (documented in ``manifests/SCHEMA.md``), the typed
``Manifest`` they make, and ``manifest_from_dict``, which checks an untrusted mapping field by field and says
exactly what is wrong where.  Reading, writing and finding manifests is ``modelctl.cards.manifest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from modelctl.core.errors import ManifestError, NotFoundError
from modelctl.gguf.names import REPO_ID_RE, SHA256_RE

SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a small text file; refuse anything bigger
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
TEMPLATE_STYLES = ("placeholders", "jinja")
SOURCE_KINDS = ("hub", "url", "local", "pypi-wheel", "pypi-wheels")

# Field tables: name -> (type check description, required).  Data, not logic.
TOP_FIELDS = (
    "schema", "name", "repo", "revision", "model_name", "model_creator", "base_model", "license",
    "model_type", "quantizer", "prompt_template", "chat_template", "stop", "sampling", "architecture",
    "files", "default_file", "sources", "notes",
)
SAMPLING_FIELDS = {  # name -> (type, min, max)
    "temperature": (float, 0.0, 10.0),
    "top_k": (int, 0, 1_000_000),
    "top_p": (float, 0.0, 1.0),
    "min_p": (float, 0.0, 1.0),
    "repeat_penalty": (float, 0.0, 10.0),
    "repeat_last_n": (int, 0, 1_000_000),
}
ARCH_INT_FIELDS = ("layers", "heads", "kv_heads", "head_dim", "embedding", "ffn", "vocab", "context_length")
ARCH_OPTIONAL_INT_FIELDS = ("sliding_window",)
ARCH_OPTIONAL_FLOAT_FIELDS = ("rope_theta",)
FILE_FIELDS = ("name", "quant", "bits", "size_bytes", "max_ram_bytes", "use_case", "parts", "folder", "sha256")
SOURCE_FIELDS = {  # kind -> (required fields, optional fields)
    "hub": (("repo",), ("revision", "file")),
    "url": (("url", "file"), ("sha256",)),
    "local": (("path", "file"), ("sha256",)),
    "pypi-wheel": (("requirement", "member", "file"), ("sha256",)),
    "pypi-wheels": (("parts", "file"), ("sha256",)),   # parts: [{requirement, member}, ...] joined in order
}


# ---------------------------------------------------------------------------
# the data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    text: str
    style: str  # "placeholders" ({prompt}, {system_message}) or "jinja"

    def to_dict(self) -> dict:
        return {"text": self.text, "style": self.style}


@dataclass(frozen=True)
class Architecture:
    arch: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    embedding: int
    ffn: int
    vocab: int
    context_length: int
    sliding_window: int | None = None
    rope_theta: float | None = None

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("arch", *ARCH_INT_FIELDS)}
        for k in (*ARCH_OPTIONAL_INT_FIELDS, *ARCH_OPTIONAL_FLOAT_FIELDS):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


@dataclass(frozen=True)
class ManifestFile:
    name: str
    quant: str | None = None
    bits: int | None = None
    size_bytes: int | None = None
    max_ram_bytes: int | None = None
    use_case: str | None = None
    parts: tuple[str, ...] = ()
    folder: str | None = None  # repo folder holding split parts the card does not list (bartowski)
    sha256: str | None = None

    def to_dict(self) -> dict:
        d = {
            "name": self.name, "quant": self.quant, "bits": self.bits, "size_bytes": self.size_bytes,
            "max_ram_bytes": self.max_ram_bytes, "use_case": self.use_case, "parts": list(self.parts),
        }
        if self.folder is not None:
            d["folder"] = self.folder
        d["sha256"] = self.sha256
        return d


@dataclass(frozen=True)
class Source:
    """One place the model's files can come from; ``kind`` says which fields apply."""

    kind: str
    repo: str | None = None          # hub
    revision: str | None = None      # hub
    url: str | None = None           # url
    path: str | None = None          # local
    requirement: str | None = None   # pypi-wheel
    member: str | None = None        # pypi-wheel: path of the file inside the wheel
    file: str | None = None          # url, local, pypi-wheel(s): which manifest file this provides
    sha256: str | None = None
    parts: list[dict] | None = None  # pypi-wheels: [{requirement, member}, ...], joined in order

    def to_dict(self) -> dict:
        required, optional = SOURCE_FIELDS[self.kind]
        d: dict[str, Any] = {"kind": self.kind}
        for k in (*required, *optional):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


@dataclass
class Manifest:
    name: str
    repo: str | None = None
    revision: str = "main"
    model_name: str | None = None
    model_creator: str | None = None
    base_model: str | None = None
    license: str | None = None
    model_type: str | None = None
    quantizer: str | None = None
    prompt_template: PromptTemplate | None = None
    chat_template: str | None = None
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, float | int] | None = None
    architecture: Architecture | None = None
    files: list[ManifestFile] = field(default_factory=list)
    default_file: str | None = None
    sources: list[Source] = field(default_factory=list)
    notes: str | None = None
    path: Path | None = field(default=None, compare=False)  # where it was loaded from; not serialised
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        """The manifest as plain data, keys in schema order (what ``save``/``--yaml`` write)."""
        return {
            "schema": self.schema,
            "name": self.name,
            "repo": self.repo,
            "revision": self.revision,
            "model_name": self.model_name,
            "model_creator": self.model_creator,
            "base_model": self.base_model,
            "license": self.license,
            "model_type": self.model_type,
            "quantizer": self.quantizer,
            "prompt_template": self.prompt_template.to_dict() if self.prompt_template else None,
            "chat_template": self.chat_template,
            "stop": list(self.stop),
            "sampling": dict(self.sampling) if self.sampling is not None else None,
            "architecture": self.architecture.to_dict() if self.architecture else None,
            "files": [f.to_dict() for f in self.files],
            "default_file": self.default_file,
            "sources": [s.to_dict() for s in self.sources],
            "notes": self.notes,
        }

    def file(self, ref: str) -> ManifestFile:
        """A file by exact name, or by quant (case-insensitive, e.g. ``q4_k_m``)."""
        for f in self.files:
            if f.name == ref:
                return f
        matches = [f for f in self.files if f.quant and f.quant.lower() == ref.lower()]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted({f.quant or f.name for f in self.files})) or "none"
        where = str(self.path) if self.path else self.name
        if matches:
            raise NotFoundError(f"quant {ref!r} names several files", where=where, hint="give the file name instead")
        raise NotFoundError(f"no file or quant {ref!r} in manifest", where=where, hint=f"known: {known}")

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


# ---------------------------------------------------------------------------
# validation: plain data -> Manifest, errors naming the field and the file
# ---------------------------------------------------------------------------


class _Checker:
    def __init__(self, where: str):
        self.where = where

    def fail(self, fieldname: str, message: str) -> ManifestError:
        return ManifestError(f"field '{fieldname}' {message}", where=self.where,
                             hint="see manifests/SCHEMA.md")

    def mapping(self, value: Any, fieldname: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(fieldname, f"must be a mapping (got {_kind(value)})")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(fieldname, f"has a non-text key {k!r}")
        return value

    def unknown(self, value: dict, allowed: Iterable[str], fieldname: str) -> None:
        extra = sorted(set(value) - set(allowed))
        if extra:
            name = f"{fieldname}.{extra[0]}" if fieldname else extra[0]
            raise self.fail(name, f"is not part of the schema (known: {', '.join(allowed)})")

    def text(self, value: Any, fieldname: str, *, optional: bool = True, max_len: int = 100_000) -> str | None:
        if value is None:
            if optional:
                return None
            raise self.fail(fieldname, "is required")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(fieldname, f"must be text (got {_kind(value)})")
        if not isinstance(value, str):
            value = str(value)  # e.g. license: 2.0 or revision: 1234 written without quotes
        if len(value) > max_len:
            raise self.fail(fieldname, f"is too long ({len(value)} characters, at most {max_len})")
        if not optional and not value.strip():
            raise self.fail(fieldname, "must not be empty")
        return value

    def integer(self, value: Any, fieldname: str, *, lo: int = 0, hi: int = 1 << 62,
                optional: bool = True) -> int | None:
        if value is None:
            if optional:
                return None
            raise self.fail(fieldname, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(fieldname, f"must be an integer (got {_kind(value)} {value!r})")
        if not lo <= value <= hi:
            raise self.fail(fieldname, f"must be between {lo} and {hi} (got {value})")
        return value

    def number(self, value: Any, fieldname: str, *, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(fieldname, f"must be a number (got {_kind(value)} {value!r})")
        if not lo <= value <= hi:
            raise self.fail(fieldname, f"must be between {lo} and {hi} (got {value})")
        return value

    def text_list(self, value: Any, fieldname: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(fieldname, f"must be a list of text (got {_kind(value)})")
        return [self.text(v, f"{fieldname}[{i}]", optional=False) for i, v in enumerate(value)]


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), type(value).__name__)


def safe_repo_path(name: str) -> bool:
    """A file name inside a repo: relative, no '..', no backslashes or control characters."""
    if not name or name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") for p in parts)


def _check_file(c: _Checker, value: Any, i: int) -> ManifestFile:
    fn = f"files[{i}]"
    d = c.mapping(value, fn)
    c.unknown(d, FILE_FIELDS, fn)
    name = c.text(d.get("name"), f"{fn}.name", optional=False, max_len=1000)
    if not safe_repo_path(name):
        raise c.fail(f"{fn}.name", f"must be a relative file name inside the repo (got {name!r})")
    parts = c.text_list(d.get("parts"), f"{fn}.parts")
    for j, p in enumerate(parts):
        if not safe_repo_path(p):
            raise c.fail(f"{fn}.parts[{j}]", f"must be a relative file name inside the repo (got {p!r})")
    folder = c.text(d.get("folder"), f"{fn}.folder", max_len=1000)
    if folder is not None and not safe_repo_path(folder):
        raise c.fail(f"{fn}.folder", f"must be a relative folder inside the repo (got {folder!r})")
    sha = c.text(d.get("sha256"), f"{fn}.sha256")
    if sha is not None and not SHA256_RE.match(sha):
        raise c.fail(f"{fn}.sha256", "must be 64 lowercase hex digits")
    return ManifestFile(
        name=name,
        quant=c.text(d.get("quant"), f"{fn}.quant", max_len=64),
        bits=c.integer(d.get("bits"), f"{fn}.bits", lo=1, hi=64),
        size_bytes=c.integer(d.get("size_bytes"), f"{fn}.size_bytes", lo=0, hi=1 << 50),
        max_ram_bytes=c.integer(d.get("max_ram_bytes"), f"{fn}.max_ram_bytes", lo=0, hi=1 << 50),
        use_case=c.text(d.get("use_case"), f"{fn}.use_case", max_len=2000),
        parts=tuple(parts),
        folder=folder,
        sha256=sha,
    )


def _check_source(c: _Checker, value: Any, i: int, file_names: set[str]) -> Source:
    fn = f"sources[{i}]"
    d = c.mapping(value, fn)
    kind = c.text(d.get("kind"), f"{fn}.kind", optional=False)
    if kind not in SOURCE_FIELDS:
        raise c.fail(f"{fn}.kind", f"must be one of {', '.join(SOURCE_KINDS)} (got {kind!r})")
    required, optional = SOURCE_FIELDS[kind]
    c.unknown(d, ("kind", *required, *optional), fn)
    vals: dict[str, Any] = {k: c.text(d.get(k), f"{fn}.{k}", optional=k not in required, max_len=4000)
                            for k in (*required, *optional) if k != "parts"}
    if "parts" in required:
        vals["parts"] = _check_wheel_parts(c, d.get("parts"), f"{fn}.parts")
    if kind == "hub" and not REPO_ID_RE.match(vals["repo"]):
        raise c.fail(f"{fn}.repo", f"must be a repo id owner/name (got {vals['repo']!r})")
    if kind == "url" and not re.match(r"^https?://", vals["url"]):
        raise c.fail(f"{fn}.url", f"must be an http(s) URL (got {vals['url']!r})")
    if vals.get("sha256") is not None and not SHA256_RE.match(vals["sha256"]):
        raise c.fail(f"{fn}.sha256", "must be 64 lowercase hex digits")
    if vals.get("file") is not None and file_names and vals["file"] not in file_names:
        raise c.fail(f"{fn}.file", f"names {vals['file']!r}, which is not in 'files'")
    return Source(kind=kind, **vals)


def _check_wheel_parts(c: _Checker, value: Any, fn: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise c.fail(fn, f"must be a non-empty list of {{requirement, member}} (got {_kind(value)})")
    parts = []
    for j, item in enumerate(value):
        d = c.mapping(item, f"{fn}[{j}]")
        c.unknown(d, ("requirement", "member"), f"{fn}[{j}]")
        parts.append({k: c.text(d.get(k), f"{fn}[{j}].{k}", optional=False, max_len=4000)
                      for k in ("requirement", "member")})
    return parts


def _check_architecture(c: _Checker, value: Any) -> Architecture | None:
    if value is None:
        return None
    d = c.mapping(value, "architecture")
    c.unknown(d, ("arch", *ARCH_INT_FIELDS, *ARCH_OPTIONAL_INT_FIELDS, *ARCH_OPTIONAL_FLOAT_FIELDS), "architecture")
    arch = c.text(d.get("arch"), "architecture.arch", optional=False, max_len=64)
    ints = {k: c.integer(d.get(k), f"architecture.{k}", lo=1, hi=1 << 31, optional=False) for k in ARCH_INT_FIELDS}
    opt = {k: c.integer(d.get(k), f"architecture.{k}", lo=1, hi=1 << 31) for k in ARCH_OPTIONAL_INT_FIELDS}
    rope = d.get("rope_theta")
    if rope is not None:
        rope = float(c.number(rope, "architecture.rope_theta", lo=1.0, hi=1e12))
    if ints["heads"] % ints["kv_heads"]:
        raise c.fail("architecture.kv_heads", f"must divide heads ({ints['heads']} % {ints['kv_heads']} != 0)")
    return Architecture(arch=arch, **ints, **opt, rope_theta=rope)


def _check_sampling(c: _Checker, value: Any) -> dict | None:
    if value is None:
        return None
    d = c.mapping(value, "sampling")
    c.unknown(d, SAMPLING_FIELDS, "sampling")
    out: dict[str, float | int] = {}
    for k, (typ, lo, hi) in SAMPLING_FIELDS.items():
        if d.get(k) is None:
            continue
        if typ is int:
            out[k] = c.integer(d[k], f"sampling.{k}", lo=int(lo), hi=int(hi))
        else:
            out[k] = float(c.number(d[k], f"sampling.{k}", lo=lo, hi=hi))
    return out


def _check_template(c: _Checker, value: Any) -> PromptTemplate | None:
    if value is None:
        return None
    if isinstance(value, str):  # shorthand: just the text, placeholders style
        return PromptTemplate(text=value, style=template_style(value))
    d = c.mapping(value, "prompt_template")
    c.unknown(d, ("text", "style"), "prompt_template")
    text = c.text(d.get("text"), "prompt_template.text", optional=False)
    style = c.text(d.get("style"), "prompt_template.style") or template_style(text)
    if style not in TEMPLATE_STYLES:
        raise c.fail("prompt_template.style", f"must be one of {', '.join(TEMPLATE_STYLES)} (got {style!r})")
    return PromptTemplate(text=text, style=style)


def template_style(text: str) -> str:
    """'jinja' when the text uses Jinja syntax, else 'placeholders' ({prompt}, {system_message})."""
    return "jinja" if re.search(r"\{\{|\{%", text) else "placeholders"


def manifest_from_dict(data: Any, where: str = "<manifest>", path: Path | None = None) -> Manifest:
    """Validate plain data (as loaded from YAML) into a Manifest; ManifestError names the field and file."""
    c = _Checker(where)
    if not isinstance(data, dict):
        raise ManifestError(f"must be a YAML mapping at the top level (got {_kind(data)})", where=where,
                            hint="see manifests/SCHEMA.md")
    c.mapping(data, "")
    c.unknown(data, TOP_FIELDS, "")
    schema = c.integer(data.get("schema"), "schema", lo=1, hi=1 << 30, optional=False)
    if schema != SCHEMA_VERSION:
        raise c.fail("schema", f"is {schema}; this modelctl reads schema {SCHEMA_VERSION} (upgrade modelctl?)")
    name = c.text(data.get("name"), "name", optional=False, max_len=128)
    if not NAME_RE.match(name):
        raise c.fail("name", f"must be lowercase letters, digits, '.', '_' or '-' (got {name!r})")
    repo = c.text(data.get("repo"), "repo", max_len=200)
    if repo is not None and not REPO_ID_RE.match(repo):
        raise c.fail("repo", f"must be a repo id owner/name or null (got {repo!r})")
    if data.get("files") is not None and not isinstance(data.get("files"), list):
        raise c.fail("files", f"must be a list (got {_kind(data.get('files'))})")
    files = [_check_file(c, f, i) for i, f in enumerate(data.get("files") or [])]
    names = [f.name for f in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise c.fail("files", f"lists {dup[0]!r} more than once")
    if data.get("sources") is not None and not isinstance(data.get("sources"), list):
        raise c.fail("sources", f"must be a list (got {_kind(data.get('sources'))})")
    sources = [_check_source(c, s, i, set(names)) for i, s in enumerate(data.get("sources") or [])]
    default_file = c.text(data.get("default_file"), "default_file", max_len=1000)
    if default_file is not None and default_file not in names:
        raise c.fail("default_file", f"names {default_file!r}, which is not in 'files'")
    return Manifest(
        schema=schema,
        name=name,
        repo=repo,
        revision=c.text(data.get("revision"), "revision", max_len=200) or "main",
        model_name=c.text(data.get("model_name"), "model_name", max_len=500),
        model_creator=c.text(data.get("model_creator"), "model_creator", max_len=500),
        base_model=c.text(data.get("base_model"), "base_model", max_len=500),
        license=c.text(data.get("license"), "license", max_len=200),
        model_type=c.text(data.get("model_type"), "model_type", max_len=100),
        quantizer=c.text(data.get("quantizer"), "quantizer", max_len=200),
        prompt_template=_check_template(c, data.get("prompt_template")),
        chat_template=c.text(data.get("chat_template"), "chat_template", max_len=200_000),
        stop=c.text_list(data.get("stop"), "stop"),
        sampling=_check_sampling(c, data.get("sampling")),
        architecture=_check_architecture(c, data.get("architecture")),
        files=files,
        default_file=default_file,
        sources=sources,
        notes=c.text(data.get("notes"), "notes", max_len=20_000),
        path=path,
    )


# ---------------------------------------------------------------------------
# YAML in and out


# ---------------------------------------------------------------------------
# the YAML form
# ---------------------------------------------------------------------------


def parse_yaml_text(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"is not valid YAML{line}: {problem}", where=where,
                            hint="fix the YAML syntax; see manifests/SCHEMA.md") from None


def dump_yaml(data: Any) -> str:
    """YAML in schema order; multi-line text as literal blocks where YAML can keep it exact."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120,
                     default_flow_style=False)
