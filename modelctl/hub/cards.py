"""Model cards from wherever they are: a file, stdin, a manifest, or a Hub repo's README.md.

Parsing is ``modelctl.cards.card``'s (pure text in, data out); this module only finds and reads the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelctl.cards.card import MAX_CARD_BYTES, card_from_manifest, decode_card, parse_card, read_card_file
from modelctl.gguf.names import REPO_ID_RE
from modelctl.core import output
from modelctl.core.errors import NotFoundError
from modelctl.hub import api as hub


def fetch_card(repo_id: str, revision: str = "main") -> tuple[str, str]:
    """(text, where) of a repo's README.md, fetched with huggingface_hub from $HF_ENDPOINT."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import disable_progress_bars

    if not output.live_allowed():
        disable_progress_bars()
    endpoint = hub.endpoint()
    where = f"{endpoint}/{repo_id}"
    try:
        path = hf_hub_download(repo_id, "README.md", revision=revision, endpoint=endpoint)
    except hf_errors.RemoteEntryNotFoundError:
        raise NotFoundError("the repo has no README.md (no model card)", where=where) from None
    except Exception as exc:  # one mapping of Hub errors to exit codes for every command
        raise hub.map_error(exc, repo=repo_id, revision=revision) from None
    with open(path, "rb") as fh:
        raw = fh.read(MAX_CARD_BYTES + 1)
    return decode_card(raw, where), where



def load_source(source: str, *, revision: str = "main") -> tuple[dict, Any]:
    """(card dict, Manifest or None) for SOURCE: a card path ('-': stdin), a manifest name/path, or a repo id."""
    from modelctl.cards.manifest import NAME_RE, list_manifests, load_manifest

    if source == "-":  # the card on stdin: curl -sL .../README.md | modelctl card -
        import sys

        return parse_card(decode_card(sys.stdin.buffer.read(MAX_CARD_BYTES + 1), "<stdin>"), source="-"), None
    path = Path(source).expanduser()
    if path.exists() or path.is_symlink():
        if path.suffix.lower() in (".yaml", ".yml"):
            m = load_manifest(path)
            return card_from_manifest(m), m
        return parse_card(read_card_file(path), source=str(path)), None
    if source.lower().endswith((".yaml", ".yml")):
        m = load_manifest(source)  # raises NotFoundError naming the path
        return card_from_manifest(m), m
    if NAME_RE.match(source) and source in list_manifests():
        m = load_manifest(source)
        return card_from_manifest(m), m
    if REPO_ID_RE.match(source) and not source.lower().endswith(".md"):
        text, where = fetch_card(source, revision)
        card = parse_card(text, repo=source, source=where)
        card["revision"] = revision
        return card, None
    known = ", ".join(list_manifests()) or "none"
    raise NotFoundError(f"{source!r} is not a card file, a manifest or a repo id", where=None,
                        hint=f"give a path to a README.md, a repo id owner/name, or a manifest name; known manifests: {known}")
