"""The sha256 kept beside a URL download: ``NAME.sha256`` in sha256sum's format (``sha256sum -c`` reads it;
it skips the ``#`` line), with the file's size and mtime when it was hashed, so that a later pull trusts
the stored hash after a stat (cheap) and re-hashes only when the file changed or ``--verify`` asks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelctl.core.atomicfile import write_text_atomic
from modelctl.hub.hashing import sha256_file

SUFFIX = ".sha256"


@dataclass
class Record:
    sha256: str
    size: int
    mtime_ns: int


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def record(path: Path, digest: str) -> None:
    st = path.stat()
    write_text_atomic(sidecar(path), f"# modelctl: size={st.st_size} mtime_ns={st.st_mtime_ns}\n"
                                     f"{digest}  {path.name}\n")


def read(path: Path) -> Record | None:
    try:
        lines = sidecar(path).read_text().splitlines()
        fields = dict(kv.split("=", 1) for kv in lines[0].removeprefix("# modelctl:").split())
        digest = lines[1].split()[0].lower()
        return Record(digest, int(fields["size"]), int(fields["mtime_ns"])) if len(digest) == 64 else None
    except (OSError, IndexError, KeyError, ValueError):
        return None


def forget(path: Path) -> None:
    for p in (path, sidecar(path)):
        p.unlink(missing_ok=True)


def reusable(path: Path, expected: str | None, full: bool = False) -> tuple[str | None, str]:
    """(the stored file's sha256, "") when it can be served as cached, else (None, why not).

    The stored hash is trusted when size and mtime are those it was computed for, unless ``full``;
    otherwise the file is hashed again (and the record refreshed when it still matches)."""
    rec = read(path)
    st = path.stat()
    if rec is not None and not full and (rec.size, rec.mtime_ns) == (st.st_size, st.st_mtime_ns):
        digest = rec.sha256
    else:
        digest = sha256_file(path)
        if rec is not None and digest != rec.sha256:
            return None, f"the stored copy is damaged (sha256 {digest}, stored {rec.sha256})"
        record(path, digest)
    if expected and digest != expected.lower():
        return None, f"the stored copy has sha256 {digest}, not {expected.lower()}"
    return digest, ""
