"""Writing files so that readers never see half of one: a temp file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelctl.core.errors import ModelctlError


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; on any failure the old file (if any) is untouched."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ModelctlError("the folder does not exist", where=str(folder), hint="create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ModelctlError(f"cannot write here: {exc.strerror or exc}", where=str(folder)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ModelctlError(f"cannot write file: {exc.strerror or exc}", where=str(target)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


FICLONE = 0x40049409   # the Linux ioctl that makes a reflink (copy-on-write clone): btrfs, xfs, bcachefs


def link_or_copy(src: str | os.PathLike, dest: str | os.PathLike, *, where: str) -> Path:
    """``dest`` with the bytes of ``src``, atomically: a hard link when both are on one filesystem (no
    second copy on disk), else a reflink where the filesystem can, else a copy after a free-space check.
    Written under a temporary name in ``dest``'s folder and renamed; a failed copy leaves nothing behind
    and a full disk is the documented disk-full error."""
    from modelctl.core.diskspace import check_free_disk, disk_full, is_disk_full

    src, dest = Path(src), Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        check_free_disk(dest.parent, src.stat().st_size, where)
        try:
            _copy(src, tmp)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise disk_full(where, dest.parent, resumable=False) from None
            raise
    os.replace(tmp, dest)
    return dest


def _copy(src: Path, tmp: Path) -> None:
    import fcntl
    import shutil

    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            cloned = True
        except OSError:
            cloned = False
    if not cloned:
        shutil.copyfile(src, tmp)           # sendfile: the copy stays in the kernel
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
