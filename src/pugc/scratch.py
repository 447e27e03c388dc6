"""A task's scratch folder: working files that live only while the task runs (an evaluation's intermediate
passes, a join's on-disk index). Under `$PUGC_SCRATCH` when set (a volume sized for it), else the system's
temporary folder (on a pod: its ephemeral storage, where KFP's launcher also puts the downloaded inputs).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

SCRATCH_ENV = "PUGC_SCRATCH"


def scratch_root() -> str:
    return os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()


def new_scratch_folder(label: str) -> Path:
    root = Path(scratch_root())
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"pugc-{label}-", dir=root))


@contextlib.contextmanager
def scratch_folder(label: str) -> Iterator[Path]:
    """A fresh folder under the scratch root, removed with everything in it on leaving."""
    folder = new_scratch_folder(label)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def folder_bytes(folder: str | os.PathLike) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
