"""Model ids -> local paths. `pugc-tiny/*` ids are built here, deterministically, with nothing downloaded."""
from __future__ import annotations

import os
from pathlib import Path

TINY_PREFIX = "pugc-tiny/"


def cache_dir() -> Path:
    """Where built models live: $PUGC_CACHE_DIR, else ~/.cache/pugc."""
    root = os.environ.get("PUGC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pugc")
    return Path(root)


def resolve_model(model_id: str) -> str:
    """A path or hub id that `from_pretrained` can load; tiny ids are built on first use and cached."""
    if model_id.startswith(TINY_PREFIX):
        from pugc.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model(model_id))
    return model_id
