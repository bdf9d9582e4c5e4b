"""Where modelctl keeps files: the Hugging Face store (``HF_HUB_CACHE``) and its own cache (``MODELCTL_CACHE``)."""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache() -> Path:
    """``$HF_HUB_CACHE`` resolved the way huggingface_hub resolves it (without importing it)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    home = os.environ.get("HF_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def modelctl_cache() -> Path:
    """modelctl's own cache (``$MODELCTL_CACHE``): plain URL and manifest downloads outside the Hub layout."""
    base = os.environ.get("MODELCTL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "modelctl")
    return Path(base)
