"""Free-disk checks and the disk-full error: one rule for every place modelctl writes big files.

The advice names the setting that moves the folder: ``HF_HUB_CACHE`` for the Hugging Face store,
``MODELCTL_CACHE`` for URL and manifest downloads, another ``--dir`` for placed copies.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from modelctl.core.errors import ModelctlError
from modelctl.core.paths import hub_cache, modelctl_cache

DISK_MARGIN = 16 << 20           # keep this much free beyond the file
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)   # no space, quota, file size limit


def _move_hint(directory: Path) -> str:
    """What moves ``directory`` elsewhere: the environment variable of the store it is in, else --dir."""
    for root, variable in ((modelctl_cache(), "MODELCTL_CACHE"), (hub_cache(), "HF_HUB_CACHE")):
        try:
            Path(directory).resolve().relative_to(root.resolve())
            return f"point {variable} elsewhere"
        except ValueError:
            continue
    return "choose another --dir"


def check_free_disk(directory: Path, needed: int, where: str) -> None:
    """Refuse before writing a byte when ``needed`` bytes (plus a margin) do not fit in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed + DISK_MARGIN > free:
        raise ModelctlError(
            f"not enough free disk: need {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free in {directory}",
            where=where, hint=f"free some space or {_move_hint(directory)}",
        )


def disk_full(where: str, directory: Path | None = None, resumable: bool = True) -> ModelctlError:
    """The error for a write that ran out of room (ENOSPC, quota, file size limit)."""
    then = "run the command again to resume" if resumable else "run the command again"
    place = f" in {directory}" if directory is not None else ""
    return ModelctlError(f"disk full while writing{place}", where=where, hint=f"free some space and {then}")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL
