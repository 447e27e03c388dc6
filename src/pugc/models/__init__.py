"""Model ids -> local paths. `pugc-tiny/*` ids are built here, deterministically, with nothing downloaded."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

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


def hub_revision(model_id: str, revision: str | None) -> str | None:
    """The revision to load `model_id` at: None for a local folder or a tiny id, which have no revisions (a
    pinned revision there is ignored with a warning, so a recipe can point a role at a local copy unchanged)."""
    if revision and (model_id.startswith(TINY_PREFIX) or Path(model_id).is_dir()):
        log.warning("%s is a local model: revision %r ignored", model_id, revision)
        return None
    return revision
